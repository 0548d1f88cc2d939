"""Groups of similar patches and their closed-form Gaussian posterior mean: the second stage of restoration.

The image's own patches, grouped by similarity on a pilot estimate, define a local Gaussian model of a
patch (mean ``mu``, covariance ``C``) whose posterior mean given a noisy patch ``y = x + n``,
``n ~ N(0, sigma^2 I)``, is

    x_hat = mu + C (C + sigma^2 I)^-1 (y - mu)                                           (NL-Bayes)

(Lebrun, Buades and Morel, SIAM J. Imaging Sci. 2013): the Gaussian counterpart of Eq. 2, whose
kernel-weighted average is the posterior mean under the empirical (Dirac mixture) model of the same
patches. ``C`` is the covariance of the group's pilot patches and ``mu`` the mean of its noisy patches;
groups whose noisy values vary no more than the noise are set to their mean (NL-Bayes' homogeneous-area
test). Every estimate of every group is folded back, weighted by the inverse of its noise variance
(BM3D's aggregation: Dabov, Foi, Katkovnik and Egiazarian, IEEE TIP 2007).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..patches import patch_positions

FAR = 1e30  # squared distance of a candidate outside the image
OWN = -1.0  # the reference patch's own distance: below every other, so each group holds its reference
BAND_PIXELS = 2**18  # guide pixels per band of block matching (memory ~ 4 (2 radius + 1) C BAND_PIXELS bytes)
CHUNK_VALUES = 2**22  # patch values (groups x k x D) estimated at once


@dataclass(frozen=True)
class GroupStage:
    """One pass of group denoising: P x P patches, groups of ``group_size`` found within ``radius`` px of each
    reference patch (every ``stride`` px), NL-Bayes' homogeneous-area threshold ``flat`` (in units of sigma^2)."""

    patch_size: int
    group_size: int
    stride: int = 3
    radius: int = 10
    flat: float = 1.0


@dataclass(frozen=True)
class Groups:
    """``index`` (R, k): flat top-left positions (row * grid[1] + col on the (H - P + 1, W - P + 1) grid) of the k
    most similar patches of each of R reference patches."""

    index: torch.Tensor
    grid: tuple[int, int]
    patch_size: int


def match_groups(guide: torch.Tensor, patch_size: int, *, stride: int, radius: int, k: int) -> Groups:
    """For reference patches of ``guide`` (C, H, W) every ``stride`` px (the last row and column included), the
    ``k`` patches with offsets of at most ``radius`` px and the least squared distance (BM3D's block matching),
    in bands of reference rows. Each group's first member is its reference patch, as in BM3D and NL-Bayes:
    the references tile the image, so every pixel gets an estimate. Left to the distance alone, the
    reference could lose a tie at distance 0 in a flat area (k of ~(2 radius + 1)^2 patches there are
    equally close), leaving pixels that no group covers (the image's corners: only one patch covers
    them) with no estimate at all: zero weight, 0 in normalised units, mid-range in the data's units."""
    _, height, width = guide.shape
    p = patch_size
    rows, cols = patch_positions(height, p, stride), patch_positions(width, p, stride)
    k = min(k, (height - p + 1) * (width - p + 1), (2 * radius + 1) ** 2)
    per_band = max(1, BAND_PIXELS // (width * (2 * radius + 1)) // stride)
    guide = guide.to(torch.float32)
    bands = [_match_band(guide, rows[i : i + per_band], cols, p, radius, k) for i in range(0, len(rows), per_band)]
    return Groups(torch.cat(bands), (height - p + 1, width - p + 1), p)


def _match_band(guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, p: int, radius: int, k: int) -> torch.Tensor:
    """``match_groups`` for the reference rows ``rows``: (len(rows) * len(cols), k) flat positions, one offset row
    dy at a time, keeping a running top-k."""
    _, height, width = guide.shape
    grid_width = width - p + 1
    top, bottom = int(rows[0]), int(rows[-1]) + p  # the band's guide rows
    reference = guide[:, top:bottom]
    padded = F.pad(guide, (radius, radius, radius, radius))
    inside = F.pad(torch.ones(1, height, width), (radius, radius, radius, radius))[0]
    offsets = torch.arange(-radius, radius + 1)
    best = torch.full((len(rows) * len(cols), k), FAR)
    best_index = torch.zeros(len(rows) * len(cols), k, dtype=torch.long)
    local_rows = rows - top
    for dy in range(-radius, radius + 1):
        span = slice(top + dy + radius, bottom + dy + radius)
        shifted = padded[:, span].unfold(2, width, 1).permute(2, 0, 1, 3)  # (2r + 1, C, h, W): dx = -r .. r
        valid = inside[span].unfold(1, width, 1).permute(1, 0, 2)
        squared = (shifted - reference[None]).square().sum(dim=1) + FAR * (1.0 - valid)
        distance = F.avg_pool2d(squared[:, None], p, stride=1)[:, 0] * (p * p)  # (2r + 1, h - P + 1, W - P + 1)
        distance = distance[:, local_rows][:, :, cols].reshape(len(offsets), -1).T
        if dy == 0:  # the reference itself ranks first, ties at distance 0 (flat areas) or not
            distance[:, radius] = OWN
        target = ((rows[:, None] + dy) * grid_width + cols[None, :]).reshape(-1, 1) + offsets[None, :]
        best, order = torch.cat([best, distance], dim=1).topk(k, dim=1, largest=False, sorted=True)
        best_index = torch.cat([best_index, target], dim=1).gather(1, order)
    own = (rows[:, None] * grid_width + cols[None, :]).reshape(-1, 1)
    return torch.where(best >= FAR, own, best_index)


def gather_patches(image: torch.Tensor, groups: Groups, select: slice = slice(None)) -> torch.Tensor:
    """The patches of ``image`` (C, H, W) of the groups ``select``: (R, k, C P^2), channel-major as ``F.unfold``."""
    p = groups.patch_size
    index = groups.index[select]
    windows = image.unfold(1, p, 1).unfold(2, p, 1)  # (C, H - P + 1, W - P + 1, P, P) view
    picked = windows[:, index // groups.grid[1], index % groups.grid[1]]  # (C, R, k, P, P)
    return picked.permute(1, 2, 0, 3, 4).reshape(*index.shape, -1)


@dataclass
class Posterior:
    """NL-Bayes for a chunk of groups: the estimates (R, k, D) and each group's aggregation weight (R,); with a
    draw, its offsets from the estimates (R, k, D) and each value's posterior std (R, D)."""

    estimate: torch.Tensor
    weight: torch.Tensor
    offset: torch.Tensor | None = None
    std: torch.Tensor | None = None


def gaussian_posterior(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, *, flat: float, generator=None) -> Posterior:
    """NL-Bayes for groups (R, k, D): ``mu + W (y - mu)``, ``W = C (C + sigma^2 I)^-1``, ``mu`` the noisy patches'
    mean and ``C`` the pilot patches' covariance; groups whose noisy values vary by at most ``flat sigma^2`` are
    set to their mean. Each group's aggregation weight is the inverse of its estimate's noise variance plus
    sigma^2: ``1 / (sigma^2 (||W||_F^2 + 1))``.

    With a ``generator``, also a draw from the posterior ``N(x_hat, sigma^2 W)`` by Matheron's rule:
    ``x_hat + (I - W) c - W n`` with ``c ~ N(0, C)`` (the centred pilot patches, randomly combined) and
    ``n ~ N(0, sigma^2 I)``, for each patch; a flat group's mean gets its own, ``N(0, sigma^2 / (k D))``."""
    groups, k, dim = noisy.shape
    mu = noisy.mean(dim=1, keepdim=True)
    centred = (pilot - pilot.mean(dim=1, keepdim=True)).to(torch.float64)
    system = centred.transpose(1, 2) @ centred / max(k - 1, 1) + sigma**2 * torch.eye(dim, dtype=torch.float64)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(system))
    filter_ = (torch.eye(dim, dtype=torch.float64) - sigma**2 * inverse).to(noisy.dtype)  # W, symmetric
    homogeneous = noisy.var(dim=(1, 2)) <= flat * sigma**2
    estimate = torch.where(homogeneous[:, None, None], mu.mean(dim=2, keepdim=True), mu + (noisy - mu) @ filter_)
    weight = torch.where(homogeneous, 1.0 / sigma**2, 1.0 / (sigma**2 * (filter_.square().sum(dim=(1, 2)) + 1.0)))
    if generator is None:
        return Posterior(estimate, weight)
    mix = torch.randn(groups, k, k, generator=generator, dtype=torch.float64) / math.sqrt(max(k - 1, 1))
    prior_draw = (mix @ centred).to(noisy.dtype)
    fresh = sigma * torch.randn(noisy.shape, generator=generator, dtype=noisy.dtype)
    flat_std = sigma / math.sqrt(k * dim)
    level = flat_std * torch.randn(groups, 1, 1, generator=generator, dtype=noisy.dtype)
    offset = torch.where(homogeneous[:, None, None], level, prior_draw - (prior_draw + fresh) @ filter_)
    std = sigma * torch.diagonal(filter_, dim1=1, dim2=2).clamp_min(0).sqrt()
    std = torch.where(homogeneous[:, None], torch.full_like(std, flat_std), std)
    return Posterior(estimate, weight, offset, std)


def scatter(values: torch.Tensor, groups: Groups, select: slice, out: torch.Tensor) -> None:
    """Add ``values`` (R, k, C P^2) at the pixels of the patches of the groups ``select`` into ``out`` (C, H W)."""
    channels = out.shape[0]
    p = groups.patch_size
    width = groups.grid[1] + p - 1
    index = groups.index[select]
    top, left = index // groups.grid[1], index % groups.grid[1]
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    pixel = ((top[..., None] + a.flatten()) * width + left[..., None] + b.flatten()).reshape(-1)  # (R k P^2)
    planes = values.expand(*index.shape, -1).reshape(*index.shape, channels, p * p)
    out.index_add_(1, pixel, planes.permute(2, 0, 1, 3).reshape(channels, -1).to(out.dtype))


def group_denoise(
    noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, stage: GroupStage, generator=None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass: groups matched on ``pilot``, each estimated by ``gaussian_posterior`` from the patches of
    ``noisy`` (C, H, W) at noise std ``sigma``, aggregated with the groups' weights (BM3D's aggregation):
    ``(mean, draw)``, float32 in and out.

    With a ``generator``, ``draw`` is a posterior draw (None without): the aggregated draw offsets, rescaled at each pixel so that their
    std is the weighted mean of the overlapping estimates' posterior stds (as if the overlapping estimates'
    errors were fully correlated; independent offsets would average away ~1 / sqrt(overlaps) of it)."""
    noisy, pilot = noisy.to(torch.float32), pilot.to(torch.float32)
    channels, height, width = noisy.shape
    p = min(stage.patch_size, height, width)
    groups = match_groups(pilot, p, stride=stage.stride, radius=stage.radius, k=stage.group_size)
    names = ("value", "weight") if generator is None else ("value", "weight", "offset", "std", "var")
    sums = {name: torch.zeros(channels, height * width, dtype=torch.float64) for name in names}
    count, k = groups.index.shape
    chunk = max(1, CHUNK_VALUES // (k * channels * p * p))
    for start in range(0, count, chunk):
        select = slice(start, start + chunk)
        post = gaussian_posterior(
            gather_patches(noisy, groups, select),
            gather_patches(pilot, groups, select),
            sigma,
            flat=stage.flat,
            generator=generator,
        )
        weight = post.weight[:, None, None]
        scatter(post.estimate * weight, groups, select, sums["value"])
        scatter(weight.expand(-1, 1, channels * p * p), groups, select, sums["weight"])
        if generator is not None:
            scatter(post.offset * weight, groups, select, sums["offset"])
            scatter((post.std * post.weight[:, None])[:, None], groups, select, sums["std"])
            scatter((post.std * post.weight[:, None]).square()[:, None], groups, select, sums["var"])
    norm = sums["weight"].clamp_min(1e-300)
    mean = sums["value"] / norm
    draw = None
    if generator is not None:
        draw = mean + sums["offset"] / norm * (sums["std"] / sums["var"].sqrt().clamp_min(1e-300))
        draw = draw.reshape(channels, height, width).to(torch.float32)
    return mean.reshape(channels, height, width).to(torch.float32), draw
