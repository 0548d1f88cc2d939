"""Coarse-to-fine generation from one image (DESIGN.md §1): the public ``generate`` function."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .backends import AUTO, AUTO_EXACT_FLOPS, IMAGE_BACKENDS, QUERY_GRID_OPTIONS, PatchBackend, backend_class_for, resolve_backend
from .backends.base import CallStats
from .composition import noised_level, profile_guided
from .energy import EnergyRectifier, calibrate
from .errors import InputImageError, MemoryBudgetError, SinfreeError
from .image_denoiser import make_image_denoiser
from .io.images import ImageLike, load_image, tensor_to_array
from .latent import LATENT_PATCH_SIZE, Codec, make_codec
from .memory import check_fits
from .pyramid import build_pyramid, level_shapes, resolve_num_scales
from .resize import resize
from .sampler import sample_scale
from .schedule import S_MIN, flow_schedule

if TYPE_CHECKING:  # sinfree.editing imports this module
    from .editing.base import Edit


PIXEL_PATCH_SIZE = 15  # Table 1


def default_patch_size(latent) -> int:
    """The patch size when none is given: Table 1's 15 px in pixel space, the paper's 7 in a latent space."""
    return PIXEL_PATCH_SIZE if latent is None else LATENT_PATCH_SIZE


# The default preset (issue 18; benchmarks/bench_composition.py measures it against "paper", docs/composition.md):
# S chosen from the input and output sizes (coarsest short side >= 2 P) and, on the coarsest scale, xhat0's row and
# column mean colours moved 0.7 of the way to the input's after every denoiser call (layout guidance). On the 15
# images x 10 samples against the paper's setting: guidance 1 kept the layout closest (0.27x) but varied least (LPIPS
# diversity 0.36), 0.5 varied most (0.45) at 0.43x the layout; 0.7 is the one that keeps the layout (0.34x) and the
# diversity (0.41) both near their targets, with SIFID 0.50x, SWD 0.36x and a third of the copied crops. On the quick
# study (benchmarks/sweep_composition.py, 10 photos x 3 seeds), starting the coarsest scale from the input noised
# to 0.8 (variation) kept the layout like guidance 1 but copied more (0.30 against 0.17) and varied less (0.30);
# completeness and a low-passed start (start_blur) traded layout for diversity along one curve. They stay options.
DEFAULT_LAYOUT_GUIDANCE = 0.7
DEFAULT_VARIATION = 1.0
DEFAULT_COMPLETENESS = 0.0
DEFAULT_RHO = 0.2
DEFAULT_ETA = 0.0
PRESETS: dict[str, dict] = {
    "default": {},  # GenerationSettings' own defaults
    "paper": {
        "num_scales": 4, "steps": 10, "eta": 0.0, "rho": 0.2, "min_coarsest_side": None, "variation": 1.0, "completeness": 0.0,
        "start_blur": 1.0, "layout_guidance": 0.0, "latent_fallback": False, "small_input_patch": False,
    },
}


@dataclass(frozen=True)
class GenerationSettings:
    """Every knob of the sampler. The defaults are the ``default`` preset; ``preset_settings("paper")``
    is the paper's Table 1 (P = 15, S = 4, T = 10, eta = 0, rho = 0.2, every scale from pure noise).

    ``latent``: the space the sampler denoises in (``sinfree.latent``): None for pixels, "pca",
    "pca:K", "vae:PATH" or a Codec. ``patch_size=None`` becomes 15 in pixel space, 7 in a latent space.
    """

    patch_size: int | None = None
    num_scales: int | None = None  # None: automatic, the most whose coarsest short side is >= min_coarsest_side
    steps: int = 10
    eta: float = DEFAULT_ETA
    rho: float = DEFAULT_RHO
    stride: int = 1
    backend: str = AUTO  # exact where cheap (coarse scales), ivf elsewhere; "exact" for the paper's exact method
    min_coarsest_side: float | None = None  # automatic S only; default 2 * patch_size
    s_min: float = S_MIN
    backend_options: dict = field(default_factory=dict)  # e.g. {"nprobe": 2, "k": 5} for "ivf"
    latent: str | Codec | None = None
    rectify: float | None = None  # energy rectification (DESIGN.md §2, sinfree.energy): the sharper kernel's width factor gamma
    variation: float = DEFAULT_VARIATION  # noise level the coarsest scale starts from: 1 = pure noise (the paper), < 1 = the input noised
    layout_guidance: float = DEFAULT_LAYOUT_GUIDANCE  # pull xhat0's row and column mean colours towards the input's on the coarsest scale; 0 = off
    start_blur: float = 1.0  # the varied start's input level low-passed by this factor (down- and up-sampled); 1 = sharp
    small_input_patch: bool = True  # the default 15 px patch shrinks for inputs or outputs under 30 px a side (patch_size_for)
    latent_fallback: bool = True  # a pixel run that would not fit in memory runs in the PCA latent space instead
    completeness: float = DEFAULT_COMPLETENESS  # Sinkhorn balancing of patch usage on the cheap (coarse) scales (backends/balanced.py); 0 = Eq. 2

    def __post_init__(self):
        if self.patch_size is None:
            object.__setattr__(self, "patch_size", default_patch_size(self.latent))

    def validate(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0 (or inf), got {self.rho}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        accepted = inspect.signature(backend_class_for(self.backend).__init__).parameters
        grid = {"self", "patches", "reference", "patch_size", "stride", "rho", *QUERY_GRID_OPTIONS}  # ImageDenoiser's
        unknown = sorted(set(self.backend_options) - set(accepted) - grid)
        if unknown:
            raise ValueError(f"backend {self.backend!r} takes no option {', '.join(unknown)}")
        if self.backend_options.get("prune_alpha") is not None and not self.backend_options.get("propagate"):
            raise ValueError("prune_alpha needs propagate=True: pruned queries take their neighbours' candidates")
        if not 0.0 <= self.completeness <= 1.0:
            raise ValueError(f"completeness must be in [0, 1], got {self.completeness}")
        if not 0.0 <= self.layout_guidance <= 1.0:
            raise ValueError(f"layout_guidance must be in [0, 1], got {self.layout_guidance}")
        if not self.start_blur >= 1.0:
            raise ValueError(f"start_blur (the varied start's low-pass factor) must be >= 1, got {self.start_blur}")
        if not self.s_min < self.variation <= 1.0:
            raise ValueError(f"variation (the coarsest scale's starting noise level) must be in ({self.s_min:g}, 1], got {self.variation}")
        if self.rectify is not None and not 0.0 < self.rectify < 1.0:
            raise ValueError(f"rectify (the sharper kernel's width factor gamma) must be in (0, 1), got {self.rectify}")
        make_codec(self.latent)  # a bad spec or a missing VAE folder fails here

    def record(self, codec: Codec | None = None) -> dict:
        """The settings as JSON values for the output files; the latent as its (fitted) codec's description."""
        recorded = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        codec = codec if codec is not None else make_codec(self.latent)
        return recorded | {"backend_options": dict(self.backend_options), "latent": None if codec is None else codec.describe()}


def preset_settings(preset: str = "default", **overrides) -> GenerationSettings:
    """The settings of a preset (``PRESETS``: "default" or "paper"), with ``overrides`` (None: the preset's).
    A ``patch_size`` given is kept as it is (no ``small_input_patch``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset] | {name: value for name, value in overrides.items() if value is not None}
    if overrides.get("patch_size") is not None:
        chosen["small_input_patch"] = False  # a patch size given is kept
    if chosen.get("num_scales") == "auto":
        chosen["num_scales"] = None
    return GenerationSettings(**chosen)


@dataclass(frozen=True)
class Progress:
    """One finished denoiser call, passed to the ``progress`` callback."""

    sample: int
    scale: int  # pyramid level, num_scales - 1 (coarsest) .. 0 (full size)
    step: int  # t, num_steps .. 1
    calls_done: int
    calls_total: int
    xhat0: torch.Tensor | None = field(default=None, repr=False, compare=False)  # this step's xhat0 (energy.EnergyTrace)


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
    completeness: float | None = None,
    start_blur: float | None = None,
    stride: int | None = None,
    backend: str | None = None,
    min_coarsest_side: float | None = None,
    latent: str | Codec | None = None,
    rectify: float | None = None,
    max_memory_bytes: int | None = None,
    progress: Callable[[Progress], None] | None = None,
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
    mean colours are moved that far towards the input's. ``completeness`` in [0, 1]: how evenly the coarse scales use the
    input's patches (``sinfree.backends.balanced``). Further keywords go to the backend
    (``backend="ivf", nprobe=2, k=5``).

    ``latent`` samples in a latent space and decodes the result (``sinfree.latent``): "pca" (a PCA of
    the input's 8 x 8 blocks, fitted to it), "pca:4" (4 x 4 blocks), "vae:PATH" (a diffusers
    AutoencoderKL folder, e.g. the FLUX.1 VAE) or a Codec; ``patch_size`` then defaults to 7 latent pixels.

    ``rectify=gamma`` (e.g. 0.5) keeps an output larger than the input as sharp as one at the input's
    size: xhat0 is extrapolated towards the denoiser with kernel width gamma s_t until its high-frequency
    energy matches a run at the input's size (``sinfree.energy``, DESIGN.md §2); None (default) is off.
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
        completeness=completeness,
        start_blur=start_blur,
        stride=stride,
        backend=backend,
        min_coarsest_side=min_coarsest_side,
        backend_options=backend_options or None,
        latent=latent,
        rectify=rectify,
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
    ``edit`` (``sinfree.editing``) changes the sampler for an editing application."""
    reference, pixel_format = load_image(image)
    if edit is not None and not edit.works_in_latent:
        settings = dataclasses.replace(settings, latent_fallback=False)
    plan = plan_run(reference.shape[0], tuple(reference.shape[-2:]), size, settings, num_samples, max_memory_bytes)
    output_shape, num_scales, codec, settings = plan.output_shape, plan.num_scales, plan.codec, plan.settings
    if codec is not None and edit is not None and not edit.works_in_latent:
        raise SinfreeError(f"{type(edit).__name__} works in pixel space only: run it without a latent space")

    started = time.perf_counter()
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
        samples=[tensor_to_array(x.clamp(-1.0, 1.0), pixel_format) for x in images],
        seeds=seeds,
        settings=recorded,
        seconds_per_sample=elapsed / num_samples,
        denoiser_stats=stats,
    )


def sample_latent(
    codec: Codec,
    reference: torch.Tensor,
    plan: RunPlan,
    settings: GenerationSettings,
    num_samples: int,
    seed: int,
    progress: Callable[[Progress], None] | None = None,
    edit: Edit | None = None,
) -> tuple[list[torch.Tensor], CallStats]:
    """Coarse-to-fine sampling in ``codec``'s latent space: the reference encoded once, the unchanged
    sampler on the latent canvas, and each sample decoded to the output size (periodically for a
    periodic edit; then the edit's ``decoded`` hook, e.g. symmetry re-imposed).

    The reference's pyramid is built from its latent: its coarse levels are then what the
    TwoScaleBlend's downsampling makes of a latent, and one encode is needed instead of S. Encoding
    each pixel level instead measured within a few per cent either way (benchmarks/bench_latent_pyramid.py:
    2-6 % lower patch SWD, 2-3 % higher nearest-patch distance on 11-12 of 15 images)."""
    latent_reference = codec.encode(reference)
    latents, stats = sample_coarse_to_fine(
        latent_reference, plan.canvas_shape, settings, plan.num_scales, num_samples, seed, progress, edit
    )
    periodic = edit is not None and edit.periodic
    images = [codec.decode_to(z, plan.output_shape, periodic=periodic) for z in latents]
    return ([edit.decoded(image) for image in images] if edit is not None else images), stats


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
    and refuse (MemoryBudgetError) a run above ``max_memory_bytes`` (default: the free memory)."""
    settings.validate()
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
        output_shape=output_shape, num_scales=num_scales, peak_bytes=peak, codec=codec, canvas_shape=canvas_shape, settings=settings
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
        raise InputImageError(f"in the {codec.name} latent space ({codec.factor}x smaller per side, sizes in latent px): {error}") from None


def sample_coarse_to_fine(
    reference: torch.Tensor,
    output_shape: tuple[int, int],
    settings: GenerationSettings,
    num_scales: int,
    num_samples: int,
    seed: int,
    progress: Callable[[Progress], None] | None = None,
    edit: Edit | None = None,
    pyramid: list[torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], CallStats]:
    """Coarse-to-fine sampling: every scale from pure noise, blended with the coarser result.

    Scales run one after another for all samples, so only one scale's patch index is in memory.
    Sample i draws all its noise from a generator seeded with ``seed + i``. Returns the samples
    and the denoiser's work over all scales. An ``edit`` chooses each scale's patch image, start
    and step count, and wraps its denoiser (``sinfree.editing.Edit``). ``pyramid`` (levels 0..S-1)
    replaces the reference's own antialiased pyramid.
    """
    from .editing.base import Edit  # here: sinfree.editing imports this module

    edit = edit if edit is not None else Edit()
    edit.prepare(num_scales)
    pyramid = build_pyramid(reference, num_scales) if pyramid is None else pyramid
    canvas_shapes = level_shapes(output_shape, num_scales)
    schedule = flow_schedule(settings.steps, settings.s_min)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(num_samples)]
    targets = None  # energy rectification: the HF energy curve of a run at the reference's size (sinfree.energy)
    if settings.rectify is not None and tuple(output_shape) != tuple(reference.shape[-2:]):
        targets = calibrate(reference, settings, num_scales, seed, pyramid)
    finished: list[torch.Tensor | None] = [None] * num_samples
    calls_total = num_samples * num_scales * settings.steps
    calls_done = 0
    stats = CallStats()
    for scale in range(num_scales - 1, -1, -1):
        patch_image = edit.patch_image(scale, pyramid[scale])
        denoiser = edit.make_denoiser(scale, patch_image, settings, canvas_shapes[scale])
        if denoiser is None:
            backend, options = scale_backend(settings, reference.shape[0], tuple(patch_image.shape[-2:]), canvas_shapes[scale])
            denoiser = make_image_denoiser(
                patch_image, settings.patch_size, stride=settings.stride, rho=settings.rho, backend=backend, **options
            )
        guided = denoiser
        if scale == num_scales - 1 and settings.layout_guidance > 0 and edit.keeps_input_layout:  # the edit's constraint comes last
            guided = profile_guided(denoiser, resize(pyramid[scale], canvas_shapes[scale]), settings.layout_guidance)
        scale_denoiser = edit.wrap(guided, scale)
        if targets is not None:
            scale_denoiser = EnergyRectifier(scale_denoiser, patch_image, targets[scale], settings.rectify)
        varied = scale == num_scales - 1 and settings.variation < 1.0 and edit.keeps_input_layout
        scale_schedule = flow_schedule(settings.steps, settings.s_min, settings.variation) if varied else schedule
        for i, generator in enumerate(generators):
            noise = torch.randn(reference.shape[0], *canvas_shapes[scale], generator=generator)
            if varied:
                noise = noised_level(pyramid[scale], noise, scale_schedule, settings.start_blur)
            x_start, start_step = edit.start(scale, pyramid[scale], noise, scale_schedule, scale_denoiser)

            def report(t, x, xhat0, i=i, scale=scale):
                nonlocal calls_done
                calls_done += 1
                if progress is not None:
                    progress(Progress(i, scale, t, calls_done, calls_total, xhat0))

            finished[i] = sample_scale(
                scale_denoiser,
                x_start,
                scale_schedule,
                eta=settings.eta,
                generator=generator,
                coarse=finished[i],
                callback=report,
                start_step=start_step,
                circular=edit.periodic,
            )
            calls_done += settings.steps - start_step  # steps an edit skipped count as done
        stats.add(denoiser.stats)
        del denoiser
    return finished, stats


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
    return resolve_backend(settings.backend, settings.backend_options, num_queries, num_patches, channels * p * p)


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
    sampler = sampler_peak_bytes(latent_channels, codec.latent_shape(input_shape), codec.latent_shape(output_shape), settings, num_samples)
    pixels = 4 * channels * (input_shape[0] * input_shape[1] + num_samples * output_shape[0] * output_shape[1])
    pixels += 24 * channels * output_shape[0] * output_shape[1]  # tensor_to_array's float64 copies of one sample
    return sampler + int(1.2 * (codec.estimate_bytes(channels, input_shape, output_shape) + pixels))


def sampler_peak_bytes(
    channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> int:
    """Peak memory of the sampler, from the full-size scale (the largest patch index and canvas).

    Counts the index, the patch set it is built from, one chunk of queries with its copies
    (extracted, denoised, windowed, folded) and the images, plus 20 % for the allocator's slack
    (freed blocks it keeps); ``benchmarks/bench_exact.py`` prints it beside the measured peak.
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
) -> list[tuple[str, int]]:
    """Changed settings as (command-line flags, estimated peak bytes), each estimated by
    ``estimate_peak_bytes`` itself: a larger query stride, a PCA latent space, the patchmatch backend,
    one sample at a time, and all of these at once (the strongest change of each kind)."""
    changes = [(f"--stride {stride}", {"stride": stride}, num_samples) for stride in (2, 4) if settings.stride < stride]
    if settings.latent is None:
        patch = LATENT_PATCH_SIZE if settings.patch_size == PIXEL_PATCH_SIZE else settings.patch_size
        changes += [(f"--latent {spec}", {"latent": spec, "patch_size": patch}, num_samples) for spec in ("pca:4", "pca")]
    if settings.backend not in ("patchmatch", AUTO):
        changes.append(("--backend patchmatch", {"backend": "patchmatch", "backend_options": {}}, num_samples))
    if num_samples > 1:
        changes.append(("-n 1", {}, 1))
    strongest = {label.split()[0]: (label, change, n) for label, change, n in changes}  # later ones are stronger
    if len(strongest) > 1:
        merged = {key: value for _, change, _ in strongest.values() for key, value in change.items()}
        changes.append((" ".join(label for label, _, _ in strongest.values()), merged, min(n for _, _, n in changes)))
    found = [_alternative(label, channels, input_shape, output_shape, dataclasses.replace(settings, **change), n) for label, change, n in changes]
    return [alternative for alternative in found if alternative is not None]


def _alternative(
    label: str, channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> tuple[str, int] | None:
    """(label, estimate) of changed settings; ``--scales auto`` added where S no longer fits the
    (latent) canvases, None where nothing does."""
    codec = make_codec(settings.latent)
    for scales, suffix in ((settings.num_scales, ""), (None, " --scales auto")):
        changed = dataclasses.replace(settings, num_scales=scales)
        try:
            resolve_canvas_scales(codec, input_shape, output_shape, changed)
        except InputImageError:
            continue
        return label + suffix, estimate_peak_bytes(channels, input_shape, output_shape, changed, num_samples)
    return None
