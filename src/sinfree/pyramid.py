"""The coarse-to-fine pyramid: level shapes, the number of scales, and the image pyramid itself."""

from __future__ import annotations

import torch

from .errors import InputImageError
from .resize import resize

Shape = tuple[int, int]

# Automatic S: the coarsest level's short side stays at least this many patch sizes (DESIGN.md: 1.5-2 P;
# 2 P: at variation 0.9 on 6 benchmark images and 4 scikit-image photos x 3 seeds, copied 32 x 32 crops fell from
# 0.36 (S = 4, mostly 1.5 P) to 0.11 with the layout figure 0.058 against 0.054; 3 P copied 0.03 but kept less layout
# (a quick study of 10 photos x 3 seeds: variation 0.9 with S = 4, auto S, and a 3 P coarsest side).
DEFAULT_MIN_COARSEST_FACTOR = 2.0


def halve(shape: Shape) -> Shape:
    """The next coarser level's shape: each side halved, rounded up."""
    return ((shape[0] + 1) // 2, (shape[1] + 1) // 2)


def level_shapes(shape: Shape, num_scales: int) -> list[Shape]:
    """Shapes of levels 0 (full size) .. num_scales - 1 (coarsest), each side halved per level."""
    shapes = [tuple(shape)]
    for _ in range(num_scales - 1):
        shapes.append(halve(shapes[-1]))
    return shapes


def auto_num_scales(shape: Shape, min_coarsest_side: float) -> int:
    """The largest S whose coarsest level keeps a short side of at least ``min_coarsest_side``."""
    num_scales = 1
    while min(level_shapes(shape, num_scales + 1)[-1]) >= min_coarsest_side:
        num_scales += 1
    return num_scales


def resolve_num_scales(
    input_shape: Shape, output_shape: Shape, patch_size: int, num_scales: int | None, min_coarsest_side: float | None
) -> int:
    """S fixed by the user, or automatic from the minimum coarsest short side (default 2 P).

    Checks that every level of input and output holds at least one patch, with a clear error.
    """
    if num_scales is None:
        min_side = min_coarsest_side if min_coarsest_side is not None else DEFAULT_MIN_COARSEST_FACTOR * patch_size
        num_scales = min(auto_num_scales(input_shape, min_side), auto_num_scales(output_shape, min_side))
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}")
    for what, shape in (("input", input_shape), ("output", output_shape)):
        coarsest = level_shapes(shape, num_scales)[-1]
        if min(coarsest) < patch_size:
            fits = max(1, auto_num_scales(shape, patch_size))
            raise InputImageError(
                f"the {what} ({shape[1]}x{shape[0]} px) at {num_scales} scales is {coarsest[1]}x{coarsest[0]} px at "
                f"the coarsest, smaller than the {patch_size} px patch; use at most {fits} scales or a smaller patch"
                if min(shape) >= patch_size
                else f"the {what} ({shape[1]}x{shape[0]} px) is smaller than the {patch_size} px patch; "
                f"use a patch size of at most {min(shape)}"
            )
    return num_scales


def build_pyramid(image: torch.Tensor, num_scales: int) -> list[torch.Tensor]:
    """Levels 0..S-1 of ``image`` (C, H, W), each the antialiased bicubic half of the previous one."""
    levels = [image]
    for shape in level_shapes(tuple(image.shape[-2:]), num_scales)[1:]:
        levels.append(resize(levels[-1], shape))
    return levels
