"""The ``sinfree`` command: parse, load, call one library function, save."""

from __future__ import annotations

import math
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import __version__
from .backends import AUTO, backend_names
from .contact_sheet import contact_sheet
from .errors import OutputError, SinfreeError
from .generate import GenerationResult, GenerationSettings, generate_samples, plan_run, preset_settings
from .io.images import check_writable_directory, read_image_file, save_png
from .latent import LATENT_CHOICES, make_codec
from .memory import format_bytes

app = typer.Typer(
    help="Generate, edit and enhance images from a single image, with no training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)


def parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise SinfreeError(f"--size must look like WIDTHxHEIGHT, e.g. 320x240; got {text!r}")
    return int(match[2]), int(match[1])


def parse_scales(text: str | None) -> int | str | None:
    """--scales: a count, "auto" (from the sizes), or None (not given: the preset's)."""
    if text is None or text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise SinfreeError(f"--scales must be a positive integer or 'auto', got {text!r}")
    return int(text)


def parse_latent(text: str | None) -> str | None:
    """--latent: checked here (a bad spec or a missing VAE folder fails before any work)."""
    if text is None:
        return None
    try:
        make_codec(text)
    except ValueError as error:
        raise SinfreeError(f"--latent: {error}") from None
    return text


def parse_rho(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        rho = math.inf if text in ("inf", "infinity") else float(text)
    except ValueError:
        raise SinfreeError(f"--rho must be a positive number or 'inf', got {text!r}") from None
    if not rho > 0:
        raise SinfreeError(f"--rho must be a positive number or 'inf', got {text!r}")
    return rho


PRESET_HELP = (
    "default: keeps the input's composition (S from the sizes, the coarsest scale guided to the input's row and "
    "column colours); paper: the paper's Table 1 exactly (S = 4, T = 10, no guidance)."
)
SCALES_HELP = "Number of pyramid scales S, or 'auto': as many as keep the coarsest short side >= 2 P (default: the preset's)."
RHO_HELP = "Width of the Gaussian fold window on [-1, 1] patch coordinates, or 'inf' for plain averaging (default: the preset's)."
PresetOption = Annotated[str, typer.Option("--preset", help=PRESET_HELP)]
VariationOption = Annotated[
    Optional[float],
    typer.Option(
        "--variation",
        min=0.0,
        max=1.0,
        help="Noise level in (0, 1] the coarsest scale starts from: lower keeps the input's layout closer, 1 = pure noise "
        "(default 1).",
    ),
]
CompletenessOption = Annotated[
    Optional[float],
    typer.Option(
        "--completeness",
        min=0.0,
        max=1.0,
        help="Balance how often each input patch is used on the coarse scales (Sinkhorn, 0 = plain Eq. 2; default: the preset's).",
    ),
]

LayoutGuidanceOption = Annotated[
    Optional[float],
    typer.Option(
        "--layout-guidance",
        min=0.0,
        max=1.0,
        help="On the coarsest scale, move xhat0's row and column mean colours this far (1: all the way) to the "
        "input's: keeps where sky, ground and water lie, not how they are arranged (default: the preset's).",
    ),
]
StartBlurOption = Annotated[
    Optional[float],
    typer.Option(
        "--start-blur",
        min=1.0,
        help="With --variation < 1: low-pass the input the coarsest scale starts from by this factor (1 = sharp), "
        "keeping its broad layout only (default: the preset's).",
    ),
]


def cli_settings(preset: str, **options) -> GenerationSettings:
    """The preset's settings with the options given (None: the preset's); bad values as one-line errors."""
    try:
        settings = preset_settings(preset, **options)
        settings.validate()
    except ValueError as error:
        raise SinfreeError(str(error)) from None
    return settings


@app.callback(invoke_without_command=True)
def main_options(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"sinfree {__version__}")
        raise typer.Exit()


@app.command()
def generate(
    input: Annotated[Path, typer.Argument(help="The reference image (PNG, JPEG, TIFF...; gray, RGB or RGBA; 8 or 16 bit).")],
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="Folder for the samples (created if missing).")] = Path(
        "samples"
    ),
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Number of samples.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first sample; sample i uses seed + i.")] = 0,
    size: Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT (default: the input's).")] = None,
    preset: PresetOption = "default",
    variation: VariationOption = None,
    layout_guidance: LayoutGuidanceOption = None,
    completeness: CompletenessOption = None,
    start_blur: StartBlurOption = None,
    steps: Annotated[Optional[int], typer.Option("--steps", "-T", min=1, help="Denoiser calls per scale (T; default 10).")] = None,
    eta: Annotated[
        Optional[float], typer.Option("--eta", min=0.0, max=1.0, help="Stochasticity of Eq. 5: 0 = DDIM (default), 1 = full re-noising.")
    ] = None,
    patch_size: Annotated[
        int | None, typer.Option("--patch-size", "-P", min=1, help="Patch size P (default 15; 7 latent px with --latent).")
    ] = None,
    scales: Annotated[Optional[str], typer.Option("--scales", "-S", help=SCALES_HELP)] = None,
    min_coarsest: Annotated[
        Optional[float], typer.Option("--min-coarsest", help="With automatic S: the coarsest short side in px (default 2 P).")
    ] = None,
    rho: Annotated[Optional[str], typer.Option("--rho", help=RHO_HELP)] = None,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Query patch stride.")] = 1,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help=f"Patch denoiser: {', '.join(backend_names())}. auto: exact on the cheap coarse scales, patchmatch elsewhere.",
        ),
    ] = AUTO,
    nprobe: Annotated[
        Optional[int], typer.Option("--nprobe", min=1, help="ivf backend: inverted lists probed per query (default 2).")
    ] = None,
    k: Annotated[Optional[int], typer.Option("--k", min=1, help="ivf, patchmatch: candidate patches per query (default 5, 8).")] = None,
    project: Annotated[
        Optional[int],
        typer.Option(
            "--project", min=1, help="ivf, patchmatch: search in the top-D principal subspace (patchmatch: 32), then re-score exactly."
        ),
    ] = None,
    tail: Annotated[
        Optional[int],
        typer.Option("--tail", min=0, help="patchmatch: uniform samples per step estimating the softmax beyond the k (default 16)."),
    ] = None,
    passes: Annotated[
        Optional[int], typer.Option("--passes", min=0, help="patchmatch: PatchMatch passes per step (default 2).")
    ] = None,
    rescore: Annotated[
        Optional[int], typer.Option("--rescore", min=1, help="ivf with --project: candidates re-scored exactly (default 4 k).")
    ] = None,
    propagate: Annotated[
        Optional[bool],
        typer.Option("--propagate/--no-propagate", help="ivf: add the previous step's and the neighbours' shifted candidates."),
    ] = None,
    prune_alpha: Annotated[
        Optional[float],
        typer.Option("--prune-alpha", min=0.0, max=1.0, help="ivf with --propagate: from a_t >= this, search 1 query in 4."),
    ] = None,
    merge: Annotated[
        Optional[float],
        typer.Option("--merge", min=0.0, help="exact, ivf: merge patches equal to this tolerance (0: exact duplicates)."),
    ] = None,
    latent: Annotated[str | None, typer.Option("--latent", help=LATENT_HELP)] = None,
    rectify: Annotated[
        float | None,
        typer.Option(
            "--rectify",
            min=0.0,
            max=1.0,
            help="Energy rectification for outputs larger than the input (e.g. 0.5): xhat0 extrapolated towards the "
            "kernel of width GAMMA s_t until its high-frequency energy matches a run at the input's size. Off by default.",
        ),
    ] = None,
    max_memory_gb: Annotated[
        Optional[float],
        typer.Option("--max-memory-gb", min=0.0, help="Refuse runs estimated above this (default: the free memory)."),
    ] = None,
    sheet: Annotated[
        bool, typer.Option("--sheet", help="Also write OUTDIR/<input>_sheet.png: the input beside the samples.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate new images with the patch statistics and the composition of INPUT (coarse-to-fine, Eq. 2 and Eq. 5)."""
    settings = cli_settings(
        preset,
        patch_size=patch_size,
        num_scales=parse_scales(scales),
        steps=steps,
        eta=eta,
        rho=parse_rho(rho),
        variation=variation,
        layout_guidance=layout_guidance,
        completeness=completeness,
        start_blur=start_blur,
        stride=stride,
        backend=backend,
        min_coarsest_side=min_coarsest,
        backend_options={
            name: value
            for name, value in (
                ("nprobe", nprobe),
                ("k", k),
                ("project", project),
                ("tail", tail),
                ("passes", passes),
                ("rescore", rescore),
                ("propagate", propagate),
                ("prune_alpha", prune_alpha),
                ("merge", merge),
            )
            if value is not None
        },
        latent=parse_latent(latent),
        rectify=rectify,
    )
    run_generation(input, outdir, settings, num_samples, seed, parse_size(size), max_memory_gb, sheet, quiet)


def run_generation(
    input: Path,
    outdir: Path,
    settings: GenerationSettings,
    num_samples: int,
    seed: int,
    output_size: Optional[tuple[int, int]] = None,
    max_memory_gb: Optional[float] = None,
    sheet: bool = False,
    quiet: bool = False,
    edit=None,
    suffix: str = "",
) -> tuple[list[Path], GenerationResult]:
    """Read INPUT, check the run fits, sample with a progress bar, write the samples (and a sheet)
    with their settings; the common body of ``generate`` and the editing subcommands."""
    pixels = read_image_file(input)  # read once, up front: bad input fails before any work
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    max_memory = None if max_memory_gb is None else int(max_memory_gb * 2**30)
    if edit is not None and not edit.works_in_latent:
        settings = replace(settings, latent_fallback=False)
    plan = plan_run(channels, pixels.shape[:2], output_size, settings, num_samples, max_memory)
    if plan.settings.latent != settings.latent:
        stderr.print(f"{input.name}: the pixel run would not fit in memory; running in the {plan.codec.name} latent space instead")
    settings = plan.settings
    outdir = check_writable_directory(outdir)  # created only once the run is known to be possible
    outputs = [outdir / f"{input.stem}{suffix}_seed{seed + i}.png" for i in range(num_samples)]
    if any(path.exists() and path.resolve() == input.resolve() for path in outputs):
        raise OutputError(f"{input}: an output would overwrite the input image; choose another -o")
    (height, width), (out_height, out_width) = pixels.shape[:2], plan.output_shape
    space = "" if plan.codec is None else f" (latent {plan.codec.name}, {plan.canvas_shape[1]}x{plan.canvas_shape[0]})"
    stderr.print(
        f"{input.name}: {width}x{height} -> {out_width}x{out_height} px{space}, {plan.num_scales} scales x {settings.steps} steps, "
        f"backend {settings.backend}, P = {settings.patch_size}, peak memory ~{format_bytes(plan.peak_bytes)}"
    )
    with progress_bar(quiet) as bar:
        task = bar.add_task("generating", total=num_samples * plan.num_scales * settings.steps)
        result = generate_samples(
            pixels,
            settings,
            num_samples=num_samples,
            size=plan.output_shape,
            seed=seed,
            max_memory_bytes=max_memory,
            progress=lambda p: bar.update(
                task, completed=p.calls_done, description=f"sample {p.sample + 1}/{num_samples} scale {p.scale} t={p.step}"
            ),
            edit=edit,
        )
    for array, sample_seed, path in zip(result.samples, result.seeds, outputs):
        save_png(array, path, result.settings | {"input": input.name, "seed": sample_seed, "version": __version__})
        typer.echo(str(path))
    if sheet:
        labels = ["input"] + [f"seed {sample_seed}" for sample_seed in result.seeds]
        sheet_path = save_png(
            contact_sheet([pixels] + result.samples, labels), outdir / f"{input.stem}{suffix}_sheet.png", result.settings
        )
        typer.echo(str(sheet_path))
    stats = result.denoiser_stats
    typer.echo(
        f"{num_samples} sample(s) in {result.seconds_per_sample * num_samples:.2f} s: "
        f"{result.seconds_per_sample:.2f} s per sample (denoiser {stats.seconds:.2f} s, {stats.gflops_per_second:.0f} exact-equivalent GFLOP/s)"
    )
    return outputs, result


# Options shared by the editing subcommands (a compact set; `generate` has every backend knob).
OutdirOption = Annotated[Path, typer.Option("-o", "--outdir", help="Folder for the outputs (created if missing).")]
SamplesOption = Annotated[int, typer.Option("-n", "--num-samples", min=1, help="Number of outputs.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the first output; output i uses seed + i.")]
StepsOption = Annotated[int, typer.Option("--steps", "-T", min=1, help="Denoiser calls per scale (T).")]
EtaOption = Annotated[float, typer.Option("--eta", min=0.0, max=1.0, help="Stochasticity of Eq. 5.")]
PatchOption = Annotated[int, typer.Option("--patch-size", "-P", min=1, help="Patch size P.")]
ScalesOption = Annotated[Optional[str], typer.Option("--scales", "-S", help=SCALES_HELP)]
BackendOption = Annotated[str, typer.Option("--backend", help=f"Patch denoiser: {', '.join(backend_names())}.")]
LATENT_HELP = (
    f"Denoise in a latent space and decode the result: {LATENT_CHOICES}. pca: a PCA of the input's 8 x 8 pixel "
    "blocks, fitted to it (no weights); vae:PATH: a diffusers AutoencoderKL folder (the FLUX.1 VAE, or a FLUX.1 folder with vae/)."
)
LatentOption = Annotated[str | None, typer.Option("--latent", help=LATENT_HELP)]
LatentPatchOption = Annotated[
    int | None, typer.Option("--patch-size", "-P", min=1, help="Patch size P (default 15; 7 latent px with --latent).")
]
SheetOption = Annotated[bool, typer.Option("--sheet", help="Also write a sheet of the input beside the outputs.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
InputArgument = Annotated[Path, typer.Argument(help="The reference image.")]


def edit_settings(
    patch_size: int | None,
    scales: str | None,
    steps: int | None,
    eta: float | None,
    backend: str,
    min_coarsest: float | None = None,
    latent: str | None = None,
    preset: str = "default",
) -> GenerationSettings:
    """The editing subcommands' settings: the preset's, with the options given."""
    return cli_settings(
        preset,
        patch_size=patch_size,
        num_scales=parse_scales(scales),
        steps=steps,
        eta=eta,
        backend=backend,
        min_coarsest_side=min_coarsest,
        latent=parse_latent(latent),
    )


@app.command()
def retarget(
    input: InputArgument,
    size: Annotated[str, typer.Option("--size", help="Output size WIDTHxHEIGHT.")],
    outdir: OutdirOption = Path("samples"),
    num_samples: SamplesOption = 1,
    seed: SeedOption = 0,
    steps: StepsOption = 10,
    eta: EtaOption = 0.0,
    patch_size: LatentPatchOption = None,
    scales: ScalesOption = None,
    backend: BackendOption = AUTO,
    latent: LatentOption = None,
    preset: PresetOption = "default",
    sheet: SheetOption = False,
    quiet: QuietOption = False,
) -> None:
    """Resize INPUT to another size keeping its layout: the coarsest scale is the input resized, finer ones are sampled."""
    from .editing import Retarget

    settings = edit_settings(patch_size, scales, steps, eta, backend, latent=latent, preset=preset)
    run_generation(input, outdir, settings, num_samples, seed, parse_size(size), None, sheet, quiet, Retarget(), "_retarget")


@app.command()
def symmetric(
    input: InputArgument,
    axis: Annotated[str, typer.Option("--axis", help="vertical (left-right mirror), horizontal (top-bottom) or both.")] = "vertical",
    outdir: OutdirOption = Path("samples"),
    num_samples: SamplesOption = 1,
    seed: SeedOption = 0,
    steps: StepsOption = 10,
    eta: EtaOption = 0.0,
    patch_size: LatentPatchOption = None,
    scales: ScalesOption = None,
    backend: BackendOption = AUTO,
    latent: LatentOption = None,
    preset: PresetOption = "default",
    sheet: SheetOption = False,
    quiet: QuietOption = False,
) -> None:
    """Generate mirror-symmetric images: one half mirrored onto the other after every denoiser call (and after decoding, with --latent)."""
    from .editing import Symmetric

    edit = Symmetric(axis)
    settings = edit_settings(patch_size, scales, steps, eta, backend, latent=latent, preset=preset)
    run_generation(input, outdir, settings, num_samples, seed, None, None, sheet, quiet, edit, f"_symmetric_{axis}")


@app.command()
def tile(
    input: InputArgument,
    outdir: OutdirOption = Path("samples"),
    num_samples: SamplesOption = 1,
    seed: SeedOption = 0,
    size: Annotated[Optional[str], typer.Option("--size", help="Tile size WIDTHxHEIGHT (default: the input's).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Also write each tile repeated 2 x 2, to look for seams.")] = False,
    steps: StepsOption = 10,
    eta: EtaOption = 0.0,
    patch_size: LatentPatchOption = None,
    scales: Annotated[
        str, typer.Option("--scales", "-S", help="Number of scales S, or 'auto': as many as keep the coarsest short side >= 3 P.")
    ] = "auto",
    backend: BackendOption = AUTO,
    latent: LatentOption = None,
    preset: PresetOption = "default",
    sheet: SheetOption = False,
    quiet: QuietOption = False,
) -> None:
    """Generate seamless tiles: every denoiser call blends four circular half-shifts (4x the work); a latent decodes periodically."""
    from .editing import Tile, seam_error
    from .io.images import load_image, tensor_to_array

    # A periodic coarsest scale under about 3 patches per side collapses to its flattest content (measured
    # on starry_night at 126 x 99: S = 3, coarsest 32 x 25, loses every star; S = 2 keeps them).
    settings = edit_settings(patch_size, scales, steps, eta, backend, latent=latent, preset=preset)
    settings = replace(settings, min_coarsest_side=3 * settings.patch_size)
    outputs, result = run_generation(input, outdir, settings, num_samples, seed, parse_size(size), None, sheet, quiet, Tile(), "_tile")
    for path, array in zip(outputs, result.samples):
        tensor, pixel_format = load_image(array)
        typer.echo(f"{path.name}: wrap-around seam error {seam_error(tensor):.3f} (1 = like interior neighbours)")
        if preview:
            from .editing import tile_preview

            preview_path = path.with_name(path.stem + "_preview2x2.png")
            save_png(tensor_to_array(tile_preview(tensor), pixel_format), preview_path, result.settings | {"preview": "2x2"})
            typer.echo(str(preview_path))


@app.command("eval")
def evaluate_command(
    inputs: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Input images or folders of them (default: the paper's 15 images, ../shared/benchmarks/sinddm15)."),
    ] = None,
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="Folder for results.json/.csv, report.md, figures/ and samples/.")] = Path(
        "eval"
    ),
    samples: Annotated[
        Optional[Path],
        typer.Option("--samples", help="Evaluate existing samples instead: DIR/<input stem>/*.png (any generator's)."),
    ] = None,
    num_samples: Annotated[int, typer.Option("-n", "--num-samples", min=2, help="Samples generated per input.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first sample; sample i uses seed + i.")] = 0,
    preset: PresetOption = "default",
    variation: VariationOption = None,
    layout_guidance: LayoutGuidanceOption = None,
    completeness: CompletenessOption = None,
    start_blur: StartBlurOption = None,
    steps: Annotated[Optional[int], typer.Option("--steps", "-T", min=1, help="Denoiser calls per scale (T; default 10).")] = None,
    eta: Annotated[Optional[float], typer.Option("--eta", min=0.0, max=1.0, help="Stochasticity of Eq. 5 (default 0).")] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", "-P", min=1, help="Patch size P (default 15).")] = None,
    scales: ScalesOption = None,
    rho: Annotated[Optional[str], typer.Option("--rho", help=RHO_HELP)] = None,
    backend: Annotated[str, typer.Option("--backend", help=f"Patch denoiser: {', '.join(backend_names())}.")] = AUTO,
    backend_option: Annotated[
        Optional[list[str]], typer.Option("--backend-option", help="NAME=VALUE passed to the backend, e.g. k=5 (repeatable).")
    ] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Name of this run in the report (default from the settings).")] = None,
    compare: Annotated[
        Optional[list[Path]], typer.Option("--compare", help="Earlier results.json (or their folders) to show beside this run.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate sinfree (or another generator's samples) with the paper's Table 1 metrics, and write a report."""
    from .evaluation import evaluate, image_files, load_run, write_report
    from .evaluation.evaluate import default_benchmark_dir

    if not inputs:
        benchmark = default_benchmark_dir()
        if benchmark is None:
            raise SinfreeError("no inputs given and the paper's images (../shared/benchmarks/sinddm15) are not here")
        inputs = [benchmark]
    files = image_files(inputs)
    compared = [load_run(path) for path in compare or []]  # bad files fail before any work
    settings = None
    if samples is None:
        settings = cli_settings(
            preset,
            patch_size=patch_size,
            num_scales=parse_scales(scales),
            steps=steps,
            eta=eta,
            rho=parse_rho(rho),
            variation=variation,
            layout_guidance=layout_guidance,
            completeness=completeness,
            start_blur=start_blur,
            backend=backend,
            backend_options=parse_backend_options(backend_option or []),
        )
    outdir = check_writable_directory(outdir)
    stderr.print(f"evaluating {len(files)} image(s): " + (f"samples in {samples}" if samples else f"{num_samples} samples each"))
    with progress_bar(quiet) as bar:
        task = bar.add_task("evaluating", total=len(files))
        run = evaluate(
            files,
            settings=settings,
            num_samples=num_samples,
            seed=seed,
            samples_dir=samples,
            save_samples_to=None if samples else outdir / "samples",
            label=label,
            on_image=lambda index, name, stage: bar.update(task, completed=index, description=f"{name}: {stage}"),
        )
        bar.update(task, completed=len(files), description="done")
    report = write_report(run, outdir, compared, command="sinfree " + " ".join(sys.argv[1:]))
    mean = run.mean()
    typer.echo(
        f"mean over {len(files)} image(s): SIFID {mean['sifid']:.4g}, LPIPS diversity {mean['lpips_diversity']:.4g}, "
        f"pixel diversity {mean['pixel_diversity']:.4g}, NIQE {mean['niqe']:.4g}, copying rate {mean['copying_rate']:.3g}"
    )
    typer.echo(str(report))


def parse_backend_options(items: list[str]) -> dict:
    """['k=5', 'propagate=true'] -> {'k': 5, 'propagate': True}."""
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise SinfreeError(f"--backend-option must look like NAME=VALUE, got {item!r}")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise SinfreeError(f"--backend-option {name}: {text!r} is not a number or true/false") from None
        options[name.strip()] = value
    return options


def progress_bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=False,
    )


def _register_commands() -> None:
    from .commands import analogy, enhance, inpaint, style

    for module in (inpaint, analogy, style, enhance):
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: usage errors are click's (message, exit 2); user errors one line on stderr, exit 1."""
    try:
        app()
    except (SinfreeError, ValueError) as error:
        print(f"sinfree: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("sinfree: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
