"""Antialiased bicubic resampling with mirror boundaries, separable and for any pair of sizes.

Written here rather than taken from ``F.interpolate``: its antialiased mode renormalises the kernel
at the borders instead of mirroring, and its output grid cannot be padded to reach mirror
boundaries for sizes that are not exact multiples. Each axis is a small table of taps (indices
and weights), so memory is O(output size x taps) for any image size.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

CUBIC_A = -0.5  # Keys' cubic, as in PIL and MATLAB's imresize


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (support [-2, 2])."""
    ax = x.abs()
    a = CUBIC_A
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def mirror_index(index: torch.Tensor, length: int) -> torch.Tensor:
    """Half-sample symmetric boundary: ... b a | a b c ... c | c b ... (edge pixels repeated)."""
    period = 2 * length
    index = torch.remainder(index, period)
    return torch.where(index < length, index, period - 1 - index)


def resize_taps(in_len: int, out_len: int, circular: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (out_len, K) and weights (out_len, K) of 1-D antialiased bicubic resampling.

    Pixel centres map as ``u = (i + 0.5) in_len / out_len - 0.5``; when shrinking, the kernel is
    stretched by the shrink factor (antialiasing) and its weights renormalised to sum to one.
    ``circular`` wraps indices around (periodic images: seamless tiles) instead of mirroring.
    """
    index, weights = unwrapped_taps(in_len, out_len)
    return (torch.remainder(index, in_len) if circular else mirror_index(index, in_len)), weights


def unwrapped_taps(in_len: int, out_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``resize_taps`` before its boundary rule: the indices near the ends fall outside [0, in_len)."""
    scale = out_len / in_len
    stretch = max(1.0, 1.0 / scale)
    support = 2.0 * stretch
    centres = (torch.arange(out_len, dtype=torch.float64) + 0.5) / scale - 0.5
    num_taps = int(math.ceil(2 * support)) + 1
    first = torch.floor(centres - support + 1).long()
    index = first[:, None] + torch.arange(num_taps)[None, :]
    weights = cubic((index.double() - centres[:, None]) / stretch)
    return index, weights / weights.sum(dim=1, keepdim=True)


# An axis is resampled as one dense matrix product when its matrix has at most this many entries
# (a 4096 x 2048 pair; a BLAS product is ~10x faster than gathering the taps), else by its taps.
DENSE_MAX_ENTRIES = 2**23


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, circular: bool = False) -> torch.Tensor:
    """The (out_len, in_len) float64 matrix of ``resize_taps`` (taps that mirror onto the same pixel add up)."""
    index, weights = resize_taps(in_len, out_len, circular)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    return matrix.scatter_add_(1, index, weights)


def _resize_axis(image: torch.Tensor, out_len: int, dim: int, circular: bool = False) -> torch.Tensor:
    in_len = image.shape[dim]
    if in_len == out_len:
        return image
    if in_len * out_len <= DENSE_MAX_ENTRIES and image.dtype in (torch.float32, torch.float64):
        matrix = resize_matrix(in_len, out_len, circular).to(image.device, image.dtype)
        return torch.matmul(matrix, image.movedim(dim, -2)).movedim(-2, dim).contiguous()
    index, weights = resize_taps(in_len, out_len, circular)
    moved = image.movedim(dim, -1)
    gathered = moved[..., index.to(image.device)]  # (..., out_len, K)
    out = (gathered * weights.to(image.device, image.dtype)).sum(dim=-1)
    return out.movedim(-1, dim).contiguous()


def resize(image: torch.Tensor, size: tuple[int, int], circular: bool = False) -> torch.Tensor:
    """Resize ``image`` (..., H, W) to ``size`` = (height, width): antialiased bicubic, mirror
    boundaries (``circular``: periodic ones)."""
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return _resize_axis(_resize_axis(image, height, -2, circular), width, -1, circular)
