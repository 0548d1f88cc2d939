"""Quality figures of generated images against their reference (the paper's Table 1 protocol, issue 4)."""

from .copying import copying_rate
from .layout import layout_distance, profile_distances, seam_ratio
from .lpips import lpips_distance, lpips_diversity
from .niqe import niqe
from .patch_statistics import nearest_patch_distance, pixel_diversity, sliced_wasserstein
from .sifid import sifid, sifid_many

__all__ = [
    "copying_rate",
    "layout_distance",
    "lpips_distance",
    "lpips_diversity",
    "nearest_patch_distance",
    "niqe",
    "pixel_diversity",
    "profile_distances",
    "seam_ratio",
    "sifid",
    "sifid_many",
    "sliced_wasserstein",
]
