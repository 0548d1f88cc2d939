"""The paper's ANN backend on faiss-cpu's IndexIVFFlat, for comparison with ``ivf`` (own GEMM search)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..extras import require
from .base import FP32
from .candidates import CandidateBackend


class FaissIVFBackend(CandidateBackend):
    """Eq. 2 over the ``k`` nearest patches returned by a faiss inverted-file index.

    nlist = floor(sqrt(M)) k-means lists (faiss's own k-means, ``kmeans_iterations`` rounds),
    ``nprobe`` lists probed, queries scaled by 1/a; the softmax is then exact over the candidates.
    """

    name = "faiss-ivf"

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
        propagate: bool = False,
        prune_alpha: float | None = None,
    ):
        faiss = require("faiss", "faiss", "backend 'faiss-ivf'")
        super().__init__(
            patches, nlist=nlist, nprobe=nprobe, k=k, chunk_size=chunk_size, propagate=propagate, prune_alpha=prune_alpha
        )
        faiss.omp_set_num_threads(torch.get_num_threads())
        self.members = (patches.to(torch.float32) - self.mean.to(torch.float32)).contiguous()
        self.member_half_norms = 0.5 * self.members.square().sum(dim=1)
        self.member_order = torch.arange(self.num_patches, device=patches.device)
        quantizer = faiss.IndexFlatL2(self.dim)
        self.index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist)
        self.index.cp.niter = kmeans_iterations
        self.index.cp.seed = seed
        self.index.cp.min_points_per_centroid = 1
        members = self.members.cpu().numpy()  # faiss-cpu: the search runs on the CPU whatever the device
        self.index.train(members)
        self.index.add(members)
        self.index.nprobe = self.nprobe
        self._quantizer = quantizer  # keep it alive: the index does not own it

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return 4096

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.default_chunk_size(dim))
        return FP32 * (3 * num_patches * dim + chunk * 4 * dim)

    def pool(self, queries: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        distances, index = self.index.search(np.ascontiguousarray(queries.cpu().numpy()), count)
        # -||t - y'||^2 / 2 + ||t||^2 / 2 = t.y' - ||y'||^2 / 2: the same offset as ``exact_scores``
        scores = torch.from_numpy(-0.5 * distances).to(queries.device) + 0.5 * queries.square().sum(dim=1, keepdim=True)
        index = torch.from_numpy(index).to(queries.device)
        return index, scores.masked_fill(index < 0, -math.inf)
