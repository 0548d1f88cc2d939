"""Retargeting, symmetry and seamless tiling: edits of the sampler's geometry (DESIGN.md §1)."""

from __future__ import annotations

import copy
import math

import torch

from ..denoiser_wrapper import WrappedDenoiser
from ..edit import Edit
from ..resize import resize
from ..schedule import FlowSchedule

AXES = ("vertical", "horizontal", "both")


class Retarget(Edit):
    """Output of another size: the coarsest scale is the input's coarsest level resized to the
    target's coarsest shape and is not denoised; finer scales are sampled with the input's patches,
    blended with it, so the coarse layout follows the input's."""

    keeps_input_layout = False

    coarsest = 0

    def prepare(self, num_scales: int) -> None:
        self.coarsest = num_scales - 1

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        if scale == self.coarsest:
            return resize(level, tuple(noise.shape[-2:])), 0
        return noise, schedule.num_steps


def mirror(image: torch.Tensor, axis: str) -> torch.Tensor:
    """One half mirrored onto the other: ``vertical`` about the vertical centre line (the left half
    onto the right), ``horizontal`` about the horizontal one (top onto bottom), or ``both``."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
    out = image.clone()
    if axis in ("vertical", "both"):
        width = out.shape[-1]
        out[..., width - width // 2 :] = out[..., : width // 2].flip(-1)
    if axis in ("horizontal", "both"):
        height = out.shape[-2]
        out[..., height - height // 2 :, :] = out[..., : height // 2, :].flip(-2)
    return out


class Symmetric(Edit):
    """Mirror symmetry: after every denoiser call one half of xhat0 is mirrored onto the other, so the
    result (the last xhat0) is symmetric exactly; the noise, and so the sample, still varies with the seed."""

    def __init__(self, axis: str = "vertical"):
        mirror(torch.zeros(1, 2, 2), axis)  # validate early
        self.axis = axis

    def wrap(self, denoiser, scale: int):
        return WrappedDenoiser(denoiser, lambda d, x, a, s: mirror(d(x, a, s), self.axis))

    @property
    def canvas_folds(self) -> tuple[str, str]:
        return (
            "mirror" if self.axis in ("horizontal", "both") else "none",
            "mirror" if self.axis in ("vertical", "both") else "none",
        )

    def decoded(self, image: torch.Tensor) -> torch.Tensor:
        """A decoder does not mirror (a PCA block or a VAE's receptive field is not mirrored with the
        latent): the decoded pixels are mirrored again, so the output is symmetric exactly."""
        return mirror(image, self.axis)

    def describe(self) -> dict:
        return {"name": "Symmetric", "axis": self.axis}


def shift_weights(shape: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """Blend weight of the result computed on the image rolled by ``shift``, in the original frame:
    sin^2 bumps that vanish at the rolled image's own borders (where its patches saw no wrap)."""
    height, width = shape
    rows = torch.sin(math.pi * (torch.arange(height, dtype=torch.float64) + shift[0] + 0.5) / height) ** 2
    cols = torch.sin(math.pi * (torch.arange(width, dtype=torch.float64) + shift[1] + 0.5) / width) ** 2
    return (rows[:, None] * cols[None, :]).float()


def half_shifts(shape: tuple[int, int]) -> list[tuple[int, int]]:
    height, width = shape
    return [(0, 0), (0, width // 2), (height // 2, 0), (height // 2, width // 2)]


class TiledDenoiser:
    """Masked blend of a denoiser over circular shifts 0, (0, W/2), (H/2, 0), (H/2, W/2): every pixel
    takes most of its value from the shifts where it lies far from the rolled image's border, so the
    wrap-around edges are denoised like interior ones and the result tiles without seams.

    Each shift has its own shallow copy of the denoiser: one that carries state along a trajectory
    (the PatchMatch field, tied to positions) must see one consistently rolled image per copy.
    """

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.copies = [copy.copy(denoiser) for _ in range(4)]

    def start_trajectory(self) -> None:
        for each in self.copies:
            if hasattr(each, "start_trajectory"):
                each.start_trajectory()

    @property
    def stats(self):
        return self.denoiser.stats

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        shape = tuple(x_t.shape[-2:])
        total = torch.zeros_like(x_t)
        weight_sum = torch.zeros(shape, device=x_t.device)
        for shift, denoiser in zip(half_shifts(shape), self.copies):
            rolled = torch.roll(x_t, shifts=shift, dims=(-2, -1))
            denoised = torch.roll(denoiser(rolled, alpha, sigma), shifts=(-shift[0], -shift[1]), dims=(-2, -1))
            weight = shift_weights(shape, shift).to(x_t.device)
            total += weight * denoised
            weight_sum += weight
        return total / weight_sum


class Tile(Edit):
    """Seamless tiles: every denoiser call is the masked blend over circular half-shifts (4 calls),
    and the coarse-to-fine blend resamples circularly."""

    keeps_input_layout = False

    periodic = True
    canvas_folds = ("wrap", "wrap")

    def wrap(self, denoiser, scale: int):
        return TiledDenoiser(denoiser)


def seam_error(image: torch.Tensor) -> float:
    """Wrap-around seam error: the mean absolute difference across the wrap edges (last row to first,
    last column to first) over the mean absolute difference between interior neighbours (1: no seam)."""
    image = image.to(torch.float64)
    across = torch.cat(
        [(image[..., 0, :] - image[..., -1, :]).abs().flatten(), (image[..., :, 0] - image[..., :, -1]).abs().flatten()]
    )
    inside = torch.cat(
        [(image[..., 1:, :] - image[..., :-1, :]).abs().flatten(), (image[..., :, 1:] - image[..., :, :-1]).abs().flatten()]
    )
    return (across.mean() / inside.mean()).item()


def tile_preview(image: torch.Tensor, repeats: int = 2) -> torch.Tensor:
    """The image repeated ``repeats`` x ``repeats`` times, to look for seams."""
    return image.repeat(1, repeats, repeats)
