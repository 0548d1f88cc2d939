"""The coarse-to-fine driver (DESIGN.md §1): every scale sampled from noise (Eq. 5) with the patch denoiser
(Eq. 2) of the reference's level, blended with the coarser result; in pixel or latent space, with an
``Edit``'s hooks and the energy rectification."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .backends.base import CallStats
from .composition import PositionPriorDenoiser, check_position_prior_cost, noised_level, profile_guided
from .device import cpu_noise
from .edit import Edit
from .energy import EnergyRectifier, EnergyTrace
from .image_denoiser import make_image_denoiser
from .io.images import load_image
from .latent import Codec
from .planning import RunPlan, plan_run, scale_backend
from .pyramid import build_pyramid, level_shapes
from .resize import resize
from .sampler import sample_scale
from .schedule import flow_schedule
from .settings import GenerationSettings


@dataclass(frozen=True)
class Progress:
    """One finished denoiser call, passed to the ``progress`` callback."""

    sample: int
    scale: int  # pyramid level, num_scales - 1 (coarsest) .. 0 (full size)
    step: int  # t, num_steps .. 1
    calls_done: int
    calls_total: int
    xhat0: torch.Tensor | None = field(default=None, repr=False, compare=False)  # this step's xhat0 (energy.EnergyTrace)


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
    edit = edit if edit is not None else Edit()
    edit.prepare(num_scales)
    pyramid = build_pyramid(reference, num_scales) if pyramid is None else pyramid
    canvas_shapes = level_shapes(output_shape, num_scales)
    schedule = flow_schedule(settings.steps, settings.s_min)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(num_samples)]
    targets = None  # energy rectification: the HF energy curve of a run at the reference's size (sinfree.energy)
    if settings.rectify is not None and tuple(output_shape) != tuple(reference.shape[-2:]):
        targets = calibrate(reference, settings, num_scales, seed, pyramid)
    placed = settings.position_prior > 0 and edit.keeps_input_layout  # the coarsest scale's Eq. 2 gets the prior
    if placed:
        coarsest = tuple(edit.patch_image(num_scales - 1, pyramid[-1]).shape[-2:])
        check_position_prior_cost(reference.shape[0], settings.patch_size, coarsest, canvas_shapes[-1])
    finished: list[torch.Tensor | None] = [None] * num_samples
    calls_total = num_samples * num_scales * settings.steps
    calls_done = 0
    stats = CallStats()
    for scale in range(num_scales - 1, -1, -1):
        patch_image = edit.patch_image(scale, pyramid[scale]).to(reference.device)  # an edit's own image (a style) too
        denoiser = edit.make_denoiser(scale, patch_image, settings, canvas_shapes[scale])
        if denoiser is None and scale == num_scales - 1 and placed:
            denoiser = PositionPriorDenoiser(patch_image, settings.patch_size, settings.rho, settings.position_prior)
        if denoiser is None:
            backend, options = scale_backend(settings, reference.shape[0], tuple(patch_image.shape[-2:]), canvas_shapes[scale])
            denoiser = make_image_denoiser(
                patch_image, settings.patch_size, stride=settings.stride, rho=settings.rho, backend=backend, **options
            )
        guided = denoiser
        # the layout guidance first: the edit's constraint (wrap) comes last
        if scale == num_scales - 1 and settings.guides_layout and edit.keeps_input_layout:
            target = resize(pyramid[scale], canvas_shapes[scale])
            guided = profile_guided(denoiser, target, settings.layout_guidance, settings.layout_guidance_end)
        scale_denoiser = edit.wrap(guided, scale)
        if targets is not None:
            scale_denoiser = EnergyRectifier(scale_denoiser, patch_image, targets[scale], settings.rectify)
        varied = scale == num_scales - 1 and settings.variation < 1.0 and edit.keeps_input_layout
        scale_schedule = flow_schedule(settings.steps, settings.s_min, settings.variation) if varied else schedule
        for i, generator in enumerate(generators):
            noise = cpu_noise((reference.shape[0], *canvas_shapes[scale]), generator, reference.device)  # same on every device
            if varied:
                noise = noised_level(pyramid[scale], noise, scale_schedule, settings.start_blur)
            x_start, start_step = edit.start(scale, pyramid[scale], noise, scale_schedule, scale_denoiser, finished[i])
            x_start = x_start.to(reference.device)

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
    return [edit.finish(image) for image in finished], stats


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
    each pixel level instead measured within a few per cent either way (measured on the 15 benchmark images:
    2-6 % lower patch SWD, 2-3 % higher nearest-patch distance on 11-12 of 15 images)."""
    latent_reference = codec.encode(reference)
    latents, stats = sample_coarse_to_fine(
        latent_reference, plan.canvas_shape, settings, plan.num_scales, num_samples, seed, progress, edit
    )
    periodic = edit is not None and edit.periodic
    images = [codec.decode_to(z, plan.output_shape, periodic=periodic) for z in latents]
    return ([edit.decoded(image) for image in images] if edit is not None else images), stats


def calibrate(reference: torch.Tensor, settings, num_scales: int, seed: int, pyramid=None) -> list[dict[float, float]]:
    """Per scale, {s_t: HF ratio of xhat0} of one plain sample at the reference's own size (the same
    settings, no rectification): the energy curve a large output is driven back to."""
    pyramid = build_pyramid(reference, num_scales) if pyramid is None else pyramid
    sigmas = flow_schedule(settings.steps, settings.s_min).sigmas.tolist()
    trace = EnergyTrace(pyramid, sigmas)
    plain = dataclasses.replace(settings, rectify=None)
    sample_coarse_to_fine(reference, tuple(reference.shape[-2:]), plain, num_scales, 1, seed, trace, pyramid=pyramid)
    targets: list[dict[float, float]] = [{} for _ in range(num_scales)]
    for r in trace.records:
        targets[r.scale][r.sigma] = r.ratio
    return targets


def reference_levels(image, settings, *, size=None) -> list[torch.Tensor]:
    """The reference's pyramid as ``generate_samples(image, settings, size=size)`` samples against it:
    pixel levels, or the levels of its latent (the codec fitted to ``image`` as in generation)."""
    reference, _ = load_image(image)
    plan = plan_run(reference.shape[0], tuple(reference.shape[-2:]), size, settings, 1, max_memory_bytes=1 << 62)
    if plan.codec is not None:
        codec = plan.codec if plan.codec.fitted else plan.codec.fit(reference)
        reference = codec.encode(reference)
    return build_pyramid(reference, plan.num_scales)
