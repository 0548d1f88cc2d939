"""The out-of-core body of ``sinfree generate`` (sinfree.large): when it applies, the output names and the
store checked before any work, a progress bar of scales, steps and tiles, and the files written at the end."""

from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from ..errors import SinfreeError
from .running import check_output_folder, check_outputs, memory_limit, progress_bar, stderr

LARGE_OUTPUT_PIXELS = 2**26  # above 8192^2 the output goes out of core by itself


def wants_out_of_core(input: Path, options, settings, size: Optional[tuple[int, int]]) -> bool:
    """Whether a generation runs out of core: asked for (``--out-of-core`` or any option of its panel) or an
    output above LARGE_OUTPUT_PIXELS (an in-memory run that would not fit is refused with its advice, as before)."""
    asked = (
        options.out_of_core
        or options.workers is not None
        or options.scheduler is not None
        or options.store is not None
        or options.tile_size is not None
        or options.output_format != "auto"
    )
    if asked:
        return True
    from ..large.inputs import image_shape

    shape = image_shape(input)
    output = size if size is not None else shape[:2]
    return output[0] * output[1] > LARGE_OUTPUT_PIXELS


def run_sampling(input: Path, options, settings, size: Optional[tuple[int, int]], edit=None, suffix: str = "") -> None:
    """Generation (or an edit of its geometry) in memory, or out of core where ``wants_out_of_core``."""
    from .running import run_generation

    if wants_out_of_core(input, options, settings, size):
        run_large_generation(input, options, settings, size, edit, suffix)
    else:
        run_generation(input, options, settings, size, edit, suffix)


def run_large_generation(
    input: Path, options, settings, size: Optional[tuple[int, int]], edit=None, suffix: str = ""
) -> list[Path]:
    """Write each seed's sample of ``edit`` (None: plain generation) out of core, as ``{input}{suffix}_seed{seed}``."""
    from ..large.driver import LargeOptions, generate_large, output_format, output_paths
    from ..large.inputs import image_shape
    from ..planning import plan_run

    if options.output_format not in ("auto", "png", "tiff"):
        raise SinfreeError(f"--format must be auto, png or tiff, got {options.output_format!r}")
    if options.workers is not None and options.scheduler is not None:
        raise SinfreeError("--workers starts a local cluster and --scheduler uses an existing one: give one of them")
    if options.sheet:
        raise SinfreeError("--sheet is not available for out-of-core outputs")
    shape = image_shape(input)
    plan = plan_run(shape[2], shape[:2], size, settings, 1, max_memory_bytes=1 << 62)  # settings checked before any work
    fmt = output_format(plan.output_shape, options.output_format)
    outdir = check_output_folder(options.outdir)
    seeds = [options.seed + i for i in range(options.num_samples)]
    bases = [outdir / f"{input.stem}{suffix}_seed{seed}" for seed in seeds]
    files = [path for base in bases for path in output_paths(base, fmt)]
    check_outputs(files, [input], options.overwrite)
    budget = memory_limit(options)
    height, width = plan.output_shape
    space = "" if plan.codec is None else f" (latent {plan.codec.name}, {plan.canvas_shape[1]}x{plan.canvas_shape[0]})"
    where = (
        f"{options.workers} workers"
        if options.workers
        else (f"cluster {options.scheduler}" if options.scheduler else "this process")
    )
    stderr.print(f"{input.name}: {shape[1]}x{shape[0]} -> {width}x{height} px{space}, out of core on {where}, output {fmt}")
    written = []
    for seed, base in zip(seeds, bases):
        store = options.store if options.store is not None else outdir / f".{base.name}.sinfree-run"
        if options.store is not None and options.num_samples > 1:
            store = options.store / f"seed{seed}"
        large = LargeOptions(
            store=store,
            tile=options.tile_size,
            workers=options.workers,
            scheduler=options.scheduler,
            max_memory_bytes=budget,
            output_format=fmt,
        )
        with progress_bar(options.quiet) as bar:
            task = bar.add_task("reading", total=1.0)

            def report(p, bar=bar, task=task):
                where = f" tiles {p.tiles_done}/{p.tiles_total}" if p.tiles_total else ""
                step = f" t={p.step}" if p.step else ""
                bar.update(
                    task,
                    total=p.work_total,
                    completed=p.work_done,
                    description=f"seed {seed} {p.stage} scale {p.scale}{step}{where}",
                )

            result = generate_large(
                input,
                base,
                settings,
                large,
                size=size,
                seed=seed,
                metadata={"input": input.name, "seed": seed, "version": __version__},
                progress=report,
                edit=edit,
            )
            bar.update(task, completed=bar.tasks[0].total, description="done")
        if result.resumed_from is not None:
            stderr.print(f"resumed from scale {result.resumed_from.get('scale')}, step {result.resumed_from.get('t')}")
        for path in result.paths:
            typer.echo(str(path))
        if result.seam_error is not None:
            typer.echo(f"{result.paths[0].name}: wrap-around seam error {result.seam_error:.3f} (1 = like interior neighbours)")
        written += result.paths
        typer.echo(
            f"seed {seed}: {result.seconds:.2f} s, tile {result.tile} canvas px, tiled scales {result.tiled_scales or 'none'}"
        )
    return written
