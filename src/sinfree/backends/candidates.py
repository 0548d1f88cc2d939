"""Backends that evaluate Eq. 2 exactly over a few searched candidate patches per query."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .base import PatchBackend


class CandidateBackend(PatchBackend):
    """Eq. 2 over a few candidate patches per query, found by a subclass's search.

    The search works on centred targets t = x / a - mu (n, D). A subclass gives a pool of
    candidate indices into ``self.members`` (the centred patches; -1 for none) with scores equal to
    ``-||t - y'||^2 / 2`` up to a per-query constant, possibly approximate (in a projection); the
    ``k`` best are then scored exactly. Since ``||x - a y||^2 = a^2 ||t - y'||^2``, the logits of
    Eq. 2 over the candidates are the exact scores times ``(a / s)^2``: the softmax is exact over
    them, and the backend is exact Eq. 2 whenever the candidates hold all the weight.

    Coherence (issue 3 (a), ``propagate``): an image denoiser may add candidates of its own to the
    search (``denoise_with_candidates``): the previous step's candidates of the same query and its
    neighbours' shifted by their offset, as in PatchMatch. ``prune_alpha`` (issue 3 (b)): from that
    noise level on (a_t >= prune_alpha, the late steps) the index is searched only for one query in
    four (even rows and columns of the grid); the others take their candidates from their computed
    neighbours and their own previous step, and are still scored exactly.
    """

    members: torch.Tensor
    member_half_norms: torch.Tensor
    member_order: torch.Tensor  # original (row-major patch-grid) index of each member

    def __init__(
        self,
        patches: torch.Tensor,
        *,
        nlist: int | None,
        nprobe: int,
        k: int,
        chunk_size: int | None,
        propagate: bool = False,
        prune_alpha: float | None = None,
        counts: torch.Tensor | None = None,
    ):
        """Common index sizes: nlist = floor(sqrt(M)) by default, nprobe and k clamped to what exists."""
        super().__init__(patches, counts)
        if propagate and counts is not None:
            raise ValueError("propagate needs every patch at its own grid position: it cannot be combined with merge")
        self.nlist = max(1, min(self.num_patches, nlist or math.isqrt(self.num_patches)))
        self.nprobe = max(1, min(nprobe, self.nlist))
        self.k = max(1, min(k, self.num_patches))
        self.chunk_size = chunk_size or self.default_chunk_size(self.dim)
        if prune_alpha is not None and not propagate:
            raise ValueError("prune_alpha needs propagate=True: pruned queries take their neighbours' candidates")
        self.propagate = bool(propagate)
        self.prune_alpha = prune_alpha
        self.pool_size = self.k
        self.patch_grid: tuple[int, int] | None = None

    # -- the search: a subclass's pool, scored in its search space, the k best scored exactly ------

    def search_space(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets in the space the pool is searched and pre-scored in (identity by default)."""
        return targets

    def pool(self, queries: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` candidates per query in the search space, with their search-space scores."""
        raise NotImplementedError

    def search_scores(self, queries: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Search-space scores of the candidates ``index`` (n, c); -inf where index < 0."""
        return self.exact_scores(queries, index)

    def finalise(self, targets: torch.Tensor, index: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best candidates with exact scores (here the search-space scores are exact)."""
        keep = scores.topk(min(self.k, scores.shape[1]), dim=1)
        return index.gather(1, keep.indices), keep.values

    def exact_scores(self, targets: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Exact fp32 scores ``t.y' - ||y'||^2 / 2`` of the candidates ``index`` (n, c), -inf where index < 0."""
        return gathered_scores(targets, index, self.members, self.member_half_norms)

    def search(self, targets: torch.Tensor, extra: torch.Tensor | None = None, searched: torch.Tensor | None = None):
        """The ``k`` best members for each centred target t (n, D), best first: indices into
        ``self.members`` (-1 where fewer were found) and exact scores ``t.y' - ||y'||^2 / 2``.

        ``extra`` (n, e) adds candidates of the caller's (-1 for none); ``searched`` (n,) bool
        limits the index search to those rows (the others rely on ``extra``).
        """
        queries = self.search_space(targets)
        if searched is None or bool(searched.all()):
            index, scores = self.pool(queries, self.pool_size)
        else:
            index = torch.full((len(targets), self.pool_size), -1, dtype=torch.long, device=targets.device)
            scores = torch.full((len(targets), self.pool_size), -math.inf, device=targets.device)
            rows = searched.nonzero().squeeze(1)
            if len(rows):
                index[rows], scores[rows] = self.pool(queries[rows], self.pool_size)
        if extra is not None:
            index = torch.cat([index, extra], dim=1)
            scores = torch.cat([scores, self.search_scores(queries, extra)], dim=1)
            scores.masked_fill_(duplicates(index), -math.inf)  # a candidate counts once in the softmax
        return self.finalise(targets, index, scores)

    # -- Eq. 2 over the candidates -----------------------------------------------------------------

    def _weighted_members(self, weights: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``sum_j weights[:, j] members[index[:, j]]``: one fused gather-and-sum (missing: weight 0)."""
        return F.embedding_bag(index.clamp_min(0), self.members, per_sample_weights=weights, mode="sum")

    def _targets(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        return x.to(torch.float32).mul(1.0 / alpha).sub_(self.mean.to(torch.float32))

    def _denoise_chunk(self, x, alpha, sigma, extra=None, searched=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 2 over the candidates: with t = x / a - mu, the logit of y' is (a / s)^2 (t.y' - ||y'||^2 / 2)."""
        index, scores = self.search(self._targets(x, alpha), extra, searched)
        logits = scores * (alpha / sigma) ** 2
        if self.log_counts is not None:  # merged duplicates
            logits += self.log_counts[index.clamp_min(0)]
        weights = torch.softmax(logits, dim=1)  # -inf (missing) gets weight 0
        return self._weighted_members(weights, index) + self.mean.to(torch.float32), index

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for start in range(0, x.shape[0], self.chunk_size):
            out[start : start + self.chunk_size] = self._denoise_chunk(x[start : start + self.chunk_size], alpha, sigma)[0]
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for start in range(0, x.shape[0], self.chunk_size):
            index, _ = self.search(self._targets(x[start : start + self.chunk_size], 1.0))
            out[start : start + len(index)] = self.members[index[:, 0]]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    # -- coherence: candidates from the previous step and from the neighbours -----------------------

    def set_patch_grid(self, shape: tuple[int, int]) -> None:
        """Declare that patch i of the set sits at row i // W, column i % W of a (H, W) grid."""
        if shape[0] * shape[1] != self.num_patches:
            raise ValueError(f"a {shape} patch grid does not hold {self.num_patches} patches")
        self.patch_grid = shape
        self.member_rows = torch.div(self.member_order, shape[1], rounding_mode="floor")
        self.member_cols = self.member_order % shape[1]
        self.position_member = torch.empty_like(self.member_order)
        self.position_member[self.member_order] = torch.arange(self.num_patches, device=self.member_order.device)

    def denoise_with_candidates(
        self, x: torch.Tensor, alpha: float, sigma: float, extra: torch.Tensor | None, searched: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 2 for noisy patches x (n, D) with the caller's ``extra`` candidates and ``searched`` rows
        (see ``search``); returns xhat0 (n, D) and the k candidates used (n, k), for the next step."""
        start = time.perf_counter()
        out, index = self._denoise_chunk(x, float(alpha), float(sigma), extra, searched)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - start
        self.stats.flops += self.flops(len(x), self.num_patches, self.dim)
        return out.to(x.dtype), index

    def shifted(self, index: torch.Tensor, row_offset: torch.Tensor, col_offset: torch.Tensor) -> torch.Tensor:
        """Members at the positions of ``index`` moved by (row_offset, col_offset) (broadcast); -1 off the grid."""
        height, width = self.patch_grid
        safe = index.clamp_min(0)
        rows = self.member_rows[safe] + row_offset
        cols = self.member_cols[safe] + col_offset
        inside = (index >= 0) & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        moved = self.position_member[(rows * width + cols).clamp(0, self.num_patches - 1)]
        return torch.where(inside, moved, torch.full_like(moved, -1))

    def propagated_candidates(self, previous: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Candidates (r, c, 5k) for the query grid ``rows x cols`` from the previous step's (r, c, k):
        each query's own, and its four neighbours' shifted by the pixel offset between the two queries."""
        r, c, k = previous.shape
        out = torch.full((r, c, 5, k), -1, dtype=torch.long, device=previous.device)
        rows, cols = rows.to(previous.device), cols.to(previous.device)  # the query grid is built on the CPU
        out[:, :, 0] = previous
        dr = (rows[1:] - rows[:-1])[:, None, None]
        dc = (cols[1:] - cols[:-1])[None, :, None]
        out[1:, :, 1] = self.shifted(previous[:-1], dr, 0)  # from the query above
        out[:-1, :, 2] = self.shifted(previous[1:], -dr, 0)  # from below
        out[:, 1:, 3] = self.shifted(previous[:, :-1], 0, dc)  # from the left
        out[:, :-1, 4] = self.shifted(previous[:, 1:], 0, -dc)  # from the right
        return out.view(r, c, 5 * k)


def duplicates(index: torch.Tensor) -> torch.Tensor:
    """Mask (n, c) of entries that repeat an earlier valid index in their row."""
    sorted_index, order = index.sort(dim=1, stable=True)
    repeated = torch.zeros_like(index, dtype=torch.bool)
    repeated[:, 1:] = (sorted_index[:, 1:] == sorted_index[:, :-1]) & (sorted_index[:, 1:] >= 0)
    return torch.zeros_like(repeated).scatter_(1, order, repeated)


def gathered_scores(
    queries: torch.Tensor, index: torch.Tensor, points: torch.Tensor, half_norms: torch.Tensor, block_bytes: int = 8 * 2**20
) -> torch.Tensor:
    """``q.p - ||p||^2 / 2`` for the candidates ``points[index]`` (n, c) of each query; -inf where index < 0.

    Gathers in blocks of ``block_bytes`` (small blocks stay in cache and reuse freed memory).
    """
    n, c = index.shape
    scores = torch.empty(n, c, device=queries.device)
    rows = max(1, block_bytes // (4 * max(1, c) * points.shape[1]))
    for start in range(0, n, rows):
        part = index[start : start + rows].clamp_min(0)
        gathered = points.index_select(0, part.flatten()).view(len(part), c, points.shape[1])
        scores[start : start + rows] = torch.bmm(gathered, queries[start : start + rows, :, None]).squeeze(2) - half_norms[part]
    return scores.masked_fill_(index < 0, -math.inf)
