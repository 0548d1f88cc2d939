"""ImgDenoise (Algorithm 1): denoise every query patch of an image with Eq. 2, fold back with a window."""

from __future__ import annotations

import torch

from .backends import IMAGE_BACKENDS, make_backend
from .device import OnDevice
from .patches import all_patches, extract_patches, fold_patches, gaussian_window, patch_positions, query_stride


class ImageDenoiser:
    """The closed-form denoiser of one scale: ``D(x_t, a_t, s_t) -> xhat0`` for an image (C, h, w).

    The patch set is every P x P patch of ``reference`` (C, H, W); the noisy image may have any
    size of at least P. Query patches are taken every ``stride`` pixels (the last row and column
    always included), denoised in bands of patch rows (so the full query matrix never exists),
    weighted by the Gaussian window ``rho`` and folded back, divided by the folded window.
    ``patches`` (M, C P P) replaces the patch set (a masked one: inpainting). On the early steps,
    s_t > ``early_stride_above``, the queries are every ``early_stride``-th patch (xhat0 is smooth there;
    the fold's normaliser follows the grid).
    """

    def __init__(
        self,
        reference: torch.Tensor,
        patch_size: int = 15,
        *,
        stride: int = 1,
        rho: float = 0.2,
        backend: str = "exact",
        patches: torch.Tensor | None = None,
        early_stride: int = 1,
        early_stride_above: float = 0.3,
        noisy_stride: int = 1,
        noisy_stride_above: float = 0.5,
        **backend_options,
    ):
        if early_stride < 1 or noisy_stride < 1:
            raise ValueError(f"early_stride and noisy_stride must be >= 1, got {early_stride}, {noisy_stride}")
        self.channels = reference.shape[0]
        self.patch_size = patch_size
        self.stride = stride
        self.early_stride = early_stride
        self.early_stride_above = early_stride_above
        self.noisy_stride = noisy_stride
        self.noisy_stride_above = noisy_stride_above
        self.rho = rho
        if patches is None:
            patches = all_patches(reference.to(torch.float32), patch_size)
        elif backend_options.get("propagate"):
            raise ValueError("propagate shifts candidates on the full patch grid: it cannot run on a chosen patch set")
        self.backend = make_backend(backend, patches, **backend_options)
        self.window = gaussian_window(patch_size, rho).repeat(self.channels).to(reference.device)
        self._normalisers: dict[tuple[int, ...], torch.Tensor] = {}
        self.propagating = getattr(self.backend, "propagate", False)
        if self.propagating:
            grid = (reference.shape[-2] - patch_size + 1, reference.shape[-1] - patch_size + 1)
            self.backend.set_patch_grid(grid)
        self._previous: torch.Tensor | None = None  # last call's candidates per query (propagation)

    @property
    def stats(self):
        """The backend's work over all calls (CallStats)."""
        return self.backend.stats

    def start_trajectory(self) -> None:
        """Forget the previous step's candidates: the next call starts a new sample."""
        self._previous = None

    def query_grid(self, shape: tuple[int, int], sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns of the query patches' top-left corners for an image of ``shape`` at noise level
        ``sigma`` (the early stride above ``early_stride_above``)."""
        stride = query_stride(
            self.stride, self.early_stride, self.early_stride_above, sigma, self.noisy_stride, self.noisy_stride_above
        )
        return (patch_positions(shape[0], self.patch_size, stride), patch_positions(shape[1], self.patch_size, stride))

    def num_queries(self, shape: tuple[int, int]) -> int:
        rows, cols = self.query_grid(shape)
        return len(rows) * len(cols)

    def _normaliser(self, shape: tuple[int, int], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The folded window of the query grid (rows, cols) on an image of ``shape``: the denominator of Algorithm 1."""
        key = (*shape, len(rows), len(cols))
        if key not in self._normalisers:
            ones = self.window.expand(len(rows) * len(cols), -1)
            self._normalisers[key] = fold_patches(
                ones, rows, cols, self.patch_size, torch.zeros(self.channels, *shape, device=ones.device)
            )
        return self._normalisers[key]

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        shape = tuple(x_t.shape[-2:])
        rows, cols = self.query_grid(shape, float(sigma))
        coherent = self.propagating and alpha > 0 and sigma > 0
        if coherent:
            extra, searched, kept = self._propagation_plan(rows, cols, alpha)
        rows_per_band = max(1, self.backend.chunk_size // len(cols))
        out = torch.zeros(
            self.channels, *shape, dtype=torch.float64 if x_t.dtype == torch.float64 else torch.float32, device=x_t.device
        )
        for start in range(0, len(rows), rows_per_band):
            band = slice(start, start + rows_per_band)
            queries = extract_patches(x_t, rows[band], cols, self.patch_size)
            if coherent:
                denoised, index = self.backend.denoise_with_candidates(
                    queries,
                    alpha,
                    sigma,
                    None if extra is None else extra[band].reshape(len(queries), -1),
                    None if searched is None else searched[band].reshape(-1),
                )
                kept[band, :, : index.shape[1]] = index.view(-1, len(cols), index.shape[1])
            else:
                denoised = self.denoise_queries(queries, rows[band], cols, shape, alpha, sigma)
            fold_patches(denoised * self.window, rows[band], cols, self.patch_size, out)
        if coherent:
            self._previous = kept
        return out / self._normaliser(shape, rows, cols)

    def denoise_queries(self, queries, rows, cols, shape, alpha: float, sigma: float) -> torch.Tensor:
        """Eq. 2 for the query patches (N, D) at the grid ``rows`` x ``cols`` of an image of ``shape``: the hook a
        denoiser with its own weights overrides (a propagating backend's coherent calls do not go through it)."""
        return self.backend(queries, alpha, sigma)

    def _propagation_plan(self, rows: torch.Tensor, cols: torch.Tensor, alpha: float):
        """For a coherent call: the propagated candidates of every query (issue 3 (a); None on a
        trajectory's first call), the queries whose index is searched (None: all; at a_t >=
        prune_alpha one in four, issue 3 (b)), and the (rows, cols, k) buffer for this call's candidates."""
        previous = self._previous if self._previous is not None and self._previous.shape[:2] == (len(rows), len(cols)) else None
        extra = self.backend.propagated_candidates(previous, rows, cols) if previous is not None else None
        searched = None
        prune_alpha = self.backend.prune_alpha
        if extra is not None and prune_alpha is not None and alpha >= prune_alpha:
            searched = (torch.arange(len(rows))[:, None] % 2 == 0) & (torch.arange(len(cols))[None, :] % 2 == 0)
            searched = searched.to(self.window.device)
        kept = torch.full((len(rows), len(cols), self.backend.k), -1, dtype=torch.long, device=self.window.device)
        return extra, searched, kept


def make_image_denoiser(
    reference: torch.Tensor, patch_size: int = 15, *, stride: int = 1, rho: float = 0.2, backend: str = "exact", **options
):
    """The denoiser of one scale for ``backend``: a fused image backend (``patchmatch``) itself, or
    ImageDenoiser over a patch backend."""
    if backend in IMAGE_BACKENDS:
        denoiser = IMAGE_BACKENDS[backend](reference.cpu(), patch_size, stride=stride, rho=rho, **options)
        # patchmatch's numba kernels run on the CPU only (``auto`` never picks them for a GPU): x_t goes there and back
        return denoiser if reference.device.type == "cpu" else OnDevice(denoiser, torch.device("cpu"))
    return ImageDenoiser(reference, patch_size, stride=stride, rho=rho, backend=backend, **options)
