"""A quick study of the composition levers: 10 photos x 3 seeds per configuration, a few minutes each.

    python benchmarks/sweep_composition.py [--configs NAME ...] [--seeds 3] [--list]

The images: six of the paper's 15 (balloons, mountains, seascape, pyramids, aurora, marinabaysands;
``$SINFREE_BENCHMARK_DIR`` or ``../shared/benchmarks/sinddm15``) and four photos nobody chose for
the method (scikit-image's astronaut, coffee, chelsea and rocket, long side 250 px). Per
configuration it prints the means over images of: the patch SWD, the layout figure (row and column
profile distances, ``sinfree.metrics.layout``), the copied-crop rate, pixel and LPIPS diversity, and
the seconds per sample. ``bench_composition.py`` is the full protocol (15 images x 10 samples,
SIFID and the seam figure too); this one is for choosing what to run there.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import skimage.data
import torch
from PIL import Image

from sinfree import generate_samples, preset_settings
from sinfree.evaluation.evaluate import default_benchmark_dir
from sinfree.io.images import load_image
from sinfree.metrics import copying_rate, layout_distance, lpips_diversity, pixel_diversity, sliced_wasserstein

BENCHMARK_IMAGES = ("balloons", "mountains", "seascape", "pyramids", "aurora", "marinabaysands")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
PAPER = preset_settings("paper")
AUTO_2P = {"num_scales": None}  # S from the sizes, coarsest short side >= 2 P
R = dataclasses.replace
CONFIGS = {
    "paper": PAPER,
    "default": preset_settings(),
    "paper+auto_scales": R(PAPER, **AUTO_2P),
    "variation0.9": R(PAPER, variation=0.9, **AUTO_2P),
    "variation0.9+S4": R(PAPER, variation=0.9),  # the same at the paper's S = 4 (coarsest mostly 1.5 P)
    "variation0.9+coarsest3P": R(PAPER, variation=0.9, num_scales=None, min_coarsest_side=45),
    "variation0.85": R(PAPER, variation=0.85, **AUTO_2P),
    "variation0.8": R(PAPER, variation=0.8, **AUTO_2P),
    "variation0.8+start_blur4": R(PAPER, variation=0.8, start_blur=4.0, **AUTO_2P),
    "variation0.85+completeness": R(PAPER, variation=0.85, completeness=1.0, **AUTO_2P),
    "completeness": R(PAPER, completeness=1.0),
    "guidance1": R(PAPER, layout_guidance=1.0, **AUTO_2P),
    "guidance0.8": R(PAPER, layout_guidance=0.8, **AUTO_2P),
    "guidance0.5": R(PAPER, layout_guidance=0.5, **AUTO_2P),
    "guidance1+coarsest3P": R(PAPER, layout_guidance=1.0, num_scales=None, min_coarsest_side=45),
    "rho_inf": R(PAPER, rho=math.inf),
    "eta1": R(PAPER, eta=1.0),
}


def images() -> list[tuple[str, np.ndarray]]:
    folder = default_benchmark_dir()
    if folder is None:
        raise SystemExit("the paper's images are not found: set $SINFREE_BENCHMARK_DIR")
    found = [(name, np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))) for name in BENCHMARK_IMAGES]
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)())
        scale = 250 / max(photo.size)
        found.append(
            (name, np.asarray(photo.resize((round(photo.size[0] * scale), round(photo.size[1] * scale)), Image.LANCZOS)))
        )
    return found


def figures(settings, inputs: list[tuple[str, np.ndarray]], seeds: int) -> dict[str, float]:
    rows = []
    for _, array in inputs:
        reference = load_image(array)[0]
        started = time.perf_counter()
        result = generate_samples(array, settings, num_samples=seeds, seed=0)
        seconds = (time.perf_counter() - started) / seeds
        samples = [load_image(sample)[0] for sample in result.samples]
        rows.append(
            {
                "swd": np.mean([sliced_wasserstein(s, reference) for s in samples]),
                "layout": np.mean([layout_distance(s, reference) for s in samples]),
                "copying": np.nanmean([copying_rate(s, reference) for s in samples]),
                "pixel_div": pixel_diversity(samples, reference),
                "lpips_div": lpips_diversity(samples),
                "s/sample": seconds,
            }
        )
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=["paper", "default"], choices=list(CONFIGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    args = parser.parse_args()
    if args.list:
        for name, settings in CONFIGS.items():
            print(name, settings)
        return
    inputs = images()
    generate_samples(inputs[0][1], preset_settings(steps=2), seed=0)  # compile the kernels before timing
    print(f"{len(inputs)} images x {args.seeds} seeds, {torch.get_num_threads()} threads; ratios to the first configuration")
    first = None
    for name in args.configs:
        means = figures(CONFIGS[name], inputs, args.seeds)
        first = first or means
        print(f"{name:28s} " + "  ".join(f"{k} {v:.4f} ({v / first[k]:.2f})" for k, v in means.items()), flush=True)


if __name__ == "__main__":
    main()
