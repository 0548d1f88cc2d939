"""Patch geometry: query positions, unfold to flattened patches, windowed fold back (Algorithm 1)."""

from __future__ import annotations

import math

import torch

# Floor of the 1-D window: border pixels are covered only by patch edges, whose Gaussian weight
# underflows fp32 for rho < ~0.13; the floor keeps every pixel's normaliser positive. It changes
# nothing for rho >= 0.14 (exp(-1 / 2 rho^2) > 1e-12 there).
WINDOW_FLOOR = 1e-12


def query_stride(
    stride: int,
    early_stride: int,
    early_stride_above: float,
    sigma: float,
    noisy_stride: int = 1,
    noisy_stride_above: float = 0.5,
) -> int:
    """The query grid's stride at noise level ``sigma``: ``stride``, or the coarser ``early_stride`` on the
    early steps (s_t > ``early_stride_above``), where xhat0 is smooth, and ``noisy_stride`` on the noisiest
    (s_t > ``noisy_stride_above``); the largest that applies."""
    early = early_stride if sigma > early_stride_above else 1
    noisy = noisy_stride if sigma > noisy_stride_above else 1
    return max(stride, early, noisy)


def patch_positions(length: int, patch_size: int, stride: int = 1) -> torch.Tensor:
    """Top-left coordinates of patches along one axis: every ``stride``-th one, plus the last.

    The last position (``length - patch_size``) is always included so that every pixel is covered.
    """
    if length < patch_size:
        raise ValueError(f"axis of length {length} is smaller than the patch size {patch_size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    last = length - patch_size
    positions = list(range(0, last + 1, stride))
    if positions[-1] != last:
        positions.append(last)
    return torch.tensor(positions, dtype=torch.long)


def gaussian_window_1d(patch_size: int, rho: float) -> torch.Tensor:
    """1-D window ``exp(-u^2 / 2 rho^2)`` on u in [-1, 1] (P,), floored at WINDOW_FLOOR; ``rho = inf`` gives ones."""
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (or inf), got {rho}")
    if math.isinf(rho):
        return torch.ones(patch_size, dtype=torch.float32)
    u = torch.linspace(-1.0, 1.0, patch_size, dtype=torch.float64) if patch_size > 1 else torch.zeros(1, dtype=torch.float64)
    return torch.exp(-(u**2) / (2.0 * rho**2)).clamp_min(WINDOW_FLOOR).to(torch.float32)


def gaussian_window(patch_size: int, rho: float) -> torch.Tensor:
    """Separable window ``g(u) g(v)`` of ``gaussian_window_1d``, flattened to (P*P,)."""
    w = gaussian_window_1d(patch_size, rho).to(torch.float64)
    return torch.outer(w, w).flatten().to(torch.float32)


def all_patches(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Every P x P patch (stride 1, no padding) of ``image`` (C, H, W), flattened to (M, C*P*P).

    Filled one patch row at a time, so the only large allocation is the (M, C*P*P) result.
    """
    channels, height, width = image.shape
    rows = patch_positions(height, patch_size)
    cols = patch_positions(width, patch_size)
    out = torch.empty(len(rows), len(cols), channels * patch_size * patch_size, dtype=image.dtype, device=image.device)
    for r in rows.tolist():
        out[r] = extract_patches(image, rows[r : r + 1], cols, patch_size)
    return out.reshape(len(rows) * len(cols), -1)


def extract_patches(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Patches of ``image`` (C, H, W) at the grid ``rows x cols`` of top-left corners, as (n, C*P*P).

    Rows vary slowest; the channel-major flattening matches ``F.unfold``.
    """
    grid = image.unfold(1, patch_size, 1).unfold(2, patch_size, 1)  # (C, H-P+1, W-P+1, P, P) view
    # a unit-stride grid stays a view until the one copy below (4x faster than gathering it)
    grid = grid[:, _as_index(rows)]
    grid = grid[:, :, _as_index(cols)]
    return grid.permute(1, 2, 0, 3, 4).reshape(len(rows) * len(cols), -1)


def fold_patches(
    values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, patch_size: int, out: torch.Tensor
) -> torch.Tensor:
    """Add patches ``values`` (n, C*P*P) at the grid ``rows x cols`` into ``out`` (C, H, W), in place.

    The adjoint of ``extract_patches``: one shifted add per patch offset (P^2 of them), a slice of
    ``out`` for unit-stride grids (as fast as ``F.fold`` on bands, faster on whole images), a strided ``index_add_`` otherwise.
    """
    channels, height, width = out.shape
    p = patch_size
    patches = values.reshape(len(rows), len(cols), channels, p, p)
    if _is_unit_range(rows) and _is_unit_range(cols):
        r0, c0 = int(rows[0]), int(cols[0])
        planes = patches.permute(3, 4, 2, 0, 1).contiguous()  # (P, P, C, r, c): contiguous adds below
        for i in range(p):
            for j in range(p):
                out[:, r0 + i : r0 + i + len(rows), c0 + j : c0 + j + len(cols)] += planes[i, j]
        return out
    flat_out = out.view(channels, height * width)
    for i in range(p):
        for j in range(p):
            index = ((rows + i)[:, None] * width + (cols + j)[None, :]).flatten().to(out.device)
            flat_out.index_add_(1, index, patches[:, :, :, i, j].reshape(-1, channels).T)
    return out


def _as_index(positions: torch.Tensor) -> slice | torch.Tensor:
    """A slice for consecutive positions (indexing stays a view), else the positions themselves."""
    if _is_unit_range(positions):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    return positions


def _is_unit_range(positions: torch.Tensor) -> bool:
    return len(positions) == 1 or bool((positions[1:] - positions[:-1] == 1).all())
