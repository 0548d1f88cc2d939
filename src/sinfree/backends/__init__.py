"""Patch-denoiser backends (Eq. 2) behind one function, ``denoise_patches``."""

from __future__ import annotations

import torch

from .base import PatchBackend
from .chunked import ChunkedSoftmaxBackend
from .exact import ExactBackend
from .faiss_ivf import FaissIVFBackend
from .ivf import IVFBackend
from .reference import ReferenceBackend

BACKENDS: dict[str, type[PatchBackend]] = {
    ExactBackend.name: ExactBackend,
    ChunkedSoftmaxBackend.name: ChunkedSoftmaxBackend,
    ReferenceBackend.name: ReferenceBackend,
    IVFBackend.name: IVFBackend,
    FaissIVFBackend.name: FaissIVFBackend,
}


def backend_class_for(name: str) -> type[PatchBackend]:
    """The backend class registered as ``name``, or a ValueError listing the choices."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}") from None


def make_backend(name: str, patches: torch.Tensor, **options) -> PatchBackend:
    """Build the backend ``name`` over the patch set ``patches`` (M, D), once per scale."""
    return backend_class_for(name)(patches, **options)


def denoise_patches(
    x: torch.Tensor, patches: torch.Tensor, alpha: float, sigma: float, backend: str = "exact", **options
) -> torch.Tensor:
    """Eq. 2: denoise noisy flattened patches ``x`` (N, D) against the clean patch set ``patches`` (M, D).

    ``xhat0(x) = sum_i w_i y_i`` with ``w = softmax_i(-||x - alpha y_i||^2 / (2 sigma^2))``. Returns
    (N, D). ``alpha = 0`` gives the mean patch, ``sigma = 0`` the nearest patch to ``x / alpha``.
    To denoise many batches against the same patch set, build the backend once with
    ``make_backend`` and call it.
    """
    return make_backend(backend, patches, **options)(x, alpha, sigma)


__all__ = [
    "BACKENDS",
    "PatchBackend",
    "ChunkedSoftmaxBackend",
    "ExactBackend",
    "FaissIVFBackend",
    "IVFBackend",
    "ReferenceBackend",
    "backend_class_for",
    "make_backend",
    "denoise_patches",
]
