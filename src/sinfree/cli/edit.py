"""``sinfree retarget``, ``symmetric`` and ``tile``: generation with a geometric constraint (``sinfree.editing.geometry``)."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SinfreeError
from .options import GENERATION, LARGE, LAYOUT, OUTPUT, parse_size, with_options

InputArgument = Annotated[Path, typer.Argument(help="The reference image.")]


@with_options(OUTPUT, GENERATION, LARGE)
def retarget(
    input: InputArgument,
    size: Annotated[str, typer.Option("--size", help="Output size WIDTHxHEIGHT.")],
    *,
    options,
) -> None:
    """Resize INPUT to another size keeping its layout: the coarsest scale is the input resized, finer ones are sampled."""
    from ..editing import Retarget
    from .large import run_sampling
    from .running import settings_from

    run_sampling(input, options, settings_from(options), parse_size(size), Retarget(), "_retarget")


@with_options(OUTPUT, GENERATION, LAYOUT, LARGE)
def symmetric(
    input: InputArgument,
    axis: Annotated[
        str, typer.Option("--axis", help="vertical (left-right mirror), horizontal (top-bottom) or both.")
    ] = "vertical",
    size: Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT (default: the input's).")] = None,
    *,
    options,
) -> None:
    """Generate mirror-symmetric images: one half mirrored onto the other after every denoiser call (and after decoding, with --latent)."""
    from ..editing import Symmetric
    from .large import run_sampling
    from .running import settings_from

    run_sampling(input, options, settings_from(options), parse_size(size), Symmetric(axis), f"_symmetric_{axis}")


@with_options(OUTPUT, GENERATION, LARGE)
def tile(
    input: InputArgument,
    size: Annotated[Optional[str], typer.Option("--size", help="Tile size WIDTHxHEIGHT (default: the input's).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Also write each tile repeated 2 x 2, to look for seams.")] = False,
    *,
    options,
) -> None:
    """Generate seamless tiles: every denoiser call blends four circular half-shifts (4x the work); a latent decodes periodically.
    With automatic scales the coarsest short side is at least 3 P."""
    from ..editing import Tile, seam_error, tile_preview
    from ..io.images import load_image, save_png, tensor_to_array
    from .running import check_outputs, run_generation, settings_from

    # A periodic coarsest scale under about 3 patches per side collapses to its flattest content (measured
    # on starry_night at 126 x 99: S = 3, coarsest 32 x 25, loses every star; S = 2 keeps them).
    settings = settings_from(options)
    if options.min_coarsest is None:
        settings = replace(settings, min_coarsest_side=3 * settings.patch_size)
    from .large import run_large_generation, wants_out_of_core

    if wants_out_of_core(input, options, settings, parse_size(size)):
        if preview:
            raise SinfreeError("--preview is for in-memory tiles; open an out-of-core tile in a viewer (or use --format png)")
        run_large_generation(input, options, settings, parse_size(size), Tile(), "_tile")
        return
    if preview:
        names = [f"{input.stem}_tile_seed{options.seed + i}_preview2x2.png" for i in range(options.num_samples)]
        check_outputs([Path(options.outdir) / name for name in names], [input], options.overwrite)
    outputs, result = run_generation(input, options, settings, parse_size(size), Tile(), "_tile")
    for path, array in zip(outputs, result.samples):
        tensor, pixel_format = load_image(array)
        typer.echo(f"{path.name}: wrap-around seam error {seam_error(tensor):.3f} (1 = like interior neighbours)")
        if preview:
            preview_path = path.with_name(path.stem + "_preview2x2.png")
            save_png(tensor_to_array(tile_preview(tensor), pixel_format), preview_path, result.settings | {"preview": "2x2"})
            typer.echo(str(preview_path))
