"""DDIM inversion along the flow schedule, shared by the edits that start from a partly noised image."""

from __future__ import annotations

import torch

from ..schedule import FlowSchedule


def nearest_step(schedule: FlowSchedule, level: float) -> int:
    """The step t in 1..T whose noise level s_t is nearest ``level`` (the earlier one on a tie)."""
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level}")
    return int((schedule.sigmas[1:] - level).abs().argmin()) + 1


def ddim_invert(denoiser, x0: torch.Tensor, schedule: FlowSchedule, to_step: int) -> torch.Tensor:
    """Deterministic DDIM inversion: Eq. 5 with eta = 0 run from x_0 up to x_{to_step}.

    Each step is ``x_{t+1} = a_{t+1} xhat0(x_t) + s_{t+1} eps_hat(x_t)`` with
    ``eps_hat = (x_t - a_t xhat0) / s_t``: the reverse step's prediction, taken at x_t instead of
    x_{t+1}. The first step leaves the clean x_0, where s_0 = 0 leaves eps_hat undefined: it takes
    xhat0 = x_0 and eps = 0, so x_1 = a_1 x_0. That is what the image's own denoiser says there: at
    (a_1 x_0, a_1, s_1) its nearest patches are x_0's own, so xhat0 = x_0 and eps_hat = 0 (the next
    step computes it). Evaluating it at x_0 instead gives eps_hat = x_0 (a_1 + s_1 = 1) and x_t = x_0
    for small t: the "noise" is the image itself, and ``level`` barely matters. Takes ``to_step - 1``
    denoiser calls (``denoiser(x_t, a_t, s_t) -> xhat0``, any image denoiser).
    """
    if not 0 <= to_step <= schedule.num_steps:
        raise ValueError(f"to_step must be in [0, {schedule.num_steps}], got {to_step}")
    if hasattr(denoiser, "start_trajectory"):
        denoiser.start_trajectory()
    x = x0
    for t in range(to_step):
        alpha_next, sigma_next = schedule[t + 1]
        if t == 0:
            x = alpha_next * x0  # xhat0 = x_0, eps = 0
            continue
        alpha, sigma = schedule[t]
        xhat0 = denoiser(x, alpha, sigma)
        eps_hat = (x - alpha * xhat0) / sigma
        x = alpha_next * xhat0 + sigma_next * eps_hat
    return x
