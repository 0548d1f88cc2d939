"""Large inputs, read and encoded band by band: no decompression-bomb refusal for an input the user named
on purpose, and no float copy of the whole image (a 300 MP RGB input is 0.9 GB as uint8, 3.6 GB as float32).

TIFF inputs (tiled or not) are read through tifffile's zarr view, one band of rows at a time; other formats
through Pillow with its pixel limit lifted for this read only, as uint8/uint16 pixels. The PCA codec is fitted
and the latent encoded over bands of block rows, with the same float64 sums as ``PCACodec.fit`` and ``encode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputImageError
from ..extras import require
from ..io.images import PixelFormat, array_to_tensor, read_image_file
from ..latent.codec import _centred_mirror
from ..latent.pca import BAND_BLOCKS, PCACodec, to_blocks

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


class LargeImage:
    """An image read band by band: ``shape`` (H, W, C), ``band(r0, r1)`` -> numpy (r1 - r0, W, C) pixels."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputImageError(f"{path}: no such file")
        self._array = None
        if self.path.suffix.lower() in TIFF_SUFFIXES:
            tifffile = require("tifffile", "cluster", "reading large TIFF inputs")
            zarr = require("zarr", "cluster", "reading large TIFF inputs")
            try:
                self._store = tifffile.imread(str(self.path), aszarr=True, level=0)
                self._array = zarr.open(self._store, mode="r")
            except Exception as error:  # tifffile raises several kinds for a bad file
                raise InputImageError(
                    f"{path}: cannot read the TIFF ({str(error).splitlines()[0] if str(error) else error})"
                ) from None
            if hasattr(self._array, "shape") is False:  # a group (pyramid): its level 0
                self._array = self._array[0]
        else:
            from PIL import Image

            limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # the user named this large input explicitly
            try:
                self._array = read_image_file(self.path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        shape = tuple(self._array.shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or not 1 <= shape[2] <= 4:
            raise InputImageError(
                f"{path}: expected an (H, W) or (H, W, C) image with 1-4 channels, got shape {tuple(self._array.shape)}"
            )
        self.shape = shape
        if np.dtype(self._array.dtype) not in (np.uint8, np.uint16):
            raise InputImageError(f"{path}: large inputs must hold 8- or 16-bit pixels, got {self._array.dtype}")
        self.format = PixelFormat(
            dtype=np.dtype(self._array.dtype),
            low=0.0,
            high=float(np.iinfo(self._array.dtype).max),
            channels=shape[2],
            squeeze=len(self._array.shape) == 2,
        )

    def band(self, r0: int, r1: int) -> np.ndarray:
        band = np.asarray(self._array[r0:r1])
        return band[:, :, None] if band.ndim == 2 else band

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The rows ``index`` (any order, repeats allowed), read as one band."""
        low, high = int(index.min()), int(index.max()) + 1
        return self.band(low, high)[index - low]

    def tensor(self, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """Rows r0..r1 as float32 (C, h, W) in [-1, 1] (``load_image``'s mapping)."""
        return array_to_tensor(self.band(r0, self.shape[0] if r1 is None else r1))[0]


def block_bands(image: LargeImage, block: int, band_blocks: int = BAND_BLOCKS):
    """(rows, blocks) over bands of about ``band_blocks`` blocks of ``image`` mirrored to multiples of ``block``
    (``pad_to_multiple``, centred), as ``latent.pca._block_bands`` makes them from a whole tensor."""
    height, width, _ = image.shape
    row_index = _centred_mirror(height, block).numpy()
    col_index = _centred_mirror(width, block).numpy()
    block_rows, block_cols = len(row_index) // block, len(col_index) // block
    band = max(1, band_blocks // block_cols)
    for start in range(0, block_rows, band):
        stop = min(block_rows, start + band)
        pixels = image.rows(row_index[start * block : stop * block])[:, col_index]
        tensor = array_to_tensor(pixels)[0]
        yield slice(start, stop), to_blocks(tensor.to(torch.float64), block)


def fit_streaming(codec: PCACodec, image: LargeImage, band_blocks: int = BAND_BLOCKS) -> PCACodec:
    """``codec.fit`` over the image read band by band (``PCACodec.fit_blocks``: the same float64 sums)."""
    bands = (blocks for _, blocks in block_bands(image, codec.block, band_blocks))
    return codec.fit_blocks(bands, image.shape[2])


def encode_streaming(codec: PCACodec, image: LargeImage, band_blocks: int = BAND_BLOCKS) -> torch.Tensor:
    """``codec.encode`` of the image read band by band."""
    height, width = codec.latent_shape(image.shape[:2])
    latent = torch.empty(codec.basis.shape[1], height, width, dtype=torch.float32)
    projection = codec.basis * codec.scale
    for rows, blocks in block_bands(image, codec.block, band_blocks):
        latent[:, rows] = ((blocks - codec.mean) @ projection).T.reshape(-1, rows.stop - rows.start, width).to(torch.float32)
    return latent


def image_shape(path: Path) -> tuple[int, int, int]:
    """(H, W, C) of an image file from its header, without decoding it (no pixel limit: nothing is decoded)."""
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if path.is_dir():
        raise InputImageError(f"{path}: is a directory, not an image")
    if path.suffix.lower() in TIFF_SUFFIXES:
        tifffile = require("tifffile", "cluster", "reading large TIFF inputs")
        try:
            with tifffile.TiffFile(str(path)) as tiff:
                page = tiff.series[0].levels[0] if tiff.series else tiff.pages[0]
                shape = tuple(page.shape)
        except Exception as error:
            raise InputImageError(f"{path}: cannot read the TIFF ({error})") from None
        return (*shape[:2], shape[2] if len(shape) == 3 else 1)
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands()) if image.mode not in ("P", "PA") else (4 if "transparency" in image.info else 3)
    except UnidentifiedImageError:
        raise InputImageError(f"{path}: not an image file that can be read") from None
    except OSError as error:
        raise InputImageError(f"{path}: cannot read the image ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return (height, width, min(channels, 4))
