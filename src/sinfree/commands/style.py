"""The `sinfree style` subcommand: CLIP text-guided style transfer (DESIGN.md §1, ``sinfree.editing.style``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def style(
    input: Annotated[Path, typer.Argument(help="The content image.")],
    prompt: Annotated[str, typer.Option("--prompt", help="The style, in words (e.g. 'a watercolour painting').")],
    clip: Annotated[
        Path | None,
        typer.Option("--clip", help="Local CLIP folder (default: openai/clip-vit-base-patch32 in the Hugging Face cache)."),
    ] = None,
    views: Annotated[int, typer.Option("--views", min=1, help="Augmented crops per CLIP gradient.")] = 16,
    gamma: Annotated[
        float, typer.Option("--gamma", min=0.0, help="Guidance strength at the first step (decays with s_t).")
    ] = 1.0,
    level: Annotated[float, typer.Option("--level", min=0.0, max=1.0, help="Noise level the content is inverted to.")] = 0.3,
    steps: Annotated[int, typer.Option("--steps", "-T", min=1, help="Steps of the full schedule (T).")] = 200,
    patch_size: Annotated[int, typer.Option("--patch-size", "-P", min=1, help="Patch size P.")] = 7,
    backend: Annotated[str, typer.Option("--backend", help="Patch denoiser (see `sinfree generate --help`).")] = "auto",
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="Folder for the outputs (created if missing).")] = Path(
        "samples"
    ),
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Number of outputs.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first output; output i uses seed + i.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Restyle INPUT towards a text prompt: invert it to noise level 0.3, sample back with CLIP-guided estimates."""
    from ..cli import edit_settings, run_generation
    from ..editing.style import ClipStyle, load_clip
    from ..io.images import read_image_file

    read_image_file(input)  # a bad input fails before CLIP loads
    settings = edit_settings(patch_size, "1", steps, 0.0, backend)
    edit = ClipStyle(prompt, load_clip(clip), views=views, gamma=gamma, level=level)
    run_generation(input, outdir, settings, num_samples, seed, None, None, False, quiet, edit, "_style")


def register(app) -> None:
    """Add the subcommand to the typer app."""
    app.command("style")(style)
