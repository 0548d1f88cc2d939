"""ImgDenoise (Algorithm 1): denoise every query patch of an image with Eq. 2, fold back with a window."""

from __future__ import annotations

import torch

from .backends import make_backend
from .patches import all_patches, extract_patches, fold_patches, gaussian_window, patch_positions


class ImageDenoiser:
    """The closed-form denoiser of one scale: ``D(x_t, a_t, s_t) -> xhat0`` for an image (C, h, w).

    The patch set is every P x P patch of ``reference`` (C, H, W); the noisy image may have any
    size of at least P. Query patches are taken every ``stride`` pixels (the last row and column
    always included), denoised in bands of patch rows (so the full query matrix never exists),
    weighted by the Gaussian window ``rho`` and folded back, divided by the folded window.
    """

    def __init__(
        self,
        reference: torch.Tensor,
        patch_size: int = 15,
        *,
        stride: int = 1,
        rho: float = 0.2,
        backend: str = "exact",
        **backend_options,
    ):
        self.channels = reference.shape[0]
        self.patch_size = patch_size
        self.stride = stride
        self.rho = rho
        self.backend = make_backend(backend, all_patches(reference.to(torch.float32), patch_size), **backend_options)
        self.window = gaussian_window(patch_size, rho).repeat(self.channels)
        self._normalisers: dict[tuple[int, int], torch.Tensor] = {}

    def query_grid(self, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns of the query patches' top-left corners for an image of ``shape``."""
        return (patch_positions(shape[0], self.patch_size, self.stride), patch_positions(shape[1], self.patch_size, self.stride))

    def num_queries(self, shape: tuple[int, int]) -> int:
        rows, cols = self.query_grid(shape)
        return len(rows) * len(cols)

    def _normaliser(self, shape: tuple[int, int]) -> torch.Tensor:
        """The folded window for an image of ``shape``: the denominator of Algorithm 1."""
        if shape not in self._normalisers:
            rows, cols = self.query_grid(shape)
            ones = self.window.expand(len(rows) * len(cols), -1)
            self._normalisers[shape] = fold_patches(ones, rows, cols, self.patch_size, torch.zeros(self.channels, *shape))
        return self._normalisers[shape]

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        shape = tuple(x_t.shape[-2:])
        rows, cols = self.query_grid(shape)
        rows_per_band = max(1, self.backend.chunk_size // len(cols))
        out = torch.zeros(self.channels, *shape, dtype=torch.float32)
        for start in range(0, len(rows), rows_per_band):
            band = rows[start : start + rows_per_band]
            queries = extract_patches(x_t, band, cols, self.patch_size)
            denoised = self.backend(queries, alpha, sigma)
            fold_patches(denoised * self.window, band, cols, self.patch_size, out)
        return out / self._normaliser(shape)
