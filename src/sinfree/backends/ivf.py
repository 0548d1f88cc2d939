"""Approximate Eq. 2 over an inverted-file index (DESIGN.md §1, "ANN"), searched with batched GEMMs.

The paper's ANN backend: k-means splits the patch set into floor(sqrt(M)) lists; a query, scaled
by 1/a_t (the clean patch it should resemble), probes the ``nprobe`` lists with the nearest
centroids; the ``k`` nearest patches among their members are re-scored with the exact softmax of
Eq. 2. Cost O(N sqrt(M) D) instead of O(N M D).

Written with torch matrix products rather than faiss: queries are grouped by the list they probe,
so each list is scored for all its queries in one GEMM (faiss-cpu's IVF search runs far below the
GEMM rate for D = 675, DESIGN.md §4).
"""

from __future__ import annotations

import math

import torch

from .base import FP32, PatchBackend

DEFAULT_CHUNK_BYTES = 64 * 2**20


class IVFBackend(PatchBackend):
    """Eq. 2 restricted to the ``k`` nearest patches found in ``nprobe`` inverted lists.

    With ``nprobe = nlist`` and ``k = M`` it is exact Eq. 2 (up to fp32 rounding).
    """

    name = "ivf"

    def __init__(
        self,
        patches: torch.Tensor,
        *,
        nlist: int | None = None,
        nprobe: int = 2,
        k: int = 5,
        kmeans_iterations: int = 10,
        seed: int = 0,
        chunk_size: int | None = None,
    ):
        super().__init__(patches)
        self.nlist = max(1, min(self.num_patches, nlist or math.isqrt(self.num_patches)))
        self.nprobe = max(1, min(nprobe, self.nlist))
        self.k = max(1, min(k, self.num_patches))
        self.chunk_size = chunk_size or self.default_chunk_size(self.dim)
        centred = patches.to(torch.float32) - self.mean.to(torch.float32)
        generator = torch.Generator().manual_seed(seed)
        self.centroids, assignment = kmeans(centred, self.nlist, kmeans_iterations, generator, self.chunk_size)
        order = torch.argsort(assignment, stable=True)
        self.members = centred[order].contiguous()  # patches grouped list by list
        self.member_half_norms = 0.5 * self.members.square().sum(dim=1)
        counts = torch.bincount(assignment, minlength=self.nlist)
        self.list_starts = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.centroid_half_norms = 0.5 * self.centroids.square().sum(dim=1)
        self.centroid_half_norms[counts == 0] = math.inf  # an empty list is never probed

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return max(64, DEFAULT_CHUNK_BYTES // (4 * FP32 * dim))

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.default_chunk_size(dim))
        nlist = max(1, math.isqrt(num_patches))
        # members, the centred copy while building, k-means scores, per-chunk candidates (k <= 32 assumed)
        return FP32 * (2 * num_patches * dim + num_patches * nlist // 8 + chunk * (4 * dim + 32 * dim))

    def search(self, targets: torch.Tensor) -> torch.Tensor:
        """Indices into ``self.members`` of the ``k`` nearest members to each centred target (n, D)."""
        n = len(targets)
        probes = (targets @ self.centroids.T - self.centroid_half_norms).topk(self.nprobe, dim=1).indices
        best_scores = torch.full((n, self.nprobe * self.k), -math.inf)
        best_index = torch.zeros((n, self.nprobe * self.k), dtype=torch.long)
        pair_list = probes.flatten()
        order = torch.argsort(pair_list, stable=True)
        pair_query = order // self.nprobe
        pair_slot = order % self.nprobe
        boundaries = torch.searchsorted(pair_list[order], torch.arange(self.nlist + 1)).tolist()
        starts = self.list_starts.tolist()
        for lst in range(self.nlist):
            lo, hi = boundaries[lst], boundaries[lst + 1]
            size = starts[lst + 1] - starts[lst]
            if lo == hi or size == 0:
                continue
            queries, slots = pair_query[lo:hi], pair_slot[lo:hi]
            members = self.members[starts[lst] : starts[lst + 1]]
            scores = targets[queries] @ members.T - self.member_half_norms[starts[lst] : starts[lst + 1]]
            top = scores.topk(min(self.k, size), dim=1)
            columns = slots[:, None] * self.k + torch.arange(top.values.shape[1])
            best_scores[queries[:, None], columns] = top.values
            best_index[queries[:, None], columns] = top.indices + starts[lst]
        keep = best_scores.topk(self.k, dim=1)
        return torch.where(torch.isfinite(keep.values), best_index.gather(1, keep.indices), -1)

    def _candidates(self, x: torch.Tensor, alpha: float):
        shift = alpha * self.mean.to(torch.float32)
        for start in range(0, x.shape[0], self.chunk_size):
            xc = x[start : start + self.chunk_size].to(torch.float32) - shift
            yield start, xc, self.search(xc / alpha)

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32)
        for start, xc, index in self._candidates(x, alpha):
            candidates = self.members[index.clamp_min(0)]  # (n, k, D)
            sq_dist = (xc[:, None, :] - alpha * candidates).square().sum(dim=2)
            logits = (-sq_dist / (2.0 * sigma**2)).masked_fill(index < 0, -math.inf)
            weights = torch.softmax(logits, dim=1)
            out[start : start + len(xc)] = torch.einsum("nk,nkd->nd", weights, candidates)
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32)
        for start, xc, index in self._candidates(x, 1.0):
            candidates = self.members[index.clamp_min(0)]
            sq_dist = (xc[:, None, :] - candidates).square().sum(dim=2).masked_fill(index < 0, math.inf)
            out[start : start + len(xc)] = candidates[torch.arange(len(xc)), sq_dist.argmin(dim=1)]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)


def kmeans(
    points: torch.Tensor, num_clusters: int, iterations: int, generator: torch.Generator, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from ``num_clusters`` distinct random points; returns centroids and assignment.

    An emptied cluster is re-seeded with a random point; the returned assignment is to the final
    centroids.
    """
    centroids = points[torch.randperm(len(points), generator=generator)[:num_clusters]].clone()
    for _ in range(max(1, iterations)):
        assignment = assign(points, centroids, chunk_size)
        counts = torch.bincount(assignment, minlength=num_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        empty = counts == 0
        centroids = sums / counts.clamp_min(1)[:, None]
        if empty.any():
            centroids[empty] = points[torch.randint(len(points), (int(empty.sum()),), generator=generator)]
    return centroids, assign(points, centroids, chunk_size)


def assign(points: torch.Tensor, centroids: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Index of the nearest centroid of every point, one GEMM per chunk of points."""
    half_norms = 0.5 * centroids.square().sum(dim=1)
    assignment = torch.empty(len(points), dtype=torch.long)
    for start in range(0, len(points), chunk_size):
        chunk = points[start : start + chunk_size]
        assignment[start : start + len(chunk)] = (chunk @ centroids.T - half_norms).argmax(dim=1)
    return assignment
