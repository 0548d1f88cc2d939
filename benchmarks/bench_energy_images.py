"""The fold window and energy rectification at 1024^2 over the 15 benchmark images (issue 7, item 2).

    python benchmarks/bench_energy_images.py [--images aqueduct balloons ...] [--size 1024] [--rhos 0.2 0.1]
                                             [--rectify 0.5] [--seeds 1]

For every image of ../shared/benchmarks/sinddm15 (or those named by ``--images``, file stems) and every fold-window width rho: ``bench_energy.run`` at the
input's size, at ``--size``^2 plain and at ``--size``^2 rectified (latent pca, automatic scales), printing the
HF energy ratios (latent, decoded pixels), patch SWD, nearest-patch distance and copying rate per row, then the
means over the images per configuration. Whether a narrower window (rho 0.1) should be the default for large
outputs is what this answers.
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_energy import BENCHMARK_DIR, run

FIGURES = ("latent_hf", "pixel_hf", "swd", "nn", "copy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", help="file stems (default: all 15)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.2, 0.1])
    parser.add_argument("--rectify", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    images = sorted(BENCHMARK_DIR.glob("*.png")) if not args.images else [BENCHMARK_DIR / f"{stem}.png" for stem in args.images]
    configs = [(rho, size, rectify) for rho in args.rhos for size, rectify in
               [(None, None), ((args.size, args.size), None), ((args.size, args.size), args.rectify)]]  # fmt: skip

    def label(rho, size, rectify):
        return f"rho {rho} {'input' if size is None else f'{size[0]}^2'} {'rectified' if rectify else 'plain'}"

    print(f"{len(images)} images, latent pca, {args.seeds} seed(s); columns: " + " ".join(FIGURES), flush=True)
    table: dict[tuple, list[list[float]]] = {config: [] for config in configs}
    for image in images:
        for config in configs:
            found = run(image, config[1], config[2], args.seeds, "pca", config[0])
            table[config].append([found[f] for f in FIGURES])
            print(f"  {image.stem:16s} {label(*config):28s} " + " ".join(f"{found[f]:.4f}" for f in FIGURES), flush=True)
    print(f"\nmeans over {len(images)} images        " + " ".join(f"{f:>9s}" for f in FIGURES))
    for config, rows in table.items():
        print(f"  {label(*config):33s} " + " ".join(f"{v:9.4f}" for v in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
