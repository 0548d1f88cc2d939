"""Training-free quality figures of generated images against their reference."""

from .patch_statistics import nearest_patch_distance, pixel_diversity, sliced_wasserstein

__all__ = ["nearest_patch_distance", "pixel_diversity", "sliced_wasserstein"]
