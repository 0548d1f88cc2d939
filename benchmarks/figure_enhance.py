"""The figure of docs/enhancement.md: clean | degraded | best baseline | ours, for five cases of the benchmark.

    python benchmarks/figure_enhance.py [--out docs/img/results/enhance_examples.png] [--crop 128]

One row per case (an image of ``bench_enhance.py`` under one of its degradations, made by its ``run_row``
with the same seed, so the pictures are the benchmark's), each panel titled with its PSNR / SSIM against
the clean crop. Gray values are shown on the clean crop's range (values outside it saturate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from bench_enhance import BASELINES, ROWS, load_images, run_row, score

HERE = Path(__file__).resolve().parent
CASES = (
    ("CT_small", "gauss25"),
    ("MR_small", "rician0.05"),
    ("camera", "blur1.5"),
    ("shepp_logan_phantom", "sr_x4"),
    ("immunohistochemistry", "missing30"),
)
LABELS = {
    "nlm": "non-local means",
    "tv": "TV",
    "bm3d": "BM3D",
    "rl": "Richardson-Lucy",
    "bicubic": "bicubic",
    "biharmonic": "biharmonic",
}


def best_baseline(clean: np.ndarray, restored: dict) -> str:
    """The baseline with the highest PSNR on this image."""
    return max((m for m in BASELINES if m in restored), key=lambda m: score(clean, restored[m][0])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "results" / "enhance_examples.png")
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args()
    images = load_images(args.crop)
    figure, axes = plt.subplots(len(CASES), 4, figsize=(10, 2.6 * len(CASES)), squeeze=False)
    for line, (name, row) in zip(axes, CASES):
        clean = images[name]
        restored = run_row(clean, row, seed=1000 * list(images).index(name) + ROWS.index(row))  # bench_enhance's seed
        baseline = best_baseline(clean, restored)
        panels = [
            ("clean", clean),
            (f"{row}", restored["input"][0]),
            (LABELS[baseline], restored[baseline][0]),
            ("ours (two-stage)", restored["ours"][0]),
        ]
        for axis, (title, image) in zip(line, panels):
            if title != "clean":
                psnr, ssim = score(clean, image)
                title = f"{title}\n{psnr:.2f} dB / {ssim:.3f}"
            axis.imshow(image, cmap="gray", vmin=clean.min(), vmax=clean.max(), interpolation="nearest")
            axis.set_title(title, fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        line[0].set_ylabel(name, fontsize=9)
        print(f"{name} {row}: done", flush=True)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=90)
    temporary.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
