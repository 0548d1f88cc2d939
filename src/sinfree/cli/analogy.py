"""``sinfree analogy``: the layout of STRUCTURE drawn with the patches of STYLE (``sinfree.editing.analogy``)."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .options import EXPERT, OUTPUT, SAMPLER, with_options


@with_options(OUTPUT, SAMPLER, EXPERT)  # pixel space only: no --latent
def analogy(
    structure: Annotated[Path, typer.Argument(help="The image whose layout the outputs follow.")],
    style: Annotated[Path, typer.Argument(help="The image whose patches the outputs are made of (any size).")],
    level: Annotated[
        float,
        typer.Option("--level", help="Noise level in (0, 1] STRUCTURE's coarsest scale is inverted to: lower keeps more layout."),
    ] = 0.5,
    *,
    options,
) -> None:
    """Structural analogy: STRUCTURE's coarsest scale DDIM-inverted, redrawn and refined with STYLE's patches;
    outputs ``<structure>_analogy_<style>_seed<k>.png``."""
    from ..editing.analogy import StructuralAnalogy, analogy_num_scales
    from ..errors import SinfreeError
    from ..io.images import read_image_file
    from .running import run_generation, settings_from, stderr

    if not 0.0 < level <= 1.0:
        raise SinfreeError(f"--level must be in (0, 1], got {level}")
    settings = settings_from(options)
    structure_pixels, style_pixels = read_image_file(structure), read_image_file(style)  # bad files fail before any work
    settings = replace(settings, num_scales=analogy_num_scales(structure_pixels.shape[:2], style_pixels.shape[:2], settings))
    edit = StructuralAnalogy(style_pixels, level, settings, style_name=style.name)
    stderr.print(f"style {style.name}: {style_pixels.shape[1]}x{style_pixels.shape[0]} px; inverting to noise level ~{level:g}")
    run_generation(structure, options, settings, None, edit, f"_analogy_{style.stem}")
