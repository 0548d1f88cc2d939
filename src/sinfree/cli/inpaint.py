"""``sinfree inpaint`` and ``harmonize``: fill or harmonise a masked region with the image's own patches
(``sinfree.editing.inpaint``)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import EXPERT, OUTPUT, SAMPLER, with_options

PIXEL_GENERATION = SAMPLER + EXPERT  # the mask and the kept pixels are in pixel space: no --latent

MASK_HELP = (
    "Mask image of the same size (any mode): nonzero (white) pixels are the region; transparent ones never are. "
    "Default: the input's transparent pixels (its alpha channel)."
)
InputArgument = Annotated[Path, typer.Argument(help="The image to edit.")]
MaskOption = Annotated[Optional[Path], typer.Option("--mask", "-m", help=MASK_HELP)]
DilateOption = Annotated[int, typer.Option("--dilate", min=0, help="Grow the region by this many pixels first (object edges).")]


@with_options(OUTPUT, PIXEL_GENERATION)
def inpaint(
    input: InputArgument,
    mask: MaskOption = None,
    dilate: DilateOption = 0,
    tone_guidance: Annotated[
        float,
        typer.Option(
            "--tone-guidance",
            min=0.0,
            max=1.0,
            help="On the coarsest scale, move the fill's low frequencies this far towards the smooth (harmonic) fill of "
            "its surroundings: 0 lets the fill continue nearby objects, 1 keeps it to the surroundings' tones.",
        ),
    ] = 0.5,
    blend: Annotated[
        bool,
        typer.Option("--blend/--no-blend", help="Blend the fill into its surroundings (Poisson), removing any step in tone."),
    ] = True,
    *,
    options,
) -> None:
    """Fill the masked region of INPUT (remove an object) with content made of the rest's patches; other pixels are
    kept exactly. S is chosen for the region's size unless given."""
    from ..editing.inpaint import Inpaint
    from .running import run_generation, settings_from

    settings = settings_from(options)

    def make(region):
        return Inpaint(
            region, tone_guidance=tone_guidance, blend=blend, backend=settings.backend, backend_options=settings.backend_options
        )

    pixels, edit, settings = masked_edit(input, mask, dilate, settings, make)
    run_generation(input, options, settings, None, edit, "_inpaint", pixels=pixels)


@with_options(OUTPUT, PIXEL_GENERATION)
def harmonize(
    input: InputArgument,
    mask: MaskOption = None,
    dilate: DilateOption = 0,
    level: Annotated[
        float,
        typer.Option(
            "--level",
            help="Noise level in (0, 1] the image is re-noised to on the coarsest scale: lower keeps more of the region's layout.",
        ),
    ] = 0.5,
    *,
    options,
) -> None:
    """Harmonise a pasted or painted region: re-noise INPUT to --level and denoise it coarse to fine with the patches
    outside MASK, then match the region's tone and local contrast to its surroundings."""
    from ..editing.inpaint import Harmonize
    from .running import run_generation, settings_from

    settings = settings_from(options)

    def make(region):
        return Harmonize(region, level, backend=settings.backend, backend_options=settings.backend_options)

    pixels, edit, settings = masked_edit(input, mask, dilate, settings, make)
    run_generation(input, options, settings, None, edit, "_harmonize", pixels=pixels)


def masked_edit(input: Path, mask: Path | None, dilate: int, settings, make):
    """Read INPUT and the region (the mask file, else INPUT's transparent pixels, then the alpha dropped), build
    the edit and check it before any work: (pixels, edit, settings with S chosen for the region). A mask
    problem is reported on one line that names the mask file."""
    import numpy as np

    from ..editing.inpaint import dilate_mask
    from ..errors import InputImageError
    from ..io.images import read_image_file
    from ..pyramid import resolve_num_scales

    pixels = read_image_file(input)
    shape = pixels.shape[:2]
    # the input's own errors (too small for the patch at S scales) first, without the mask's name
    resolve_num_scales(shape, shape, settings.patch_size, settings.num_scales, settings.min_coarsest_side)
    if mask is None:
        if pixels.ndim != 3 or pixels.shape[2] not in (2, 4):
            raise InputImageError(f"{input}: no --mask given and the image has no alpha channel to take the region from")
        region, source = pixels[..., -1] == 0, f"{input} (its transparent pixels)"
        pixels = np.ascontiguousarray(pixels[..., :-1] if pixels.shape[2] == 4 else pixels[..., 0])
    else:
        region, source = read_image_file(mask), str(mask)
    try:
        edit = make(dilate_mask(region, dilate) if dilate else region)
        settings = edit.settings_for(shape, settings)
    except InputImageError as error:
        raise InputImageError(f"{source}: {error}") from None
    return pixels, edit, settings
