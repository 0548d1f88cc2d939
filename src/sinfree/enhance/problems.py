"""Each task as a restoration problem: its operator (with the DiffPIR prox), its start, and its patch prior.

Patch sets (the image as its own prior, across its scales; noise falls to 0.42 of its std at pyramid
level 1 and 0.21 at level 2, a blur's width halves per octave):

- denoise: levels 0..L of the noisy input, each query leaving its own level-0 patch out (``SelfPrior``).
  Measured on camera 96 x 96, sigma 25/255 (noisy: 20.16 dB): levels 1..L only 26.07 dB; levels 0..L with
  the own patch kept 20.16 dB (the input itself: the own patch matches at distance 0 and takes all the
  weight); level 0 alone, own patch left out, 26.23 dB; levels 0..L, own patch left out, 27.12 dB.
  Where that dense prior would cost too much (``SELF_PRIOR_FLOPS``) or another backend is asked for,
  levels 1..L with the fast backend.
- deblur: levels 1..L of the blurred input (sharper).
- superres: levels 0..L of the low-resolution input, i.e. levels 1.. of the output.
- inpaint / illumination: levels 0..L of the start estimate (biharmonic fill; retinex correction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..backends import AUTO, CHEAP_EXACT_FLOPS, IMAGE_BACKENDS, choose_backend
from ..backends.base import PatchBackend
from ..device import OnDevice
from ..image_denoiser import ImageDenoiser, make_image_denoiser
from ..patches import all_patches
from ..pyramid import build_pyramid, level_shapes
from ..resize import resize
from .operators import Downsample, GaussianBlur, Identity, Illumination, Masking, biharmonic_fill
from .prior import SelfPrior

MIN_LEVEL_SIDE_FACTOR = 2  # a coarser pyramid level joins the patch set while its short side is >= this many patches
SELF_PRIOR_FLOPS = 2e12  # above this per call (8 s at 250 GFLOP/s), denoising drops level 0 for the fast backends


@dataclass
class Problem:
    """One 2-D restoration in normalised units: a factory of the operator (a fresh one per sample: the
    illumination operator carries its fit), the patch-set images, the start estimate, the starting s/a,
    the std of the data noise and of the patch set, and the std of the fresh noise that brings the start
    estimate to the starting level: ``x_T = a_T (x_init + fresh z)``, ``fresh = sqrt(start^2 - noise already in x_init^2)``."""

    make_operator: Callable[[], object]
    patch_images: list[torch.Tensor]
    x_init: torch.Tensor
    start: float
    sigma_n: float
    sigma_ref: float
    fresh: float


def build_problem(y: torch.Tensor, settings: dict, missing: np.ndarray | None) -> Problem:
    """The restoration of one item ``y`` (C, h, w) in normalised units for ``settings['task']``."""
    task, sigma_n, start = settings["task"], settings["sigma_normalised"], settings["start"]
    if task == "denoise":  # the noisy image IS x_T at s/a = sigma_n (no fresh noise unless a higher start is asked)
        level = sigma_n * (1.0 if start is None else start)
        return _problem(lambda: Identity(y), y, y, settings, start=level, noisy=True)
    if task == "deblur":
        width = settings["blur"]
        return _problem(lambda: GaussianBlur(y, width), y, y, settings, start=max(start, sigma_n), noisy=True)
    if task == "superres":
        high = (y.shape[-2] * settings["scale"], y.shape[-1] * settings["scale"])
        return _problem(lambda: Downsample(y, high), resize(y, high), y, settings, start=start)
    if task == "inpaint":
        known = torch.from_numpy(~missing)
        fill = torch.from_numpy(biharmonic_fill(y.numpy(), ~missing))
        return _problem(lambda: Masking(y, known), fill, fill, settings, start=start)
    zero = settings["zero"]  # illumination: the multiplicative model acts on values above the physical zero
    degree = settings["field_degree"]
    positive = (y - zero).clamp_min(0.0)
    corrected = Illumination(positive, degree).corrected() + zero

    def make():
        return _Shifted(Illumination(positive, degree), zero)

    return _problem(make, corrected, corrected, settings, start=start)


class _Shifted:
    """An operator defined on ``x - zero`` (the illumination model's physical zero), used on x."""

    def __init__(self, operator, zero: float):
        self.operator, self.zero = operator, zero

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        return self.operator.prox(x0 - self.zero, rho) + self.zero


def _problem(make, x_init: torch.Tensor, source: torch.Tensor, settings: dict, *, start: float, noisy: bool = False) -> Problem:
    """A Problem whose patch set is the pyramid of ``source`` from ``settings['first_level']`` (``patch_levels``);
    its noise std is the data noise times the pyramid's noise gain at that level (0 for superres: the
    low-resolution input is the output's level 1). ``noisy``: ``x_init`` holds the data noise already."""
    images, first = patch_levels(source, settings["patch_size"], settings["first_level"], settings["num_levels"])
    sigma_n = settings["sigma_normalised"]
    gain = noise_gain(tuple(source.shape[-2:]), first)
    fresh = math.sqrt(max(start**2 - (sigma_n**2 if noisy else 0.0), 0.0))
    return Problem(make, images, x_init, float(start), sigma_n, sigma_n * gain, fresh)


def patch_levels(image: torch.Tensor, patch_size: int, first: int, count: int | None) -> tuple[list[torch.Tensor], int]:
    """Pyramid levels ``first``.. of ``image`` whose short side is at least MIN_LEVEL_SIDE_FACTOR patches
    (the first needs only one patch; a first level too small for any falls back to a finer one), at most
    ``count`` of them; and the first level used."""
    shape = tuple(image.shape[-2:])
    num = 1
    while min(level_shapes(shape, num + 1)[-1]) >= MIN_LEVEL_SIDE_FACTOR * patch_size:
        num += 1
    while first > 0 and min(level_shapes(shape, first + 1)[-1]) < patch_size:
        first -= 1
    levels = build_pyramid(image, max(num, first + 1))[first:]
    chosen = levels[:1] + [level for level in levels[1:] if min(level.shape[-2:]) >= MIN_LEVEL_SIDE_FACTOR * patch_size]
    return chosen[: count or None], first


def noise_gain(shape: tuple[int, int], level: int) -> float:
    """The std of pyramid level ``level`` of unit white noise of ``shape`` (antialiased bicubic halvings)."""
    if level == 0:
        return 1.0
    noise = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return float(build_pyramid(noise, level + 1)[level].std())


def choose_prior(settings: dict, plane: tuple[int, int], channels: int) -> tuple[str, int]:
    """The prior (``self`` for the leave-own-patch-out exact prior, else a backend name) and the patch set's
    first level, for ``settings['backend']`` and an output plane of ``plane`` px.

    ``auto``: denoising with level 0 runs ``self`` while one call costs at most SELF_PRIOR_FLOPS; otherwise
    exact Eq. 2 (``ImageDenoiser(patches=...)``, the fused SDPA kernel) while one call costs at most
    CHEAP_EXACT_FLOPS, then ``patchmatch`` over the finest image of the set (the fastest at large sizes).
    ``exact`` with level 0 for denoising is ``self`` at any size; ``ivf`` and ``patchmatch`` cannot leave a
    query's own patch out, so denoising with them starts at level 1; ``patchmatch`` takes the finest image
    of the set as its only reference.
    """
    backend, first, patch_size = settings["backend"], settings["first_level"], settings["patch_size"]
    queries = max(1, plane[0] - patch_size + 1) * max(1, plane[1] - patch_size + 1)
    shrink = settings["scale"] ** 2 if settings["task"] == "superres" else 4**first
    cost = PatchBackend.flops(
        queries, int(1.35 * queries / shrink), channels * patch_size**2
    )  # levels first.. ~ 4/3 of the first
    needs_self = settings["task"] == "denoise" and first == 0
    if needs_self and (backend == "exact" or (backend == AUTO and cost <= SELF_PRIOR_FLOPS)):
        return "self", 0
    if needs_self:
        first = 1
    device = settings.get("device", "cpu")
    chosen, _ = choose_backend(backend, {}, cost / (4 if needs_self else 1), exact_flops=CHEAP_EXACT_FLOPS, device=device)
    return chosen, first


def build_denoiser(problem: Problem, settings: dict):
    """The patch prior ``D(x_t, a_t, s_t)`` over the problem's patch set, for ``settings['prior']``, computing on
    ``settings['device']`` (default the CPU; elsewhere x_t goes there and xhat0 comes back: the loop stays on the CPU)."""
    device = torch.device(settings.get("device", "cpu"))
    if device.type != "cpu":
        return OnDevice(build_denoiser_on(problem, settings, device), device)
    return build_denoiser_on(problem, settings)


def build_denoiser_on(problem: Problem, settings: dict, device: torch.device | None = None):
    """``build_denoiser``'s prior with its patch set on ``device`` (None: the CPU)."""
    patch_size, window, prior = settings["patch_size"], settings["window"], settings["prior"]
    images = [image.to(device=device, dtype=torch.float32) for image in problem.patch_images]
    if prior == "self":
        return SelfPrior(images, patch_size, rho=window, exclude_self=True)
    if prior in IMAGE_BACKENDS:
        return make_image_denoiser(images[0], patch_size, rho=window, backend=prior, seed=settings["seed"])
    patches = torch.cat([all_patches(image, patch_size) for image in images])
    return ImageDenoiser(images[0], patch_size, rho=window, backend=prior, patches=patches)
