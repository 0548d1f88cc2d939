"""The common body of the generating subcommands: settings from the shared options, output names checked
before any work, a progress bar weighted by each scale's cost, samples written atomically with their settings."""

import logging
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import __version__
from ..errors import MemoryBudgetError, OutputError, SinfreeError
from .options import as_flags, check_device, parse_backend_options, parse_rho, parse_scales

stderr = Console(stderr=True)


class ConsoleHandler(logging.Handler):
    """The library's notices (``logging.getLogger("sinfree")``, e.g. the first run's kernel compilation) on
    stderr, above a live progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        stderr.print(f"sinfree: {record.getMessage()}")


def settings_from(options, **fixed):
    """``GenerationSettings`` of ``options.preset`` with the shared options given (None: the preset's) and
    ``fixed`` (a command's own choices); bad values as one-line errors."""
    from ..latent import make_codec
    from ..settings import preset_settings

    values = {
        "device": check_device(getattr(options, "device", "auto")),  # first: a missing GPU is refused before any work
        "patch_size": options.patch_size,
        "num_scales": parse_scales(getattr(options, "scales", None)),
        "steps": options.steps,
        "eta": options.eta,
        "rho": parse_rho(options.rho),
        "min_coarsest_side": options.min_coarsest,
        "backend": options.backend,
        "backend_options": parse_backend_options(options.backend_option) or None,
        "stride": options.stride,
        "latent": getattr(options, "latent", None),
    }
    for name in ("layout_guidance", "layout_guidance_end", "position_prior", "variation", "start_blur", "completeness"):
        values[name] = getattr(options, name, None)
    try:
        if values["latent"] is not None:
            make_codec(values["latent"])
        settings = preset_settings(options.preset, **(values | fixed))
        settings.validate()
    except ValueError as error:
        raise SinfreeError(str(error)) from None
    return settings


def memory_limit(options) -> Optional[int]:
    return None if options.max_memory_gb is None else int(options.max_memory_gb * 2**30)


def check_outputs(paths: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs that would replace an input, or (without ``--overwrite``) earlier outputs."""
    for path in paths:
        if any(path.exists() and path.resolve() == source.resolve() for source in inputs):
            raise OutputError(f"{path}: an output would overwrite the input; choose another -o")
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(f"{existing[0]}{more} exists; pass --overwrite to replace it, or choose another -o or --seed")


def check_output_folder(folder: Path) -> Path:
    """Check that ``folder`` exists as a writable folder or can be made one, without making it (an
    interrupted or refused run leaves nothing behind); it is created when the first output is written."""
    import os

    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{folder}: cannot write there ({probe} is a file, not a folder); choose another -o")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write there (permission denied); choose another -o")
    return folder


# A front end other than the terminal (the web app) sets this, in the thread that runs a command, to a function
# that returns its own ``Progress`` (e.g. one that forwards each update to a browser's progress bar).
progress_factory: ContextVar = ContextVar("progress_factory", default=None)


def progress_bar(quiet: bool) -> Progress:
    factory = progress_factory.get()
    if factory is not None:
        return factory()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=False,
    )


class WeightedProgress:
    """The sampler's ``progress`` callback as a bar whose work is each call's cost: calls on a scale weigh
    its canvas's pixel count, so the time estimate does not run ahead on the cheap coarse scales."""

    def __init__(self, bar: Progress, canvas_shapes: list[tuple[int, int]], steps: int, num_samples: int):
        self.bar, self.num_samples = bar, num_samples
        self.weights = [h * w for h, w in canvas_shapes]
        self.task = bar.add_task("generating", total=num_samples * steps * sum(self.weights))
        self.calls, self.done = 0, 0

    def __call__(self, p) -> None:
        self.done += (p.calls_done - self.calls) * self.weights[p.scale]
        self.calls = p.calls_done
        description = f"sample {p.sample + 1}/{self.num_samples} scale {p.scale} t={p.step}"
        self.bar.update(self.task, completed=self.done, description=description)

    def finish(self) -> None:
        self.bar.update(self.task, completed=self.bar.tasks[0].total, description="done")


def output_name(input: Path, suffix: str, seed: int, ext: str = ".png") -> str:
    return f"{input.stem}{suffix}_seed{seed}{ext}"


def run_generation(
    input: Path,
    options,
    settings,
    output_size: Optional[tuple[int, int]] = None,
    edit=None,
    suffix: str = "",
    pixels=None,
):
    """Read INPUT (or take its ``pixels`` as a command prepared them), check the run fits and its outputs are
    free, sample with a progress bar, write the samples (and a sheet) with their settings. Returns (paths, result)."""
    from ..contact_sheet import contact_sheet
    from ..generation import generate_samples
    from ..io.images import read_image_file, save_png
    from ..memory import format_bytes
    from ..planning import plan_run
    from ..pyramid import level_shapes

    pixels = read_image_file(input) if pixels is None else pixels  # read once, up front: bad input fails before any work
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if edit is not None and not edit.works_in_latent:
        settings = replace(settings, latent_fallback=False)
    plan = planned(plan_run, channels, pixels.shape[:2], output_size, settings, options)
    if plan.settings.latent != settings.latent:
        stderr.print(
            f"{input.name}: the pixel run would not fit in memory; running in the {plan.codec.name} latent space instead"
        )
    settings = plan.settings
    outdir = check_output_folder(options.outdir)
    seeds = [options.seed + i for i in range(options.num_samples)]
    outputs = [outdir / output_name(input, suffix, seed) for seed in seeds]
    sheet_path = outdir / f"{input.stem}{suffix}_seed{seeds[0]}-{seeds[-1]}_sheet.png"
    check_outputs(outputs + ([sheet_path] if options.sheet else []), [input], options.overwrite)
    (height, width), (out_height, out_width) = pixels.shape[:2], plan.output_shape
    space = "" if plan.codec is None else f" (latent {plan.codec.name}, {plan.canvas_shape[1]}x{plan.canvas_shape[0]})"
    stderr.print(
        f"{input.name}: {width}x{height} -> {out_width}x{out_height} px{space}, {plan.num_scales} scales x {settings.steps} steps, "
        f"backend {settings.backend}, P = {settings.patch_size}, peak memory ~{format_bytes(plan.peak_bytes)}"
    )
    with progress_bar(options.quiet) as bar:
        progress = WeightedProgress(bar, level_shapes(plan.canvas_shape, plan.num_scales), settings.steps, options.num_samples)
        result = generate_samples(
            pixels,
            settings,
            num_samples=options.num_samples,
            size=plan.output_shape,
            seed=options.seed,
            max_memory_bytes=memory_limit(options),
            progress=progress,
            edit=edit,
        )
        progress.finish()
    outdir.mkdir(parents=True, exist_ok=True)
    for array, sample_seed, path in zip(result.samples, result.seeds, outputs):
        save_png(array, path, result.settings | {"input": input.name, "seed": sample_seed, "version": __version__})
        typer.echo(str(path))
    if options.sheet:
        labels = ["input"] + [f"seed {sample_seed}" for sample_seed in result.seeds]
        save_png(contact_sheet([pixels] + result.samples, labels), sheet_path, result.settings)
        typer.echo(str(sheet_path))
    stats = result.denoiser_stats
    typer.echo(
        f"{options.num_samples} sample(s) in {result.seconds_per_sample * options.num_samples:.2f} s: "
        f"{result.seconds_per_sample:.2f} s per sample (denoiser {stats.seconds:.2f} s, {stats.gflops_per_second:.0f} exact-equivalent GFLOP/s)"
    )
    return outputs, result


def planned(plan_run, channels, input_shape, output_size, settings, options):
    """``plan_run`` with a memory refusal's advice said as flags."""
    try:
        return plan_run(channels, input_shape, output_size, settings, options.num_samples, memory_limit(options))
    except MemoryBudgetError as error:
        raise MemoryBudgetError(flag_advice(error)) from None


def flag_advice(error: MemoryBudgetError) -> str:
    """A memory refusal with the changes that fit as command-line flags."""
    from ..memory import format_bytes

    if not error.advice:
        return str(error)
    listed = ", ".join(f"{as_flags(a.changes)} ({format_bytes(a.peak_bytes)})" for a in error.advice)
    return f"{error.message}; options that fit: {listed}"
