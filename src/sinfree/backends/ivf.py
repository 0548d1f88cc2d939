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

from ..threads import one_thread
from .base import FP32
from .candidates import CandidateBackend, gathered_scores
from .merge import merge_patches

DEFAULT_CHUNK_BYTES = 64 * 2**20
GPU_CHUNK_BYTES = 2**30  # on a GPU, larger chunks: fewer passes of the per-list loop (one kernel launch each)
PCA_POINTS = 8192  # training points whose covariance gives the projection


class IVFBackend(CandidateBackend):
    """Eq. 2 restricted to the ``k`` nearest patches found in ``nprobe`` inverted lists.

    The lists come from ``kmeans_iterations`` rounds of k-means on a random subset of at most
    ``train_points_per_list`` patches per list; then every patch joins its nearest centroid's list.

    ``project = d`` (cheap pre-scoring, issue 3 (c)): the index and the list search live in the
    top-d principal subspace of the patch set; the ``rescore`` best candidates of that search are
    then re-scored exactly, in fp32 and full dimension, and the ``k`` best kept.

    ``merge`` merges duplicate (0) or near-duplicate reference patches first (``merge.py``).

    With ``nprobe = nlist`` and ``k = M`` (and ``rescore = M``) it is exact Eq. 2 (up to fp32 rounding).
    """

    name = "ivf"

    def __init__(
        self,
        patches: torch.Tensor,
        *,
        nlist: int | None = None,
        nprobe: int = 2,
        k: int = 5,
        project: int | None = None,
        rescore: int | None = None,
        kmeans_iterations: int = 10,
        train_points_per_list: int = 256,
        seed: int = 0,
        chunk_size: int | None = None,
        propagate: bool = False,
        prune_alpha: float | None = None,
        merge: float | None = None,
    ):
        counts = None
        if merge is not None:
            patches, counts = merge_patches(patches, merge)
        super().__init__(
            patches,
            nlist=nlist,
            nprobe=nprobe,
            k=k,
            chunk_size=chunk_size,
            propagate=propagate,
            prune_alpha=prune_alpha,
            counts=counts,
        )
        if chunk_size is None and patches.device.type == "cuda":
            self.chunk_size = max(self.chunk_size, GPU_CHUNK_BYTES // (FP32 * (4 * self.dim + 2 * self.nlist)))
        mean = self.mean.to(torch.float32)
        generator = torch.Generator().manual_seed(seed)
        self.project = min(project, self.dim) if project else None
        self.pool_size = max(self.k, min(self.num_patches, rescore or 4 * self.k)) if self.project else self.k
        # k-means on at most train_points_per_list points per list (as faiss does), then every patch
        # assigned; the only full-size allocation besides ``patches`` is ``members``
        sample = torch.randperm(self.num_patches, generator=generator)[: train_points_per_list * self.nlist].to(patches.device)
        train = patches[sample].to(torch.float32) - mean
        self.basis = principal_directions(train[:PCA_POINTS], self.project) if self.project else None
        self.centroids, _ = kmeans(self._to_search_space(train), self.nlist, kmeans_iterations, generator, self.chunk_size)
        del train
        if self.project:  # the projected patches (M, d) are kept: they are the search-space members
            search_patches = self._project_chunked(patches, mean)
            assignment = assign(search_patches, self.centroids, self.chunk_size)
        else:  # assigned chunk by chunk: no centred full-size copy besides ``members``
            assignment = assign(patches, self.centroids + mean, self.chunk_size)
        order = torch.argsort(assignment, stable=True)
        self.member_order = order
        if self.log_counts is not None:
            self.log_counts = self.log_counts[order]  # members are stored list by list
        self.members = patches[order].to(torch.float32).sub_(mean)  # centred patches, grouped list by list
        self.member_half_norms = 0.5 * self.members.square().sum(dim=1)
        self.search_members = search_patches[order] if self.project else self.members
        self.search_half_norms = 0.5 * self.search_members.square().sum(dim=1) if self.project else self.member_half_norms
        counts = torch.bincount(assignment, minlength=self.nlist)
        self.list_starts = torch.cat([torch.zeros(1, dtype=torch.long, device=counts.device), counts.cumsum(0)])
        self.centroid_half_norms = 0.5 * self.centroids.square().sum(dim=1)
        self.centroid_half_norms[counts == 0] = math.inf  # an empty list is never probed

    def _to_search_space(self, centred: torch.Tensor) -> torch.Tensor:
        return centred @ self.basis if self.project else centred

    def _project_chunked(self, patches: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The centred patches projected on the principal directions (M, d), a chunk at a time."""
        out = torch.empty(self.num_patches, self.project, device=patches.device)
        for start in range(0, self.num_patches, self.chunk_size):
            out[start : start + self.chunk_size] = (
                patches[start : start + self.chunk_size].to(torch.float32) - mean
            ) @ self.basis
        return out

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return max(64, DEFAULT_CHUNK_BYTES // (4 * FP32 * dim))

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.default_chunk_size(dim))
        nlist = max(1, math.isqrt(num_patches))
        train = min(num_patches, 256 * nlist)
        # members (+ the build's centred copy of the training points); per chunk: targets, probed
        # pairs, centroid scores, re-scoring gathers (8 MiB blocks)
        return FP32 * (num_patches * dim + train * dim + chunk * (4 * dim + 2 * nlist)) + 8 * 2**20

    def search_space(self, targets: torch.Tensor) -> torch.Tensor:
        return self._to_search_space(targets)

    def pool(self, queries: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._search_lists(queries, count)

    def search_scores(self, queries: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Scores in the search space: ``q.z - ||z||^2 / 2`` with z the projected members (exact without projection)."""
        return gathered_scores(queries, index, self.search_members, self.search_half_norms)

    def finalise(self, targets: torch.Tensor, index: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected search: the ``pool_size`` best by pre-score are re-scored exactly, the ``k`` best kept."""
        if self.project:
            keep = scores.topk(min(self.pool_size, scores.shape[1]), dim=1)
            index = index.gather(1, keep.indices)
            scores = self.exact_scores(targets, index)
        return super().finalise(targets, index, scores)

    def _search_lists(self, queries: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``count`` best search-space members of each query, by probing its ``nprobe`` nearest lists.

        Queries are grouped by the list they probe, so each list is scored in one GEMM.
        """
        n = len(queries)
        probes = (queries @ self.centroids.T - self.centroid_half_norms).topk(self.nprobe, dim=1).indices
        best_scores = torch.full((n, self.nprobe * count), -math.inf, device=queries.device)
        best_index = torch.full((n, self.nprobe * count), -1, dtype=torch.long, device=queries.device)
        pair_list = probes.flatten()
        order = torch.argsort(pair_list, stable=True)
        pair_query, pair_slot = order // self.nprobe, order % self.nprobe
        boundaries = torch.searchsorted(pair_list[order], torch.arange(self.nlist + 1, device=queries.device)).tolist()
        starts = self.list_starts.tolist()
        for lst in range(self.nlist):
            lo, hi = boundaries[lst], boundaries[lst + 1]
            first, last = starts[lst], starts[lst + 1]
            if lo == hi or first == last:
                continue
            queries_here, slots = pair_query[lo:hi], pair_slot[lo:hi]
            scores = queries[queries_here] @ self.search_members[first:last].T - self.search_half_norms[first:last]
            top = scores.topk(min(count, last - first), dim=1)
            columns = slots[:, None] * count + torch.arange(top.values.shape[1], device=queries.device)
            best_scores[queries_here[:, None], columns] = top.values
            best_index[queries_here[:, None], columns] = top.indices + first
        keep = best_scores.topk(min(count, best_scores.shape[1]), dim=1)
        return best_index.gather(1, keep.indices), keep.values


def principal_directions(centred: torch.Tensor, count: int, iterations: int = 3, oversample: int = 16) -> torch.Tensor:
    """The ``count`` leading principal directions (D, count) of centred points (n, D): a search subspace.

    Subspace iteration on their fp32 covariance from a fixed random start (``iterations`` products
    with a QR each, ``count + oversample`` columns), then the exact eigenvectors of the covariance
    restricted to that subspace (Rayleigh-Ritz). On 15 x 15 patches of balloons 3 iterations capture
    99.9 % of the variance the exact top-32 eigenvectors do, in about a third of the time of the full
    D x D eigh it replaces (one thread: 19 against 53-62 ms). The subspace
    only steers the search: distances are re-scored exactly.
    """
    dim = centred.shape[1]
    covariance = (centred.T.to(torch.float32) @ centred.to(torch.float32)) / max(1, len(centred))
    width = min(dim, count + oversample)
    basis = torch.randn(dim, width, generator=torch.Generator().manual_seed(0)).to(centred.device)
    with one_thread():  # threads only contend on small dense decompositions (sinfree.threads)
        for _ in range(iterations):
            basis, _ = torch.linalg.qr(covariance @ basis)
        _, vectors = torch.linalg.eigh(basis.T @ covariance @ basis)  # ascending eigenvalues
    return (basis @ vectors)[:, -count:].flip(1).contiguous()


def kmeans(
    points: torch.Tensor, num_clusters: int, iterations: int, generator: torch.Generator, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from ``num_clusters`` distinct random points; returns centroids and assignment.

    An emptied cluster is re-seeded with a random point; the returned assignment is to the final
    centroids.
    """
    centroids = points[torch.randperm(len(points), generator=generator)[:num_clusters].to(points.device)].clone()
    for _ in range(max(1, iterations)):
        assignment = assign(points, centroids, chunk_size)
        counts = torch.bincount(assignment, minlength=num_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        empty = counts == 0
        centroids = sums / counts.clamp_min(1)[:, None]
        if empty.any():
            centroids[empty] = points[torch.randint(len(points), (int(empty.sum()),), generator=generator).to(points.device)]
    return centroids, assign(points, centroids, chunk_size)


def assign(points: torch.Tensor, centroids: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Index of the nearest centroid of every point, one GEMM per chunk of points."""
    half_norms = 0.5 * centroids.square().sum(dim=1)
    assignment = torch.empty(len(points), dtype=torch.long, device=points.device)
    for start in range(0, len(points), chunk_size):
        chunk = points[start : start + chunk_size].to(centroids.dtype)
        assignment[start : start + len(chunk)] = (chunk @ centroids.T - half_norms).argmax(dim=1)
    return assignment
