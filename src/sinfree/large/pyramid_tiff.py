"""Outputs people can open at any zoom: a tiled, pyramidal BigTIFF written tile by tile (tifffile; the
reduced levels as SubIFDs of the full one, as QuPath, napari and vips read them), and a preview JPEG.

The pixels come from a chunked array (H, W, C) on disk; every level is made from the one before by 2 x 2
means, band by band, so memory stays a few bands whatever the size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..extras import require
from ..io.images import atomic_output

TIFF_TILE = 256
PREVIEW_SIDE = 2048
BAND = 512  # rows per band when levels are made (uint32 sums: 6 bytes x W x C per row)


def level_count(shape: tuple[int, int], tile: int = TIFF_TILE) -> int:
    """Levels of the pyramid: halved until the larger side fits one tile."""
    count, (height, width) = 1, shape
    while max(height, width) > tile:
        height, width = -(-height // 2), -(-width // 2)
        count += 1
    return count


def halve_band(band: np.ndarray) -> np.ndarray:
    """2 x 2 means of a band (h, W, C) with even h (the last odd column repeated), rounded to the dtype."""
    if band.shape[1] % 2:
        band = np.concatenate([band, band[:, -1:]], axis=1)
    if band.shape[0] % 2:
        band = np.concatenate([band, band[-1:]], axis=0)
    total = band.astype(np.uint32 if band.dtype.kind in "ui" else np.float64)
    total = total[0::2, 0::2] + total[1::2, 0::2] + total[0::2, 1::2] + total[1::2, 1::2]
    if band.dtype.kind in "ui":
        return ((total + 2) // 4).astype(band.dtype)
    return (total / 4).astype(band.dtype)


def make_levels(level0, folder: Path, count: int, open_array) -> list:
    """Levels 1..count-1 as arrays in ``folder`` (``open_array(path, shape, chunks, dtype, create)``), band by band."""
    levels = [level0]
    for n in range(1, count):
        source = levels[-1]
        height, width, channels = source.shape
        shape = (-(-height // 2), -(-width // 2), channels)
        target = open_array(
            folder / f"level{n}.zarr", shape, (min(BAND, shape[0]), min(BAND * 4, shape[1]), channels), source.dtype, True
        )
        for r in range(0, height, 2 * BAND):
            target[r // 2 : r // 2 + -(-min(2 * BAND, height - r) // 2)] = halve_band(np.asarray(source[r : r + 2 * BAND]))
        levels.append(target)
    return levels


def tiles_of(array, tile: int = TIFF_TILE):
    """The tiles of ``array`` (H, W, C) in row-major order, edge tiles padded with zeros (as TIFF stores them)."""
    height, width, channels = array.shape
    for r in range(0, height, tile):
        band = np.asarray(array[r : r + tile])
        for c in range(0, width, tile):
            block = band[:, c : c + tile]
            if block.shape[:2] != (tile, tile):
                padded = np.zeros((tile, tile, channels), dtype=block.dtype)
                padded[: block.shape[0], : block.shape[1]] = block
                block = padded
            yield block


def write_pyramid_tiff(path: Path, levels: list, settings: dict | None = None, compression: str | None = "zlib") -> Path:
    """A BigTIFF at ``path`` (atomically: a temporary file, then renamed) with ``levels`` (full size first)
    as the main image and its SubIFDs, tiled TIFF_TILE x TIFF_TILE; ``settings`` in its ImageDescription."""
    tifffile = require("tifffile", "cluster", "pyramidal TIFF outputs")
    channels = levels[0].shape[2]
    photometric = "rgb" if channels >= 3 else "minisblack"
    extrasamples = ("unassalpha",) if channels in (2, 4) else None
    description = json.dumps({"sinfree": settings or {}}, sort_keys=True, default=str)
    options = {
        "tile": (TIFF_TILE, TIFF_TILE),
        "photometric": photometric,
        "compression": compression,
        "compressionargs": {"level": 1} if compression == "zlib" else None,
        "extrasamples": extrasamples,
        "metadata": None,
    }
    with atomic_output(path) as temporary, tifffile.TiffWriter(temporary, bigtiff=True) as tiff:
        first = levels[0]
        tiff.write(
            tiles_of(first), shape=first.shape, dtype=first.dtype, subifds=len(levels) - 1, description=description, **options
        )
        for level in levels[1:]:
            tiff.write(tiles_of(level), shape=level.shape, dtype=level.dtype, subfiletype=1, **options)
    return path


def write_preview(path: Path, levels: list, side: int = PREVIEW_SIDE) -> Path:
    """A JPEG of the first level whose larger side is at most ``side`` px (atomically)."""
    from PIL import Image

    level = next((level for level in levels if max(level.shape[:2]) <= side), levels[-1])
    pixels = np.asarray(level[:])
    if pixels.dtype == np.uint16:
        pixels = (pixels // 257).astype(np.uint8)
    if pixels.shape[2] in (2, 4):
        pixels = pixels[:, :, :-1]
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    with atomic_output(path) as temporary:
        image.save(temporary, format="JPEG", quality=90)
    return path
