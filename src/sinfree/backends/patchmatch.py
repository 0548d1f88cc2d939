"""ImgDenoise (Algorithm 1) over PatchMatch candidates, fused: the ``patchmatch`` backend.

Eq. 2 needs, per query patch, only the reference patches that carry its softmax weight. This
denoiser keeps ``k`` candidates per query (a nearest-neighbour field, as in PatchMatch, Barnes et
al. 2009) across the steps of one trajectory and improves them at every call by propagation from
the neighbours and random search (issue 3 (a): x_t moves little between steps and neighbouring
queries overlap in all but one column). The softmax of Eq. 2 is exact over the candidates, with an
unbiased sampled estimate of the rest (``tail``); the weighted patches are folded back with the
Gaussian window straight from the reference image. No (N, D) or (N, M) matrix exists: memory is
the two images and the (N, k) field, so a 1024^2 input and output need a few hundred MB.

With ``k`` at least the number of reference patches it is exact Eq. 2 (tested against the float64
reference).
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..patches import gaussian_window_1d, patch_positions, query_stride
from .base import CallStats, PatchBackend
from .ivf import principal_directions

SPARSE_TAIL = 0.25  # tail samples computed by the kernel, for the kept pairs only, when at most this share is kept
PCA_POINTS = 2048  # random reference patches whose covariance gives the search subspace
REFRESH = 32  # incremental distances restart with a full sum every REFRESH columns (bounds fp32 drift)
BAND_ROWS = 8  # query-grid rows per PatchMatch band (bands run in parallel; fixed, so results do not depend on threads)

logger = logging.getLogger("sinfree")


class PatchMatchDenoiser:
    """The closed-form denoiser of one scale, ``D(x_t, a_t, s_t) -> xhat0`` for an image (C, h, w),
    over the ``k`` best reference patches per query found by PatchMatch.

    ``tail`` uniform samples per query estimate the softmax mass outside the k (0: plain top-k, as
    the paper's ANN); ``first_passes`` PatchMatch passes on a trajectory's first call (from a random
    field), ``passes`` on later ones; ``full_passes`` more, scored by full distances, on calls with s_t
    at most ``full_search_below`` (the last, sharp steps), where the subspace passes are ``sharp_passes``
    (None: ``passes``). ``shrink``: the random search's radii are the whole reference, then divided by
    ``shrink`` down to one pixel (PatchMatch's 1 / alpha; 2 in Barnes et al.). ``seed`` is mixed with a
    hash of each trajectory's first input, so that samples drawn from different noise search
    differently and a sample is reproducible from its noise alone.
    """

    name = "patchmatch"

    def __init__(
        self,
        reference: torch.Tensor,
        patch_size: int = 15,
        *,
        stride: int = 1,
        rho: float = 0.2,
        k: int = 8,
        project: int = 32,
        tail: int = 16,
        passes: int = 2,
        first_passes: int = 2,
        min_weight: float = 1e-6,
        seed: int = 0,
        full_passes: int = 1,
        sharp_passes: int | None = None,
        shrink: int = 2,
        full_search_below: float = 0.15,
        early_stride: int = 1,
        early_stride_above: float = 0.3,
        noisy_stride: int = 1,
        noisy_stride_above: float = 0.5,
        valid: torch.Tensor | np.ndarray | None = None,
    ):
        if reference.ndim != 3:
            raise ValueError(f"reference must be (C, H, W), got shape {tuple(reference.shape)}")
        if early_stride < 1 or noisy_stride < 1:
            raise ValueError(f"early_stride and noisy_stride must be >= 1, got {early_stride}, {noisy_stride}")
        if (
            k < 1
            or project < 1
            or tail < 0
            or min(passes, full_passes, sharp_passes or 0) < 0
            or first_passes < 1
            or not 0 <= min_weight < 1
        ):
            raise ValueError(
                "need k >= 1, project >= 1, tail >= 0, passes >= 0, first_passes >= 1 and 0 <= min_weight < 1; "
                f"got {k}, {project}, {tail}, {passes} / {full_passes} / {sharp_passes}, {first_passes}, {min_weight}"
            )
        self.channels, height, width = reference.shape
        self.patch_size = patch_size
        self.stride = stride
        self.rho = rho
        # patch_positions raises the usual error for a reference smaller than the patch
        self.position_shape = (len(patch_positions(height, patch_size)), len(patch_positions(width, patch_size)))
        self.num_positions = self.position_shape[0] * self.position_shape[1]
        self.valid = _valid_flags(valid, self.position_shape)
        self.valid_positions = np.flatnonzero(self.valid).astype(np.int64)
        self.num_patches = len(self.valid_positions)  # M: the patches Eq. 2 sums over
        if self.num_patches == 0:
            raise ValueError("no reference patch is valid: the mask leaves no patch to denoise with")
        self.k = min(k, self.num_patches)
        self.tail = tail
        self.min_weight = min_weight
        self.passes = passes
        self.first_passes = first_passes
        self.full_passes = full_passes
        self.sharp_passes = passes if sharp_passes is None else sharp_passes
        if shrink < 2:
            raise ValueError(f"shrink must be >= 2, got {shrink}")
        self.shrink = shrink
        self.full_search_below = full_search_below
        self.early_stride = early_stride
        self.early_stride_above = early_stride_above
        self.noisy_stride = noisy_stride
        self.noisy_stride_above = noisy_stride_above
        self.seed = seed
        self.reference_rows = _rows_layout(reference)
        self.reference_columns = _columns_layout(reference)
        # the patches as a view of the rows layout (Hp, Wp, C, P, P): the denoiser keeps no (C, H, W) copy
        self._patch_grid = _patch_grid(self.reference_rows, self.channels, patch_size)
        grid = reference.to(torch.float32).unfold(1, patch_size, 1).unfold(2, patch_size, 1)  # (C, Hp, Wp, P, P) view
        self.window = gaussian_window_1d(patch_size, rho).numpy()
        self.window_row = np.repeat(self.window, self.channels).astype(np.float32)
        self.mean_patch = (
            _mean_patch(self.reference_rows, self.channels, patch_size, self.position_shape)
            if self.num_patches == self.num_positions
            else _mean_of(grid, self.valid_positions, self.position_shape[1])
        )
        # the search space: the top principal directions of the reference patches, applied as a convolution
        self.projection = _projection_filters(grid, min(project, self.channels * patch_size**2), seed)
        self.members = _project(reference, self.projection).reshape(self.num_positions, -1)
        patch_norms = _box_sums(_squares(reference), patch_size).reshape(-1).numpy()
        self.member_residuals = _residual_norms(patch_norms, self.members)  # outside the subspace: for lower bounds
        self.stats = CallStats()
        self._field: tuple[np.ndarray, np.ndarray] | None = None
        self._field_grid: tuple[np.ndarray, np.ndarray] | None = None  # the query grid the field belongs to
        self._trajectory_seed: int | None = None
        self._calls = 0
        self._scaled: tuple[float, np.ndarray, np.ndarray] | None = None  # (a_t, a_t * reference in both layouts)

    # the interface generate() and the benchmarks use ------------------------------------------

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        """Peak bytes of one call with the default options (k = 8, project = 32, tail = 16): the projected
        reference and queries (and the convolution's output), the residual norms, the field, its distances
        and copy, the exact distances, the tail's bounds, shares, distances, weights and maps, the packed
        (position, weight) pairs, and the fold's output (benchmarks/bench_memory.py measures a run's peak)."""
        k, dims, tail = 8, 32, 16
        per_query = 4 * 2 * dims + 2 * 4 + k * (8 + 4 + 8 + 4) + 4 * tail * 6 + (8 + 4) * (k + tail) + 4 * 2 * 3
        return (4 * dims + 4) * num_patches + num_queries * per_query + 64 * 2**20

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return 1  # no chunk of patches is ever extracted

    def start_trajectory(self) -> None:
        """Forget the candidates: the next call starts a new sample (from a random field)."""
        self._field = None
        self._field_grid = None
        self._trajectory_seed = None

    def query_grid(self, shape: tuple[int, int], sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Top-left positions of the query patches at noise level ``sigma``: every ``stride``-th, or every
        ``early_stride``-th on the early steps (s_t > ``early_stride_above``) and ``noisy_stride``-th on the
        noisiest (s_t > ``noisy_stride_above``), the coarsest that applies (``patches.query_stride``)."""
        stride = query_stride(
            self.stride, self.early_stride, self.early_stride_above, sigma, self.noisy_stride, self.noisy_stride_above
        )
        return (
            patch_positions(shape[0], self.patch_size, stride).numpy(),
            patch_positions(shape[1], self.patch_size, stride).numpy(),
        )

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        if x_t.ndim != 3 or x_t.shape[0] != self.channels:
            raise ValueError(f"x_t must be ({self.channels}, h, w), got shape {tuple(x_t.shape)}")
        if alpha < 0 or sigma < 0:
            raise ValueError(f"alpha and sigma must be >= 0, got alpha={alpha}, sigma={sigma}")
        shape = tuple(x_t.shape[-2:])
        rows, cols = self.query_grid(shape, float(sigma))
        if alpha == 0:  # every weight equal: the mean patch everywhere
            positions = np.zeros((len(rows) * len(cols), 1), dtype=np.int64)
            weights, counts = np.ones(positions.shape, dtype=np.float32), np.ones(len(positions), dtype=np.int64)
            return self._fold(self.mean_patch, 1, positions, weights, rows, cols, shape, counts) / self._normaliser(
                rows, cols, shape
            )
        start = time.perf_counter()
        x = _rows_layout(x_t)
        scaled, scaled_columns = self._scaled_reference(float(alpha))
        sharp = sigma <= self.full_search_below and self.full_passes > 0 and self.k < self.num_patches
        norms = _box_sums(_squares(x_t), self.patch_size)[rows][:, cols].reshape(-1).numpy()
        cand, bounds = self._search(x_t, x, scaled, float(alpha), rows, cols, self.sharp_passes if sharp else self.passes, norms)
        x_columns = _columns_layout(x_t)
        dist = _kernels().exact_distances(
            x, scaled, x_columns, scaled_columns, rows, cols, cand, bounds, self._residuals, self.member_residuals, np.float32(alpha),
            self._cutoff(sigma), self.patch_size, self.channels, self.position_shape[1], REFRESH,
        )  # fmt: skip
        if sharp:
            cand, dist = self._full_search(x, scaled, x_columns, scaled_columns, float(alpha), rows, cols, cand, dist)
        wp = self.position_shape[1]
        if sigma == 0:  # the nearest candidate
            nearest = dist.argmin(axis=1)[:, None]
            positions, weights = np.take_along_axis(cand, nearest, axis=1), np.ones(nearest.shape, dtype=np.float32)
            out = self._fold(self.reference_rows, wp, positions, weights, rows, cols, shape, np.ones(len(cand), dtype=np.int64))
        else:
            inverse_two_var = 1.0 / (2.0 * float(sigma) ** 2)
            tail = None
            best, spread = _kernels().best_and_spread(dist)
            if self._tail_matters(float(spread), inverse_two_var):
                tail = self._tail(x_t, x, scaled, float(alpha), float(sigma), rows, cols, cand, best, norms)
            if tail is None:
                no_tail = np.empty((len(cand), 0), dtype=np.float32)
                tail = TailSamples(np.empty(0, dtype=np.int64), no_tail, no_tail, None)
            samples, tail_dist, log_share = tail.samples, tail.dist, tail.log_share
            dense = tail.patches is not None
            tail_weights = np.empty(tail_dist.shape if dense else (0, 0), dtype=np.float32)
            positions, weights, counts = _kernels().softmax_weights(
                cand, dist, samples, tail_dist, log_share, np.float32(inverse_two_var), np.float32(self.min_weight), not dense,
                tail_weights,
            )  # fmt: skip
            out = self._fold(self.reference_rows, wp, positions, weights, rows, cols, shape, counts)
            if dense:  # the tail's samples through transposed convolutions of their weight maps
                out += self._fold_shared(tail.patches, torch.from_numpy(tail_weights), rows, cols, shape)
        out /= self._normaliser(rows, cols, shape)
        self._calls += 1
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - start
        self.stats.flops += PatchBackend.flops(len(rows) * len(cols), self.num_patches, self.channels * self.patch_size**2)
        return out

    def _scaled_reference(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """a_t times the reference, in the rows and the columns layouts: kept for the next call at the same a_t
        (a tiled step calls once per tile; its memory is counted as the call's anyway)."""
        cached = self._scaled
        if cached is None or cached[0] != alpha:
            self._scaled = cached = None  # let go of the previous step's before making these
            a = np.float32(alpha)
            cached = (alpha, self.reference_rows * a, self.reference_columns * a)
            self._scaled = cached  # one assignment: a thread reading self._scaled sees the old tuple or this one
        return cached[1], cached[2]

    def _tail_matters(self, spread: float, inverse_two_var: float) -> bool:
        """Whether the patches outside the k could hold 1e-6 of some query's softmax, even if every one
        of them were as near as its k-th candidate (``spread``: the smallest gap between a query's k-th
        finite distance and its best)."""
        rest = self.num_patches - self.k
        if self.tail == 0 or rest <= 0:
            return False
        return math.log(rest) - spread * inverse_two_var > math.log(1e-6)

    def _cutoff(self, sigma: float) -> float:
        """Distance beyond a query's best at which a candidate's weight is under ``min_weight`` of the
        best's, ``2 s^2 log(1 / min_weight)`` (0 at s = 0: only the nearest counts; inf without dropping)."""
        if sigma == 0:
            return 0.0
        return math.inf if self.min_weight <= 0 else 2.0 * float(sigma) ** 2 * math.log(1.0 / self.min_weight)

    def _tail(self, x_t, x, scaled, alpha, sigma, rows, cols, cand, best, norms) -> TailSamples:
        """The softmax outside the k, estimated from ``tail`` uniform samples of the reference patches,
        shared by all queries of the call: their distances ||x_q - a y_s||^2 (n, m) and the log importance
        weight of each (query, sample): log((M - k) / accepted), -inf where the sample is one of the
        query's k (rejected, so that the accepted samples are uniform over the tail). An unbiased estimate
        of the tail's share of Eq. 2's numerator and normaliser, which a top-k softmax drops (it matters at
        the early, flat steps).

        A sample whose weight, even with its share, would be under ``min_weight`` of the query's best
        (lower bound beyond the best by ``2 s^2 log((M - k) / min_weight)``) is not computed (distance
        inf). Where most are (the early steps) the distances come from two convolutions (dense, with
        the samples' patches for the fold); elsewhere from the kernel, for the kept pairs only (sparse)."""
        generator = torch.Generator().manual_seed(self._call_seed())
        samples = torch.from_numpy(self.valid_positions)[torch.randint(self.num_patches, (self.tail,), generator=generator)]
        samples_np = samples.numpy()
        bounds, log_share = _kernels().tail_lower_bounds(
            self._queries,
            self._residuals,
            self.members,
            self.member_residuals,
            np.float32(alpha),
            samples_np,
            cand,
            self.num_patches,
        )
        limits = self._tail_limits(best, sigma)
        if np.count_nonzero(bounds < limits[:, None]) <= SPARSE_TAIL * bounds.size:
            tail_dist = _kernels().tail_distances(
                x, scaled, rows, cols, samples_np, bounds, limits, self.patch_size, self.channels, self.position_shape[1]
            )
            return TailSamples(samples_np, tail_dist, log_share, None)
        wp = self.position_shape[1]
        patches = self._patch_grid[samples // wp, samples % wp].contiguous()  # (m, C, P, P)
        cross = grid_correlation(x_t.detach().to(torch.float32), patches, rows, cols).reshape(-1, self.tail)
        query_norms = torch.from_numpy(norms).to(torch.float32)[:, None]
        tail_dist = (query_norms - 2 * alpha * cross + alpha**2 * patches.square().sum(dim=(1, 2, 3))).clamp_min_(0.0)
        return TailSamples(samples_np, tail_dist.numpy(), log_share, patches)

    def _tail_limits(self, best: np.ndarray, sigma: float) -> np.ndarray:
        """Per query, the distance beyond which a tail sample's weight, with its share (M - k) / 1, is
        under ``min_weight`` of the best candidate's (``best``): best + 2 s^2 log((M - k) / min_weight),
        the candidates' cutoff plus the share's log (inf without dropping)."""
        margin = self._cutoff(sigma) + 2.0 * sigma**2 * math.log(self.num_patches - self.k)
        return (best + np.float32(margin)).astype(np.float32)

    @property
    def field(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The current candidates (n, k) as reference patch positions (row * Wp + col), with their
        subspace distances (ascending; lower bounds of the full ones), or None before a trajectory's first call."""
        return self._field

    # ------------------------------------------------------------------------------------------

    def _call_seed(self) -> int:
        return (self._trajectory_seed * 1_000_003 + self._calls) % 2**63

    def _full_search(self, x, scaled, x_columns, scaled_columns, alpha, rows, cols, cand, dist) -> tuple[np.ndarray, np.ndarray]:
        """PatchMatch passes scored by the full distances (the classic PatchMatch): at the late, sharp
        steps Eq. 2 is nearly the nearest patch, which the subspace search misses for ~1 query in 10 on
        textured images; the field keeps the improved candidates for the next call."""
        _kernels().sort_by_distance(cand, dist)
        hp, wp = self.position_shape
        for n in range(self.full_passes):
            _kernels().propagate_and_search(
                self._queries, self._residuals, self.members, self.member_residuals, np.float32(alpha), len(cols), cand, dist, np.diff(rows), np.diff(cols), hp, wp,
                BAND_ROWS, (self._calls + n) % 2 == 1, self._call_seed() * 11 + n + 1, True, x, scaled, x_columns,
                scaled_columns, rows, cols, self.channels, self.patch_size, REFRESH, self.shrink, self.valid,
            )  # fmt: skip
        self._field = (cand, self._field[1])
        return cand, dist

    def _search(
        self,
        x_t: torch.Tensor,
        x: np.ndarray,
        scaled: np.ndarray,
        alpha: float,
        rows: np.ndarray,
        cols: np.ndarray,
        passes: int,
        norms: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k candidates of every query at this call: the previous call's, re-ranked at the new
        x_t, then improved by PatchMatch passes (alternating scan directions), all in the subspace;
        with their subspace distances (ascending; lower bounds of the full ones). Sets the queries'
        projections and their residual norms (from ``norms``, the queries' squared norms)."""
        num_queries = len(rows) * len(cols)
        queries = grid_correlation(x_t.detach().to(torch.float32), self.projection, rows, cols).reshape(num_queries, -1).numpy()
        self._queries = queries
        self._residuals = _residual_norms(norms, queries)
        if self._field is not None and not _same_grid(self._field_grid, (rows, cols)):  # the early stride ended
            cand = _regrid_field(
                self._field[0],
                *self._field_grid,
                rows,
                cols,
                self.position_shape,
                self._call_seed(),
                self.valid,
                self.valid_positions,
            )
            self._field = (cand, np.empty(cand.shape, dtype=np.float32))
        self._field_grid = (rows, cols)
        if self._field is None or self._field[0].shape[0] != num_queries:
            if self._trajectory_seed is None:
                self._trajectory_seed = (self.seed * 0x9E3779B1 + zlib.crc32(queries[: min(len(queries), 64)].tobytes())) % 2**31
                self._calls = 0
            cand = _kernels().random_field(num_queries, self.k, self.valid_positions, self._call_seed())
            self._field = (cand, np.empty(cand.shape, dtype=np.float32))
            passes = self.first_passes
        cand, dist = self._field
        alpha32 = np.float32(alpha)
        _kernels().rescore_projected(queries, self.members, alpha32, cand, dist)
        if self.k < self.num_patches:
            hp, wp = self.position_shape
            row_step, col_step = np.diff(rows), np.diff(cols)
            for n in range(passes):
                forward = (self._calls + n) % 2 == 0
                _kernels().propagate_and_search(
                    queries, self._residuals, self.members, self.member_residuals, alpha32, len(cols), cand, dist, row_step, col_step, hp, wp, BAND_ROWS, forward,
                    self._call_seed() * 7 + n + 1, False, x, scaled, x, scaled, rows, cols, self.channels, self.patch_size,
                    REFRESH, self.shrink, self.valid,
                )  # fmt: skip  # (the transposed images are read by full passes only)
        return cand, dist

    def _fold(self, source, source_wp, positions, weights, rows, cols, shape, counts) -> torch.Tensor:
        """Algorithm 1's numerator: the source patches at ``positions`` (n, j) with ``weights`` (n, j),
        numpy arrays, the first ``counts`` (n,) of each row, windowed and folded into a (C, h, w) tensor."""
        height, width = shape
        out = np.zeros((height, width * self.channels), dtype=np.float32)
        row_start, row_stop = _covering_rows(rows, height, self.patch_size)
        _kernels().fold_weighted(
            source, source_wp, positions, weights, counts, rows, cols, row_start, row_stop, self.window, self.window_row, out,
        )  # fmt: skip
        return torch.from_numpy(out.reshape(height, width, self.channels)).permute(2, 0, 1).contiguous()

    def _fold_shared(self, patches: torch.Tensor, weights: torch.Tensor, rows, cols, shape) -> torch.Tensor:
        """The numerator's share of patches common to all queries (m, C, P, P) with weights (n, m): transposed
        convolutions of the weight maps on the query grid (``grid_fold``)."""
        window = torch.from_numpy(np.outer(self.window, self.window))
        maps = weights.T.reshape(len(patches), len(rows), len(cols))
        return grid_fold(maps, patches * window, rows, cols, shape)

    def _normaliser(self, rows, cols, shape) -> torch.Tensor:
        """The folded window (Algorithm 1's denominator); separable, as the window and the grid are."""
        height, width = shape
        return torch.from_numpy(np.outer(_folded_window(rows, height, self.window), _folded_window(cols, width, self.window)))


class TailSamples(NamedTuple):
    """The tail's samples for one call (``PatchMatchDenoiser._tail``)."""

    samples: np.ndarray  # (m,) reference patch positions
    dist: np.ndarray  # (n, m) distances, inf where not computed
    log_share: np.ndarray  # (n, m) log importance weights, -inf where rejected
    patches: torch.Tensor | None  # (m, C, P, P) for the dense fold; None: fold them as candidates


def _runs(positions: np.ndarray) -> list[tuple[int, int, slice]]:
    """A query axis (every s-th position from 0, plus the last) as runs of equally spaced positions:
    (first position, step, slice of ``positions``); the regular part, then the last if it is off it."""
    step = int(positions[1] - positions[0]) if len(positions) > 1 else 1
    off = np.flatnonzero(positions != np.arange(len(positions)) * step)
    regular = int(off[0]) if len(off) else len(positions)
    runs = [(0, step, slice(0, regular))] if regular else []
    return runs + [(int(positions[i]), 1, slice(i, i + 1)) for i in range(regular, len(positions))]


def grid_correlation(image: torch.Tensor, filters: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """``F.conv2d(image, filters)`` (C, H, W), (m, C, P, P) at the query grid's positions only, channels
    last: (len(rows), len(cols), m), so that each query's m values are contiguous. One strided
    convolution per run of equally spaced rows and columns (a quarter of the work on the early
    stride's steps), in the channels-last layout (oneDNN's own: no transposing copy after it)."""
    p = filters.shape[-1]
    out = torch.empty(len(rows), len(cols), len(filters), dtype=image.dtype)
    image = image[None].contiguous(memory_format=torch.channels_last)
    filters = filters.contiguous(memory_format=torch.channels_last)
    for top, row_step, row_slice in _runs(rows):
        for left, col_step, col_slice in _runs(cols):
            bottom = top + (row_slice.stop - row_slice.start - 1) * row_step + p
            right = left + (col_slice.stop - col_slice.start - 1) * col_step + p
            window = image[:, :, top:bottom, left:right]
            out[row_slice, col_slice] = F.conv2d(window, filters, stride=(row_step, col_step))[0].permute(1, 2, 0)
    return out


def grid_fold(
    maps: torch.Tensor, filters: torch.Tensor, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> torch.Tensor:
    """The transpose of ``grid_correlation``: weight maps (m, len(rows), len(cols)) on the query grid
    spread by the filters (m, C, P, P) into a (C, H, W) image, one strided transposed convolution per run."""
    out = torch.zeros(filters.shape[1], *shape, dtype=filters.dtype)
    for top, row_step, row_slice in _runs(rows):
        for left, col_step, col_slice in _runs(cols):
            block = maps[None, :, row_slice, col_slice].contiguous()
            spread = F.conv_transpose2d(block, filters, stride=(row_step, col_step))[0]
            out[:, top : top + spread.shape[1], left : left + spread.shape[2]] += spread
    return out


def _same_grid(grid, other) -> bool:
    return grid is not None and all(np.array_equal(a, b) for a, b in zip(grid, other))


def _regrid_field(
    cand, old_rows, old_cols, rows, cols, position_shape, seed: int = 0, valid=None, valid_positions=None
) -> np.ndarray:
    """The candidates (n_old, k) of a field on the query grid (old_rows, old_cols) carried to the grid
    (rows, cols): each query takes the candidates of the nearest old query, shifted by the offset between
    the two (PatchMatch's coherence; unshifted where the shift leaves the reference), duplicates in a
    query's list replaced by random positions (from ``seed``). Positions are ``row * Wp + col`` on ``position_shape``;
    only ``valid`` ones (flags, default all) are used."""
    if valid is None:
        valid = np.ones(position_shape[0] * position_shape[1], dtype=np.uint8)
        valid_positions = np.arange(len(valid), dtype=np.int64)
    near_rows = np.abs(rows[:, None] - old_rows[None, :]).argmin(axis=1)
    near_cols = np.abs(cols[:, None] - old_cols[None, :]).argmin(axis=1)
    return _kernels().regrid_field(
        cand, len(old_cols), near_rows, near_cols, rows - old_rows[near_rows], cols - old_cols[near_cols], *position_shape, seed,
        valid, valid_positions,
    )  # fmt: skip


def _valid_flags(valid, position_shape: tuple[int, int]) -> np.ndarray:
    """The reference positions a search may use, as uint8 flags (Hp * Wp,): all, or the True ones of ``valid`` (Hp, Wp)."""
    if valid is None:
        return np.ones(position_shape[0] * position_shape[1], dtype=np.uint8)
    flags = np.asarray(valid.cpu() if isinstance(valid, torch.Tensor) else valid, dtype=bool)
    if flags.shape != tuple(position_shape):
        raise ValueError(f"valid must have the reference's patch-position shape {tuple(position_shape)}, got {flags.shape}")
    return np.ascontiguousarray(flags.reshape(-1), dtype=np.uint8)


def _mean_of(reference_grid: torch.Tensor, positions: np.ndarray, wp: int) -> np.ndarray:
    """The mean of the patches at ``positions`` (the alpha = 0 limit of Eq. 2 over them), as a (P, P * C) image."""
    index = torch.from_numpy(positions)
    patches = reference_grid[:, index // wp, index % wp].to(torch.float64).mean(dim=1)  # (C, P, P)
    return patches.permute(1, 2, 0).reshape(patches.shape[1], -1).to(torch.float32).numpy()


def _kernels():
    """The numba kernels, imported on first use (importing numba takes a second or two). Where numba has not
    cached them on disk yet (a first run, or a new numba), their compilation (a minute or so) is announced
    on the ``sinfree`` logger; later runs load them from the cache in about a second."""
    from . import patchmatch_kernels

    global _ANNOUNCED
    if not _ANNOUNCED:
        _ANNOUNCED = True
        if not patchmatch_kernels.cached_on_disk():
            logger.warning(
                "compiling the PatchMatch kernels for this machine (once, about a minute; cached on disk for later runs)"
            )
    return patchmatch_kernels


_ANNOUNCED = False


def _rows_layout(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> float32 (H, W * C) array: one patch row is P * C contiguous numbers."""
    channels, height, width = image.shape
    return np.ascontiguousarray(image.detach().to(torch.float32).permute(1, 2, 0).numpy().reshape(height, width * channels))


def _patch_grid(rows_layout: np.ndarray, channels: int, patch_size: int) -> torch.Tensor:
    """Every patch of an image in the rows layout (H, W * C), as a view (Hp, Wp, C, P, P) of it."""
    image = torch.from_numpy(rows_layout).view(rows_layout.shape[0], -1, channels)  # (H, W, C)
    return image.unfold(0, patch_size, 1).unfold(1, patch_size, 1)


def _columns_layout(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> float32 (W, H * C) array: one patch column is P * C contiguous numbers."""
    return _rows_layout(image.transpose(1, 2))


def _projection_filters(grid: torch.Tensor, dims: int, seed: int) -> torch.Tensor:
    """The ``dims`` leading principal directions of (at most PCA_POINTS random) patches of the patch
    grid (C, Hp, Wp, P, P), as convolution filters (dims, C, P, P): patches flatten channel-major, as
    the filters do."""
    channels, hp, wp, patch_size = grid.shape[:4]
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(hp * wp, generator=generator)[:PCA_POINTS]
    sample = grid[:, chosen // wp, chosen % wp].permute(1, 0, 2, 3).reshape(len(chosen), -1)
    basis = principal_directions(sample - sample.mean(dim=0), dims)  # (D, dims)
    return basis.T.reshape(dims, channels, patch_size, patch_size).contiguous()


PROJECT_BAND = 256  # rows of positions projected at once: the convolution's output never holds the whole reference's


def _project(image: torch.Tensor, filters: torch.Tensor) -> np.ndarray:
    """Every patch of ``image`` (C, h, w) projected on the filters: (h - P + 1, w - P + 1, dims) float32,
    band by band (a 4096^2 reference's projections are 2 GiB; one convolution over it would hold them twice)."""
    p = filters.shape[-1]
    image = image.detach().to(torch.float32)
    rows, every_col = image.shape[1] - p + 1, np.arange(image.shape[2] - p + 1)
    out = np.empty((rows, len(every_col), len(filters)), dtype=np.float32)
    for top in range(0, rows, PROJECT_BAND):
        bottom = min(rows, top + PROJECT_BAND)
        band = image[:, top : bottom + p - 1]
        out[top:bottom] = grid_correlation(band, filters, np.arange(bottom - top), every_col).numpy()
    return out


def _mean_patch(reference: np.ndarray, channels: int, patch_size: int, position_shape: tuple[int, int]) -> np.ndarray:
    """The mean of all reference patches (the alpha = 0 limit of Eq. 2), as a (P, P * C) image."""
    hp, wp = position_shape
    image = reference.reshape(reference.shape[0], -1, channels).astype(np.float64)
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1, channels))  # summed-area table
    table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    p = patch_size
    window_sums = table[hp : hp + p, wp : wp + p] - table[:p, wp : wp + p] - table[hp : hp + p, :p] + table[:p, :p]
    return (window_sums / (hp * wp)).reshape(p, p * channels).astype(np.float32)


def _residual_norms(squared_norms: np.ndarray, projected: np.ndarray) -> np.ndarray:
    """||(I - P) v|| of vectors with squared norms ``squared_norms`` (n,) (float64) and projections
    ``projected`` (n, dims) on the orthonormal subspace P: float32 (n,)."""
    return _kernels().residual_norms(np.ascontiguousarray(squared_norms, dtype=np.float64), projected)


def _squares(image: torch.Tensor) -> torch.Tensor:
    """The squared norm of every pixel of ``image`` (C, H, W) over its channels, float64 (H, W): one channel at a time."""
    out = torch.zeros(image.shape[-2:], dtype=torch.float64)
    for channel in image.detach():
        out += channel.to(torch.float64).square()
    return out


def _box_sums(image: torch.Tensor, size: int) -> torch.Tensor:
    """Sums of every ``size`` x ``size`` window of a 2-D image (h - size + 1, w - size + 1), from a summed-area table
    (built in place: a 4096^2 reference's float64 table is 128 MiB)."""
    table = image.new_zeros(image.shape[0] + 1, image.shape[1] + 1)
    table[1:, 1:] = image
    table.cumsum_(dim=0).cumsum_(dim=1)
    out = table[size:, size:] - table[:-size, size:]
    out -= table[size:, :-size]
    out += table[:-size, :-size]
    return out


def _covering_rows(rows: np.ndarray, height: int, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For every image row y, the grid rows [start, stop) whose patches cover it."""
    y = np.arange(height)
    start = np.searchsorted(rows, y - patch_size + 1, side="left")
    stop = np.searchsorted(rows, y, side="right")
    return start.astype(np.int64), stop.astype(np.int64)


def _folded_window(positions: np.ndarray, length: int, window: np.ndarray) -> np.ndarray:
    """Sum of the 1-D window over the patches covering each pixel of an axis (the window is separable)."""
    total = np.zeros(length, dtype=np.float64)
    for offset, weight in enumerate(window):
        np.add.at(total, positions + offset, weight)
    return total.astype(np.float32)
