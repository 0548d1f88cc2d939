"""Run planning, known before any work: the output and canvas shapes, the number of scales, the patch
size for small inputs, each scale's backend, the peak-memory estimate, and the refusal of a run that would
not fit with the changes that would (``MemoryAdvice``, data the CLI turns into flags)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .backends import AUTO, AUTO_EXACT_FLOPS, IMAGE_BACKENDS, PatchBackend, backend_class_for, resolve_backend
from .device import free_device_bytes, resolve_device
from .errors import InputImageError, MemoryBudgetError
from .latent import LATENT_PATCH_SIZE, Codec, make_codec
from .memory import MemoryAdvice, check_fits
from .pyramid import resolve_num_scales
from .settings import PIXEL_PATCH_SIZE, GenerationSettings


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before it starts. ``canvas_shape`` is the full-size canvas the sampler
    denoises: the output's shape, or its latent's with a ``codec``."""

    output_shape: tuple[int, int]
    num_scales: int
    peak_bytes: int
    codec: Codec | None = None
    canvas_shape: tuple[int, int] | None = None
    settings: GenerationSettings | None = None  # the settings the run uses (a latent fallback changes them)


def plan_run(
    channels: int,
    input_shape: tuple[int, int],
    size: tuple[int, int] | None,
    settings: GenerationSettings,
    num_samples: int,
    max_memory_bytes: int | None = None,
) -> RunPlan:
    """Validate the settings against the input and output sizes; resolve S; estimate peak memory
    and refuse (MemoryBudgetError) a run above ``max_memory_bytes`` (default: the free memory, of the GPU on a CUDA device)."""
    settings.validate()
    if max_memory_bytes is None:
        max_memory_bytes = free_device_bytes(resolve_device(settings.device))
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    codec = make_codec(settings.latent)
    output_shape = tuple(size) if size is not None else tuple(input_shape)
    if codec is None and settings.small_input_patch and settings.patch_size == PIXEL_PATCH_SIZE:
        settings = dataclasses.replace(settings, patch_size=patch_size_for(input_shape, output_shape, settings.patch_size))
    num_scales = resolve_canvas_scales(codec, input_shape, output_shape, settings)
    peak = estimate_peak_bytes(channels, input_shape, output_shape, settings, num_samples)
    try:
        check_fits(
            peak,
            max_memory_bytes,
            f"generating {num_samples} sample(s) of {output_shape[1]}x{output_shape[0]} px",
            lambda: memory_alternatives(channels, input_shape, output_shape, settings, num_samples),
        )
    except MemoryBudgetError as error:
        fallback = latent_fallback_settings(settings)
        if fallback is None:
            raise
        try:
            return plan_run(channels, input_shape, size, fallback, num_samples, max_memory_bytes)
        except (MemoryBudgetError, InputImageError):
            raise error from None  # the pixel run's message, with its alternatives
    canvas_shape = output_shape if codec is None else codec.latent_shape(output_shape)
    return RunPlan(
        output_shape=output_shape,
        num_scales=num_scales,
        peak_bytes=peak,
        codec=codec,
        canvas_shape=canvas_shape,
        settings=settings,
    )


def patch_size_for(input_shape: tuple[int, int], output_shape: tuple[int, int], patch_size: int) -> int:
    """``patch_size``, or for an input or output whose short side is under 2 patches the largest odd
    size that fits twice (at least 3): a 20 x 20 icon gets 9 x 9 patches, not one 15 x 15 patch per position."""
    short = min(*input_shape, *output_shape)
    if short >= 2 * patch_size:
        return patch_size
    return max(3, (short // 2 - 1) | 1)


def latent_fallback_settings(settings: GenerationSettings) -> GenerationSettings | None:
    """The settings of a pixel run moved to the PCA latent space (8 x 8 blocks, the latent patch size where
    the pixel one was the default), or None where the settings ask for no fallback or are latent already."""
    if not settings.latent_fallback or settings.latent is not None:
        return None
    patch = LATENT_PATCH_SIZE if settings.patch_size == PIXEL_PATCH_SIZE else settings.patch_size
    return dataclasses.replace(settings, latent="pca", patch_size=patch, latent_fallback=False)


def resolve_canvas_scales(
    codec: Codec | None, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings
) -> int:
    """S for the canvases the sampler denoises (the latents' with a codec; its errors say so)."""
    if codec is None:
        return resolve_num_scales(input_shape, output_shape, settings.patch_size, settings.num_scales, settings.min_coarsest_side)
    try:
        return resolve_num_scales(
            codec.latent_shape(input_shape),
            codec.latent_shape(output_shape),
            settings.patch_size,
            settings.num_scales,
            settings.min_coarsest_side,
        )
    except InputImageError as error:
        raise InputImageError(
            f"in the {codec.name} latent space ({codec.factor}x smaller per side, sizes in latent px): {error}"
        ) from None


def scale_backend(
    settings: GenerationSettings, channels: int, reference_shape: tuple[int, int], canvas_shape: tuple[int, int]
) -> tuple[str, dict]:
    """The backend and options of one scale (``auto`` resolves by the scale's problem size); with
    ``completeness`` > 0, the balanced Eq. 2 on the scales where one exact call is cheap (the coarse
    ones, where the layout is decided)."""
    p = settings.patch_size
    num_patches = (reference_shape[0] - p + 1) * (reference_shape[1] - p + 1)
    num_queries = _grid_length(canvas_shape[0], p, settings.stride) * _grid_length(canvas_shape[1], p, settings.stride)
    if settings.completeness > 0 and PatchBackend.flops(num_queries, num_patches, channels * p * p) <= AUTO_EXACT_FLOPS:
        return "balanced", {"completeness": settings.completeness}
    device = resolve_device(settings.device)
    return resolve_backend(settings.backend, settings.backend_options, num_queries, num_patches, channels * p * p, device)


def _grid_length(length: int, patch_size: int, stride: int) -> int:
    """Query positions along one axis (every stride-th, plus the last)."""
    return -(-(length - patch_size) // stride) + 1


def estimate_peak_bytes(
    channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> int:
    """Peak memory of a run: the sampler's (``sampler_peak_bytes``) on the pixel canvases or, with a
    latent space, on the latent ones plus the codec's encoding and decoding (its weights, activations)
    and the pixel input and outputs, all counted as if alive at once (an upper bound)."""
    codec = make_codec(settings.latent)
    if codec is None:
        return sampler_peak_bytes(channels, input_shape, output_shape, settings, num_samples)
    latent_channels = codec.latent_channels(channels)
    sampler = sampler_peak_bytes(
        latent_channels, codec.latent_shape(input_shape), codec.latent_shape(output_shape), settings, num_samples
    )
    pixels = 4 * channels * (input_shape[0] * input_shape[1] + num_samples * output_shape[0] * output_shape[1])
    pixels += 24 * channels * output_shape[0] * output_shape[1]  # tensor_to_array's float64 copies of one sample
    return sampler + int(1.2 * (codec.estimate_bytes(channels, input_shape, output_shape) + pixels))


def sampler_peak_bytes(
    channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> int:
    """Peak memory of the sampler, from the full-size scale (the largest patch index and canvas).

    Counts the index, the patch set it is built from, one chunk of queries with its copies
    (extracted, denoised, windowed, folded) and the images, plus 20 % for the allocator's slack
    (freed blocks it keeps); ``benchmarks/bench_memory.py`` prints it beside the measured peak.
    """
    p = settings.patch_size
    dim = channels * p * p
    num_patches = (input_shape[0] - p + 1) * (input_shape[1] - p + 1)
    rows, cols = _grid_length(output_shape[0], p, settings.stride), _grid_length(output_shape[1], p, settings.stride)
    name, _ = scale_backend(settings, channels, input_shape, output_shape)  # the full-size scale
    backend_class = backend_class_for(name)
    index_and_chunk = backend_class.estimate_bytes(num_patches, dim, rows * cols)
    if name in IMAGE_BACKENDS:  # fused: no patch set, no band of extracted patches
        build = band = 0
    else:
        build = 4 * num_patches * dim  # the extracted patch set, alive while the index is built
        band = 4 * 4 * min(rows * cols, backend_class.default_chunk_size(dim)) * dim
    pyramid = 2 * 4 * channels * input_shape[0] * input_shape[1]
    canvases = 6 * 4 * channels * output_shape[0] * output_shape[1] * (1 + num_samples)
    return int(1.2 * (index_and_chunk + build + band + pyramid + canvases))


def memory_alternatives(
    channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> list[MemoryAdvice]:
    """Changed settings with their estimated peaks, each from ``estimate_peak_bytes`` itself: a larger query
    stride, a PCA latent space, the patchmatch backend, one sample at a time, and all of these at once (the
    strongest change of each kind)."""
    changes = [{"stride": stride} for stride in (2, 4) if settings.stride < stride]
    if settings.latent is None:
        patch = LATENT_PATCH_SIZE if settings.patch_size == PIXEL_PATCH_SIZE else settings.patch_size
        changes += [{"latent": spec, "patch_size": patch} for spec in ("pca:4", "pca")]
    if settings.backend not in ("patchmatch", AUTO):
        changes.append({"backend": "patchmatch", "backend_options": {}})
    if num_samples > 1:
        changes.append({"num_samples": 1})
    strongest = {next(iter(change)): change for change in changes}  # later ones are stronger
    if len(strongest) > 1:
        changes.append({key: value for change in strongest.values() for key, value in change.items()})
    found = [_alternative(change, channels, input_shape, output_shape, settings, num_samples) for change in changes]
    return [advice for advice in found if advice is not None]


def _alternative(
    change: dict,
    channels: int,
    input_shape: tuple[int, int],
    output_shape: tuple[int, int],
    settings: GenerationSettings,
    num_samples: int,
) -> MemoryAdvice | None:
    """The advice of one change, with ``num_scales=None`` (automatic) added where S no longer fits the
    (latent) canvases; None where nothing does."""
    num_samples = change.get("num_samples", num_samples)
    changed = dataclasses.replace(settings, **{key: value for key, value in change.items() if key != "num_samples"})
    codec = make_codec(changed.latent)
    for extra in ({}, {"num_scales": None}):
        candidate = dataclasses.replace(changed, **extra)
        try:
            resolve_canvas_scales(codec, input_shape, output_shape, candidate)
        except InputImageError:
            continue
        peak = estimate_peak_bytes(channels, input_shape, output_shape, candidate, num_samples)
        return MemoryAdvice(change | extra, peak)
    return None
