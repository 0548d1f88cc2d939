"""Eq. 2 with a completeness term: every reference patch used about equally often (Sinkhorn balancing).

Plain Eq. 2 lets each query patch pick its own neighbours, so one region's patches (a texture that
matches noise well) can take over the frame while another's (a sky) is never used. Here the
softmax of Eq. 2 gets a potential ``b_j`` per reference patch,

    w_ij = softmax_j( -||x_i - a y_j||^2 / (2 s^2) + b_j ),

chosen by Sinkhorn iterations so that each patch's total weight over all queries (its usage
``u_j = sum_i w_ij``) moves towards the even share N / M: ``b_j <- b_j - strength * log(u_j M / N)``.
``strength`` 0 is Eq. 2 exactly; 1 with many iterations is the entropic optimal transport between
the queries and a uniform measure on the patches (every patch used once per M / N queries).
This is GPNN's completeness (its distances normalised by each reference patch's best match) in the
softmax form of Eq. 2.

All queries of an image must be denoised in one call (the usage sums over them), so the score
matrix N x M is materialised: meant for the coarse scales, where the layout is decided.
"""

from __future__ import annotations

import torch

from .base import FP32, PatchBackend
from .chunked import ChunkedSoftmaxBackend

DEFAULT_ITERATIONS = 5


class BalancedBackend(ChunkedSoftmaxBackend):
    """Eq. 2 with Sinkhorn potentials on the patches (module docstring), fp32, one call per image."""

    name = "balanced"

    def __init__(self, patches: torch.Tensor, completeness: float = 1.0, iterations: int = DEFAULT_ITERATIONS):
        if not 0.0 <= completeness <= 1.0:
            raise ValueError(f"completeness must be in [0, 1], got {completeness}")
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        super().__init__(patches)
        self.completeness = completeness
        self.iterations = iterations

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        xc = x.to(torch.float32) - alpha * self.mean.to(torch.float32)
        logits = (xc @ self.centred.T).mul_(alpha).sub_(alpha**2 * self.half_norms).mul_(1.0 / sigma**2)
        weights = balanced_weights(logits, self.completeness, self.iterations)
        return (weights @ self.centred + self.mean.to(torch.float32)).to(x.dtype)

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        return 2**31  # every query in one call: the usage sums over all of them

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        return FP32 * (num_patches * (dim + 1) + 3 * num_queries * num_patches + 3 * num_queries * dim)


def balanced_weights(logits: torch.Tensor, completeness: float, iterations: int) -> torch.Tensor:
    """Row-softmax weights (N, M) of ``logits + b``, with the patch potentials ``b`` (M,) from
    ``iterations`` Sinkhorn steps ``b <- b - completeness * log(usage M / N)``."""
    num_queries, num_patches = logits.shape
    potentials = torch.zeros(num_patches, dtype=logits.dtype, device=logits.device)
    log_target = torch.log(torch.tensor(num_queries / num_patches, dtype=logits.dtype, device=logits.device))
    for _ in range(iterations if completeness > 0 else 0):
        log_usage = torch.logsumexp(torch.log_softmax(logits + potentials, dim=1), dim=0)  # in logs: no underflow
        potentials -= completeness * (log_usage - log_target)
    return torch.softmax(logits + potentials, dim=1)


__all__ = ["BalancedBackend", "PatchBackend", "balanced_weights"]
