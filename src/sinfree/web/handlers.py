"""The web app's jobs, without gradio: every run is the ``sinfree`` command its tab shows, parsed and run by the
command line's own code (click, then the command's function) into a folder of its own, so that the app and the
CLI share one implementation: the same checks, memory refusal, outputs and PNG metadata.

Uploads are read with the library's readers and checked against the server's pixel limit before any work; each
failure is a ``SinfreeError`` with one clear line, which the app shows as a message.
"""

from __future__ import annotations

import functools
import itertools
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
import typer.main
from rich.progress import Progress

from ..cli import analogy, edit, enhance, generate, inpaint, running, style
from ..cli.options import parse_size
from ..errors import InputImageError, SinfreeError

# The functions `sinfree <name>` runs (the same objects as sinfree.cli.COMMANDS; a test checks).
COMMANDS = {
    "generate": generate.generate,
    "retarget": edit.retarget,
    "symmetric": edit.symmetric,
    "tile": edit.tile,
    "analogy": analogy.analogy,
    "inpaint": inpaint.inpaint,
    "harmonize": inpaint.harmonize,
    "style": style.style,
    "enhance": enhance.enhance,
}
ARGUMENT = "<upload>"  # a positional argument not uploaded yet, in the command shown


@dataclass(frozen=True)
class WebConfig:
    """The server's settings: where runs write, what uploads and runs may cost."""

    outdir: Path
    max_pixels: int = 4_000_000
    max_memory_gb: Optional[float] = None
    clip: Optional[Path] = None
    max_upload_mb: float = 50.0
    concurrency: int = 1


@dataclass
class JobResult:
    """What a run wrote (in its folder) and the command it was."""

    files: list[Path]
    command: str
    folder: Path
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- commands


@functools.lru_cache(maxsize=None)
def click_command(name: str):
    """The (click) command typer builds for ``sinfree <name>``: the parser the command line uses."""
    app = typer.Typer()
    app.command(name)(COMMANDS[name])
    return typer.main.get_command(app)


def command_args(name: str, values: dict[str, Any], display: bool = False) -> list[str]:
    """``values`` (parameter name -> value; None or the default: left out) as the command's arguments, in the
    order of its signature. Paths are written whole, or by their file name when ``display``."""
    words: list[str] = []
    for param in click_command(name).params:
        value = values.get(param.name)
        if param.param_type_name == "argument":
            words.append(ARGUMENT if value is None else (Path(value).name if display else str(value)))
        elif value is not None and value != param.default:
            words += _option_words(param, value, display)
    return words


def _option_words(param, value: Any, display: bool) -> list[str]:
    flag = min(param.opts, key=lambda opt: (not (len(opt) == 2), len(opt)))  # -n before --num-samples
    if param.is_flag:
        return [flag] if value else param.secondary_opts[:1]
    if isinstance(value, Path):
        value = value.name if display else str(value)
    items = value if isinstance(value, (list, tuple)) else [value]
    return list(itertools.chain.from_iterable((flag, _text(item)) for item in items))


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def command_line(name: str, values: dict[str, Any]) -> str:
    """The ``sinfree ...`` line that runs what the tab would run (uploads named by their file names)."""
    return shlex.join(["sinfree", name, *command_args(name, values, display=True)])


class WebProgress(Progress):
    """A rich ``Progress`` that draws nothing and hands each update to ``report(fraction, description)``."""

    def __init__(self, report: Callable[[Optional[float], str], None]):
        super().__init__(disable=True)
        self.report = report

    def update(self, task_id, **changes) -> None:
        super().update(task_id, **changes)
        task = self._tasks[task_id]
        fraction = min(1.0, task.completed / task.total) if task.total else None
        self.report(fraction, task.description)


def run_command(
    name: str, values: dict[str, Any], folder: Path, report: Optional[Callable[[Optional[float], str], None]] = None
) -> JobResult:
    """Run ``sinfree <name>`` with ``values`` into ``folder`` (made here, new per job) through the command line's
    parser; progress goes to ``report``. Usage errors and the library's errors are ``SinfreeError``s."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    command = click_command(name)
    argv = command_args(name, values) + ["-o", str(folder), "-q"]
    token = running.progress_factory.set(lambda: WebProgress(report or (lambda fraction, text: None)))
    start = time.perf_counter()
    try:
        with command.make_context(f"sinfree {name}", argv) as context:
            command.invoke(context)
    except typer.TyperException as error:  # a usage error: click's message
        raise SinfreeError(error.format_message() if hasattr(error, "format_message") else str(error)) from None
    except ValueError as error:  # the CLI reports these on one line too
        raise SinfreeError(str(error)) from None
    finally:
        running.progress_factory.reset(token)
    files = sorted(path for path in folder.iterdir() if path not in before and path.is_file())
    return JobResult(files, command_line(name, values), folder, time.perf_counter() - start)


_job_numbers = itertools.count(1)


def new_job_folder(config: WebConfig, name: str) -> Path:
    """A fresh folder for one run: ``OUTDIR/<time>-<n>-<command>``."""
    folder = Path(config.outdir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_job_numbers):04d}-{name}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def short_message(error: BaseException, *folders: Path) -> str:
    """The error's line with the server's folders taken out of file names (uploads show as their names)."""
    text = str(error)
    for folder in folders:
        if folder is not None:
            text = text.replace(f"{Path(folder)}/", "")
    return text


# --------------------------------------------------------------------------------------------------- uploads


def check_size(size: Optional[str], config: WebConfig) -> Optional[str]:
    """A WIDTHxHEIGHT text (blank: None), checked against the pixel limit."""
    if size is None or not str(size).strip():
        return None
    height, width = parse_size(str(size))
    check_pixels(f"--size {size}", height * width, config)
    return str(size).strip()


def check_pixels(what: str, pixels: int, config: WebConfig) -> None:
    if pixels > config.max_pixels:
        raise InputImageError(
            f"{what}: {pixels:,} pixels is more than this server allows ({config.max_pixels:,}; sinfree web --max-pixels)"
        )


def read_upload(path: Optional[str], config: WebConfig, what: str = "image") -> np.ndarray:
    """An uploaded image's pixels, read as the CLI reads them, within the pixel limit; a missing or unreadable
    upload is a one-line ``InputImageError`` naming the file."""
    from PIL import Image

    from ..io.images import read_image_file

    if not path:
        raise InputImageError(f"upload an {what} first")
    path = Path(path)
    try:
        with Image.open(path) as image:  # the header only: refuse a huge image before decoding it
            width, height = image.size
        check_pixels(path.name, width * height, config)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        pass  # read_image_file says what is wrong
    try:
        pixels = read_image_file(path)
    except InputImageError as error:
        raise InputImageError(short_message(error, path.parent)) from None
    check_pixels(path.name, pixels.shape[0] * pixels.shape[1], config)
    return pixels


def read_scan_upload(path: Optional[str], config: WebConfig):
    """An uploaded scan (DICOM, NIfTI, PNG, TIFF) as ``sinfree.io.scans.Scan``, each slice within the pixel limit."""
    from ..io.derived import is_colour
    from ..io.scans import read_scan

    if not path:
        raise InputImageError("upload a scan or an image first")
    path = Path(path)
    try:
        scan = read_scan(path)
    except SinfreeError as error:
        raise type(error)(short_message(error, path.parent)) from None
    plane = scan.data.shape[:2] if is_colour(scan) or scan.data.ndim == 2 else scan.data.shape[1:3]
    check_pixels(path.name, plane[0] * plane[1], config)
    return scan


def painted_mask(editor_value: Optional[dict], shape: tuple[int, int]) -> Optional[np.ndarray]:
    """The region painted on an image editor (any layer's opaque pixels) as (H, W) bool, None where nothing is
    painted; a region of another size than the image is an ``InputImageError``."""
    layers = [np.asarray(layer) for layer in (editor_value or {}).get("layers") or [] if layer is not None]
    painted = [
        layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.reshape(layer.shape[:2] + (-1,)).any(-1)
        for layer in layers
    ]
    painted = [region for region in painted if region.any()]
    if not painted:
        return None
    region = np.logical_or.reduce(painted)
    if region.shape != tuple(shape):
        raise InputImageError(f"the painted mask is {region.shape[1]}x{region.shape[0]} px, the image {shape[1]}x{shape[0]} px")
    return region


def save_mask(region: np.ndarray, path: Path) -> Path:
    """A region as the mask file the CLI reads (white: the region)."""
    from ..io.images import save_png

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(np.where(region, 255, 0).astype(np.uint8), path)


def mask_for(image_path: str, editor_value: Optional[dict], mask_upload: Optional[str], folder: Path, config: WebConfig):
    """The mask argument of inpaint and harmonize: an uploaded mask file (checked by the command), else the
    painted region saved as ``<image>_mask.png`` in the job's ``inputs/``, else None (the input's alpha)."""
    if mask_upload:
        read_upload(mask_upload, config, "mask")
        return Path(mask_upload)
    pixels = read_upload(image_path, config)
    region = painted_mask(editor_value, pixels.shape[:2])
    if region is None:
        if pixels.ndim == 3 and pixels.shape[2] in (2, 4) and (pixels[..., -1] == 0).any():
            return None
        raise InputImageError("paint the region to fill on the image (or upload a mask)")
    return save_mask(region, folder / "inputs" / f"{Path(image_path).stem}_mask.png")


# --------------------------------------------------------------------------------------------------- display


def display_image(pixels: np.ndarray) -> np.ndarray:
    """Any image the library reads as 8-bit RGB or gray for the browser (16-bit and float scaled)."""
    if pixels.dtype == np.uint8:
        array = pixels
    elif pixels.dtype == np.uint16:
        array = (pixels.astype(np.float64) / 257.0).round().astype(np.uint8)
    else:
        array = (np.clip(pixels, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 2:
        array = array[..., 0]
    return array


def window(data: np.ndarray, low_q: float = 0.5, high_q: float = 99.5) -> tuple[float, float]:
    """A display window: the data's [0.5, 99.5] percentiles."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [low_q, high_q])
    return float(low), float(high if high > low else low + 1.0)


def to_uint8(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((plane - low) / (high - low), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def scan_plane(scan, index: int) -> np.ndarray:
    """Slice ``index`` of a volume, or the image itself: (H, W) or (H, W, C)."""
    from ..io.derived import is_colour

    data = scan.data
    if data.ndim == 3 and not is_colour(scan):
        return data[int(np.clip(index, 0, data.shape[0] - 1))]
    return data


def num_slices(scan) -> int:
    from ..io.derived import is_colour

    return scan.data.shape[0] if scan.data.ndim == 3 and not is_colour(scan) else 1


@functools.lru_cache(maxsize=16)
def _cached_scan(path: str, mtime: float):
    from ..io.scans import read_scan

    return read_scan(path)


def cached_scan(path: Path):
    """A scan read once per file version (the slice slider reads the same files again and again)."""
    return _cached_scan(str(path), Path(path).stat().st_mtime)


def before_after(input_path: Path, output_path: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Slice ``index`` of the input and of the result as 8-bit images in one display window (the input's), the
    input enlarged (nearest) to the result's size for a super-resolved one."""
    source, result = cached_scan(input_path), cached_scan(output_path)
    low, high = window(source.data)
    before, after = scan_plane(source, index), scan_plane(result, index)
    if before.shape[:2] != after.shape[:2]:
        rows = np.arange(after.shape[0]) * before.shape[0] // after.shape[0]
        cols = np.arange(after.shape[1]) * before.shape[1] // after.shape[1]
        before = before[rows][:, cols]
    return to_uint8(before, low, high), to_uint8(after, low, high)


def uncertainty_view(path: Optional[Path], index: int) -> Optional[np.ndarray]:
    """Slice ``index`` of the per-pixel standard deviation, 0 to its 99.5th percentile as black to white."""
    if path is None:
        return None
    data = cached_scan(path)
    plane = scan_plane(data, index)
    return to_uint8(plane, 0.0, window(data.data)[1])


# --------------------------------------------------------------------------------------------------- jobs

Report = Optional[Callable[[Optional[float], str], None]]


def generation_job(config: WebConfig, name: str, values: dict[str, Any], report: Report = None) -> JobResult:
    """generate, retarget, symmetric, tile, analogy, style: the uploads and the size checked, then the command.
    ``extra``: "samples" (the outputs) and "previews" (tile's 2 x 2 repeats)."""
    values = dict(values)
    for key in ("input", "structure", "style"):
        if key in values and (name != "style" or key == "input"):
            read_upload(values[key], config, "image" if key == "input" else f"{key} image")
            values[key] = Path(values[key])
    if "size" in values:
        values["size"] = check_size(values.get("size"), config)
    if name == "style" and config.clip is not None:
        values["clip"] = config.clip
    values["max_memory_gb"] = config.max_memory_gb
    folder = new_job_folder(config, name)
    result = _run(name, values, folder, report)
    pngs = [path for path in result.files if path.suffix == ".png" and not path.stem.endswith("_sheet")]
    result.extra["previews"] = [path for path in pngs if path.stem.endswith("_preview2x2")]
    result.extra["samples"] = [path for path in pngs if path not in result.extra["previews"]]
    return result


def masked_job(
    config: WebConfig,
    name: str,
    values: dict[str, Any],
    editor_value: Optional[dict] = None,
    mask_upload: Optional[str] = None,
    report: Report = None,
) -> JobResult:
    """inpaint and harmonize: the mask painted on the editor (or uploaded) written as a file, then the command;
    the mask file is offered with the outputs."""
    values = dict(values)
    read_upload(values.get("input"), config)
    folder = new_job_folder(config, name)
    values["mask"] = mask_for(values["input"], editor_value, mask_upload, folder, config)
    values["input"] = Path(values["input"])
    values["max_memory_gb"] = config.max_memory_gb
    result = _run(name, values, folder, report)
    result.extra["samples"] = [path for path in result.files if not path.stem.endswith("_sheet")]
    if values["mask"] is not None and Path(values["mask"]).parent == folder / "inputs":
        result.files.append(Path(values["mask"]))
    return result


def enhance_job(config: WebConfig, values: dict[str, Any], report: Report = None) -> JobResult:
    """enhance: the scan (and the inpainting mask) checked, then the command; ``extra``: "result",
    "uncertainty" (None unless more than one sample) and "slices"."""
    values = dict(values)
    scan = read_scan_upload(values.get("input"), config)
    values["input"] = Path(values["input"])
    if values.get("mask"):
        values["mask"] = Path(values["mask"])
    else:
        values["mask"] = None
    values["max_memory_gb"] = config.max_memory_gb
    folder = new_job_folder(config, "enhance")
    result = _run("enhance", values, folder, report)
    from ..io.derived import derived_path, uncertainty_path

    output = derived_path(folder, values["input"], values.get("task") or "denoise")
    result.extra.update(
        result=output,
        uncertainty=uncertainty_path(output) if uncertainty_path(output).exists() else None,
        slices=num_slices(scan),
    )
    return result


def _run(name: str, values: dict[str, Any], folder: Path, report: Report) -> JobResult:
    """``run_command`` with its errors' lines free of the server's folders; an empty folder is removed."""
    uploads = {Path(value).parent for value in values.values() if isinstance(value, Path)}
    try:
        return run_command(name, values, folder, report)
    except SinfreeError as error:
        if folder.exists() and not any(folder.rglob("*.*")):
            for path in sorted(folder.rglob("*"), reverse=True):
                path.rmdir()
            folder.rmdir()
        raise type(error)(short_message(error, folder, *uploads)) from None
