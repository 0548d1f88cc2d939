"""Images in and out: paths, PIL images and numpy arrays <-> float tensors (C, H, W) in [-1, 1].

8-bit and 16-bit (PNG, TIFF), gray, gray+alpha, RGB and RGBA. Outputs keep the input's type and
value range, and are written atomically with the settings that made them in the PNG's text chunks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png  # pypng: 16-bit colour PNGs, which Pillow reads and writes only as 8-bit
import torch
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import InputImageError, OutputError

ImageLike = str | os.PathLike | Image.Image | np.ndarray

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class PixelFormat:
    """How to map the internal [-1, 1] floats back to the user's pixels."""

    dtype: np.dtype
    low: float
    high: float
    channels: int
    squeeze: bool  # a 2-D (H, W) array came in

    def to_unit(self, array: np.ndarray) -> np.ndarray:
        return (array.astype(np.float64) - self.low) / (self.high - self.low)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.dtype, np.integer):
            top = np.iinfo(self.dtype).max
            return np.clip(np.rint(unit * top), 0, top).astype(self.dtype)
        return (self.low + unit * (self.high - self.low)).astype(self.dtype)


def load_image(image: ImageLike) -> tuple[torch.Tensor, PixelFormat]:
    """Read ``image`` (path, PIL image or numpy array) as a float32 tensor (C, H, W) in [-1, 1].

    Integer pixels map from [0, max of the type]; floats from [0, 1], or from their own
    [min, max] when they leave [0, 1]. Raises InputImageError with a one-line reason.
    """
    if isinstance(image, (str, os.PathLike)):
        array = read_image_file(Path(image))
    elif isinstance(image, Image.Image):
        array = pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise InputImageError(f"expected a path, a PIL image or a numpy array, got {type(image).__name__}")
    return array_to_tensor(array)


def array_to_tensor(array: np.ndarray) -> tuple[torch.Tensor, PixelFormat]:
    squeeze = array.ndim == 2
    if squeeze:
        array = array[:, :, None]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4:
        raise InputImageError(f"expected an (H, W) or (H, W, C) image with 1-4 channels, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype not in (np.uint8, np.uint16):
            if array.min() < 0 or array.max() > 65535:
                raise InputImageError(f"integer pixels must lie in [0, 65535], got [{array.min()}, {array.max()}]")
            array = array.astype(np.uint16)
        low, high = 0.0, float(np.iinfo(array.dtype).max)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputImageError("the image contains NaN or infinite values")
        low, high = float(min(0.0, array.min())), float(max(1.0, array.max()))
    else:
        raise InputImageError(f"unsupported pixel type {array.dtype}")
    fmt = PixelFormat(dtype=array.dtype, low=low, high=high, channels=array.shape[2], squeeze=squeeze)
    unit = fmt.to_unit(array)
    tensor = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1))).to(torch.float32) * 2.0 - 1.0
    return tensor, fmt


def tensor_to_array(tensor: torch.Tensor, fmt: PixelFormat) -> np.ndarray:
    """The inverse of ``load_image``: (C, H, W) in [-1, 1] to the input's dtype, range and layout.

    Integer outputs are clipped to their type's range; float outputs are returned unclipped.
    """
    unit = (tensor.detach().to(torch.float64).cpu().numpy().transpose(1, 2, 0) + 1.0) / 2.0
    array = fmt.from_unit(unit)
    return array[:, :, 0] if fmt.squeeze else array


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Pixels of an image file as (H, W) or (H, W, C), uint8, uint16 or float32."""
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if path.is_dir():
        raise InputImageError(f"{path}: is a directory, not an image")
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
        if head.startswith(PNG_SIGNATURE) and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6):
            return _read_png16_colour(path)
        with Image.open(path) as image:
            image.load()
            return pil_to_array(image)
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not an image file that can be read") from None
    except Image.DecompressionBombError as error:
        raise InputImageError(f"{path}: too large to read safely ({_first_line(error)})") from None
    except (OSError, SyntaxError, ValueError, png.Error) as error:
        raise InputImageError(f"{path}: cannot read the image ({_first_line(error)}); is it truncated or corrupt?") from None


def _read_png16_colour(path: Path) -> np.ndarray:
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, planes)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image's pixels, keeping 16-bit and float modes."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":
        return np.asarray(image).astype(np.int64)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    return np.asarray(image)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def png_bytes(array: np.ndarray, text: dict[str, str]) -> bytes:
    """Encode ``array`` (H, W) or (H, W, C), uint8 or uint16, as a PNG with tEXt chunks."""
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if array.dtype == np.uint8 or (array.dtype == np.uint16 and channels == 1):
        image = Image.fromarray(array[:, :, 0] if channels == 1 else array)  # L, LA, RGB, RGBA or I;16
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
        return buffer.getvalue()
    if array.dtype != np.uint16:
        raise ValueError(f"PNG holds uint8 or uint16 pixels, got {array.dtype}")
    writer = png.Writer(width, height, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=16)
    buffer = io.BytesIO()
    writer.write(buffer, array.reshape(height, width * channels))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    text_chunks = [(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")) for key, value in text.items()]
    out = io.BytesIO()
    png.write_chunks(out, chunks[:1] + text_chunks + chunks[1:])
    return out.getvalue()


def save_png(array: np.ndarray, path: str | os.PathLike, settings: dict | None = None) -> Path:
    """Write ``array`` as a PNG atomically (temporary file, then rename), settings in its metadata.

    Float arrays are written as 16-bit PNGs of their [0, 1] range, clipped.
    """
    path = Path(path)
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.rint(array * 65535.0), 0, 65535).astype(np.uint16)
    text = {"Software": "sinfree"}
    if settings is not None:
        text["sinfree"] = json.dumps(settings, sort_keys=True, default=str)
    write_atomically(path, png_bytes(array, text))
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: Path):
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` (readers see the old file or
    the whole new one, never a part), on any failure it is removed. Outputs get the usual permissions."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise OutputError(f"{path.parent}: cannot write there ({_first_line(error)})") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600
        os.close(handle)
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``atomic_output``)."""
    with atomic_output(path) as temporary, open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def check_writable_directory(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and check that files can be written into it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise OutputError(f"{directory}: cannot write output there ({_first_line(error)})") from None
    return directory


def read_png_settings(path: str | os.PathLike) -> dict:
    """The settings sinfree recorded in a PNG it wrote (empty if none)."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}) or image.info
        raw = text.get("sinfree")
    return json.loads(raw) if raw else {}
