"""Structural analogy (DESIGN.md §1, "Applications"): the layout of one image drawn with the patches of another.

The structure image's coarsest level is DDIM-inverted (Eq. 5 run backwards, eta = 0) with its own
denoiser up to the noise level ``level``, then reconstructed from there with the style image's
denoiser; finer scales are sampled as usual, blended with the coarser result, with the style
image's patches. The output has the structure image's size.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ..edit import Edit
from ..errors import InputImageError
from ..generation import GenerationResult, generate_samples
from ..image_denoiser import make_image_denoiser
from ..io.images import ImageLike, load_image, read_image_file
from ..planning import scale_backend
from ..pyramid import auto_num_scales, build_pyramid, level_shapes, resolve_num_scales
from ..resize import resize
from ..schedule import FlowSchedule
from ..settings import GenerationSettings
from .inversion import ddim_invert, nearest_step


def load_style(style: ImageLike | torch.Tensor) -> torch.Tensor:
    """The style image as a float tensor (C, H, W) in [-1, 1] (a tensor is taken as already in [-1, 1])."""
    if isinstance(style, torch.Tensor):
        return style.to(torch.float32)
    return load_image(style)[0]


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """``image`` (C, H, W) in [-1, 1] with ``channels`` channels: gray <-> RGB (channel mean), alpha
    dropped or added (opaque) as needed; the same image when the counts already match."""
    if image.shape[0] == channels:
        return image
    has_alpha = image.shape[0] in (2, 4)
    colour = image[:-1] if has_alpha else image
    colour_channels = 1 if channels in (1, 2) else 3
    if colour.shape[0] != colour_channels:
        colour = colour.mean(0, keepdim=True).expand(colour_channels, -1, -1)
    if channels in (2, 4):
        alpha = image[-1:] if has_alpha else torch.ones_like(image[:1])
        colour = torch.cat([colour, alpha])
    return colour.contiguous()


def check_levels_fit(what: str, shape: tuple[int, int], patch_size: int, num_scales: int) -> None:
    """Every level of the ``num_scales``-level pyramid of ``what`` holds a patch (InputImageError if not)."""
    coarsest = level_shapes(shape, num_scales)[-1]
    if min(shape) < patch_size:
        raise InputImageError(
            f"the {what} ({shape[1]}x{shape[0]} px) is smaller than the {patch_size} px patch; "
            f"use a patch size of at most {min(shape)}"
        )
    if min(coarsest) < patch_size:
        raise InputImageError(
            f"the {what} ({shape[1]}x{shape[0]} px) at {num_scales} scales is {coarsest[1]}x{coarsest[0]} px at the "
            f"coarsest, smaller than the {patch_size} px patch; use at most {auto_num_scales(shape, patch_size)} scales "
            "or a smaller patch"
        )


class StructuralAnalogy(Edit):
    """Layout from the image being sampled (the structure), patches from ``style``.

    Every scale's denoiser uses the style image's level of that scale (its own pyramid, of the run's
    number of scales; it may differ in size from the structure). The coarsest scale starts from the
    structure's coarsest level DDIM-inverted with the structure's own denoiser to the step whose
    noise level is nearest ``level``, and runs the remaining steps. ``settings`` must be the run's:
    their patch size, stride, rho and backend make that denoiser (default: the Table-1 defaults).
    """

    canvas_folds = None  # in memory only

    keeps_input_layout = False

    works_in_latent = False  # the style image's pyramid and the inversion are in pixel space

    def __init__(
        self,
        style: ImageLike | torch.Tensor,
        level: float = 0.5,
        settings: GenerationSettings | None = None,
        style_name: str | None = None,
    ):
        if not 0.0 < level <= 1.0:
            raise ValueError(f"level must be in (0, 1], got {level}")
        self.style = load_style(style)
        if style_name is None and isinstance(style, (str, os.PathLike)):
            style_name = Path(style).name
        self.style_name = style_name
        self.level = level
        self.settings = settings if settings is not None else GenerationSettings()
        self.coarsest = 0
        self.style_pyramid: list[torch.Tensor] = []
        self._inverted: tuple[torch.Tensor, int] | None = None
        self.inverted_sigma: float | None = None

    def prepare(self, num_scales: int) -> None:
        check_levels_fit("style image", tuple(self.style.shape[-2:]), self.settings.patch_size, num_scales)
        self.coarsest = num_scales - 1
        self.style_pyramid = build_pyramid(self.style, num_scales)
        self._inverted = None

    def patch_image(self, scale: int, level: torch.Tensor) -> torch.Tensor:
        return match_channels(self.style_pyramid[scale], level.shape[0])

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        if scale != self.coarsest:
            return noise, schedule.num_steps
        if self._inverted is None:  # the same for every sample: computed once
            self._inverted = self.invert(resize(level, tuple(noise.shape[-2:])), schedule)
            self.inverted_sigma = schedule[self._inverted[1]][1]
        x_t, step = self._inverted
        return x_t.clone(), step

    def invert(self, structure: torch.Tensor, schedule: FlowSchedule) -> tuple[torch.Tensor, int]:
        """(x_t, t): ``structure`` DDIM-inverted with its own denoiser to the step nearest ``self.level``."""
        step = nearest_step(schedule, self.level)
        shape = tuple(structure.shape[-2:])
        backend, options = scale_backend(self.settings, structure.shape[0], shape, shape)
        own = make_image_denoiser(
            structure, self.settings.patch_size, stride=self.settings.stride, rho=self.settings.rho, backend=backend, **options
        )
        return ddim_invert(own, structure, schedule, step), step

    def describe(self) -> dict:
        described = {"name": "StructuralAnalogy", "level": self.level, "inverted_sigma": self.inverted_sigma}
        return described | ({"style": self.style_name} if self.style_name else {})


def analogy_num_scales(structure_shape: tuple[int, int], style_shape: tuple[int, int], settings: GenerationSettings) -> int:
    """The run's S: the settings' own, or (automatic) the largest that both images allow."""
    p, s, side = settings.patch_size, settings.num_scales, settings.min_coarsest_side
    for what, shape in (("structure image", structure_shape), ("style image", style_shape)):
        check_levels_fit(what, shape, p, 1)
    if s is None:
        s = min(resolve_num_scales(shape, shape, p, None, side) for shape in (structure_shape, style_shape))
    for what, shape in (("structure image", structure_shape), ("style image", style_shape)):
        check_levels_fit(what, shape, p, s)
    return s


def structural_analogy(
    structure: ImageLike,
    style: ImageLike,
    settings: GenerationSettings | None = None,
    *,
    level: float = 0.5,
    num_samples: int = 1,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    progress=None,
) -> GenerationResult:
    """Images with the layout of ``structure`` and the patches of ``style``, of the structure's size.

    ``level`` in (0, 1] is the noise level the structure's coarsest scale is inverted to: lower keeps
    more of its layout and colours, higher gives the style more say. Samples come back in the
    structure's pixel type and layout; sample i uses the seed ``seed + i``.
    """
    settings = settings if settings is not None else GenerationSettings()
    edit = StructuralAnalogy(style, level, settings)  # checks the level before any work
    if isinstance(structure, (str, os.PathLike)):
        structure = read_image_file(Path(structure))  # read once
    shape = tuple(load_image(structure)[0].shape[-2:])
    settings = replace(settings, num_scales=analogy_num_scales(shape, tuple(edit.style.shape[-2:]), settings))
    return generate_samples(
        structure, settings, num_samples=num_samples, seed=seed, max_memory_bytes=max_memory_bytes, progress=progress, edit=edit
    )
