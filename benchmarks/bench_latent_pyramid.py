"""Latent generation: the pyramid built in latent space against each pixel level encoded, on the benchmark images.

    python benchmarks/bench_latent_pyramid.py [FOLDER] [--seeds 3] [--blocks 4 8]

Both run the same sampler on the same latent canvases (PCA codec fitted to the full-size image,
P = 7, Table-1 settings otherwise, exact backend); only the reference's coarser levels differ:
``latent`` = the antialiased pyramid of the encoded image (what ``generate`` does), ``encoded`` =
each level of the pixel pyramid encoded. Decoded samples are scored against the image in pixel
space: multi-scale sliced Wasserstein distance of 7 x 7 patches (SWD, lower is closer), mean
nearest-reference-patch distance (NN), pixel diversity across seeds. The cached exact pixel-space
samples (benchmarks/cache/exact, P = 15) are scored as a baseline where present.
Writes benchmarks/results_latent_pyramid.txt.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from sinfree import preset_settings
from sinfree.coarse_to_fine import sample_coarse_to_fine
from sinfree.io.images import load_image
from sinfree.latent import PCACodec
from sinfree.metrics.patch_statistics import nearest_patch_distance, pixel_diversity, sliced_wasserstein
from sinfree.pyramid import build_pyramid

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = HERE.parents[1] / "shared" / "benchmarks" / "sinddm15"
RESULTS = HERE / "results_latent_pyramid.txt"
SCALES = {4: 3, 8: 2}  # the most scales whose coarsest latent level holds a 7 x 7 patch on every image


def latent_samples(reference: torch.Tensor, block: int, mode: str, seeds: int) -> list[torch.Tensor]:
    """Decoded samples (seeds 0..seeds-1) of one image with the reference pyramid built as ``mode`` says."""
    codec = PCACodec(block=block).fit(reference)
    latent, num_scales = codec.encode(reference), SCALES[block]
    if mode == "latent":
        pyramid = build_pyramid(latent, num_scales)
    else:
        pyramid = [codec.encode(level) for level in build_pyramid(reference, num_scales)]
    settings = preset_settings("paper", latent=codec, num_scales=num_scales, backend="exact")
    shape = tuple(reference.shape[-2:])
    latents, _ = sample_coarse_to_fine(latent, codec.latent_shape(shape), settings, num_scales, seeds, 0, pyramid=pyramid)
    return [codec.decode_to(z, shape).clamp(-1, 1) for z in latents]


def scores(samples: list[torch.Tensor], reference: torch.Tensor) -> tuple[float, float, float]:
    swd = statistics.mean(sliced_wasserstein(s, reference) for s in samples)
    nn = statistics.mean(nearest_patch_distance(s, reference, max_queries=4096) for s in samples)
    return swd, nn, pixel_diversity(samples, reference)


def cached_pixel_samples(name: str, seeds: int) -> list[torch.Tensor]:
    files = [HERE / "cache" / "exact" / name / f"seed{seed}.npy" for seed in range(seeds)]
    return [load_image(np.load(file))[0] for file in files if file.exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=BENCHMARK_DIR)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--blocks", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()
    files = sorted(path for path in args.folder.iterdir() if path.suffix.lower() == ".png")
    runs = [(f"pca:{k} {mode}", k, mode) for k in args.blocks for mode in ("latent", "encoded")]
    table = {label: [] for label, _, _ in runs} | {"pixels (cached exact, P = 15)": []}
    per_image = []
    for path in files:
        reference, _ = load_image(path)
        for label, block, mode in runs:
            table[label].append(scores(latent_samples(reference, block, mode, args.seeds), reference))
            per_image.append(
                f"{path.stem} {label}: SWD {table[label][-1][0]:.4f} NN {table[label][-1][1]:.4f} div {table[label][-1][2]:.3f}"
            )
            print(per_image[-1], flush=True)
        cached = cached_pixel_samples(path.stem, args.seeds)
        if len(cached) >= 2:
            table["pixels (cached exact, P = 15)"].append(scores(cached, reference))
    lines = [
        (
            f"Latent pyramid vs encoded pixel levels, {len(files)} images x {args.seeds} seeds, mean over images "
            f"(python benchmarks/bench_latent_pyramid.py {args.folder} --seeds {args.seeds})"
        ),
        "",
        "| run | images | SWD | NN distance | pixel diversity |",
        "|---|---|---|---|---|",
    ]
    for label, rows in table.items():
        if rows:
            swd, nn, div = (statistics.mean(column) for column in zip(*rows))
            lines.append(f"| {label} | {len(rows)} | {swd:.4f} | {nn:.4f} | {div:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text + "\nper image:\n" + "\n".join(per_image) + "\n")


if __name__ == "__main__":
    main()
