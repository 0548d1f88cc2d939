"""The levers that keep the input's composition on the coarsest scale (issue 18; README, Presets).

The paper starts the coarsest scale from pure noise, and nothing there ties the sample's layout to
the input's: a sky can shrink or vanish. Three ways back, each an option of ``GenerationSettings``:
layout guidance (``profile_guided``: xhat0's row and column mean colours projected onto the
input's after every denoiser call, the default; ``layout_guidance_end`` makes its strength change
linearly with the noise level) and a varied start (``noised_level``: the input's coarsest level
noised to a chosen level instead of pure noise) leave Eq. 2 as it is; a position prior
(``PositionPriorDenoiser``) adds a log-prior on where each patch goes to its softmax.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .denoiser_wrapper import WrappedDenoiser
from .errors import SinfreeError
from .image_denoiser import ImageDenoiser
from .patches import patch_positions
from .resize import resize

MASK_BYTES = 64 * 2**20  # the position prior's (queries, patches) block of additive logits
# the position prior's largest call (4 N M D flops, about 0.6 s on 2 cores): the coarsest scale with the automatic
# S costs 1e9-1e10; a run whose coarsest scale is larger is refused before any work (more scales, or no prior)
POSITION_PRIOR_MAX_FLOPS = 1e11


def noised_level(level: torch.Tensor, noise: torch.Tensor, schedule, blur: float = 1.0) -> torch.Tensor:
    """The start of a varied coarsest scale: ``x_T = a_T U(L(level)) + s_T eps`` (the flow's forward
    process at the schedule's first noise level s_T = variation), the input's coarsest level resized
    to the canvas. ``blur`` > 1 low-passes the level first (L: down by that factor and back up), so that
    only its broad layout (where sky, ground, water lie) survives and the arrangement varies more."""
    if blur > 1.0:
        shape = tuple(level.shape[-2:])
        level = resize(resize(level, tuple(max(2, round(side / blur)) for side in shape)), shape)
    alpha, sigma = schedule[schedule.num_steps]
    return alpha * resize(level, tuple(noise.shape[-2:])) + sigma * noise


def match_profiles(image: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    """``image`` (C, H, W) with its row-mean and column-mean colours moved by ``strength`` (1: all the
    way) to ``target``'s: where sky, ground and water lie, not how they are arranged within a row."""
    image = image + strength * (target.mean(dim=-1, keepdim=True) - image.mean(dim=-1, keepdim=True))
    return image + strength * (target.mean(dim=-2, keepdim=True) - image.mean(dim=-2, keepdim=True))


def guidance_strength(start: float, end: float | None, sigma: float) -> float:
    """The layout guidance's strength at noise level ``sigma``: ``start`` at pure noise, ``end`` (None: ``start``,
    constant) at the end, linear in between."""
    return start if end is None else end + (start - end) * sigma


def profile_guided(denoiser, target: torch.Tensor, strength: float, end: float | None = None):
    """The denoiser followed by ``match_profiles`` towards ``target`` (layout guidance on xhat0), at
    ``guidance_strength(strength, end, sigma)``."""
    return WrappedDenoiser(
        denoiser,
        lambda d, x, alpha, sigma: match_profiles(d(x, alpha, sigma), target, guidance_strength(strength, end, sigma)),
    )


class PositionPriorDenoiser(ImageDenoiser):
    """Eq. 2 with a prior on where each reference patch may go (``position_prior``): the softmax over the patches
    gets the log-weight ``-|c_i - c_j|^2 / (2 tau^2)``, c_i and c_j the query's and the patch's centres in
    fractions of their images' heights and widths,

        xhat0_i = sum_j softmax_j( -||x_i - a y_j||^2 / (2 s^2) - |c_i - c_j|^2 / (2 tau^2) ) y_j,

    the exact denoiser of a patch distribution conditioned on position: a patch near the top of the canvas is
    drawn from the patches near the top of the input, within about ``tau``. At high noise the prior decides the
    arrangement; at low noise the distances dominate and each patch snaps onto the input's. Folded as in
    Algorithm 1, through fused attention with the prior as its additive mask (the exact backend's Q and K)."""

    def __init__(self, reference: torch.Tensor, patch_size: int, rho: float, tau: float):
        if not tau > 0:
            raise ValueError(f"the position prior's width tau must be > 0, got {tau}")
        super().__init__(reference, patch_size, rho=rho, backend="exact")
        self.tau = tau
        self.patch_centres = _centres(tuple(reference.shape[-2:]), patch_size).to(reference.device) / tau  # in widths
        self.mask_rows = max(1, MASK_BYTES // (4 * self.backend.num_patches))  # queries per (chunk, M) prior block

    def denoise_queries(self, queries, rows, cols, shape, alpha: float, sigma: float) -> torch.Tensor:
        backend = self.backend
        if sigma <= 0 or alpha < 0:  # s -> 0: the nearest patch, where the prior no longer counts (or the backend's error)
            return backend(queries, alpha, sigma)
        start_time = time.perf_counter()
        centres = _grid_centres(rows, cols, shape, self.patch_size).to(queries.device) / self.tau
        mean = backend.mean.to(torch.float32)
        keys = backend.attention_keys.to(torch.float32)[None, None]
        out = torch.empty(queries.shape, dtype=torch.float32, device=queries.device)
        for start in range(0, len(queries), self.mask_rows):
            xc = queries[start : start + self.mask_rows].to(torch.float32) - alpha * mean
            query = torch.cat([alpha * xc, torch.full((len(xc), 1), -0.5 * alpha**2, device=xc.device)], dim=1)
            query = F.pad(query, (0, keys.shape[-1] - query.shape[1]))
            prior = _log_prior(centres[start : start + len(xc)], self.patch_centres)
            attended = F.scaled_dot_product_attention(query[None, None], keys, keys, attn_mask=prior[None, None], scale=sigma**-2)
            out[start : start + len(xc)] = attended[0, 0, :, : backend.dim] + mean
        backend.stats.calls += 1
        backend.stats.seconds += time.perf_counter() - start_time
        backend.stats.flops += backend.flops(len(queries), backend.num_patches, backend.dim)
        return out.to(queries.dtype)


def _log_prior(query_centres: torch.Tensor, patch_centres: torch.Tensor) -> torch.Tensor:
    """``-|c_i - c_j|^2 / 2`` (N, M) for centres already divided by tau, summed axis by axis (exact, unlike a
    matmul-based distance)."""
    dy = query_centres[:, 0:1] - patch_centres[None, :, 0]
    dx = query_centres[:, 1:2] - patch_centres[None, :, 1]
    return dy.square_().add_(dx.square_()).mul_(-0.5)


def check_position_prior_cost(channels: int, patch_size: int, reference_shape, canvas_shape) -> None:
    """Refuse a position prior whose exact Eq. 2 on the coarsest scale (``reference_shape`` patches, ``canvas_shape``
    queries) would cost more than POSITION_PRIOR_MAX_FLOPS a call."""
    queries, patches = ((a - patch_size + 1) * (b - patch_size + 1) for a, b in (canvas_shape, reference_shape))
    flops = 4.0 * queries * patches * channels * patch_size**2
    if flops > POSITION_PRIOR_MAX_FLOPS:
        raise SinfreeError(
            f"the position prior runs exact Eq. 2 on the coarsest scale, {canvas_shape[1]}x{canvas_shape[0]} px here: "
            f"{flops:.1e} flops a step (at most {POSITION_PRIOR_MAX_FLOPS:.0e}); use more scales (-S) or no --position-prior"
        )


def _grid_centres(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int], patch_size: int) -> torch.Tensor:
    """The centres (N, 2) of the patches at ``rows`` x ``cols`` (row-major) in fractions of the image's height and width."""
    ys, xs = ((positions.to(torch.float32) + patch_size / 2) / side for positions, side in zip((rows, cols), shape))
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def _centres(shape: tuple[int, int], patch_size: int) -> torch.Tensor:
    """The centres (M, 2) of every patch of an image of ``shape``, row-major (the order of ``all_patches``)."""
    return _grid_centres(*(patch_positions(side, patch_size) for side in shape), shape, patch_size)
