"""``sinfree web``: serve every application as a local web app (``sinfree.web``, the ``web`` extra)."""

import os
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer


def web(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on. The default serves this machine only; 0.0.0.0 serves the network."),
    ] = "127.0.0.1",
    port: Annotated[
        Optional[int], typer.Option("--port", min=1, max=65535, help="Port (default: 7860, or the next free one).")
    ] = None,
    outdir: Annotated[
        Optional[Path],
        typer.Option(
            "-o", "--outdir", help="Folder for the runs' outputs, one subfolder per run (default: a new temporary folder)."
        ),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload in MB.")] = 50.0,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, help="Largest image (an input, a slice or an output size) in pixels.")
    ] = 4_000_000,
    concurrency: Annotated[
        Optional[int],
        typer.Option("--concurrency", min=1, help="Runs at a time; the others wait in a queue (default: one per CPU core)."),
    ] = None,
    max_memory_gb: Annotated[
        Optional[float],
        typer.Option("--max-memory-gb", min=0.0, help="Refuse runs estimated above this many GiB (default: the free memory)."),
    ] = None,
    clip: Annotated[
        Optional[Path], typer.Option("--clip", help="Local CLIP folder for the style tab (default: the Hugging Face cache).")
    ] = None,
) -> None:
    """Start the web app: a tab per application, each showing the equivalent sinfree command. Open the printed URL in a browser."""
    import tempfile

    from ..web.app import launch
    from ..web.handlers import WebConfig

    folder = Path(tempfile.mkdtemp(prefix="sinfree-web-")) if outdir is None else outdir
    config = WebConfig(
        outdir=folder,
        max_pixels=max_pixels,
        max_memory_gb=max_memory_gb,
        clip=clip,
        max_upload_mb=max_upload_mb,
        concurrency=concurrency or os.cpu_count() or 1,
    )
    typer.echo(f"sinfree web: outputs in {folder}; {config.concurrency} run(s) at a time")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: gradio closes the server
    launch(config, host=host, port=port)
