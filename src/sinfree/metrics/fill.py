"""How well a filled region sits in its image: a step at the region's edge, and the region's tone and local
contrast against a ring around it. Images are (H, W) or (H, W, C) arrays, the region a bool (H, W) array."""

from __future__ import annotations

import numpy as np

from ..extras import require


def _ndimage():
    return require("scipy.ndimage", "eval", "the fill metrics (sinfree.metrics.fill)")


def _as_float(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    return x[..., None] if x.ndim == 2 else x


def edge_seam(image: np.ndarray, region: np.ndarray, band: int = 4) -> float:
    """The mean squared neighbour difference across the region's edge (pairs with one pixel inside, one
    outside) over the same for pairs within ``band`` px of the edge that do not cross it: about 1 or below
    where the edge is as smooth as its surroundings, above 1 where a step shows."""
    x, region = _as_float(image), np.asarray(region, bool)
    ndimage = _ndimage()
    near = ndimage.binary_dilation(region, iterations=band) & ndimage.binary_dilation(~region, iterations=band)
    crossing, beside = [], []
    for axis in (0, 1):
        first = [slice(None)] * 2
        second = [slice(None)] * 2
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        first, second = tuple(first), tuple(second)
        energy = ((x[first] - x[second]) ** 2).sum(axis=-1)
        crosses = region[first] != region[second]
        crossing.append(energy[crosses])
        beside.append(energy[near[first] & near[second] & ~crosses])
    return float(np.concatenate(crossing).mean() / max(np.concatenate(beside).mean(), 1e-12))


def tone_and_contrast(image: np.ndarray, region: np.ndarray, ring: int = 8) -> tuple[float, float]:
    """(tone, contrast) of the region against a ring of ``ring`` px around it, as relative differences: the
    mean intensity's |inside - ring| / ring, and the local contrast's (the mean absolute difference to a 3 x 3
    neighbourhood's mean) |inside - ring| / ring. 0 where the region matches its surroundings."""
    ndimage = _ndimage()
    x = _as_float(image).mean(axis=-1)
    region = np.asarray(region, bool)
    around = ndimage.binary_dilation(region, iterations=ring) & ~region
    local = np.abs(x - ndimage.uniform_filter(x, 3))
    tone = abs(x[region].mean() - x[around].mean()) / max(abs(x[around].mean()), 1e-12)
    contrast = abs(local[region].mean() - local[around].mean()) / max(local[around].mean(), 1e-12)
    return float(tone), float(contrast)
