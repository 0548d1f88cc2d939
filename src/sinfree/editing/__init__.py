"""Editing applications as small variations of the sampler (DESIGN.md §1, issue 5)."""

from ..denoiser_wrapper import WrappedDenoiser
from ..edit import Edit
from .analogy import StructuralAnalogy, structural_analogy
from .geometry import AXES, Retarget, Symmetric, Tile, mirror, seam_error, tile_preview
from .inpaint import Harmonize, Inpaint, harmonize, inpaint
from .inversion import ddim_invert, nearest_step
from .style import ClipStyle, MissingModelError, load_clip, stylize

__all__ = [
    "AXES",
    "ClipStyle",
    "Edit",
    "Harmonize",
    "Inpaint",
    "MissingModelError",
    "Retarget",
    "StructuralAnalogy",
    "Symmetric",
    "Tile",
    "WrappedDenoiser",
    "ddim_invert",
    "harmonize",
    "inpaint",
    "load_clip",
    "mirror",
    "nearest_step",
    "seam_error",
    "structural_analogy",
    "stylize",
    "tile_preview",
]
