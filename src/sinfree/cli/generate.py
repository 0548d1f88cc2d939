"""``sinfree generate``: new images with the patch statistics and the composition of one image."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import EXPERT_PANEL, GENERATION, LARGE, LAYOUT, OUTPUT, parse_size, with_options


@with_options(OUTPUT, GENERATION, LAYOUT, LARGE)
def generate(
    input: Annotated[Path, typer.Argument(help="The reference image (PNG, JPEG, TIFF...; gray, RGB or RGBA; 8 or 16 bit).")],
    size: Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT (default: the input's).")] = None,
    rectify: Annotated[
        Optional[float],
        typer.Option(
            "--rectify",
            min=0.0,
            max=1.0,
            rich_help_panel=EXPERT_PANEL,
            help="Energy rectification for outputs larger than the input, GAMMA in (0, 1) (e.g. 0.5): xhat0 extrapolated towards the "
            "kernel of width GAMMA s_t until its high-frequency energy matches a run at the input's size. Off by default.",
        ),
    ] = None,
    *,
    options,
) -> None:
    """Generate new images with the patch statistics and the composition of INPUT (coarse-to-fine, Eq. 2 and Eq. 5)."""
    from .large import run_sampling
    from .running import settings_from

    run_sampling(input, options, settings_from(options, rectify=rectify), parse_size(size))
