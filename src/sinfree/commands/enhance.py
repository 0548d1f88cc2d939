"""The ``sinfree enhance`` subcommand: read a scan (DICOM, NIfTI, PNG, TIFF) in physical units, restore it with
``sinfree.enhance.enhance`` and write the result (and with ``--samples`` > 1 its uncertainty) in the same format."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ..backends import AUTO, backend_names

TASK_HELP = "denoise, deblur, superres, inpaint or illumination."
NOISE_HELP = "Noise model (denoise): gaussian, poisson (Anscombe), rician (MRI magnitude) or speckle (log)."
BACKEND_HELP = f"Eq. 2 prior: {', '.join(backend_names())} (auto: exact where affordable, else patchmatch)."
METHOD_HELP = (
    "two-stage: the Eq. 2 self prior as the pilot, then NL-Bayes passes over groups of similar patches (best); "
    "one-stage: the Eq. 2 prior alone (DiffPIR)."
)


def register(app) -> None:
    """Add the subcommand to the typer app (``sinfree.cli`` is imported here: it imports this module while it loads)."""
    from .. import cli

    @app.command()
    def enhance(
        input: Annotated[Path, typer.Argument(help="The scan: DICOM, NIfTI (.nii, .nii.gz), PNG or TIFF (8/16-bit, float).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output file, in the input's format (never the input).")],
        task: Annotated[str, typer.Option("--task", help=TASK_HELP)] = "denoise",
        sigma: Annotated[str, typer.Option("--sigma", help="Noise std in the data's units, or 'auto' (wavelet MAD).")] = "auto",
        noise: Annotated[str, typer.Option("--noise", help=NOISE_HELP)] = "gaussian",
        blur: Annotated[
            str, typer.Option("--blur", help="deblur: Gaussian blur width in px, or 'auto' (spectral fit).")
        ] = "auto",
        scale: Annotated[int, typer.Option("--scale", min=2, help="superres: the integer upscaling factor.")] = 2,
        mask: Annotated[
            Path | None, typer.Option("--mask", help="inpaint: image of the same size, nonzero where pixels are missing.")
        ] = None,
        samples: Annotated[
            int, typer.Option("--samples", min=1, help="Posterior samples: the mean is OUTPUT, the std <stem>_uncertainty.")
        ] = 1,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the first sample; sample i uses seed + i.")] = 0,
        method: Annotated[str, typer.Option("--method", help=METHOD_HELP)] = "two-stage",
        steps: Annotated[
            int | None, typer.Option("--steps", "-T", min=1, help="Denoiser calls / loop iterations (default: the task's).")
        ] = None,
        patch_size: Annotated[
            int | None,
            typer.Option("--patch-size", "-P", min=1, help="Eq. 2 patch size P (default: 7, two-stage denoising 5 or 7)."),
        ] = None,
        backend: Annotated[str, typer.Option("--backend", help=BACKEND_HELP)] = AUTO,
        max_memory_gb: Annotated[
            float | None,
            typer.Option("--max-memory-gb", min=0.0, help="Refuse runs estimated above this (default: free memory)."),
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Restore INPUT with its own multi-scale patches as the prior (training-free; DiffPIR-style data consistency)."""
        run_enhance(
            input,
            output,
            task,
            sigma,
            noise,
            blur,
            scale,
            mask,
            samples,
            seed,
            steps,
            patch_size,
            backend,
            max_memory_gb,
            quiet,
            cli.progress_bar,
            cli.stderr,
            method,
        )


def run_enhance(
    input: Path,
    output: Path,
    task: str,
    sigma: str,
    noise: str,
    blur: str,
    scale: int,
    mask: Path | None,
    samples: int,
    seed: int,
    steps: int | None,
    patch_size: int,
    backend: str,
    max_memory_gb: float | None,
    quiet: bool,
    progress_bar,
    stderr,
    method: str = "two-stage",
) -> None:
    """Read, check, restore with a progress bar, write; every user error is a one-line SinfreeError."""
    from ..enhance import TASKS, enhance
    from ..errors import InputImageError, SinfreeError
    from ..io.scans import describe_scan, read_scan, write_scan

    if task not in TASKS:
        raise SinfreeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if mask is not None and task != "inpaint":
        raise SinfreeError("--mask is for --task inpaint")
    scan = read_scan(input)
    if scan.data.ndim == 4:
        raise InputImageError(f"{input}: colour volumes ({'x'.join(map(str, scan.data.shape))}) are not supported yet")
    missing = None if task != "inpaint" else read_mask(mask, scan, is_colour(scan))
    if output.resolve() == input.resolve():
        raise SinfreeError(f"{output}: the output would overwrite the input; choose another -o")
    colour = is_colour(scan)
    bar = LazyBar(progress_bar(quiet), f"{task} ({'slices' if scan.data.ndim == 3 and not colour else 'steps'})")
    try:
        result = enhance(
            scan.data,
            task,
            sigma=sigma,
            noise=noise,
            blur=blur,
            scale=scale,
            mask=missing,
            samples=samples,
            seed=seed,
            steps=steps,
            patch_size=patch_size,
            method=method,
            backend=backend,
            colour=colour,
            max_memory_bytes=None if max_memory_gb is None else int(max_memory_gb * 2**30),
            progress=bar.update,
        )
    finally:
        bar.close()
    if not quiet:
        stderr.print(f"{input.name}: {describe_scan(scan)}")
    target = scan if task != "superres" else resized_scan(scan, result.mean.shape, scale)
    description = describe_run(result.settings)
    written = [write_clipped(write_scan, target, result.mean, output, description, stderr)]
    if result.std is not None:
        written.append(
            write_clipped(write_scan, target, result.std, uncertainty_path(output), description + "; per-pixel std", stderr)
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


def read_mask(path: Path | None, scan, colour: bool) -> np.ndarray:
    """The inpainting mask as (H, W) bool, True where pixels are missing (any nonzero channel), checked
    against the scan's plane; errors name the mask file."""
    from ..errors import InputImageError, SinfreeError
    from ..io.scans import read_scan

    if path is None:
        raise SinfreeError("--task inpaint needs --mask PATH (nonzero where pixels are missing)")
    data = read_scan(path).data
    missing = (data != 0).any(axis=2) if data.ndim == 3 else data != 0
    plane = scan.data.shape[:2] if colour or scan.data.ndim == 2 else scan.data.shape[1:3]
    if missing.shape != plane:
        raise InputImageError(f"{path}: the mask is {missing.shape[1]}x{missing.shape[0]} px, the input {plane[1]}x{plane[0]} px")
    return missing


def is_colour(scan) -> bool:
    """Whether a 3-D array is (H, W, C) colour rather than a (D, H, W) volume."""
    if scan.data.ndim != 3:
        return False
    if scan.kind == "dicom":
        return int(scan.meta.get("SamplesPerPixel", 1)) > 1
    if scan.kind == "image":
        return "S" in scan.meta["axes"] if "axes" in scan.meta else True
    return False


def uncertainty_path(output: Path) -> Path:
    """``<OUTPUT stem>_uncertainty<suffix>`` (``.nii.gz`` kept whole)."""
    name = output.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else output.suffix
    return output.with_name(f"{name[: len(name) - len(suffix)]}_uncertainty{suffix}")


def write_clipped(write_scan, scan, data: np.ndarray, path: Path, description: str, stderr) -> Path:
    """Write ``data``; values the format cannot hold are clipped and said so on stderr (never silently)."""
    low, high = scan.value_range
    outside = int(np.count_nonzero((data < low) | (data > high)))
    if outside:
        stderr.print(f"{path.name}: {outside} of {data.size} values outside the format's range [{low:g}, {high:g}] were clipped")
    return write_scan(scan, data, path, description=description, clip=bool(outside))


def describe_run(settings: dict) -> str:
    keys = ("task", "method", "noise", "sigma", "blur", "scale", "samples", "seed", "steps", "patch_size", "prior")
    return "sinfree enhance: " + ", ".join(f"{key}={_short(settings.get(key))}" for key in keys if settings.get(key) is not None)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def resized_scan(scan, shape: tuple[int, ...], factor: int):
    """A copy of ``scan`` that describes data of ``shape``, ``factor`` times finer in-plane: PNG/TIFF as they are,
    DICOM with new Rows, Columns and PixelSpacing, NIfTI with the in-plane voxel axes of its affine divided by
    ``factor`` and the origin moved to the new first voxel's centre."""
    meta = scan.meta
    if scan.kind == "dicom":
        meta = copy.deepcopy(meta)
        meta.Rows, meta.Columns = shape[:2] if is_colour(scan) else shape[-2:]
        if "PixelSpacing" in meta:
            meta.PixelSpacing = [float(v) / factor for v in meta.PixelSpacing]
    elif scan.kind == "nifti":
        meta = _finer_nifti(meta, shape, factor)
    return dataclasses.replace(scan, data=np.empty(shape), meta=meta)


def _finer_nifti(image, shape: tuple[int, ...], factor: int):
    """A NIfTI image object of the finer grid: scan data (k, j, i) are voxel axes (i, j, k) reversed."""
    affine = image.affine.copy()
    shift = (0.5 / factor - 0.5) * (affine[:3, 0] + affine[:3, 1])
    affine[:3, 0] /= factor
    affine[:3, 1] /= factor
    affine[:3, 3] += shift
    voxels = tuple(reversed(shape)) + tuple(image.shape[len(shape) :])
    header = image.header.copy()
    out = type(image)(np.zeros(voxels, dtype=image.get_data_dtype()), affine, header)
    zooms = list(header.get_zooms())
    zooms[0], zooms[1] = zooms[0] / factor, zooms[1] / factor
    out.header.set_zooms(zooms)
    return out
