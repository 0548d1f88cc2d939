"""Patch statistics of a sample against its reference: sliced Wasserstein, nearest patch, diversity.

All take float tensors (C, H, W) in [-1, 1], as ``sinfree.load_image`` gives them.
"""

from __future__ import annotations

import torch

from ..patches import all_patches
from ..pyramid import build_pyramid

SWD_PATCH = 7
SWD_PROJECTIONS = 128
SWD_MAX_PATCHES = 16384


def _patch_sample(image: torch.Tensor, patch_size: int, limit: int, generator: torch.Generator) -> torch.Tensor:
    patches = all_patches(image.to(torch.float32), patch_size)
    if len(patches) > limit:
        patches = patches[torch.randperm(len(patches), generator=generator)[:limit]]
    return patches


def sliced_wasserstein(
    sample: torch.Tensor,
    reference: torch.Tensor,
    *,
    num_scales: int = 3,
    patch_size: int = SWD_PATCH,
    num_projections: int = SWD_PROJECTIONS,
    max_patches: int = SWD_MAX_PATCHES,
    seed: int = 0,
) -> float:
    """Multi-scale sliced Wasserstein-1 distance between the 7 x 7 patch sets of two images.

    At each of ``num_scales`` pyramid levels (halving, as in generation), both patch sets (at most
    ``max_patches``, drawn with ``seed``) are projected onto the same ``num_projections`` fixed
    random unit directions; the 1-D W1 distance of each projection is the mean absolute difference
    of matched quantiles. Returns the mean over projections and scales (0 for identical sets).
    """
    generator = torch.Generator().manual_seed(seed)
    dim = sample.shape[0] * patch_size * patch_size
    directions = torch.randn(dim, num_projections, generator=generator)
    directions /= directions.norm(dim=0, keepdim=True)
    distances = []
    for level_sample, level_reference in zip(build_pyramid(sample, num_scales), build_pyramid(reference, num_scales)):
        if min(level_sample.shape[-2:]) < patch_size or min(level_reference.shape[-2:]) < patch_size:
            break
        a = (_patch_sample(level_sample, patch_size, max_patches, generator) @ directions).sort(dim=0).values
        b = (_patch_sample(level_reference, patch_size, max_patches, generator) @ directions).sort(dim=0).values
        count = min(len(a), len(b))
        quantiles = (torch.arange(count, dtype=torch.float32) + 0.5) / count
        a = torch.quantile(a, quantiles, dim=0) if len(a) != count else a
        b = torch.quantile(b, quantiles, dim=0) if len(b) != count else b
        distances.append((a - b).abs().mean().item())
    return sum(distances) / len(distances)


def nearest_patch_distance(
    sample: torch.Tensor, reference: torch.Tensor, *, patch_size: int = SWD_PATCH, max_queries: int | None = None, seed: int = 0
) -> float:
    """Median over the sample's patches of the RMS-per-pixel distance to the nearest reference patch.

    ``max_queries``: the median over that many of the sample's patches, drawn with ``seed`` (the
    search is exact over all reference patches; its cost is linear in the queries).
    """
    queries = all_patches(sample.to(torch.float32), patch_size)
    if max_queries is not None and len(queries) > max_queries:
        queries = queries[torch.randperm(len(queries), generator=torch.Generator().manual_seed(seed))[:max_queries]]
    patches = all_patches(reference.to(torch.float32), patch_size)
    half_norms = 0.5 * patches.square().sum(dim=1)
    best = []
    for chunk in queries.split(2048):
        # ||q - y||^2 = ||q||^2 - 2 (q.y - ||y||^2 / 2), minimised over y by the largest score
        score = (chunk @ patches.T - half_norms).max(dim=1).values
        best.append((chunk.square().sum(dim=1) - 2 * score).clamp_min(0))
    return (torch.cat(best) / patches.shape[1]).sqrt().median().item()


def pixel_diversity(samples: list[torch.Tensor], reference: torch.Tensor) -> float:
    """Per-pixel standard deviation across samples, averaged, over the reference's standard deviation."""
    if len(samples) < 2:
        raise ValueError("pixel diversity needs at least two samples")
    return (torch.stack(samples).std(dim=0).mean() / reference.std()).item()
