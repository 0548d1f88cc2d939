"""``sinfree style``: CLIP text-guided style transfer (``sinfree.editing.style``)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import EXPERT, OUTPUT, STYLE_SAMPLER, with_options


@with_options(OUTPUT, STYLE_SAMPLER, EXPERT)
def style(
    input: Annotated[Path, typer.Argument(help="The content image.")],
    prompt: Annotated[str, typer.Option("--prompt", help="The style, in words (e.g. 'a watercolour painting').")],
    clip: Annotated[
        Optional[Path],
        typer.Option("--clip", help="Local CLIP folder (default: openai/clip-vit-base-patch32 in the Hugging Face cache)."),
    ] = None,
    views: Annotated[int, typer.Option("--views", min=1, help="Augmented crops per CLIP gradient.")] = 16,
    gamma: Annotated[
        float, typer.Option("--gamma", min=0.0, help="Guidance strength at the first step (decays with s_t).")
    ] = 1.0,
    level: Annotated[float, typer.Option("--level", min=0.0, max=1.0, help="Noise level the content is inverted to.")] = 0.3,
    *,
    options,
) -> None:
    """Restyle INPUT towards a text prompt: invert it to --level, sample back on one scale with CLIP-guided
    estimates (T = 200 steps, 7 px patches by default)."""
    from ..editing.style import ClipStyle, load_clip
    from ..io.images import read_image_file
    from .running import run_generation, settings_from

    read_image_file(input)  # a bad input fails before CLIP loads
    settings = settings_from(options, num_scales=1)
    edit = ClipStyle(prompt, load_clip(clip), views=views, gamma=gamma, level=level)
    run_generation(input, options, settings, None, edit, "_style")
