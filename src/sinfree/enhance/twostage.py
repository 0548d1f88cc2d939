"""The default restoration method, ``two-stage``: the Eq. 2 self prior as the pilot, then NL-Bayes passes over
groups of the image's own similar patches (``groups.py``), in the spirit of BM3D's two steps (Dabov et al.,
IEEE TIP 2007) and NL-Bayes' (Lebrun, Buades and Morel, SIAM J. Imaging Sci. 2013).

Denoising (normalised units, noise std ``sigma``): the pilot is the one-call Eq. 2 estimate over the noisy
image's own multi-scale patches (``restore.restore`` with the denoising problem); each pass matches groups
on the previous estimate and takes their Gaussian posterior means from the noisy patches. Two plans,
by the normalised noise (``HIGH_NOISE``), measured on the 8 crops of ``benchmarks/bench_enhance.py``
(mean PSNR; BM3D 32.32 / 27.79 / 24.57 dB at sigma 10 / 25 / 50 of 255):

- below: pilot P = 5, a pass with 5 x 5 patches in groups of 32, a second pass (6 x 6, 48) on the first's
  output, and the mean of the two passes (sigma 10: 32.36 dB; the second pass alone 32.31, the first 32.29,
  pilot P = 7 with the 8 x 8 pass 31.99);
- above (low SNR: retina, microaneurysms at sigma 25 and 50): pilot P = 7 and one pass of 8 x 8 patches in
  groups of 64 (sigma 50: 24.67 dB; with the low-noise plan 23.92, retina 19.2 against 22.4).

Deblurring, super-resolution, inpainting and illumination: plug-and-play half-quadratic splitting (Zhang et
al., DPIR, TPAMI 2021; the DiffPIR prox of ``operators.py``) with a decreasing geometric noise schedule
``sigma_1 > ... > sigma_K``: ``z = prox(x, lambda sigma_n^2 / sigma_k^2)``, ``x = D(z, sigma_k)``, D a group pass
whose pilot is the previous x (the first: Eq. 2 on z), ending on a data step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .groups import GroupStage, group_denoise

LOOP_STEPS = {"deblur": 8, "superres": 8, "inpaint": 8, "illumination": 5}  # default iterations of the loops
LOOP_STAGE = GroupStage(6, 48)  # the loops' group pass
HIGH_NOISE = 0.25  # normalised noise std (units of half the data's robust range) from which the low-SNR plan is used


@dataclass(frozen=True)
class DenoisePlan:
    """The pilot's patch size, the group passes, and whether the output is the mean of every pass's output."""

    pilot_patch: int
    passes: tuple[GroupStage, ...]
    average: bool


LOW_NOISE_PLAN = DenoisePlan(5, (GroupStage(5, 32), GroupStage(6, 48)), average=True)
HIGH_NOISE_PLAN = DenoisePlan(7, (GroupStage(8, 64),), average=False)


def denoise_plan(sigma: float) -> DenoisePlan:
    """The plan for normalised noise ``sigma`` (module docstring)."""
    return HIGH_NOISE_PLAN if sigma >= HIGH_NOISE else LOW_NOISE_PLAN


def two_stage_denoise(
    y: torch.Tensor, sigma: float, plan: DenoisePlan, pilot: torch.Tensor, generator=None, on_pass=None
) -> torch.Tensor:
    """The passes of ``plan`` on ``y`` (C, H, W) from the Eq. 2 ``pilot``; with a ``generator``, each pass's output is
    a posterior draw (``groups.gaussian_posterior``) while the next pass is guided by the posterior mean."""
    outputs, guide = [], pilot
    for index, stage in enumerate(plan.passes):
        mean, draw = group_denoise(y, guide, sigma, stage, generator)  # one block matching for both
        outputs.append(mean if draw is None else draw)
        guide = mean
        if on_pass is not None:
            on_pass(index + 1)
    return torch.stack(outputs).mean(dim=0) if plan.average else outputs[-1]


@dataclass(frozen=True)
class LoopPlan:
    """A plug-and-play schedule: ``steps`` noise levels from ``high`` to ``low`` (geometric), DiffPIR's ``lam``,
    the group pass, and the data noise std floor (noise-free data: the prox becomes the projection)."""

    steps: int
    high: float
    low: float
    lam: float
    stage: GroupStage = LOOP_STAGE

    def sigmas(self) -> list[float]:
        return np.geomspace(self.high, self.low, self.steps).tolist() if self.steps > 1 else [self.low]


def plug_and_play(
    operator,
    x0: torch.Tensor,
    sigma_n: float,
    plan: LoopPlan,
    pilot: Callable[[torch.Tensor, float], torch.Tensor],
    generator=None,
    on_step=None,
) -> torch.Tensor:
    """Half-quadratic splitting from ``x0`` (C, H, W, float64): ``z = prox(x, lam sigma_n^2 / sigma_k^2)``,
    ``x = D(z, sigma_k)`` for the plan's levels, then a last ``prox``. ``pilot(z, sigma)`` guides the first pass;
    with a ``generator`` the last pass is a posterior draw."""
    x, guide = x0, None
    levels = plan.sigmas()
    for index, level in enumerate(levels):
        z = operator.prox(x, plan.lam * sigma_n**2 / level**2)
        guide = pilot(z, level) if guide is None else x
        draw = generator if index == len(levels) - 1 else None
        mean, sample = group_denoise(z, guide, level, plan.stage, draw)
        x = (mean if sample is None else sample).to(torch.float64)
        if on_step is not None:
            on_step(index + 1)
    return operator.prox(x, plan.lam * sigma_n**2 / levels[-1] ** 2)


def deblur_plan(steps: int | None) -> LoopPlan:
    """Deblurring: 8 levels from 0.2 to 0.02, lambda 0.15 (benchmark, blur 1.5 px + noise 0.01: 30.38 dB against
    Richardson-Lucy's 27.89; lambda 0.1: 30.21, ending at max(0.02, sigma_n) instead: 29.80; lambda 0.03 diverges
    from the data: 22.1)."""
    return LoopPlan(steps or LOOP_STEPS["deblur"], 0.2, 0.02, 0.15)


def superres_plan(steps: int | None) -> LoopPlan:
    """Super-resolution from the bicubic upsampling: 8 levels from 0.1 to 0.01 (x2: 34.01 dB against bicubic
    32.10; x4: 27.78 against 26.44; from 0.05 to 0.005: 33.67 and 27.36)."""
    return LoopPlan(steps or LOOP_STEPS["superres"], 0.1, 0.01, 1.0)


def inpaint_plan(start_error: float, steps: int | None) -> LoopPlan:
    """Inpainting from the biharmonic fill: 8 levels from 1.5 times the fill's error (RMS on held-out known
    pixels) to a tenth of it."""
    high = max(1.5 * start_error, 1e-3)
    return LoopPlan(steps or LOOP_STEPS["inpaint"], high, 0.1 * high, 1.0)


def illumination_plan(steps: int | None) -> LoopPlan:
    """Illumination: 5 levels from 0.02 to 0.002, DiffPIR's lambda 0.01: the field's refits dominate (camera 96 x 96
    under a smooth field, input 17.92 dB: 20.59; from 0.1 to 0.01: 20.44; one-stage 20.62)."""
    return LoopPlan(steps or LOOP_STEPS["illumination"], 0.02, 0.002, 0.01)


def held_out_error(y: np.ndarray, known: np.ndarray, fill: Callable, seed: int = 0, share: float = 0.1) -> float:
    """The RMS error of ``fill(y, known')`` on a random ``share`` of the known pixels of ``y`` (C, H, W) held out
    of ``known'``: an estimate of the fill's error at the missing pixels (cross-validation)."""
    held = known & (np.random.default_rng(seed).random(known.shape) < share)
    if not held.any():
        return 0.0
    values = fill(y, known & ~held)
    return float(math.sqrt(np.mean((values[:, held] - y[:, held]) ** 2)))
