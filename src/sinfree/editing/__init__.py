"""Editing applications as small variations of the sampler (DESIGN.md §1, issue 5)."""

from .base import Edit, WrappedDenoiser
from .geometry import AXES, Retarget, Symmetric, Tile, mirror, seam_error, tile_preview

__all__ = ["AXES", "Edit", "Retarget", "Symmetric", "Tile", "WrappedDenoiser", "mirror", "seam_error", "tile_preview"]
