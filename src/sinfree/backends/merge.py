"""Redundant reference patches merged into one with a count (issue 3 (b), after AT-EDM's token merging).

Eq. 2 sums over patches; ``c`` identical patches contribute ``c exp(logit)``, i.e. one patch with
``log c`` added to its logit. Merging is therefore exact for true duplicates (flat backgrounds,
synthetic textures, padded scans) and an approximation for near-duplicates, which are grouped on a
grid of step ``tolerance`` (in intensity units, per pixel) and replaced by their mean.
"""

from __future__ import annotations

import torch

_HASH_SEED = 0x5EED


def merge_patches(patches: torch.Tensor, tolerance: float = 0.0, chunk_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Representatives (M', D) of groups of equal (``tolerance = 0``) or near-equal patches, and the
    size of each group (M',). Representatives are the group means, in the order of first appearance."""
    if tolerance < 0:
        raise ValueError(f"merge tolerance must be >= 0, got {tolerance}")
    keys = _group_keys(patches, tolerance, chunk_size)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    first = torch.full((len(counts),), len(patches), dtype=torch.long, device=patches.device).scatter_reduce_(
        0, inverse, torch.arange(len(patches), device=patches.device), reduce="amin"
    )
    order = torch.argsort(first)  # groups in order of first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    group = rank[inverse]
    sums = torch.zeros(len(counts), patches.shape[1], dtype=torch.float64, device=patches.device).index_add_(
        0, group, patches.to(torch.float64)
    )
    counts = counts[order]
    return (sums / counts[:, None]).to(patches.dtype), counts


def _group_keys(patches: torch.Tensor, tolerance: float, chunk_size: int) -> torch.Tensor:
    """A 64-bit hash per patch of its values (its bit pattern, or its cell on the tolerance grid)."""
    weights = torch.randint(-(2**62), 2**62, (patches.shape[1],), generator=torch.Generator().manual_seed(_HASH_SEED)) | 1
    weights = weights.to(patches.device)
    keys = torch.empty(len(patches), dtype=torch.long, device=patches.device)
    for start in range(0, len(patches), chunk_size):
        chunk = patches[start : start + chunk_size].to(torch.float32)
        if tolerance == 0:
            cells = (chunk + 0.0).view(torch.int32).to(torch.long)  # + 0.0 maps -0.0 to 0.0
        else:
            cells = torch.floor(chunk / tolerance + 0.5).to(torch.long)
        keys[start : start + len(chunk)] = (cells * weights).sum(dim=1)  # wraps modulo 2^64
    return keys
