"""The ``sinfree inpaint`` and ``sinfree harmonize`` subcommands: fill or harmonise a masked region with
the image's own patches (``sinfree.editing.inpaint``)."""

# No ``from __future__ import annotations``: typer reads the options' annotations at run time, and
# they name objects of ``sinfree.cli``, which exist only inside ``register``.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ..editing.inpaint import Inpaint
    from ..generate import GenerationSettings

MASK_HELP = "Mask image of the same size (any mode): nonzero (white) pixels are the region to fill; transparent ones never are."


def register(app) -> None:
    """Add the subcommands to the typer app.

    ``sinfree.cli`` is imported here, not at module level: it imports this module while it loads.
    """
    from .. import cli
    from ..backends import AUTO

    @app.command()
    def inpaint(
        input: cli.InputArgument,
        mask: Annotated[Path, typer.Option("--mask", "-m", help=MASK_HELP)],
        outdir: cli.OutdirOption = Path("samples"),
        num_samples: cli.SamplesOption = 1,
        seed: cli.SeedOption = 0,
        steps: cli.StepsOption = 10,
        eta: cli.EtaOption = 0.0,
        patch_size: cli.PatchOption = 15,
        scales: cli.ScalesOption = "4",
        backend: Annotated[
            str, typer.Option("--backend", help="Patch denoiser: auto (exact where cheap, else ivf), exact or ivf.")
        ] = AUTO,
        sheet: cli.SheetOption = False,
        quiet: cli.QuietOption = False,
    ) -> None:
        """Fill the masked region of INPUT with content made of the rest's patches; other pixels are kept exactly."""
        from ..editing.inpaint import Inpaint

        settings = cli.edit_settings(patch_size, scales, steps, eta, backend)
        edit = masked_edit(input, mask, settings, lambda pixels: Inpaint(pixels, backend=backend))
        cli.run_generation(input, outdir, settings, num_samples, seed, None, None, sheet, quiet, edit, "_inpaint")

    @app.command()
    def harmonize(
        input: cli.InputArgument,
        mask: Annotated[Path, typer.Option("--mask", "-m", help=MASK_HELP)],
        level: Annotated[
            float,
            typer.Option("--level", help="Noise level in (0, 1] the image is re-noised to: higher changes the region more."),
        ] = 0.5,
        outdir: cli.OutdirOption = Path("samples"),
        num_samples: cli.SamplesOption = 1,
        seed: cli.SeedOption = 0,
        steps: cli.StepsOption = 10,
        eta: cli.EtaOption = 0.0,
        patch_size: cli.PatchOption = 15,
        scales: cli.ScalesOption = "4",
        backend: Annotated[
            str, typer.Option("--backend", help="Patch denoiser: auto (exact where cheap, else ivf), exact or ivf.")
        ] = AUTO,
        sheet: cli.SheetOption = False,
        quiet: cli.QuietOption = False,
    ) -> None:
        """Harmonise a pasted or painted region: re-noise INPUT to --level and denoise it with the patches outside MASK."""
        from ..editing.inpaint import Harmonize

        settings = cli.edit_settings(patch_size, scales, steps, eta, backend)
        edit = masked_edit(input, mask, settings, lambda pixels: Harmonize(pixels, level, backend=backend))
        cli.run_generation(input, outdir, settings, num_samples, seed, None, None, sheet, quiet, edit, "_harmonize")


def masked_edit(input: Path, mask: Path, settings: "GenerationSettings", make) -> "Inpaint":
    """Read the mask, build the edit and check it against INPUT before any work; a mask problem is
    reported on one line that names the mask file."""
    from ..errors import InputImageError
    from ..io.images import read_image_file
    from ..pyramid import resolve_num_scales

    shape = read_image_file(input).shape[:2]
    # the input's own errors (too small for the patch at S scales) first, without the mask's name
    resolve_num_scales(shape, shape, settings.patch_size, settings.num_scales, settings.min_coarsest_side)
    pixels = read_image_file(mask)
    try:
        edit = make(pixels)
        edit.validate(shape, settings)
    except InputImageError as error:
        raise InputImageError(f"{mask}: {error}") from None
    return edit
