"""Exact Eq. 2 as a plain chunked softmax: score GEMM, softmax, weighted-sum GEMM (no fused kernel).

The baseline of the paper's timing table ("exact"), kept to measure what fused attention gains.
"""

from __future__ import annotations

import torch

from .base import FP32, PatchBackend

DEFAULT_CHUNK_BYTES = 64 * 2**20  # the (chunk, M) score matrix


class ChunkedSoftmaxBackend(PatchBackend):
    """Eq. 2 in fp32, a chunk of queries at a time: logits ``(a x'.y' - a^2 ||y'||^2 / 2) / s^2``
    (centred patches, as in ``exact``), ``softmax``, then ``weights @ Y'``. The (chunk, M) score
    matrix is materialised, so chunks are sized from M."""

    name = "chunked"

    def __init__(self, patches: torch.Tensor, chunk_size: int | None = None):
        super().__init__(patches)
        mean = self.mean.to(torch.float32)
        self.centred = patches.to(torch.float32) - mean
        self.half_norms = 0.5 * self.centred.square().sum(dim=1)
        self.chunk_size = chunk_size or self.chunk_size_for(self.num_patches)

    @staticmethod
    def chunk_size_for(num_patches: int) -> int:
        return max(16, DEFAULT_CHUNK_BYTES // (FP32 * num_patches))

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for start, xc in self._centred_chunks(x, alpha):
            logits = (xc @ self.centred.T).mul_(alpha).sub_(alpha**2 * self.half_norms).mul_(1.0 / sigma**2)
            out[start : start + len(xc)] = torch.softmax(logits, dim=1) @ self.centred
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for start, xc in self._centred_chunks(x, 1.0):
            out[start : start + len(xc)] = self.centred[(xc @ self.centred.T - self.half_norms).argmax(dim=1)]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return 1024  # ImageDenoiser's band size; each band is split again by M in _centred_chunks

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.chunk_size_for(num_patches))
        return FP32 * (num_patches * (dim + 1) + 2 * chunk * num_patches + 3 * chunk * dim)
