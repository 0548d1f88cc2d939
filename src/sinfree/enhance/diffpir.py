"""The one-stage solver: DiffPIR (Zhu et al., CVPR 2023) with the Eq. 2 patch prior (``prior.py``) and the
data-consistency steps of ``operators.py``. From a starting level s/a matched to the degradation every step computes

    (i)   xhat0 = D(x_t, a_t, w_t),  w_t = sqrt(s_t^2 + a_t^2 sigma_ref^2)
    (ii)  xhat0 <- argmin_x ||y - A x||^2 + rho_t ||x - xhat0||^2,  rho_t = lambda sigma_n^2 / max(s_t / a_t, sigma_n)^2
    (iii) x_{t-1} = a_{t-1} xhat0 + sqrt(1 - eta^2) s_{t-1} eps_hat + eta s_{t-1} z,  eps_hat = (x_t - a_t xhat0) / s_t

(Eq. 5, with eps_hat from the corrected xhat0; the last step returns xhat0). ``w_t`` widens Eq. 2's kernel
by the patch set's own noise ``sigma_ref``: the std of ``x_t - a_t y_i`` for a noisy patch y_i of a matching
clean one. ``rho_t`` is DiffPIR's, with s/a floored at the noise std: without the floor rho_t grows without
bound in the last steps and the output is the prior's alone (measured on deblurring, camera 96 x 96, blur
1.5 px: at most 26.06 dB without the floor for lambda in 0.01-1, 28.79 dB with it, over 24.90 dB blurred
and 28.24 dB for the best Tikhonov-regularised deconvolution alone).
"""

from __future__ import annotations

import math

import torch

from ..sampler import ddim_eta_step
from ..schedule import S_MIN, FlowSchedule
from .problems import Problem


def restoration_schedule(start: float, steps: int) -> FlowSchedule:
    """The flow schedule from s/a = ``start`` down to s_min in ``steps`` denoiser calls:
    ``tau_t = s_min + (t - 1) / (T - 1) (tau_start - s_min)`` with ``tau_start = start / (1 + start)``, a = 1 - tau,
    s = tau (one call: at tau_start)."""
    tau_start = max(start / (1.0 + start), 2 * S_MIN)
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    tau = torch.full((1,), tau_start, dtype=torch.float64) if steps == 1 else S_MIN + (t - 1) / (steps - 1) * (tau_start - S_MIN)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return FlowSchedule(alphas=torch.cat([one, 1.0 - tau]), sigmas=torch.cat([zero, tau]))


def restore(denoiser, problem: Problem, settings: dict, generator: torch.Generator, on_step=None) -> torch.Tensor:
    """One posterior sample in normalised units: steps (i)-(iii) of the module docstring (DiffPIR with the
    patch prior). ``x_T = a_T (x_init + fresh z)``, z from ``generator``."""
    schedule = restoration_schedule(problem.start, settings["steps"])
    operator = problem.make_operator()
    lam, eta = settings["lam"], settings["eta"]
    alpha, sigma = schedule[schedule.num_steps]
    x = problem.x_init
    if problem.fresh > 0:
        x = x + problem.fresh * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x = alpha * x
    if hasattr(denoiser, "start_trajectory"):
        denoiser.start_trajectory()
    for t in range(schedule.num_steps, 0, -1):
        alpha, sigma = schedule[t]
        width = math.sqrt(sigma**2 + (alpha * problem.sigma_ref) ** 2)
        xhat0 = denoiser(x.to(torch.float32), alpha, width).to(torch.float64)
        if lam < math.inf:
            xhat0 = operator.prox(xhat0, lam * problem.sigma_n**2 / max(sigma / alpha, problem.sigma_n) ** 2)
        if t == 1:
            x = xhat0
        else:
            alpha_prev, sigma_prev = schedule[t - 1]
            x = ddim_eta_step(x, xhat0, (x - alpha * xhat0) / sigma, alpha_prev, sigma_prev, eta, generator)
        if on_step is not None:
            on_step(schedule.num_steps - t + 1)
    return x
