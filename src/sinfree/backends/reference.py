"""Brute-force float64 Eq. 2: the oracle every fast path is tested against."""

from __future__ import annotations

import torch

from .base import FP64, PatchBackend


class ReferenceBackend(PatchBackend):
    """Eq. 2 evaluated literally in float64: squared distances, softmax, weighted sum.

    O(N M) memory per chunk of queries; meant for tests and tiny inputs.
    """

    name = "reference"

    def __init__(self, patches: torch.Tensor, chunk_size: int | None = None):
        super().__init__(patches)
        self.patches = patches.to(torch.float64)
        self.chunk_size = chunk_size or self.default_chunk_size(self.dim)

    def _chunks(self, x: torch.Tensor):
        for start in range(0, x.shape[0], self.chunk_size):
            yield start, x[start : start + self.chunk_size].to(torch.float64)

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
        for start, xc in self._chunks(x):
            sq_dist = torch.cdist(xc, alpha * self.patches, compute_mode="donot_use_mm_for_euclid_dist") ** 2
            weights = torch.softmax(-sq_dist / (2.0 * sigma**2), dim=1)
            out[start : start + len(xc)] = weights @ self.patches
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
        for start, xc in self._chunks(x):
            sq_dist = torch.cdist(xc, self.patches, compute_mode="donot_use_mm_for_euclid_dist")
            out[start : start + len(xc)] = self.patches[sq_dist.argmin(dim=1)]
        return out.to(x.dtype)

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return 1024

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.default_chunk_size(dim))
        return FP64 * (num_patches * dim + 2 * chunk * num_patches + 2 * chunk * dim)
