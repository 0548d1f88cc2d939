"""Denoisers that wrap another one (edits, energy rectification) and keep its trajectory hooks."""

from __future__ import annotations

import torch


class DenoiserWrapper:
    """The base of a denoiser built on ``self.denoiser``: forwards ``start_trajectory`` (the fused
    backends keep per-trajectory state) and ``stats`` (the call counters of the wrapped backend)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    def start_trajectory(self) -> None:
        if hasattr(self.denoiser, "start_trajectory"):
            self.denoiser.start_trajectory()

    @property
    def stats(self):
        return self.denoiser.stats


class WrappedDenoiser(DenoiserWrapper):
    """A denoiser D'(x, a, s) = call(D, x, a, s), e.g. after(D(before(x)...))."""

    def __init__(self, denoiser, call):
        super().__init__(denoiser)
        self.call = call

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        return self.call(self.denoiser, x_t, alpha, sigma)
