"""Training-free restoration with the image as its own prior (after UniMIE; DESIGN.md §2).

Two methods. ``two-stage`` (the default, ``twostage.py``): the one-call Eq. 2 estimate below as the pilot,
then the closed-form Gaussian posterior mean over groups of the image's own similar patches (NL-Bayes),
inside plug-and-play loops for the degradation operators. ``one-stage``: the Eq. 2 prior alone, as follows.

The prior is the closed-form patch denoiser (Eq. 2) whose patch set is taken from the degraded input
across its scales (``problems.py``): downscaling lowers the noise (to 0.42 of its std per octave here)
and halves a blur's width, while sharp structure recurs across scales (Zontak, Mosseri and Irani, CVPR
2013; Michaeli and Irani, ECCV 2014). It is combined with data consistency for ``y = A x + n`` as in
DiffPIR (Zhu et al., CVPR 2023): the solver is ``diffpir.restore``, the operators are ``operators.py``,
the patch priors ``prior.py`` (Eq. 2) and ``groups.py`` (NL-Bayes groups).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..backends import AUTO, backend_class_for
from ..device import resolve_device
from ..errors import InputImageError, SinfreeError
from ..extras import require
from ..memory import check_fits
from . import noise as noise_models
from .diffpir import restoration_schedule, restore  # noqa: F401  (restoration_schedule: re-exported)
from .groups import BAND_PIXELS, CHUNK_VALUES
from .layout import Layout
from .operators import RobustScale, biharmonic_fill, estimate_blur
from .prior import SelfPrior
from .problems import build_denoiser, build_problem, choose_prior
from .twostage import (
    LOOP_STEPS,
    deblur_plan,
    denoise_plan,
    held_out_error,
    illumination_plan,
    inpaint_plan,
    plug_and_play,
    superres_plan,
    two_stage_denoise,
)

TASKS = ("denoise", "deblur", "superres", "inpaint", "illumination")
METHODS = ("two-stage", "one-stage")
# the medical extra's packages that enhancement imports lazily (the operators, the noise estimate, the inpainting start)
ENHANCE_MODULES = ("scipy.ndimage", "skimage.restoration", "pywt")
ONE_STAGE_PATCH = 7  # the Eq. 2 patch size of the one-stage method and of the loops' first pilot
SIGMA_FLOOR = 1e-3  # noise std (normalised units) under which data count as exact


@dataclass(frozen=True)
class TaskDefaults:
    """Per-task defaults, measured on camera 96 x 96 (tests/test_enhance.py): ``steps`` T, ``start`` the initial
    s/a (denoising: in units of the noise std, None: 1), ``lam`` DiffPIR's lambda (inf: no data step),
    ``first_level`` the finest pyramid level of the patch set, ``window`` the fold window's rho.

    The window is plain averaging (rho = inf) everywhere: every pixel averages the P^2 patch estimates
    covering it (denoising 27.12 dB against 25.56 dB at rho = 0.2; deblurring 28.8 against 28.7).
    Denoising takes one step (the noisy image at its own level, one call, one prox): more steps sharpen
    Eq. 2's kernel towards single noisy patches of the set (T = 1, 2, 3: 27.12, 25.56, 24.96 dB), and a
    strong Gaussian prox puts noise back (lambda = 1, 10, 30, inf: 24.32, 27.10, 27.15, 27.12 dB).
    Deblurring, super-resolution, inpainting and illumination alternate 5 steps with a strong data step
    (deblurring, lambda = 0.01, 0.03, 0.1, 1: 28.79, 28.49, 27.85, 26.30 dB).
    """

    steps: int
    start: float | None
    lam: float
    first_level: int
    window: float = math.inf


DEFAULTS = {
    "denoise": TaskDefaults(steps=1, start=None, lam=30.0, first_level=0),
    "deblur": TaskDefaults(steps=5, start=0.3, lam=0.01, first_level=1),
    "superres": TaskDefaults(steps=5, start=0.3, lam=0.01, first_level=0),
    "inpaint": TaskDefaults(steps=5, start=0.3, lam=0.01, first_level=0),
    "illumination": TaskDefaults(steps=5, start=0.1, lam=0.01, first_level=0),
}


@dataclass
class EnhanceResult:
    """``mean``: the restored data in the input's physical units (the mean of the samples), never clipped;
    ``std``: the per-pixel std over the samples (None for one sample); ``settings``: everything used,
    estimated values included (sigma, blur width, prior); ``seconds``: the wall time."""

    mean: np.ndarray
    std: np.ndarray | None
    task: str
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def check_enhance_extra() -> None:
    """MissingExtraError (one line) unless the packages enhancement imports (lazily) are installed."""
    for module in ENHANCE_MODULES:
        require(module, "medical", "sinfree enhance")


def enhance(
    data: np.ndarray,
    task: str,
    *,
    sigma: float | str | None = "auto",
    noise: str = "gaussian",
    blur: float | str | None = None,
    scale: int = 2,
    mask: np.ndarray | None = None,
    samples: int = 1,
    seed: int = 0,
    steps: int | None = None,
    patch_size: int | None = None,
    method: str = "two-stage",
    backend: str = AUTO,
    eta: float | None = None,
    lam: float | None = None,
    start: float | None = None,
    first_level: int | None = None,
    num_levels: int | None = None,
    window: float | None = None,
    gain: float = 1.0,
    field_degree: int = 2,
    colour: bool | None = None,
    max_memory_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str | None = "auto",
) -> EnhanceResult:
    """Restore ``data`` (physical units: (H, W), (H, W, C) colour or (D, H, W) volume) for ``task``.

    Tasks: ``denoise`` (noise model ``noise``: gaussian, poisson (Anscombe; counts = data / ``gain``), rician
    (squared magnitude), speckle (log); ``sigma`` in the data's units (speckle: the std of log n) or "auto"),
    ``deblur`` (Gaussian blur of width ``blur`` px, or "auto"), ``superres`` (by the integer ``scale``),
    ``inpaint`` (``mask`` (H, W): nonzero where pixels are MISSING; known pixels are returned exactly) and
    ``illumination`` (y = f x + M, ``operators.Illumination``; ``field_degree`` the field's polynomial degree).
    The data are normalised to [-1, 1] by their 0.5 / 99.5 percentiles and mapped back; nothing is clipped.
    ``method``: ``two-stage`` (default; ``twostage.py``: the Eq. 2 pilot, then NL-Bayes passes over groups of
    similar patches; plug-and-play loops for the operators; ``steps`` the loop's iterations, ``lam`` its
    lambda) or ``one-stage`` (the Eq. 2 prior in the DiffPIR loop; unset ``steps``, ``lam``, ``start`` (the
    starting s/a; denoising: in units of the noise std), ``first_level`` and ``window`` take the task's
    ``DEFAULTS``).

    ``patch_size``: the Eq. 2 patch size; unset, the two-stage denoising plan's pilot size (5 or 7), else 7: the
    classical non-local-means size (D = 49); small patches recur across scales, which the multi-scale patch
    set needs, and keep fine structure, and exact Eq. 2 stays cheap (one-stage denoising of the camera crop:
    P = 5, 7, 11, 15: 27.42, 27.15, 26.13, 25.28 dB; 7 keeps a patch twice per side in the coarser levels of
    small inputs, and matches across scales less by chance than 5).
    ``backend``: ``auto`` picks exact priors where affordable and ``patchmatch`` over the finest patch image
    at large sizes (``problems.choose_prior``); ``exact`` / ``ivf`` take the multi-scale patch set through
    ``ImageDenoiser(patches=...)``. ``samples`` > 1 draws posterior samples (eta defaults to 0.5; sample i
    uses seed ``seed + i``) and returns their mean and per-pixel std in physical units (two-stage: each sample's
    last group passes draw from the groups' Gaussian posteriors). Volumes are restored slice by slice:
    ``progress(done, total)`` counts slices there and denoiser steps (group passes) for 2-D inputs.
    ``device``: where the Eq. 2 prior computes, "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    (``sinfree.device``); the loop, the operators and the NL-Bayes groups stay on the CPU.
    Raises SinfreeError with a one-line reason on bad input, before any work.
    """
    started = time.perf_counter()
    device = str(resolve_device(device))  # a missing GPU is refused before any work
    check_enhance_extra()
    layout = _check(data, task, noise, samples, steps, patch_size, scale, mask, colour, backend, method)
    missing = None if mask is None else np.asarray(mask) != 0
    items = layout.items(data)
    stabilised, sigma_z, sigma_used = _stabilise(items, task, noise, sigma, gain, missing)
    units = RobustScale.fit(stabilised if missing is None else stabilised[:, :, ~missing])
    sigma_n = max(sigma_z * units.gain, SIGMA_FLOOR)
    settings = _settings(task, locals(), sigma_used, sigma_n, units, items)
    settings["blur"] = _resolve_blur(task, blur, units.to_unit(stabilised), sigma_n)
    factor = settings["scale"]
    plane = (layout.plane[0] * factor, layout.plane[1] * factor)
    prior_settings = settings if method == "one-stage" else pilot_settings(settings, sigma_n, settings["patch_size"])
    settings["prior"], settings["first_level"] = choose_prior(prior_settings, plane, items.shape[1])
    check_fits(_estimate_bytes(items.shape, settings), max_memory_bytes, f"enhancing this {layout.describe()}")
    mean, std = _restore_items(units.to_unit(stabilised), units, settings, missing, layout, progress)
    result_mean, result_std = layout.assemble(mean, data), None if std is None else layout.assemble(std, data)
    if task == "inpaint":  # known pixels exactly as given
        keep = ~missing if layout.kind != "colour" else ~missing[:, :, None]
        result_mean = np.where(keep, np.asarray(data, dtype=np.float64), result_mean)
        result_std = None if result_std is None else np.where(keep, 0.0, result_std)
    return EnhanceResult(mean=result_mean, std=result_std, task=task, settings=settings, seconds=time.perf_counter() - started)


def _settings(task: str, given: dict, sigma_used, sigma_n: float, units: RobustScale, items: np.ndarray) -> dict:
    """Every setting of the run: the user's, else the task's defaults, and the estimated values."""
    defaults = DEFAULTS[task]

    def pick(name):
        return getattr(defaults, name) if given[name] is None else given[name]

    samples = given["samples"]
    eta = (0.5 if samples > 1 else 0.0) if given["eta"] is None else float(given["eta"])
    if not 0.0 <= eta <= 1.0:
        raise SinfreeError(f"eta must be in [0, 1], got {eta}")
    method = given["method"]
    plan = denoise_plan(sigma_n) if method == "two-stage" and task == "denoise" else None
    if plan is not None and given["steps"] is not None:
        raise SinfreeError("two-stage denoising runs its plan's passes; steps are for the other tasks and one-stage")
    patch_size = given["patch_size"] or (plan.pilot_patch if plan is not None else ONE_STAGE_PATCH)
    steps = (
        len(plan.passes) if plan is not None else pick("steps") if method == "one-stage" else given["steps"] or LOOP_STEPS[task]
    )
    return {
        "task": task,
        "method": method,
        "noise": given["noise"] if task == "denoise" else "gaussian",
        "sigma": sigma_used,
        "sigma_normalised": sigma_n,
        "scale": int(given["scale"]) if task == "superres" else 1,
        "samples": samples,
        "seed": int(given["seed"]),
        "steps": int(steps),
        "patch_size": int(patch_size),
        "eta": eta,
        "lam": float(pick("lam")) if method == "one-stage" or given["lam"] is not None else None,
        "start": _default_start(task, given["start"], samples),
        "first_level": int(pick("first_level")),
        "num_levels": given["num_levels"],
        "window": float(pick("window")),
        "field_degree": int(given["field_degree"]),
        "gain": float(given["gain"]),
        "zero": float(units.to_unit(min(0.0, float(items.min())))),
        "backend": given["backend"],
        "device": given["device"],
    }


def _default_start(task: str, start: float | None, samples: int) -> float | None:
    """The starting level: given, else the task's; denoising with several samples starts at 1.25 sigma_n, so
    that fresh noise of std 0.75 sigma_n tells the samples apart (measured: the mean of 3 samples 27.0 dB,
    one sample 26.6 dB, against 27.1 dB for the deterministic start at sigma_n; the std map's correlation with
    the error 0.23)."""
    if start is not None:
        return float(start)
    if task == "denoise" and samples > 1:
        return 1.25
    return DEFAULTS[task].start


def _check(data, task, noise, samples, steps, patch_size, scale, mask, colour, backend, method) -> Layout:
    """Every user error, as one-line SinfreeErrors, before any work."""
    if task not in TASKS:
        raise SinfreeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if method not in METHODS:
        raise SinfreeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if noise not in noise_models.NOISE_MODELS:
        raise SinfreeError(f"unknown noise model {noise!r}; choose one of {', '.join(noise_models.NOISE_MODELS)}")
    if noise != "gaussian" and task != "denoise":
        raise SinfreeError(f"the {noise} noise model is for the denoise task; {task} assumes Gaussian noise")
    if samples < 1 or (steps is not None and steps < 1) or (patch_size is not None and patch_size < 1):
        raise SinfreeError(f"samples, steps and patch size must be >= 1, got {samples}, {steps}, {patch_size}")
    if task == "superres" and (int(scale) != scale or scale < 2):
        raise SinfreeError(f"superres needs an integer scale >= 2, got {scale}")
    if backend != AUTO:
        try:
            backend_class_for(backend)
        except ValueError as error:
            raise SinfreeError(str(error)) from None
    data = np.asarray(data)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or data.size == 0:
        raise InputImageError(f"expected a non-empty numeric array, got {data.dtype} of shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputImageError("the data contain NaN or infinite values")
    layout = Layout.of(data, colour)
    smallest = patch_size or ONE_STAGE_PATCH
    if min(layout.plane) < smallest:
        raise InputImageError(f"the image ({layout.plane[1]}x{layout.plane[0]} px) is smaller than the {smallest} px patch")
    if task == "inpaint":
        if mask is None:
            raise SinfreeError("inpaint needs a mask (nonzero where pixels are missing)")
        if np.asarray(mask).shape != layout.plane:
            raise InputImageError(f"the mask is {np.asarray(mask).shape[::-1]} px (W, H) but the image is {layout.plane[::-1]}")
        if not np.asarray(mask).any():
            raise InputImageError("the mask marks no pixel missing (all zero): nothing to inpaint")
        if np.asarray(mask).all():
            raise InputImageError("the mask marks every pixel missing: nothing is known")
    return layout


def _stabilise(items: np.ndarray, task: str, noise: str, sigma, gain: float, missing=None):
    """``(z, sigma_z, sigma_used)``: the data in the noise model's stabilised domain, the Gaussian std there,
    and the std in the data's own units (estimated when ``sigma`` is "auto"/None; with ``missing`` pixels, on
    the biharmonic fill, not on whatever the missing pixels hold)."""
    given = _parse_sigma(sigma)
    model = noise if task == "denoise" else "gaussian"
    sample = items[:: max(1, len(items) // 8)]  # at most ~8 slices for the estimate
    if given is None and model in ("gaussian", "rician"):
        filled = sample if missing is None else [biharmonic_fill(item, ~missing) for item in sample]
        given = float(np.mean([noise_models.estimate_noise(item, channel_axis=0) for item in filled]))
    if model == "speckle" and items.min() <= 0:
        raise InputImageError(f"speckle noise is multiplicative: the data must be positive, they reach {items.min():.4g}")
    if given is None and model == "speckle":
        given = float(np.mean([noise_models.estimate_noise(np.log(np.maximum(item, 1e-300)), channel_axis=0) for item in sample]))
    z, sigma_z = noise_models.forward(model, items, given, gain)
    return z, sigma_z, given if model != "poisson" else None


def _parse_sigma(sigma) -> float | None:
    if sigma is None or sigma == "auto":
        return None
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise SinfreeError(f"sigma must be a number >= 0 or 'auto', got {sigma!r}") from None
    if not value >= 0 or math.isinf(value):
        raise SinfreeError(f"sigma must be a number >= 0 or 'auto', got {sigma!r}")
    return value


def _resolve_blur(task: str, blur, unit_items: np.ndarray, sigma_n: float) -> float | None:
    """The deblurring width in px: given, or estimated on the middle slice's channel mean (``estimate_blur``)."""
    if task != "deblur":
        return None
    if blur is None or blur == "auto":
        width = estimate_blur(unit_items[len(unit_items) // 2].mean(axis=0), sigma_n)
        if width < 0.3:
            raise SinfreeError(f"no blur found in the input (estimated width {width:.2f} px); give the blur width")
        return width
    try:
        width = float(blur)
    except (TypeError, ValueError):
        raise SinfreeError(f"blur must be a width in pixels > 0 or 'auto', got {blur!r}") from None
    if not 0 < width < math.inf:
        raise SinfreeError(f"blur must be a width in pixels > 0 or 'auto', got {blur!r}")
    return width


def _restore_items(unit_items: np.ndarray, units: RobustScale, settings: dict, missing, layout: Layout, progress):
    """Every item (N, C, H, W) restored ``samples`` times; the mean and per-pixel std (None for one sample)
    of the samples in physical units, each sample mapped back through the inverse noise transform."""
    samples, steps, factor = settings["samples"], settings["steps"], settings["scale"]
    count, channels, height, width = unit_items.shape
    mean, second = np.zeros((count, channels, height * factor, width * factor)), None
    if samples > 1:
        second = np.zeros_like(mean)
    runner = _one_stage_runner if settings["method"] == "one-stage" else _two_stage_runner
    for index, item in enumerate(unit_items):
        run = runner(torch.from_numpy(np.ascontiguousarray(item)), settings, missing)
        for sample in range(samples):
            generator = torch.Generator().manual_seed(settings["seed"] + sample)
            on_step = None
            if progress is not None and layout.kind != "volume":

                def on_step(done, sample=sample):
                    return progress(sample * steps + done, samples * steps)

            physical = _to_physical(run(generator, on_step).numpy(), units, settings)
            mean[index] += physical / samples
            if second is not None:
                second[index] += physical**2 / samples
        if progress is not None and layout.kind == "volume":
            progress(index + 1, count)
    std = None if second is None else np.sqrt(np.maximum(second - mean**2, 0.0))
    return mean, std


def _one_stage_runner(y: torch.Tensor, settings: dict, missing):
    """``run(generator, on_step)``: one DiffPIR sample with the Eq. 2 prior (``restore``)."""
    problem = build_problem(y, settings, missing)
    denoiser = build_denoiser(problem, settings)
    return lambda generator, on_step: restore(denoiser, problem, settings, generator, on_step)


def _two_stage_runner(y: torch.Tensor, settings: dict, missing):
    """``run(generator, on_step)``: the two-stage restoration of ``y`` (``twostage.py``), the posterior mean for
    one sample and posterior draws (seeded by ``generator``) for several. The Eq. 2 pilot is computed once."""
    task, sigma, patch_size = settings["task"], settings["sigma_normalised"], settings["patch_size"]
    draws = settings["samples"] > 1
    if task == "denoise":
        plan = denoise_plan(sigma)
        pilot = eq2_pilot(y, sigma, settings, patch_size).to(torch.float32)
        return lambda generator, on_step: two_stage_denoise(y, sigma, plan, pilot, generator if draws else None, on_step).to(
            torch.float64
        )
    problem = build_problem(y, settings, missing)
    plan = _loop_plan(settings, y, missing)

    def pilot(z, level):
        return eq2_pilot(z, level, settings, patch_size)

    return lambda generator, on_step: plug_and_play(
        problem.make_operator(), problem.x_init, problem.sigma_n, plan, pilot, generator if draws else None, on_step
    )


def _loop_plan(settings: dict, y: torch.Tensor, missing):
    """The plug-and-play schedule of ``settings['task']`` (``twostage``), ``lam`` overridden when given."""
    task, steps = settings["task"], settings["steps"]
    if task == "deblur":
        plan = deblur_plan(steps)
    elif task == "superres":
        plan = superres_plan(steps)
    elif task == "inpaint":
        plan = inpaint_plan(held_out_error(y.numpy(), ~missing, biharmonic_fill, seed=settings["seed"]), steps)
    else:
        plan = illumination_plan(steps)
    return plan if settings["lam"] is None else dataclasses.replace(plan, lam=settings["lam"])


def pilot_settings(settings: dict, sigma: float, patch_size: int) -> dict:
    """The one-stage denoising settings of an Eq. 2 pilot at normalised noise ``sigma`` (one call at its level)."""
    defaults = DEFAULTS["denoise"]
    return dict(
        settings, task="denoise", sigma_normalised=sigma, start=None, patch_size=patch_size, first_level=defaults.first_level,
        steps=1, lam=defaults.lam, window=defaults.window, scale=1, eta=0.0,
    )  # fmt: skip


def eq2_pilot(z: torch.Tensor, sigma: float, settings: dict, patch_size: int) -> torch.Tensor:
    """Stage 1: the one-stage denoiser (Eq. 2 over the multi-scale patches of ``z`` (C, H, W) itself, each query
    leaving its own patch out) at noise ``sigma``."""
    local = pilot_settings(settings, sigma, patch_size)
    local["prior"], local["first_level"] = choose_prior(local, tuple(z.shape[-2:]), z.shape[0])
    problem = build_problem(z.to(torch.float64), local, None)
    return restore(build_denoiser(problem, local), problem, local, torch.Generator().manual_seed(local["seed"]))


def _to_physical(unit: np.ndarray, units: RobustScale, settings: dict) -> np.ndarray:
    """Normalised units back to the data's: the affine map, then the inverse noise transform (denoising)."""
    physical = units.from_unit(unit)
    if settings["task"] != "denoise":
        return physical
    return noise_models.inverse(settings["noise"], physical, settings["sigma"] or 0.0, settings["gain"])


def _estimate_bytes(items_shape: tuple[int, ...], settings: dict) -> int:
    """Peak bytes, estimated before any work: the data and its float64 copies (input, stabilised, normalised;
    mean and second moment of the output) and one item's restoration (patch set and index, operator buffers
    of 2H x 2W complex FFTs, the dense prior's score band; two-stage: the group index, a chunk of groups and
    a band of block matching)."""
    count, channels, height, width = items_shape
    factor, patch_size = settings["scale"], settings["patch_size"]
    out_pixels = channels * height * width * factor**2
    data_bytes = 8 * (3 * count * channels * height * width + 3 * count * out_pixels)
    dim = channels * patch_size**2
    num_patches = int(1.35 * max(1, height - patch_size + 1) * max(1, width - patch_size + 1))
    queries = max(1, height * factor - patch_size + 1) * max(1, width * factor - patch_size + 1)
    prior = settings["prior"]
    if prior == "self":
        index_bytes = 4 * 2 * num_patches * (dim + 1) + 4 * 2 * SelfPrior.chunk_scores
    else:
        index_bytes = backend_class_for(prior).estimate_bytes(num_patches, dim, queries) + 4 * num_patches * dim
    group_bytes = 0
    if settings["method"] == "two-stage":
        references = out_pixels // channels // 9 + 1  # every third row and column
        group_bytes = 8 * 64 * references + 4 * 12 * CHUNK_VALUES + 4 * 4 * 21 * channels * BAND_PIXELS
    return data_bytes + index_bytes + group_bytes + 16 * 8 * 4 * out_pixels
