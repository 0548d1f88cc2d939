"""Copying rate: the share of a sample's textured crops found almost unchanged in the reference.

SIFID rewards samples that copy the input (DESIGN.md §3); this figure says how much of a sample is
a copy. The sample is cut into non-overlapping ``crop`` x ``crop`` tiles; tiles whose pixel std is
under ``min_std`` (flat sky, black background) are left out, since any generator reproduces them.
A textured tile counts as copied when some crop of the reference, at any position, is within an
RMS distance of ``tolerance`` times the tile's own std (by default a residual under 0.25 % of the
tile's variance: on the exact backend's samples of the benchmark images the distance ratios of
verbatim copies lie under 0.05, apart from a continuum of recombined tiles above).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COPY_CROP = 32
COPY_MIN_STD = 0.1  # on the [-1, 1] scale: 5 % of the full range
COPY_TOLERANCE = 0.05


def _tiles(image: torch.Tensor, crop: int) -> torch.Tensor:
    """Non-overlapping crop x crop tiles of a (C, H, W) image, (K, C, crop, crop)."""
    channels = image.shape[0]
    tiles = image.unfold(1, crop, crop).unfold(2, crop, crop)  # (C, rows, cols, crop, crop)
    return tiles.permute(1, 2, 0, 3, 4).reshape(-1, channels, crop, crop)


def nearest_crop_distances(tiles: torch.Tensor, reference: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """RMS-per-pixel distance of each tile (K, C, c, c) to its nearest crop of ``reference`` (C, H, W).

    ||t - w_p||^2 = ||t||^2 - 2 <t, w_p> + ||w_p||^2 over all positions p: one convolution of the
    reference with the tiles as filters, and one box filter of the reference's squares.
    """
    crop = tiles.shape[-1]
    ref = reference[None].to(torch.float32)
    window_norms = F.conv2d(ref.square(), torch.ones(1, ref.shape[1], crop, crop))[0, 0]
    best = []
    for part in tiles.to(torch.float32).split(chunk):
        correlation = F.conv2d(ref, part)[0]  # (k, H', W')
        squared = part.square().sum(dim=(1, 2, 3))[:, None, None] - 2 * correlation + window_norms
        best.append(squared.flatten(1).min(dim=1).values.clamp_min(0))
    return (torch.cat(best) / tiles[0].numel()).sqrt()


def copying_rate(
    sample: torch.Tensor,
    reference: torch.Tensor,
    *,
    crop: int = COPY_CROP,
    min_std: float = COPY_MIN_STD,
    tolerance: float = COPY_TOLERANCE,
) -> float:
    """Share (0..1) of the sample's textured crop x crop tiles that are almost unchanged crops of the
    reference; NaN when the sample has no textured tile. Images are (C, H, W) in [-1, 1]."""
    if min(sample.shape[-2:]) < crop or min(reference.shape[-2:]) < crop:
        raise ValueError(f"copying rate needs images of at least {crop} x {crop} px")
    tiles = _tiles(sample.to(torch.float32), crop)
    spread = tiles.flatten(1).std(dim=1)
    textured = spread >= min_std
    if not textured.any():
        return float("nan")
    distances = nearest_crop_distances(tiles[textured], reference.to(torch.float32))
    return (distances <= tolerance * spread[textured]).double().mean().item()
