"""Patch-denoiser backends (Eq. 2) behind one function, ``denoise_patches``."""

from __future__ import annotations

import inspect

import torch

from .balanced import BalancedBackend
from .base import PatchBackend
from .chunked import ChunkedSoftmaxBackend
from .exact import ExactBackend
from .faiss_ivf import FaissIVFBackend
from .ivf import IVFBackend
from .patchmatch import PatchMatchDenoiser
from .reference import ReferenceBackend

BACKENDS: dict[str, type[PatchBackend]] = {
    ExactBackend.name: ExactBackend,
    ChunkedSoftmaxBackend.name: ChunkedSoftmaxBackend,
    BalancedBackend.name: BalancedBackend,
    ReferenceBackend.name: ReferenceBackend,
    IVFBackend.name: IVFBackend,
    FaissIVFBackend.name: FaissIVFBackend,
}
# Backends that denoise whole images (ImgDenoise fused with Eq. 2), not a batch of patches.
IMAGE_BACKENDS = {PatchMatchDenoiser.name: PatchMatchDenoiser}


# ``backend="auto"``: exact Eq. 2 where one call costs at most AUTO_EXACT_FLOPS (4 N M D), the fast backend with
# AUTO_FAST_OPTIONS elsewhere. 2e9 (about 12 ms a call on 2 cores) is where patchmatch becomes the cheaper of the
# two: the Table-1 setting's third scale (47 x 62, 6.8e9 per call) took 0.41 s of a 1.37 s sample exact, 0.06 s
# with patchmatch, while over the 15 benchmark images x 3 seeds the patch SWD, nearest-patch distance and
# diversity stayed at 1.000, 1.037 and 1.000 of exact. Only the coarsest scale (~1e8) stays exact there.
AUTO = "auto"
AUTO_EXACT_FLOPS = 2e9
# Exact Eq. 2 where it costs at most this per call (about 0.1 s at 150 GFLOP/s) for the enhancement priors.
CHEAP_EXACT_FLOPS = 2e10
AUTO_FAST = "patchmatch"
# The fast options, each measured over the 15 benchmark images x 3 seeds against exact Eq. 2 (patch SWD,
# nearest-patch distance, diversity) and timed at the Table-1 setting and 512^2 / 1024^2 (the benchmark
# scripts that measured them are in the repository's history): query stride 4 on the noisiest steps (s_t > 0.5)
# and 3 down to s_t = 0.21 (1.34x and 1.09x faster), no subspace passes on the sharp steps (their full-distance
# pass alone), the random search's radii quartered instead of halved: 0.998, 0.962, 1.003 of exact. Stride 3 down
# to 0.2 was refused: with T = 6 it strides the s_t = 0.2 step too, and the tiled gravel of tests/test_editing.py
# then missed its seam bound. Inpainting drops the query strides (editing/inpaint.py).
AUTO_FAST_OPTIONS: dict = {
    "early_stride": 3,
    "early_stride_above": 0.21,
    "noisy_stride": 4,
    "noisy_stride_above": 0.5,
    "sharp_passes": 0,
    "shrink": 4,
}
# options of the query grid (ImageDenoiser's and patchmatch's), which every backend takes; auto gives them to
# its fast scales only
QUERY_GRID_OPTIONS = ("early_stride", "early_stride_above", "noisy_stride", "noisy_stride_above")
# On a CUDA device ``auto``'s fast backend is the inverted-file search in torch (``ivf``: GEMMs and top-k on the
# device; patchmatch's numba kernels run on the CPU only), with the fast options' query grid. Its quality
# against exact Eq. 2 is that of ``ivf`` on the CPU (the same computation); its GPU timings are not yet measured.
AUTO_GPU_FAST = "ivf"
AUTO_GPU_FAST_OPTIONS: dict = {name: AUTO_FAST_OPTIONS[name] for name in QUERY_GRID_OPTIONS}


def backend_names() -> list[str]:
    """Every name ``backend=`` accepts."""
    return sorted([*BACKENDS, *IMAGE_BACKENDS, AUTO])


def backend_class_for(name: str) -> type:
    """The backend class registered as ``name`` (``auto``: its fast backend's), or a ValueError listing the choices."""
    if name == AUTO:
        return backend_class_for(AUTO_FAST)
    try:
        return BACKENDS[name] if name in BACKENDS else IMAGE_BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}") from None


def choose_backend(
    name: str, options: dict, flops: float, *, exact_flops: float = AUTO_EXACT_FLOPS, device: torch.device | None = None
) -> tuple[str, dict]:
    """The one ``auto`` policy, shared by generation, inpainting and enhancement: the backend and options of
    a problem whose exact Eq. 2 call costs ``flops`` (``PatchBackend.flops``) on ``device`` (None: the CPU).

    A named backend is kept (an unknown name raises ValueError listing the choices). ``auto`` is exact
    Eq. 2 where a call costs at most ``exact_flops``, the fast backend elsewhere: on the CPU ``patchmatch``
    with AUTO_FAST_OPTIONS under ``options``; on a CUDA device ``ivf`` (AUTO_GPU_FAST) with the query grid
    options, keeping those of ``options`` that ``ivf`` takes. Every backend takes a patch set with patches
    left out (inpainting), patchmatch through its ``valid`` positions. Only the device's type is read.
    """
    backend_class_for(name)  # unknown names: the error listing the choices
    if name != AUTO:
        return name, dict(options)
    if flops <= exact_flops:
        return "exact", {}  # not even the early stride: on the coarse scales it moved the patch SWD up 6-10 %
    if device is not None and torch.device(device).type == "cuda":
        accepted = set(inspect.signature(BACKENDS[AUTO_GPU_FAST].__init__).parameters) | set(QUERY_GRID_OPTIONS)
        return AUTO_GPU_FAST, AUTO_GPU_FAST_OPTIONS | {key: value for key, value in options.items() if key in accepted}
    return AUTO_FAST, AUTO_FAST_OPTIONS | options


def resolve_backend(
    name: str, options: dict, num_queries: int, num_patches: int, dim: int, device: torch.device | None = None
) -> tuple[str, dict]:
    """``choose_backend`` for one generation scale of ``num_queries`` queries against ``num_patches`` patches of ``dim`` numbers."""
    return choose_backend(name, options, PatchBackend.flops(num_queries, num_patches, dim), device=device)


def make_backend(name: str, patches: torch.Tensor, **options) -> PatchBackend:
    """Build the backend ``name`` over the patch set ``patches`` (M, D), once per scale."""
    if name in IMAGE_BACKENDS:
        raise ValueError(f"backend {name!r} denoises whole images: use make_image_denoiser or generate, not a patch set")
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
    "AUTO",
    "AUTO_GPU_FAST",
    "BACKENDS",
    "BalancedBackend",
    "ChunkedSoftmaxBackend",
    "ExactBackend",
    "FaissIVFBackend",
    "IMAGE_BACKENDS",
    "IVFBackend",
    "PatchBackend",
    "PatchMatchDenoiser",
    "ReferenceBackend",
    "backend_class_for",
    "backend_names",
    "choose_backend",
    "denoise_patches",
    "make_backend",
    "resolve_backend",
]
