"""``sinfree inpaint`` and ``harmonize``: fill or harmonise a masked region with the image's own patches
(``sinfree.editing.inpaint``)."""

from pathlib import Path
from typing import Annotated

import typer

from .options import GENERATION, OUTPUT, with_options

MASK_HELP = "Mask image of the same size (any mode): nonzero (white) pixels are the region to fill; transparent ones never are."
InputArgument = Annotated[Path, typer.Argument(help="The image to edit.")]
MaskOption = Annotated[Path, typer.Option("--mask", "-m", help=MASK_HELP)]


@with_options(OUTPUT, GENERATION)
def inpaint(
    input: InputArgument,
    mask: MaskOption,
    start_level: Annotated[
        float,
        typer.Option(
            "--start-level",
            min=0.0,
            max=1.0,
            help="The coarsest scale starts from the region's smooth (harmonic) fill noised to this level; 1 = pure noise.",
        ),
    ] = 0.7,
    blend: Annotated[
        bool,
        typer.Option("--blend/--no-blend", help="Blend the fill into its surroundings (Poisson), removing any step in tone."),
    ] = True,
    *,
    options,
) -> None:
    """Fill the masked region of INPUT with content made of the rest's patches; other pixels are kept exactly."""
    from ..editing.inpaint import Inpaint
    from .running import run_generation, settings_from

    settings = settings_from(options)

    def make(pixels):
        return Inpaint(
            pixels, start_level=start_level, blend=blend, backend=settings.backend, backend_options=settings.backend_options
        )

    edit, settings = masked_edit(input, mask, settings, make)
    run_generation(input, options, settings, None, edit, "_inpaint")


@with_options(OUTPUT, GENERATION)
def harmonize(
    input: InputArgument,
    mask: MaskOption,
    level: Annotated[
        float, typer.Option("--level", help="Noise level in (0, 1] the image is re-noised to: higher changes the region more.")
    ] = 0.5,
    *,
    options,
) -> None:
    """Harmonise a pasted or painted region: re-noise INPUT to --level and denoise it with the patches outside MASK."""
    from ..editing.inpaint import Harmonize
    from .running import run_generation, settings_from

    settings = settings_from(options)
    edit = masked_edit(
        input,
        mask,
        settings,
        lambda pixels: Harmonize(pixels, level, backend=settings.backend, backend_options=settings.backend_options),
    )
    run_generation(input, options, settings, None, edit, "_harmonize")


def masked_edit(input: Path, mask: Path, settings, make):
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
        settings = edit.settings_for(shape, settings)
    except InputImageError as error:
        raise InputImageError(f"{mask}: {error}") from None
    return edit, settings
