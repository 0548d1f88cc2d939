"""The self-prior of restoration: exact Eq. 2 over a multi-scale patch set of the degraded image itself,
leaving out each query's own patch (the leave-one-out of non-local means, Buades et al. 2005).

At the start of denoising x_T is the scaled noisy image, so the level-0 patch at a query's own position
matches it with distance 0 whatever the noise and takes all the weight (the output is the input:
measured in the module's report). Leaving exactly that patch out makes level 0 usable; every other
patch's noise is independent of the query's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..patches import all_patches, extract_patches, fold_patches, gaussian_window, patch_positions


class SelfPrior:
    """``D(x_t, a_t, s_t) -> xhat0`` for an image (C, H, W): Eq. 2 over every P x P patch of ``images``
    (stride 1, concatenated in order), folded back with the Gaussian window ``rho`` (Algorithm 1).

    ``exclude_self``: ``images[0]`` has the queries' shape and each query ignores the patch of ``images[0]``
    at its own position. Exact and dense (4 N M D flops per call): for images of up to a few hundred
    thousand query-patch pairs per row band; larger ones use the fast backends without level 0.
    """

    chunk_scores = 2**22  # mask entries held at once (queries x patches): 16 MiB in fp32

    def __init__(self, images: list[torch.Tensor], patch_size: int, *, rho: float = 0.2, exclude_self: bool = False):
        self.patch_size = patch_size
        self.channels = images[0].shape[0]
        patches = torch.cat([all_patches(image.to(torch.float32), patch_size) for image in images])
        self.mean = patches.mean(dim=0)
        centred = patches - self.mean
        # keys K = [y', ||y'||^2] with y' = y - mean (as the exact backend): V = K, its last column dropped
        self.keys = torch.cat([centred, centred.square().sum(dim=1, keepdim=True)], dim=1)
        self.window = gaussian_window(patch_size, rho).repeat(self.channels).to(patches.device)
        self.self_shape = tuple(images[0].shape[-2:]) if exclude_self else None
        self.num_patches = len(patches)

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        shape = tuple(x_t.shape[-2:])
        if self.self_shape is not None and shape != self.self_shape:
            raise ValueError(f"exclude_self needs queries of the level-0 shape {self.self_shape}, got {shape}")
        p = self.patch_size
        rows, cols = patch_positions(shape[0], p), patch_positions(shape[1], p)
        out = torch.zeros(self.channels, *shape, device=self.keys.device)
        band = max(1, self.chunk_scores // (len(cols) * self.num_patches))
        for start in range(0, len(rows), band):
            queries = extract_patches(x_t.to(torch.float32), rows[start : start + band], cols, p)
            denoised = self._denoise(queries, alpha, sigma, start * len(cols))
            fold_patches(denoised * self.window, rows[start : start + band], cols, p, out)
        zeros = torch.zeros(self.channels, *shape, device=self.keys.device)
        norm = fold_patches(self.window.expand(len(rows) * len(cols), -1), rows, cols, p, zeros)
        return out / norm

    def _denoise(self, queries: torch.Tensor, alpha: float, sigma: float, first: int) -> torch.Tensor:
        """Eq. 2 for a band of queries whose own level-0 patches are ``first``, ``first + 1``, ...: fused attention
        ``softmax(Q K^T / s^2 + mask) V`` with ``Q = [a x', -a^2 / 2]`` and -inf in the mask at each own patch."""
        if alpha == 0:
            return self.mean.expand_as(queries).clone()
        centred = queries - alpha * self.mean
        device = queries.device
        query = torch.cat([alpha * centred, torch.full((len(queries), 1), -0.5 * alpha**2, device=device)], dim=1)
        mask = None
        if self.self_shape is not None:
            mask = torch.zeros(len(queries), self.num_patches, device=device)
            mask[torch.arange(len(queries), device=device), torch.arange(first, first + len(queries), device=device)] = -torch.inf
            mask = mask[None, None]
        keys = self.keys[None, None]
        attended = F.scaled_dot_product_attention(query[None, None], keys, keys, attn_mask=mask, scale=1.0 / sigma**2)
        return attended[0, 0, :, :-1] + self.mean
