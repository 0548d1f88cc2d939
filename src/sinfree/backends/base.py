"""The one seam every patch-denoiser backend implements: Eq. 2 for a batch of noisy patches."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# Bytes one fp32 / fp64 number takes.
FP32 = 4
FP64 = 8


@dataclass
class CallStats:
    """Work done by a backend's Eq. 2 evaluations (the a = 0 shortcut is not counted)."""

    calls: int = 0  # batches of queries evaluated (several per image denoiser call)
    seconds: float = 0.0
    flops: float = 0.0  # 4 N M D per call: what exact Eq. 2 costs, whatever the backend does

    def add(self, other: CallStats) -> None:
        self.calls += other.calls
        self.seconds += other.seconds
        self.flops += other.flops

    @property
    def gflops_per_second(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0


class PatchBackend:
    """Eq. 2 against a fixed patch set ``Y`` (M, D): ``xhat0(x) = sum_i softmax_i(-||x - a y_i||^2 / 2 s^2) y_i``.

    A backend is built once per patch set (once per scale) and then called for any number of
    noisy patches and noise levels. Subclasses implement ``_denoise`` for 0 < alpha and sigma > 0;
    the limits alpha = 0 (every weight equal: the mean patch) and sigma = 0 (the nearest patch to
    x / alpha) are handled here, identically for every backend.
    """

    name = "base"
    chunk_size: int

    def __init__(self, patches: torch.Tensor, counts: torch.Tensor | None = None):
        """``counts`` (M,): how many copies of each patch the set holds (merged duplicates); each
        patch's logit gets ``log count`` (``self.log_counts``), which is exact Eq. 2 over the copies."""
        if patches.ndim != 2 or patches.shape[0] < 1:
            raise ValueError(f"patches must be a non-empty (M, D) tensor, got shape {tuple(patches.shape)}")
        self.num_patches, self.dim = patches.shape
        if counts is None:
            self.mean = patches.mean(dim=0, dtype=torch.float64).to(patches.dtype)
            self.log_counts = None
        else:
            weights = counts.to(torch.float64)
            self.mean = ((weights @ patches.to(torch.float64)) / weights.sum()).to(patches.dtype)
            self.log_counts = weights.log().to(torch.float32)
        self.stats = CallStats()

    def __call__(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (N, {self.dim}), got shape {tuple(x.shape)}")
        if alpha < 0 or sigma < 0:
            raise ValueError(f"alpha and sigma must be >= 0, got alpha={alpha}, sigma={sigma}")
        if alpha == 0:
            return self.mean.to(x.dtype).expand_as(x).clone()
        if sigma == 0:
            return self._nearest(x / alpha)
        start = time.perf_counter()
        out = self._denoise(x, float(alpha), float(sigma))
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - start
        self.stats.flops += self.flops(len(x), self.num_patches, self.dim)
        return out

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        raise NotImplementedError

    def _centred_chunks(self, x: torch.Tensor, alpha: float):
        """Chunks of ``x - alpha mu`` in fp32 (``chunk_size`` rows), with their start rows."""
        shift = alpha * self.mean.to(torch.float32)
        for start in range(0, x.shape[0], self.chunk_size):
            yield start, x[start : start + self.chunk_size].to(torch.float32) - shift

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        """Queries denoised at once by default, for patches of dimension ``dim``."""
        raise NotImplementedError

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        """Peak bytes held while denoising ``num_queries`` patches against ``num_patches`` (index included)."""
        raise NotImplementedError

    @staticmethod
    def flops(num_queries: int, num_patches: int, dim: int) -> float:
        """Floating-point operations of one exact Eq. 2 evaluation: 4 N M D (scores and average)."""
        return 4.0 * num_queries * num_patches * dim
