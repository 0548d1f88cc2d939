"""Energy of xhat0 across steps and scales, and its rectification (DESIGN.md §2, after RectifiedHR,
arXiv 2503.02537).

The energy of an image (C, H, W) is its per-channel mean square; its high-frequency (HF) energy
is the mean square of ``high_pass(image, halve(shape))``: what a half-resolution level cannot hold.
An ``EnergyTrace`` records both for xhat0 at every step of every scale (fed by ``generate``'s
``progress`` callback, whose ``Progress.xhat0`` carries it), beside the reference's HF energy at
the same pyramid level, so that ``ratio`` = HF(xhat0) / HF(reference level) says whether the
output holds the reference's sharpness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .denoiser_wrapper import DenoiserWrapper
from .pyramid import halve
from .sampler import high_pass


def mean_square(image: torch.Tensor) -> torch.Tensor:
    """Per-channel mean square (C,) of an image (C, H, W): its energy."""
    return image.double().square().mean(dim=(-2, -1))


def high_frequency_energy(image: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """Per-channel mean square (C,) of ``image - U(D(image))`` with D a halving: the energy a
    half-resolution level cannot hold (``sampler.high_pass``)."""
    return mean_square(high_pass(image.to(torch.float32), halve(tuple(image.shape[-2:])), circular))


def energy_ratio(image: torch.Tensor, reference: torch.Tensor) -> float:
    """HF energy of ``image`` over that of ``reference`` (summed over channels): 1 = as sharp."""
    return float(high_frequency_energy(image).sum() / high_frequency_energy(reference).sum().clamp_min(1e-30))


@dataclass(frozen=True)
class EnergyRecord:
    """xhat0's energies at one step of one scale of one sample (per channel, floats)."""

    sample: int
    scale: int
    t: int
    sigma: float
    ms: list[float]
    hf: list[float]
    reference_hf: list[float]

    @property
    def ratio(self) -> float:
        """HF(xhat0) / HF(reference level), summed over channels."""
        return sum(self.hf) / max(sum(self.reference_hf), 1e-30)


@dataclass
class EnergyTrace:
    """A ``progress`` callback that records the energies of xhat0 per (sample, scale, step).

    ``reference_levels``: the reference's pyramid as the sampler sees it (levels 0..S-1; latent levels
    with a latent space: ``reference_levels`` below builds them); ``sigmas``: s_t for t = 0..T.
    ``forward``: another progress callback called after recording (a progress bar).
    """

    reference_levels: list[torch.Tensor]
    sigmas: list[float]
    forward: Callable | None = None
    records: list[EnergyRecord] = field(default_factory=list)

    def __post_init__(self):
        self._reference_hf = [high_frequency_energy(level).tolist() for level in self.reference_levels]

    def __call__(self, progress) -> None:
        xhat0 = progress.xhat0
        if xhat0 is not None:
            self.records.append(
                EnergyRecord(
                    sample=progress.sample,
                    scale=progress.scale,
                    t=progress.step,
                    sigma=self.sigmas[progress.step],
                    ms=mean_square(xhat0).tolist(),
                    hf=high_frequency_energy(xhat0).tolist(),
                    reference_hf=self._reference_hf[progress.scale],
                )
            )
        if self.forward is not None:
            self.forward(progress)

    def curve(self, scale: int, sample: int | None = None) -> tuple[list[int], list[float]]:
        """(t, mean HF ratio over samples) at ``scale``, in sampling order (t = T .. 1)."""
        by_step: dict[int, list[float]] = {}
        for r in self.records:
            if r.scale == scale and (sample is None or r.sample == sample):
                by_step.setdefault(r.t, []).append(r.ratio)
        steps = sorted(by_step, reverse=True)
        return steps, [sum(by_step[t]) / len(by_step[t]) for t in steps]

    def final_ratio(self, scale: int = 0) -> float:
        """Mean over samples of the HF ratio of the last step (t = 1) at ``scale``."""
        steps, ratios = self.curve(scale)
        return ratios[-1] if steps and steps[-1] == 1 else float("nan")

    def table(self) -> str:
        """One line per (scale, t): s_t, mean ms, mean HF ratio over samples."""
        lines = ["scale  t   s_t     ms(xhat0)  HF ratio"]
        for scale in sorted({r.scale for r in self.records}, reverse=True):
            for t, ratio in zip(*self.curve(scale)):
                rows = [r for r in self.records if r.scale == scale and r.t == t]
                ms = sum(sum(r.ms) for r in rows) / len(rows)
                lines.append(f"{scale:>5} {t:>2}  {rows[0].sigma:.4f}  {ms:9.4f}  {ratio:.3f}")
        return "\n".join(lines)


MAX_WEIGHT = 8.0  # the largest extrapolation weight w the controller may choose
# The calibrated curve is overshot: the last steps (s_t small, D(gamma s) ~ D(s): no lever) lose HF
# energy at a large output that a run at the input's size keeps (window-folding of less coherent
# nearest patches), so the middle steps are driven above the calibrated curve to end nearer to it
# (balloons, pca, 1024^2: final ratio 0.44 plain, 0.45 with 1.0, 0.55 with 1.5; native 0.68).
OVERSHOOT = 1.5


class EnergyRectifier(DenoiserWrapper):
    """A denoiser wrapper that restores the HF energy of xhat0 (DESIGN.md §2, after RectifiedHR):
    ``xhat0 = D(s) + w (D(gamma s) - D(s))``, a guidance-style extrapolation towards the sharper
    kernel of width ``gamma s``, with w in [0, MAX_WEIGHT] solved in closed form per call so that
    HF(xhat0) reaches ``target(s)`` x HF(reference level) (``OVERSHOOT`` x the calibrated ratio) (HF is quadratic in w). Where D(s) already
    reaches the target, D(s) is returned and D(gamma s) never computed.

    ``targets`` maps s_t to the HF ratio wanted at that step (``calibrate``: the ratios of a run at the
    reference's own size); ``weights`` records the w of each call (diagnostics).
    """

    def __init__(self, denoiser, reference_level: torch.Tensor, targets: dict[float, float], gamma: float):
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"rectify (the sharper kernel's width factor gamma) must be in (0, 1), got {gamma}")
        super().__init__(denoiser)
        self.reference_hf = float(high_frequency_energy(reference_level).sum())
        self.targets = targets
        self.gamma = gamma
        self.weights: list[float] = []

    def target(self, sigma: float) -> float:
        """The wanted HF ratio at noise level ``sigma``: OVERSHOOT x the calibrated step's nearest to it."""
        return OVERSHOOT * self.targets[min(self.targets, key=lambda s: abs(s - sigma))]

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        base = self.denoiser(x_t, alpha, sigma)
        shape = halve(tuple(base.shape[-2:]))
        wanted = self.target(sigma) * self.reference_hf
        hp_base = high_pass(base, shape).double()
        have = float(hp_base.square().mean(dim=(-2, -1)).sum())
        if have >= wanted or sigma <= 0:
            self.weights.append(0.0)
            return base
        difference = self.denoiser(x_t, alpha, self.gamma * sigma) - base
        hp_diff = high_pass(difference, shape).double()
        # HF(base + w d) = A w^2 + 2 B w + C (per-channel means summed): the smallest w >= 0 reaching `wanted`
        a = float(hp_diff.square().mean(dim=(-2, -1)).sum())
        b = float((hp_base * hp_diff).mean(dim=(-2, -1)).sum())
        if a <= 1e-20:
            weight = 0.0
        else:
            weight = (-b + max(b * b - a * (have - wanted), 0.0) ** 0.5) / a
        weight = min(max(weight, 0.0), MAX_WEIGHT)
        self.weights.append(weight)
        return base + weight * difference


def flow_schedule_sigmas(settings) -> list[float]:
    """s_t for t = 0..T of ``settings``' schedule."""
    from .schedule import flow_schedule

    return flow_schedule(settings.steps, settings.s_min).sigmas.tolist()
