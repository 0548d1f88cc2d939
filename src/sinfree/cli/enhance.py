"""``sinfree enhance``: read a scan (DICOM, NIfTI, PNG, TIFF) in physical units, restore it with
``sinfree.enhance.enhance`` and write the result (and with ``-n`` > 1 its uncertainty) in the same format."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import BACKEND_NAMES, EXPERT, OUTPUT_PANEL, check_device, with_options

TASKS = ("denoise", "deblur", "superres", "inpaint", "illumination")  # sinfree.enhance.TASKS (checked by a test)
NOISE_HELP = "Noise model (denoise): gaussian, poisson (Anscombe), rician (MRI magnitude) or speckle (log)."
METHOD_HELP = (
    "two-stage: the Eq. 2 self prior as the pilot, then NL-Bayes passes over groups of similar patches (best); "
    "one-stage: the Eq. 2 prior alone (DiffPIR)."
)
ENHANCE_EXPERT = [param for param in EXPERT if param.name in ("backend", "max_memory_gb", "device")]


@with_options(ENHANCE_EXPERT)
def enhance(
    input: Annotated[Path, typer.Argument(help="The scan: DICOM, NIfTI (.nii, .nii.gz), PNG or TIFF (8/16-bit, float).")],
    task: Annotated[str, typer.Option("--task", help=f"{', '.join(TASKS)}.")] = "denoise",
    sigma: Annotated[str, typer.Option("--sigma", help="Noise std in the data's units, or 'auto' (wavelet MAD).")] = "auto",
    noise: Annotated[str, typer.Option("--noise", help=NOISE_HELP)] = "gaussian",
    blur: Annotated[str, typer.Option("--blur", help="deblur: Gaussian blur width in px, or 'auto' (spectral fit).")] = "auto",
    scale: Annotated[int, typer.Option("--scale", min=2, help="superres: the integer upscaling factor.")] = 2,
    mask: Annotated[
        Optional[Path], typer.Option("--mask", "-m", help="inpaint: image of the same size, nonzero where pixels are missing.")
    ] = None,
    method: Annotated[str, typer.Option("--method", help=METHOD_HELP)] = "two-stage",
    steps: Annotated[
        Optional[int], typer.Option("--steps", "-T", min=1, help="Denoiser calls / loop iterations (default: the task's).")
    ] = None,
    patch_size: Annotated[
        Optional[int],
        typer.Option("--patch-size", "-P", min=1, help="Eq. 2 patch size P (default: 7, two-stage denoising 5 or 7)."),
    ] = None,
    outdir: Annotated[
        Path,
        typer.Option("-o", "--outdir", rich_help_panel=OUTPUT_PANEL, help="Folder for <input>_<task> in the input's format."),
    ] = Path("enhanced"),
    num_samples: Annotated[
        int,
        typer.Option(
            "-n",
            "--num-samples",
            min=1,
            rich_help_panel=OUTPUT_PANEL,
            help="Posterior samples: their mean is the output, their std <input>_<task>_uncertainty.",
        ),
    ] = 1,
    seed: Annotated[
        int, typer.Option("--seed", rich_help_panel=OUTPUT_PANEL, help="Seed of the first sample; sample i uses seed + i.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", rich_help_panel=OUTPUT_PANEL, help="Replace outputs that exist.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT_PANEL, help="No progress bar.")] = False,
    *,
    options,
) -> None:
    """Restore INPUT with its own multi-scale patches as the prior (training-free; DiffPIR-style data consistency)."""
    from ..enhance import enhance as restore
    from ..enhance.restore import check_enhance_extra
    from ..errors import InputImageError, SinfreeError
    from ..extras import require
    from ..io.derived import derived_path, is_colour, read_mask, resized_scan, uncertainty_path
    from ..io.scans import describe_scan, read_scan
    from .running import check_output_folder, check_outputs, memory_limit, progress_bar, stderr

    device = check_device(options.device)  # a missing GPU: one line, before any work
    check_enhance_extra()
    if input.suffix.lower() in (".tif", ".tiff"):  # the result is written as a TIFF: fail before the work
        require("tifffile", "medical", "writing TIFF")
    if task not in TASKS:
        raise SinfreeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if options.backend not in BACKEND_NAMES:
        raise SinfreeError(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if mask is not None and task != "inpaint":
        raise SinfreeError("--mask is for --task inpaint")
    output = derived_path(check_output_folder(outdir), input, task)
    check_outputs([output] + ([uncertainty_path(output)] if num_samples > 1 else []), [input], overwrite)
    scan = read_scan(input)
    if scan.data.ndim == 4:
        raise InputImageError(f"{input}: colour volumes ({'x'.join(map(str, scan.data.shape))}) are not supported yet")
    colour = is_colour(scan)
    missing = None if task != "inpaint" else read_mask(mask, scan, colour)
    bar = LazyBar(progress_bar(quiet), f"{task} ({'slices' if scan.data.ndim == 3 and not colour else 'steps'})")
    try:
        result = restore(
            scan.data,
            task,
            sigma=sigma,
            noise=noise,
            blur=blur,
            scale=scale,
            mask=missing,
            samples=num_samples,
            seed=seed,
            steps=steps,
            patch_size=patch_size,
            method=method,
            backend=options.backend,
            colour=colour,
            max_memory_bytes=memory_limit(options),
            progress=bar.update,
            device=device,
        )
    finally:
        bar.close()
    if not quiet:
        stderr.print(f"{input.name}: {describe_scan(scan)}")
    target = scan if task != "superres" else resized_scan(scan, result.mean.shape, scale)
    description = describe_run(result.settings)
    Path(outdir).mkdir(parents=True, exist_ok=True)
    written = [write_clipped(target, result.mean, output, description, stderr)]
    if result.std is not None:
        written.append(
            write_clipped(target, result.std, uncertainty_path(output), description + "; per-pixel std", stderr, "uncertainty")
        )
    for path in written:
        typer.echo(str(path))
    settings = result.settings
    sigma_text = "" if settings["sigma"] is None else f", sigma {settings['sigma']:.4g}{' ' + scan.units if scan.units else ''}"
    blur_text = "" if settings.get("blur") is None else f", blur {settings['blur']:.2f} px"
    typer.echo(
        f"{task} in {result.seconds:.2f} s ({settings['method']}, prior {settings['prior']}, {settings['steps']} steps"
        f"{sigma_text}{blur_text})"
    )


class LazyBar:
    """A progress bar shown from its first update: checks that fail before any work print nothing but the error."""

    def __init__(self, progress, description: str):
        self.progress, self.description, self.job = progress, description, None

    def update(self, done: int, total: int) -> None:
        if self.job is None:
            self.progress.start()
            self.job = self.progress.add_task(self.description, total=total)
        self.progress.update(self.job, completed=done, total=total)

    def close(self) -> None:
        if self.job is not None:
            self.progress.stop()


def write_clipped(scan, data, path: Path, description: str, stderr, series: str = "result") -> Path:
    """Write ``data``; values the format cannot hold are clipped and said so on stderr (never silently)."""
    import numpy as np

    from ..io.scans import write_scan

    low, high = scan.value_range
    outside = int(np.count_nonzero((data < low) | (data > high)))
    if outside:
        stderr.print(f"{path.name}: {outside} of {data.size} values outside the format's range [{low:g}, {high:g}] were clipped")
    return write_scan(scan, data, path, description=description, clip=bool(outside), series=series)


def describe_run(settings: dict) -> str:
    keys = ("task", "method", "noise", "sigma", "blur", "scale", "samples", "seed", "steps", "patch_size", "prior")
    return "sinfree enhance: " + ", ".join(f"{key}={_short(settings.get(key))}" for key in keys if settings.get(key) is not None)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
