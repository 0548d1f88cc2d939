"""Where a large latent output loses its fine detail: energy of xhat0 per latent channel (issue 7, item 2).

    python benchmarks/energy_channels.py [--image balloons.png] [--size 1024] [--rho 0.1] [--rectify 0.5] [--seed 0]

Latent ``pca`` (8 x 8 blocks, 16 channels: channel 0 the blocks' mean tone, higher channels finer texture inside
a block), automatic scales. For a run at the input's size, one at ``--size``^2 and one at ``--size``^2 with
``--rectify``: per channel, the mean square (MS) and the HF energy of the last step's xhat0 at the finest scale
over the reference latent's, with the reference's share of the latent's variance per channel beside. First, the
pixel HF energy that each PCA codec's own reconstruction of the image keeps (the ceiling of any decoded sample).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sinfree.coarse_to_fine import reference_levels
from sinfree.energy import energy_ratio, high_frequency_energy, mean_square
from sinfree.generation import generate_samples
from sinfree.io.images import load_image
from sinfree.latent import PCACodec
from sinfree.settings import GenerationSettings, preset_settings

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15"


def last_latent(image: Path, settings: GenerationSettings, size, seed: int):
    """xhat0 of the last step at the finest scale, and the reference latent it is compared with."""
    caught = {}

    def catch(progress):
        if progress.scale == 0 and progress.xhat0 is not None:
            caught["xhat0"] = progress.xhat0.clone()

    generate_samples(image, settings, num_samples=1, seed=seed, size=size, progress=catch)
    return caught["xhat0"], reference_levels(image, settings, size=size)[0]


def codec_pixel_hf(image: Path, block: int) -> float:
    """HF energy of the PCA codec's reconstruction of ``image`` (fitted to it) over the image's."""
    reference, _ = load_image(image)
    codec = PCACodec(block).fit(reference)
    decoded = codec.decode(codec.encode(reference))[..., : reference.shape[-2], : reference.shape[-1]]
    return energy_ratio(decoded, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="balloons.png")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rho", type=float, default=0.1)
    parser.add_argument("--rectify", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    image = BENCHMARK_DIR / args.image
    runs = {
        "input size": (None, None),
        f"{args.size}^2": ((args.size, args.size), None),
        f"{args.size}^2 rectify {args.rectify}": ((args.size, args.size), args.rectify),
    }
    ceilings = ", ".join(f"pca:{block} {codec_pixel_hf(image, block):.3f}" for block in (8, 4))
    print(f"{args.image}: pixel HF energy kept by the codec's own reconstruction: {ceilings}")
    print(f"{args.image}, latent pca, rho {args.rho}, seed {args.seed}: ratios to the reference latent per channel")
    share_printed = False
    for name, (size, rectify) in runs.items():
        settings = preset_settings("paper", latent="pca", num_scales="auto", rho=args.rho, rectify=rectify)
        xhat0, reference = last_latent(image, settings, size, args.seed)
        if not share_printed:
            variance = reference.double().var(dim=(-2, -1)).numpy()
            print(f"  {'variance share':24s} " + " ".join(f"{v:5.3f}" for v in variance / variance.sum()))
            share_printed = True
        for label, energy in (("MS", mean_square), ("HF", high_frequency_energy)):
            ratio = (energy(xhat0) / energy(reference)).numpy()
            print(
                f"  {name + ' ' + label:24s} "
                + " ".join(f"{r:5.2f}" for r in ratio)
                + f"   mean of 3..15: {np.mean(ratio[3:]):.2f}"
            )


if __name__ == "__main__":
    main()
