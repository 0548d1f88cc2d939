"""The ``sinfree analogy`` subcommand: the layout of STRUCTURE drawn with the patches of STYLE."""

# No ``from __future__ import annotations``: typer reads the options' annotations at run time, and
# they name objects of ``sinfree.cli``, which exist only inside ``register``.

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ..generate import GenerationSettings


def register(app) -> None:
    """Add the subcommand to the typer app.

    ``sinfree.cli`` is imported here, not at module level: it imports this module while it loads.
    """
    from .. import cli
    from ..backends import AUTO

    @app.command()
    def analogy(
        structure: Annotated[Path, typer.Argument(help="The image whose layout the outputs follow.")],
        style: Annotated[Path, typer.Argument(help="The image whose patches the outputs are made of (any size).")],
        level: Annotated[
            float,
            typer.Option(
                "--level", help="Noise level in (0, 1] STRUCTURE's coarsest scale is inverted to: lower keeps more layout."
            ),
        ] = 0.5,
        outdir: cli.OutdirOption = Path("samples"),
        num_samples: cli.SamplesOption = 1,
        seed: cli.SeedOption = 0,
        steps: cli.StepsOption = 10,
        eta: cli.EtaOption = 0.0,
        patch_size: cli.PatchOption = 15,
        scales: cli.ScalesOption = "4",
        backend: cli.BackendOption = AUTO,
        sheet: cli.SheetOption = False,
        quiet: cli.QuietOption = False,
    ) -> None:
        """Structural analogy: STRUCTURE's coarsest scale DDIM-inverted, redrawn and refined with STYLE's patches."""
        settings = cli.edit_settings(patch_size, scales, steps, eta, backend)
        run_analogy(structure, style, level, outdir, num_samples, seed, settings, sheet, quiet)


def run_analogy(
    structure: Path,
    style: Path,
    level: float,
    outdir: Path,
    num_samples: int,
    seed: int,
    settings: "GenerationSettings",
    sheet: bool = False,
    quiet: bool = False,
):
    """Check the inputs, then sample with ``run_generation``: ``<structure>_analogy_<style>_seed<k>.png``."""
    from ..cli import run_generation, stderr
    from ..editing.analogy import StructuralAnalogy, analogy_num_scales
    from ..errors import SinfreeError
    from ..io.images import read_image_file

    if not 0.0 < level <= 1.0:
        raise SinfreeError(f"--level must be in (0, 1], got {level}")
    structure_pixels, style_pixels = read_image_file(structure), read_image_file(style)  # bad files fail before any work
    settings = replace(settings, num_scales=analogy_num_scales(structure_pixels.shape[:2], style_pixels.shape[:2], settings))
    edit = StructuralAnalogy(style_pixels, level, settings, style_name=style.name)
    stderr.print(f"style {style.name}: {style_pixels.shape[1]}x{style_pixels.shape[0]} px; inverting to noise level ~{level:g}")
    return run_generation(
        structure, outdir, settings, num_samples, seed, None, None, sheet, quiet, edit, f"_analogy_{style.stem}"
    )
