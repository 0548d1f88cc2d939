"""Coarse-to-fine generation from one image (DESIGN.md §1): the public ``generate`` function."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .backends import AUTO, IMAGE_BACKENDS, backend_class_for, resolve_backend
from .backends.base import CallStats
from .image_denoiser import make_image_denoiser
from .image_io import ImageLike, load_image, tensor_to_array
from .memory import check_fits
from .pyramid import build_pyramid, level_shapes, resolve_num_scales
from .sampler import sample_scale
from .schedule import S_MIN, flow_schedule

if TYPE_CHECKING:  # sinfree.editing imports this module
    from .editing.base import Edit


@dataclass(frozen=True)
class GenerationSettings:
    """Every knob of the sampler, with the paper's Table-1 defaults."""

    patch_size: int = 15
    num_scales: int | None = 4  # None: automatic from min_coarsest_side
    steps: int = 10
    eta: float = 0.0
    rho: float = 0.2
    stride: int = 1
    backend: str = AUTO  # exact where cheap (coarse scales), ivf elsewhere; "exact" for the paper's exact method
    min_coarsest_side: float | None = None  # automatic S only; default 1.5 * patch_size
    s_min: float = S_MIN
    backend_options: dict = field(default_factory=dict)  # e.g. {"nprobe": 2, "k": 5} for "ivf"

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
        unknown = sorted(set(self.backend_options) - set(accepted) - {"self", "patches", "reference", "patch_size", "stride", "rho"})
        if unknown:
            raise ValueError(f"backend {self.backend!r} takes no option {', '.join(unknown)}")
        if self.backend_options.get("prune_alpha") is not None and not self.backend_options.get("propagate"):
            raise ValueError("prune_alpha needs propagate=True: pruned queries take their neighbours' candidates")


@dataclass(frozen=True)
class Progress:
    """One finished denoiser call, passed to the ``progress`` callback."""

    sample: int
    scale: int  # pyramid level, num_scales - 1 (coarsest) .. 0 (full size)
    step: int  # t, num_steps .. 1
    calls_done: int
    calls_total: int


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
    patch_size: int = 15,
    num_scales: int | None = 4,
    steps: int = 10,
    eta: float = 0.0,
    rho: float = 0.2,
    stride: int = 1,
    backend: str = AUTO,
    min_coarsest_side: float | None = None,
    max_memory_bytes: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    **backend_options,
) -> list[np.ndarray]:
    """Generate ``num_samples`` new images with the patch statistics of ``image``.

    ``image`` is a path, a PIL image or a numpy array (gray, RGB or RGBA; uint8, uint16 or float
    in [0, 1]); the samples come back as numpy arrays of the same type and layout. ``size`` is the
    output (height, width), default the input's; sample i uses the seed ``seed + i``.
    ``num_scales=None`` picks S from ``min_coarsest_side`` (default 1.5 patch sizes). Further
    keywords go to the backend (``backend="ivf", nprobe=2, k=5``).
    """
    settings = GenerationSettings(
        patch_size, num_scales, steps, eta, rho, stride, backend, min_coarsest_side, backend_options=backend_options
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
    plan = plan_run(reference.shape[0], tuple(reference.shape[-2:]), size, settings, num_samples, max_memory_bytes)
    output_shape, num_scales = plan.output_shape, plan.num_scales

    started = time.perf_counter()
    images, stats = sample_coarse_to_fine(reference, output_shape, settings, num_scales, num_samples, seed, progress, edit)
    elapsed = time.perf_counter() - started
    seeds = [seed + i for i in range(num_samples)]
    recorded = asdict(settings) | {"num_scales": num_scales, "output_size": [output_shape[1], output_shape[0]]}
    if edit is not None:
        recorded["edit"] = edit.describe()
    return GenerationResult(
        samples=[tensor_to_array(x.clamp(-1.0, 1.0), pixel_format) for x in images],
        seeds=seeds,
        settings=recorded,
        seconds_per_sample=elapsed / num_samples,
        denoiser_stats=stats,
    )


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before it starts."""

    output_shape: tuple[int, int]
    num_scales: int
    peak_bytes: int


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
    output_shape = tuple(size) if size is not None else tuple(input_shape)
    num_scales = resolve_num_scales(
        input_shape, output_shape, settings.patch_size, settings.num_scales, settings.min_coarsest_side
    )
    peak = estimate_peak_bytes(channels, input_shape, output_shape, settings, num_samples)
    check_fits(peak, max_memory_bytes, f"generating {num_samples} sample(s) of {output_shape[1]}x{output_shape[0]} px")
    return RunPlan(output_shape=output_shape, num_scales=num_scales, peak_bytes=peak)


def sample_coarse_to_fine(
    reference: torch.Tensor,
    output_shape: tuple[int, int],
    settings: GenerationSettings,
    num_scales: int,
    num_samples: int,
    seed: int,
    progress: Callable[[Progress], None] | None = None,
    edit: Edit | None = None,
) -> tuple[list[torch.Tensor], CallStats]:
    """Coarse-to-fine sampling: every scale from pure noise, blended with the coarser result.

    Scales run one after another for all samples, so only one scale's patch index is in memory.
    Sample i draws all its noise from a generator seeded with ``seed + i``. Returns the samples
    and the denoiser's work over all scales. An ``edit`` chooses each scale's patch image, start
    and step count, and wraps its denoiser (``sinfree.editing.Edit``).
    """
    from .editing.base import Edit  # here: sinfree.editing imports this module

    edit = edit if edit is not None else Edit()
    edit.prepare(num_scales)
    pyramid = build_pyramid(reference, num_scales)
    canvas_shapes = level_shapes(output_shape, num_scales)
    schedule = flow_schedule(settings.steps, settings.s_min)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(num_samples)]
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
        scale_denoiser = edit.wrap(denoiser, scale)
        for i, generator in enumerate(generators):
            noise = torch.randn(reference.shape[0], *canvas_shapes[scale], generator=generator)
            x_start, start_step = edit.start(scale, pyramid[scale], noise, schedule, scale_denoiser)

            def report(t, x, xhat0, i=i, scale=scale):
                nonlocal calls_done
                calls_done += 1
                if progress is not None:
                    progress(Progress(i, scale, t, calls_done, calls_total))

            finished[i] = sample_scale(
                scale_denoiser,
                x_start,
                schedule,
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
    """The backend and options of one scale (``auto`` resolves by the scale's problem size)."""
    p = settings.patch_size
    num_patches = (reference_shape[0] - p + 1) * (reference_shape[1] - p + 1)
    num_queries = _grid_length(canvas_shape[0], p, settings.stride) * _grid_length(canvas_shape[1], p, settings.stride)
    return resolve_backend(settings.backend, settings.backend_options, num_queries, num_patches, channels * p * p)


def _grid_length(length: int, patch_size: int, stride: int) -> int:
    """Query positions along one axis (every stride-th, plus the last)."""
    return -(-(length - patch_size) // stride) + 1


def estimate_peak_bytes(
    channels: int, input_shape: tuple[int, int], output_shape: tuple[int, int], settings: GenerationSettings, num_samples: int
) -> int:
    """Peak memory of a run, from the full-size scale (the largest patch index and canvas).

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
