"""Exact Eq. 2 through PyTorch's fused attention (DESIGN.md §1, "As attention")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import FP32, PatchBackend
from .merge import merge_patches

DEFAULT_CHUNK_BYTES = 64 * 2**20
# On a GPU, SDPA may take its math kernel, which holds the (chunk, M) scores: chunks are sized so that they fit this.
GPU_SCORE_BYTES = 2 * 2**30
# ``precision``: the dtype Q, K and V go through fused attention in. fp32 is the default and what ``auto`` uses:
# against float64 Eq. 2 (tests/test_device.py) bf16 and fp16 miss the 1e-4 the fp32 path is held to
# (tests/test_denoiser_math.py) at every noise level on 15 x 15 patches (max error up to 3e-2 and 3e-3 there,
# up to 0.15 and 0.03 on 7 x 7 patches of a flat crop): the rounding of Q.K grows with |x| |y| / s^2.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
GPU_ALIGN = 8  # on CUDA the head dimension D + 1 is padded with zeros to a multiple of this (the fused kernels' alignment)


class ExactBackend(PatchBackend):
    """Eq. 2 exactly, in fp32, as ``softmax(Q K^T / s^2) V`` with homogeneous coordinates.

    With the patches centred on their mean mu (y' = y - mu, x' = x - a mu; distances are unchanged)
    the logits of Eq. 2 are ``(a x'.y' - a^2 ||y'||^2 / 2) / s^2`` up to a per-query constant, so

        Q = [a x', -a^2 / 2],   K = [y', ||y'||^2],   V = K,   scale = 1 / s^2,

    and ``xhat0 = (softmax(Q K^T scale) V)[:, :D] + mu``. K is built once per patch set and reused
    for every step; V is K itself (its last column is dropped from the output), so the index costs
    M (D + 1) floats. Centring keeps the dot products small, which is what fp32 precision needs at
    small s. ``scaled_dot_product_attention`` never materialises the N x M score matrix; queries go
    through it in chunks of ``chunk_size`` so that peak memory is bounded and known in advance.
    """

    name = "exact"

    def __init__(
        self,
        patches: torch.Tensor,
        chunk_size: int | None = None,
        merge: float | None = None,
        precision: str = "fp32",
        align: int | None = None,
    ):
        """``merge``: merge duplicate patches (0) or near-duplicates on a grid of that step (see ``merge.py``).
        ``precision``: "fp32" (default), "bf16" or "fp16" for the attention's inputs (PRECISIONS: the low ones
        miss the fp32 tolerance). ``align``: K's width padded with zeros to a multiple of this (default GPU_ALIGN
        on CUDA, 1 elsewhere); zeros change no dot product. On CUDA, chunks also bound a (chunk, M) score matrix."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        counts = None
        if merge is not None:
            patches, counts = merge_patches(patches, merge)
        super().__init__(patches, counts)
        self.device = patches.device
        self.precision = PRECISIONS[precision]
        self.chunk_size = chunk_size or self.default_chunk_size(self.dim)
        if chunk_size is None and self.device.type == "cuda":
            self.chunk_size = max(1, min(self.chunk_size, GPU_SCORE_BYTES // (FP32 * self.num_patches)))
        self.keys = self._build_keys(patches)
        align = align or (GPU_ALIGN if self.device.type == "cuda" else 1)
        self.padding = -(self.dim + 1) % align
        if self.padding:
            self.keys = F.pad(self.keys, (0, self.padding))
        self.attention_keys = self.keys.to(self.precision)  # the same tensor in fp32

    def _build_keys(self, patches: torch.Tensor) -> torch.Tensor:
        """K = [y', ||y'||^2] (M, D + 1), filled a chunk at a time: no second full-size temporary."""
        mean = self.mean.to(torch.float32)
        keys = torch.empty(self.num_patches, self.dim + 1, dtype=torch.float32, device=patches.device)
        for start in range(0, self.num_patches, self.chunk_size):
            centred = patches[start : start + self.chunk_size].to(torch.float32) - mean
            keys[start : start + len(centred), : self.dim] = centred
            keys[start : start + len(centred), self.dim] = centred.square().sum(dim=1)
        return keys

    def _denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        keys = self.attention_keys[None, None]  # (batch, heads, M, D + 1): the 4-D layout takes the fast CPU flash kernel
        bias = None if self.log_counts is None else self.log_counts[None, None, None, :].to(self.precision)  # merged duplicates
        for start, xc in self._centred_chunks(x, alpha):
            query = torch.cat([alpha * xc, torch.full((len(xc), 1), -0.5 * alpha**2, device=xc.device)], dim=1)
            if self.padding:
                query = F.pad(query, (0, self.padding))
            query = query.to(self.precision)
            attended = F.scaled_dot_product_attention(query[None, None], keys, keys, attn_mask=bias, scale=1.0 / sigma**2)
            out[start : start + len(xc)] = attended[0, 0, :, : self.dim]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        centred = self.keys[:, : self.dim]
        half_norms = 0.5 * self.keys[:, self.dim]
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for start, xc in self._centred_chunks(x, 1.0):
            best = (xc @ centred.T - half_norms).argmax(dim=1)
            out[start : start + len(xc)] = centred[best]
        out += self.mean.to(torch.float32)
        return out.to(x.dtype)

    @classmethod
    def default_chunk_size(cls, dim: int) -> int:
        """Queries per chunk so that the chunk's query, output and centred copies fit 64 MiB."""
        return max(64, DEFAULT_CHUNK_BYTES // (3 * FP32 * (dim + 1)))

    @classmethod
    def estimate_bytes(cls, num_patches: int, dim: int, num_queries: int, chunk_size: int | None = None) -> int:
        chunk = min(num_queries, chunk_size or cls.default_chunk_size(dim))
        return FP32 * (num_patches + 3 * chunk) * (dim + 1)
