"""Make every picture of README.md and of the documentation's application pages, by running the commands
they show on the examples of the repository (``python scripts/make_figures.py``, from the repository root;
about five minutes on 2 CPU cores). Each application writes into ``docs/img/<application>/``."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMG = Path("docs/img")

# (folder, the command as README.md shows it, with -o FOLDER added here)
COMMANDS = [
    ("generate", "sinfree generate examples/balloons.png -n 3 --sheet"),
    ("retarget", "sinfree retarget examples/balloons.png --size 400x186 --sheet"),
    ("symmetric", "sinfree symmetric examples/balloons.png -n 2 --sheet"),
    ("tile", "sinfree tile examples/starry_night.png --preview"),
    ("analogy", "sinfree analogy examples/balloons_small.png examples/starry_night.png -n 2 --sheet"),
    ("inpaint", "sinfree inpaint examples/balloons_small.png -m examples/balloons_small_mask.png --sheet"),
    ("harmonize", "sinfree harmonize examples/balloons_small_pasted.png -m examples/balloons_small_pasted_mask.png --sheet"),
    ("enhance", "sinfree enhance examples/camera_noisy.png"),
    ("enhance", "sinfree enhance examples/ct_small.dcm --task superres"),
]


def run(folder: str, command: str) -> None:
    args = shlex.split(command)
    args = [sys.executable, "-m", "sinfree", *args[1:], "-o", str(IMG / folder), "-q", "--overwrite"]
    print("$", command, f"-o {IMG / folder}", flush=True)
    subprocess.run(args, cwd=ROOT, check=True)


def enhance_sheet() -> None:
    """The noisy input beside its restoration, and the clean original (the noise was added to it)."""
    from sinfree.contact_sheet import contact_sheet
    from sinfree.io.images import read_image_file, save_png

    noisy = read_image_file(ROOT / "examples/camera_noisy.png")
    restored = read_image_file(ROOT / IMG / "enhance/camera_noisy_denoise.png")
    clean = read_image_file(ROOT / "examples/camera.png")
    sheet = contact_sheet([noisy, restored, clean], ["noisy (sigma 20)", "sinfree enhance", "clean"])
    save_png(sheet, ROOT / IMG / "enhance/camera_sheet.png")


def dicom_sheet() -> None:
    """The CT slice and its 2x super-resolution, both windowed to the same range for display."""
    import torch

    from sinfree.contact_sheet import contact_sheet
    from sinfree.io.images import save_png
    from sinfree.io.scans import read_scan

    source = read_scan(ROOT / "examples/ct_small.dcm").data.astype(np.float64)
    result = read_scan(ROOT / IMG / "enhance/ct_small_superres.dcm").data.astype(np.float64)
    low, high = np.percentile(source, [1, 99])
    window = lambda x: (np.clip((x - low) / (high - low), 0, 1) * 255).astype(np.uint8)  # noqa: E731
    nearest = torch.nn.functional.interpolate(torch.tensor(source)[None, None], scale_factor=2, mode="nearest")[0, 0].numpy()
    save_png(
        contact_sheet([window(nearest), window(result)], ["input (pixels doubled)", "superres x2"]),
        ROOT / IMG / "enhance/ct_small_sheet.png",
    )


def main() -> None:
    for folder, command in COMMANDS:
        run(folder, command)
    enhance_sheet()
    dicom_sheet()


if __name__ == "__main__":
    main()
