"""Flow-matching noise schedule (DESIGN.md §1): x_t = a_t x0 + s_t eps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

S_MIN = 1e-4


@dataclass(frozen=True)
class FlowSchedule:
    """Signal and noise levels a_t, s_t for t = 0..T (index 0 is the terminal point (1, 0)).

    ``tau_t = s_min + (t - 1) / (T - 1) (1 - s_min)``, ``a_t = 1 - tau_t``, ``s_t = tau_t`` for
    t = 1..T; the denoiser is called at t = T..1 and never at t = 0.
    """

    alphas: torch.Tensor  # (T + 1,) float64
    sigmas: torch.Tensor  # (T + 1,) float64

    @property
    def num_steps(self) -> int:
        return len(self.alphas) - 1

    def __getitem__(self, t: int) -> tuple[float, float]:
        return float(self.alphas[t]), float(self.sigmas[t])


def flow_schedule(num_steps: int, s_min: float = S_MIN, s_max: float = 1.0) -> FlowSchedule:
    """The flow-matching schedule with ``num_steps`` denoiser calls (Eq. 3 of the paper).

    ``s_max`` < 1 spaces the same calls from noise level ``s_max`` down (``tau_T = s_max``): the
    schedule of a start from a partly noised image, ``x_T = (1 - s_max) x + s_max eps``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < s_min < 1.0:
        raise ValueError(f"s_min must be in (0, 1), got {s_min}")
    if not s_min < s_max <= 1.0:
        raise ValueError(f"s_max must be in (s_min, 1], got {s_max}")
    t = torch.arange(1, num_steps + 1, dtype=torch.float64)
    if num_steps == 1:
        tau = torch.full((1,), s_max, dtype=torch.float64)  # a single call from pure noise: the mean
    else:
        tau = s_min + (t - 1) / (num_steps - 1) * (s_max - s_min)
    alphas = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - tau])
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), tau])
    return FlowSchedule(alphas=alphas, sigmas=sigmas)
