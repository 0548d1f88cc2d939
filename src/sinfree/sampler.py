"""Samplers as functions over a denoiser ``D(x_t, a_t, s_t) -> xhat0`` (Eq. 5 and TwoScaleBlend)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .resize import resize
from .schedule import FlowSchedule

Denoiser = Callable[[torch.Tensor, float, float], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]  # (t, x_{t-1}, xhat0)


def two_scale_blend(xhat0: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """TwoScaleBlend: ``U(x_coarse) + (xhat0 - U(D(xhat0)))``, a two-level Laplacian fusion.

    D is the antialiased bicubic half to the coarser level's shape, U bicubic up to this level's.
    """
    return resize(coarse, tuple(xhat0.shape[-2:])) + high_pass(xhat0, tuple(coarse.shape[-2:]))


def high_pass(image: torch.Tensor, coarse_shape: tuple[int, int], circular: bool = False) -> torch.Tensor:
    """``image - U(D(image))``: what the coarser level of shape ``coarse_shape`` cannot hold."""
    return image - resize(resize(image, coarse_shape, circular), tuple(image.shape[-2:]), circular)


def ddim_eta_step(
    x_t: torch.Tensor,
    xhat0: torch.Tensor,
    eps_hat: torch.Tensor,
    alpha_prev: float,
    sigma_prev: float,
    eta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Eq. 5: ``x_{t-1} = a_{t-1} xhat0 + sqrt(1 - eta^2) s_{t-1} eps_hat + eta s_{t-1} z``."""
    x_prev = alpha_prev * xhat0 + math.sqrt(1.0 - eta**2) * sigma_prev * eps_hat
    if eta > 0:
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype).to(x_t.device)  # drawn on the CPU: seeds agree
        x_prev = x_prev + eta * sigma_prev * z
    return x_prev


def sample_scale(
    denoiser: Denoiser,
    x_start: torch.Tensor,
    schedule: FlowSchedule,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    coarse: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    start_step: int | None = None,
    circular: bool = False,
) -> torch.Tensor:
    """Run the reverse flow at one scale from ``x_start`` = x_T down to x_0 (Eq. 5).

    ``start_step`` < T starts from x_start = x_{start_step} (a partly noised image: analogy,
    harmonisation); 0 returns x_start unchanged (a scale that is not denoised: retargeting).
    ``circular``: the blend's resampling wraps around (periodic images: seamless tiles).

    With ``coarse`` (the finished image of the next coarser scale), xhat0 is replaced by
    TwoScaleBlend(xhat0, coarse) after eps_hat is computed, on every step but the last.
    The last step returns xhat0 itself.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    x = x_start
    if hasattr(denoiser, "start_trajectory"):  # a denoiser that carries state between steps
        denoiser.start_trajectory()
    if coarse is not None:  # U(x_coarse) is the same at every step: computed once
        coarse_shape, upsampled_coarse = tuple(coarse.shape[-2:]), resize(coarse, tuple(x_start.shape[-2:]), circular)
    first = schedule.num_steps if start_step is None else start_step
    if not 0 <= first <= schedule.num_steps:
        raise ValueError(f"start_step must be in [0, {schedule.num_steps}], got {start_step}")
    for t in range(first, 0, -1):
        alpha, sigma = schedule[t]
        alpha_prev, sigma_prev = schedule[t - 1]
        xhat0 = denoiser(x, alpha, sigma)
        if t == 1:
            x = xhat0
        else:
            eps_hat = (x - alpha * xhat0) / sigma
            if coarse is not None:
                xhat0 = upsampled_coarse + high_pass(xhat0, coarse_shape, circular)  # TwoScaleBlend
            x = ddim_eta_step(x, xhat0, eps_hat, alpha_prev, sigma_prev, eta, generator)
        if callback is not None:
            callback(t, x, xhat0)
    return x
