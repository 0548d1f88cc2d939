"""Backends that evaluate Eq. 2 exactly over a few searched candidate patches per query."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import PatchBackend


class CandidateBackend(PatchBackend):
    """Eq. 2 over a few candidate patches per query, found by a subclass's ``search``.

    ``search(t)`` takes centred targets t = x / a - mu (n, D) and returns, for each, the indices of
    k candidates in ``self.members`` (the centred patches; -1 for none) and scores equal to
    ``-||t - y'||^2 / 2`` up to a per-query constant. Since ``||x - a y||^2 = a^2 ||t - y'||^2``, the
    logits of Eq. 2 over the candidates are the scores times ``(a / s)^2``: the softmax is exact over
    them, and the backend is exact Eq. 2 whenever the candidates hold all the weight.
    """

    members: torch.Tensor

    def __init__(self, patches: torch.Tensor, *, nlist: int | None, nprobe: int, k: int, chunk_size: int | None):
        """Common index sizes: nlist = floor(sqrt(M)) by default, nprobe and k clamped to what exists."""
        super().__init__(patches)
        self.nlist = max(1, min(self.num_patches, nlist or math.isqrt(self.num_patches)))
        self.nprobe = max(1, min(nprobe, self.nlist))
        self.k = max(1, min(k, self.num_patches))
        self.chunk_size = chunk_size or self.default_chunk_size(self.dim)

    def search(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _weighted_members(self, weights: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``sum_j weights[:, j] members[index[:, j]]``: one fused gather-and-sum (missing: weight 0)."""
        return F.embedding_bag(index.clamp_min(0), self.members, per_sample_weights=weights, mode="sum")

    def _candidates(self, x: torch.Tensor, alpha: float):
        """Chunks of x, with the k candidates of x / alpha and their scores (Eq. 2 logits x s^2 / a^2)."""
        mean = self.mean.to(torch.float32)
        for start in range(0, x.shape[0], self.chunk_size):
            targets = x[start : start + self.chunk_size].to(torch.float32) / alpha - mean
            yield start, *self.search(targets)

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Eq. 2 over the candidates: with t = x / a - mu, the logit of y' is (a / s)^2 (t.y' - ||y'||^2 / 2)."""
        out = torch.empty(x.shape, dtype=torch.float32)
        for start, index, scores in self._candidates(x, alpha):
            weights = torch.softmax(scores * (alpha / sigma) ** 2, dim=1)  # -inf (missing) gets weight 0
            out[start : start + len(index)] = self._weighted_members(weights, index)
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32)
        for start, index, _ in self._candidates(x, 1.0):
            out[start : start + len(index)] = self.members[index[:, 0]]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)
