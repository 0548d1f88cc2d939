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


def flow_schedule(num_steps: int, s_min: float = S_MIN) -> FlowSchedule:
    """The flow-matching schedule with ``num_steps`` denoiser calls (Eq. 3 of the paper)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < s_min < 1.0:
        raise ValueError(f"s_min must be in (0, 1), got {s_min}")
    t = torch.arange(1, num_steps + 1, dtype=torch.float64)
    if num_steps == 1:
        tau = torch.ones(1, dtype=torch.float64)  # a single call from pure noise: the mean
    else:
        tau = s_min + (t - 1) / (num_steps - 1) * (1.0 - s_min)
    alphas = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - tau])
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), tau])
    return FlowSchedule(alphas=alphas, sigmas=sigmas)
