"""The public ``generate`` function (DESIGN.md §1): new images with the patch statistics of one image."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .backends.base import CallStats
from .coarse_to_fine import Progress, sample_coarse_to_fine, sample_latent
from .device import resolve_device
from .edit import Edit
from .errors import SinfreeError
from .io.images import ImageLike, load_image, tensor_to_array
from .latent import Codec
from .planning import plan_run
from .settings import GenerationSettings, preset_settings


@dataclass
class GenerationResult:
    """Samples (numpy, the input's type and layout), their seeds, and what made them."""

    samples: list[np.ndarray]
    seeds: list[int]
    settings: dict
    seconds_per_sample: float
    denoiser_stats: CallStats


def generate(
    image: ImageLike,
    *,
    num_samples: int = 1,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    preset: str = "default",
    patch_size: int | None = None,
    num_scales: int | str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    rho: float | None = None,
    variation: float | None = None,
    layout_guidance: float | None = None,
    layout_guidance_end: float | None = None,
    position_prior: float | None = None,
    completeness: float | None = None,
    start_blur: float | None = None,
    stride: int | None = None,
    backend: str | None = None,
    min_coarsest_side: float | None = None,
    latent: str | Codec | None = None,
    rectify: float | None = None,
    max_memory_bytes: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    device: str | None = None,
    **backend_options,
) -> list[np.ndarray]:
    """Generate ``num_samples`` new images with the patch statistics of ``image``.

    ``image`` is a path, a PIL image or a numpy array (gray, RGB or RGBA; uint8, uint16 or float
    in [0, 1]); the samples come back as numpy arrays of the same type and layout. ``size`` is the
    output (height, width), default the input's; sample i uses the seed ``seed + i``.

    ``preset``: "default" (keeps the input's composition: S from the sizes, the coarsest scale guided to
    the input's row and column mean colours) or "paper" (Table 1 exactly: S = 4, every scale from pure
    noise, rho = 0.2). Every other keyword left at None takes the preset's value. ``num_scales="auto"``
    picks S from ``min_coarsest_side`` (default 2 patch sizes). ``variation`` in (0, 1]: how much the
    layout may vary (1: pure noise); ``start_blur`` (>= 1) low-passes the input it starts from, so that only
    its broad layout is kept. ``layout_guidance`` in [0, 1]: on the coarsest scale, xhat0's row and column
    mean colours are moved that far towards the input's, at ``layout_guidance_end`` on the last step (linear in
    the noise level; None: constant). ``position_prior`` (tau > 0; 0 off): on the coarsest scale, each patch is drawn
    from within about tau of its place in the input (``composition.PositionPriorDenoiser``). ``completeness`` in [0, 1]: how evenly the coarse scales use the
    input's patches (``sinfree.backends.balanced``). Further keywords go to the backend
    (``backend="ivf", nprobe=2, k=5``).

    ``latent`` samples in a latent space and decodes the result (``sinfree.latent``): "pca" (a PCA of
    the input's 8 x 8 blocks, fitted to it), "pca:4" (4 x 4 blocks), "vae:PATH" (a diffusers
    AutoencoderKL folder, e.g. the FLUX.1 VAE) or a Codec; ``patch_size`` then defaults to 7 latent pixels.

    ``rectify=gamma`` (e.g. 0.5) keeps an output larger than the input as sharp as one at the input's
    size: xhat0 is extrapolated towards the denoiser with kernel width gamma s_t until its high-frequency
    energy matches a run at the input's size (``sinfree.energy``, DESIGN.md §2); None (default) is off.

    ``device``: "auto" (default: CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N" (``sinfree.device``).
    The noise is drawn on the CPU, so a seed gives the same samples on every device (up to rounding).
    """
    settings = preset_settings(
        preset,
        patch_size=patch_size,
        num_scales=num_scales,
        steps=steps,
        eta=eta,
        rho=rho,
        variation=variation,
        layout_guidance=layout_guidance,
        layout_guidance_end=layout_guidance_end,
        position_prior=position_prior,
        completeness=completeness,
        start_blur=start_blur,
        stride=stride,
        backend=backend,
        min_coarsest_side=min_coarsest_side,
        backend_options=backend_options or None,
        latent=latent,
        rectify=rectify,
        device=device,
    )
    return generate_samples(
        image, settings, num_samples=num_samples, size=size, seed=seed, max_memory_bytes=max_memory_bytes, progress=progress
    ).samples


def generate_samples(
    image: ImageLike,
    settings: GenerationSettings = GenerationSettings(),
    *,
    num_samples: int = 1,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    edit: Edit | None = None,
) -> GenerationResult:
    """``generate`` with its settings as one object, returning seeds, settings and timing too.
    ``edit`` (``sinfree.editing``) changes the sampler for an editing application. ``settings.device`` is
    resolved first (a missing CUDA device is refused before any work) and recorded as the device used."""
    device = resolve_device(settings.device)
    if edit is not None and not edit.runs_on_gpu and device.type != "cpu":
        if settings.device not in (None, "auto"):
            raise SinfreeError(f"{type(edit).__name__} runs on the CPU only for now: use device 'cpu' or 'auto'")
        device = torch.device("cpu")
    settings = dataclasses.replace(settings, device=str(device))
    reference, pixel_format = load_image(image)
    if edit is not None and not edit.works_in_latent:
        settings = dataclasses.replace(settings, latent_fallback=False)
    plan = plan_run(reference.shape[0], tuple(reference.shape[-2:]), size, settings, num_samples, max_memory_bytes)
    output_shape, num_scales, codec, settings = plan.output_shape, plan.num_scales, plan.codec, plan.settings
    if codec is not None and edit is not None and not edit.works_in_latent:
        raise SinfreeError(f"{type(edit).__name__} works in pixel space only: run it without a latent space")

    started = time.perf_counter()
    reference = reference.to(device)
    if codec is None:
        images, stats = sample_coarse_to_fine(reference, output_shape, settings, num_scales, num_samples, seed, progress, edit)
    else:
        codec = codec if codec.fitted else codec.fit(reference)
        images, stats = sample_latent(codec, reference, plan, settings, num_samples, seed, progress, edit)
    elapsed = time.perf_counter() - started
    seeds = [seed + i for i in range(num_samples)]
    recorded = settings.record(codec) | {"num_scales": num_scales, "output_size": [output_shape[1], output_shape[0]]}
    if codec is not None:
        recorded["latent_size"] = [plan.canvas_shape[1], plan.canvas_shape[0]]
    if edit is not None:
        recorded["edit"] = edit.describe()
    return GenerationResult(
        samples=[tensor_to_array(x.clamp(-1.0, 1.0).cpu(), pixel_format) for x in images],
        seeds=seeds,
        settings=recorded,
        seconds_per_sample=elapsed / num_samples,
        denoiser_stats=stats,
    )
