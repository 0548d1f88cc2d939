"""Side-by-side pictures: the input and its samples in one labelled image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

LABEL_HEIGHT = 14
GAP = 4


def to_display_rgb(array: np.ndarray) -> Image.Image:
    """Any sinfree pixel array (gray/RGB/RGBA; uint8, uint16 or float in [0, 1]) as 8-bit RGB."""
    if np.issubdtype(array.dtype, np.integer):
        unit = array.astype(np.float64) / np.iinfo(array.dtype).max
    else:
        unit = np.clip(array.astype(np.float64), 0.0, 1.0)
    if unit.ndim == 2:
        unit = unit[:, :, None]
    if unit.shape[2] in (2, 4):  # drop alpha for display
        unit = unit[:, :, :-1]
    rgb = np.repeat(unit, 3, axis=2) if unit.shape[2] == 1 else unit
    return Image.fromarray(np.rint(rgb * 255).astype(np.uint8))


def contact_sheet(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """One row of images, each over its label, scaled to the tallest image's height; uint8 RGB."""
    tiles = [to_display_rgb(image) for image in images]
    height = max(tile.height for tile in tiles)
    tiles = [
        tile.resize((round(tile.width * height / tile.height), height), Image.LANCZOS) if tile.height != height else tile
        for tile in tiles
    ]
    width = sum(tile.width for tile in tiles) + GAP * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, height + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for tile, label in zip(tiles, labels):
        sheet.paste(tile, (x, LABEL_HEIGHT))
        draw.text((x + 2, 1), label, fill="black")
        x += tile.width + GAP
    return np.asarray(sheet)
