"""The levers that keep the input's composition on the coarsest scale (issue 18; README, Presets).

The paper starts the coarsest scale from pure noise, and nothing there ties the sample's layout to
the input's: a sky can shrink or vanish. Two ways back, each an option of ``GenerationSettings``:
layout guidance (``profile_guided``: xhat0's row and column mean colours projected onto the
input's after every denoiser call, the default; ``layout_guidance_end`` makes its strength change
linearly with the noise level) and a varied start (``noised_level``: the input's coarsest level
noised to a chosen level instead of pure noise). Neither changes Eq. 2.
"""

from __future__ import annotations

import torch

from .denoiser_wrapper import WrappedDenoiser
from .resize import resize


def noised_level(level: torch.Tensor, noise: torch.Tensor, schedule, blur: float = 1.0) -> torch.Tensor:
    """The start of a varied coarsest scale: ``x_T = a_T U(L(level)) + s_T eps`` (the flow's forward
    process at the schedule's first noise level s_T = variation), the input's coarsest level resized
    to the canvas. ``blur`` > 1 low-passes the level first (L: down by that factor and back up), so that
    only its broad layout (where sky, ground, water lie) survives and the arrangement varies more."""
    if blur > 1.0:
        shape = tuple(level.shape[-2:])
        level = resize(resize(level, tuple(max(2, round(side / blur)) for side in shape)), shape)
    alpha, sigma = schedule[schedule.num_steps]
    return alpha * resize(level, tuple(noise.shape[-2:])) + sigma * noise


def match_profiles(image: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    """``image`` (C, H, W) with its row-mean and column-mean colours moved by ``strength`` (1: all the
    way) to ``target``'s: where sky, ground and water lie, not how they are arranged within a row."""
    image = image + strength * (target.mean(dim=-1, keepdim=True) - image.mean(dim=-1, keepdim=True))
    return image + strength * (target.mean(dim=-2, keepdim=True) - image.mean(dim=-2, keepdim=True))


def guidance_strength(start: float, end: float | None, sigma: float) -> float:
    """The layout guidance's strength at noise level ``sigma``: ``start`` at pure noise, ``end`` (None: ``start``,
    constant) at the end, linear in between."""
    return start if end is None else end + (start - end) * sigma


def profile_guided(denoiser, target: torch.Tensor, strength: float, end: float | None = None):
    """The denoiser followed by ``match_profiles`` towards ``target`` (layout guidance on xhat0), at
    ``guidance_strength(strength, end, sigma)``."""
    return WrappedDenoiser(
        denoiser,
        lambda d, x, alpha, sigma: match_profiles(d(x, alpha, sigma), target, guidance_strength(strength, end, sigma)),
    )
