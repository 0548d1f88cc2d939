"""Reconstruction PSNR of the per-image PCA latent codec (sinfree.latent.PCACodec) on the benchmark images.

    python benchmarks/bench_latent_codec.py [FOLDER] [--components 16] [--blocks 4 8]

For every image of FOLDER (default ../shared/benchmarks/sinddm15): the codec fitted to the image,
then decode(encode(image)) against the image, PSNR in dB on [0, 1] pixels (colour channels only:
an alpha channel is left out of the mean), and the share of the blocks' variance the kept
components hold. Prints the table and writes it to benchmarks/results_latent_codec.txt.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from sinfree.io.images import load_image
from sinfree.latent import PCACodec

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = HERE.parents[1] / "shared" / "benchmarks" / "sinddm15"
RESULTS = HERE / "results_latent_codec.txt"


def psnr(image: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """PSNR in dB of [-1, 1] images on the [0, 1] scale, colour channels only (an alpha channel dropped)."""
    colour = slice(0, 3) if image.shape[0] == 4 else slice(0, 1) if image.shape[0] == 2 else slice(None)
    mse = ((image[colour].double() - reconstruction[colour].double()) / 2).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def measure(image: torch.Tensor, block: int, components: int) -> tuple[float, float]:
    """(PSNR, explained variance) of one codec on one image."""
    codec = PCACodec(block=block, components=components).fit(image)
    reconstruction = codec.decode_to(codec.encode(image), tuple(image.shape[-2:]))
    return psnr(image, reconstruction), codec.explained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=BENCHMARK_DIR)
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--blocks", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()
    files = sorted(path for path in args.folder.iterdir() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    if not files:
        raise SystemExit(f"no images in {args.folder}")
    header = "| image | size | " + " | ".join(f"k = {k}: PSNR dB (variance kept) | latent" for k in args.blocks) + " |"
    lines = [
        (
            f"PCA codec, {args.components} components, reconstruction of each image by the codec fitted to it "
            f"(python benchmarks/bench_latent_codec.py {args.folder} --components {args.components})"
        ),
        "",
        header,
        "|" + "---|" * (2 + 2 * len(args.blocks)),
    ]
    totals = {k: [] for k in args.blocks}
    for path in files:
        image, _ = load_image(path)
        cells = []
        for k in args.blocks:
            value, explained = measure(image, k, args.components)
            totals[k].append(value)
            height, width = -(-image.shape[1] // k), -(-image.shape[2] // k)
            cells.append(f"{value:.2f} ({100 * explained:.1f} %) | {width}x{height}")
        lines.append(f"| {path.stem} | {image.shape[2]}x{image.shape[1]} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    means = [cell for values in totals.values() for cell in (f"{sum(values) / len(values):.2f}", "")]
    lines.append(f"| mean of {len(files)} | | " + " | ".join(means) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
