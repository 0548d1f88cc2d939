"""Energy of xhat0 at large outputs, with and without energy rectification: docs/large-outputs.md,
"Energy rectification" (its table and figure).

    python benchmarks/bench_energy.py --sizes 1024 --seeds 1
    python benchmarks/publish.py          # writes the table into docs/large-outputs.md

For each output size (square, latent pca unless --latent, automatic scales) and rectification off / on: samples of
seeds 0..N-1 of ``--image`` (from ``benchmarks/sinddm15``), an ``EnergyTrace`` of xhat0 per scale and step, and
against the reference: the final HF energy ratio of the latent (to the reference latent's level 0) and of the
decoded pixels, the multi-scale patch sliced Wasserstein distance, the median nearest-patch distance and the
copying rate (all on the central 1024^2 crop of larger outputs). A run at the input's own size is the baseline.
Writes benchmarks/results/energy{TAG}.txt and .json (with the stamp) and docs/img/results/energy_vs_step{TAG}.png
(HF ratio against step, per scale).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import stamp
import torch

from sinfree.coarse_to_fine import reference_levels
from sinfree.energy import EnergyTrace, energy_ratio, flow_schedule_sigmas
from sinfree.generation import generate_samples
from sinfree.io.images import load_image
from sinfree.metrics import copying_rate, nearest_patch_distance, sliced_wasserstein
from sinfree.settings import preset_settings

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = Path(os.environ.get("SINFREE_BENCHMARK_DIR") or HERE / "sinddm15")
RESULTS = HERE / "results" / "energy.txt"
PLOT = HERE.parent / "docs" / "img" / "results" / "energy_vs_step.png"
METRIC_CROP_SIDE = 1024


def to_tensor(sample) -> torch.Tensor:
    return torch.from_numpy(sample).permute(2, 0, 1).float() / 127.5 - 1


def centre_crop(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[..., top : top + side, left : left + side]


def run(image: Path, size, rectify, seeds: int, latent: str, rho: float = 0.2) -> dict:
    """One configuration: samples, trace and metrics (means over seeds)."""
    settings = preset_settings("paper", num_scales="auto", latent=latent, rectify=rectify, rho=rho)
    reference, _ = load_image(image)
    trace = EnergyTrace(reference_levels(image, settings, size=size), flow_schedule_sigmas(settings))
    started = time.perf_counter()
    result = generate_samples(image, settings, num_samples=seeds, size=size, progress=trace)
    seconds = time.perf_counter() - started
    # patch metrics on the central 1024^2 crop: all 7 x 7 patches of a 4096^2 output would take ~10 GB
    samples = [centre_crop(to_tensor(s), METRIC_CROP_SIDE) for s in result.samples]

    def mean(values):
        return sum(values) / len(values)

    return {
        "trace": trace,
        "seconds": seconds,
        "latent_hf": trace.final_ratio(0),
        "pixel_hf": mean([energy_ratio(s, reference) for s in samples]),
        "swd": mean([sliced_wasserstein(s, reference) for s in samples]),
        "nn": mean([nearest_patch_distance(s, reference, max_queries=20000) for s in samples]),
        "copy": mean([copying_rate(s, reference) for s in samples]),
        "scales": result.settings["num_scales"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="balloons.png")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rectify", type=float, default=0.5)
    parser.add_argument("--latent", default="pca", help='"none" for pixel space')
    parser.add_argument("--rho", type=float, default=0.2, help="the Gaussian fold window's width (Algorithm 1)")
    parser.add_argument("--tag", default="", help="suffix of the results and plot file names")
    args = parser.parse_args()
    measured = stamp.measure()
    image = BENCHMARK_DIR / args.image
    latent = None if args.latent == "none" else args.latent
    results, figure = (path.with_stem(path.stem + args.tag) for path in (RESULTS, PLOT))

    configs = [(None, None)] + [((side, side), rectify) for side in args.sizes for rectify in (None, args.rectify)]
    lines = [
        f"# {args.image}, latent {args.latent}, automatic scales, {args.seeds} seed(s), rectify gamma {args.rectify}, rho {args.rho}",
        "# HF ratio: high-frequency energy (mean square of image - U(D(image)), D a halving) over the reference's;",
        "# latent: xhat0 at the last step vs the reference latent; pixel: decoded output vs the reference image.",
        "# pixel HF, SWD (patch sliced Wasserstein), NN (median nearest-patch distance), copy (copying rate): central 1024^2 crop.",
        f"{'output':>10} {'rectify':>7} {'S':>2} {'HF lat':>7} {'HF pix':>7} {'SWD':>7} {'NN':>7} {'copy':>6} {'s/run':>7}",
    ]
    print("\n".join(lines), flush=True)
    runs = {}
    for size, rectify in configs:
        found = run(image, size, rectify, args.seeds, latent, args.rho)
        runs[(size, rectify)] = found
        label = "input" if size is None else f"{size[0]}^2"
        line = (
            f"{label:>10} {'off' if rectify is None else rectify:>7} {found['scales']:>2} {found['latent_hf']:7.3f} "
            f"{found['pixel_hf']:7.3f} {found['swd']:7.4f} {found['nn']:7.4f} {found['copy']:6.3f} {found['seconds']:7.1f}"
        )
        lines.append(line)
        print(line, flush=True)
    lines += ["", "# HF ratio of xhat0 (latent) against step, scale 0, mean over seeds (t = T .. 1):"]
    for (size, rectify), found in runs.items():
        _, ratios = found["trace"].curve(0)
        label = "input" if size is None else f"{size[0]}^2 rectify {'off' if rectify is None else rectify}"
        lines.append(f"{label:>22}: " + " ".join(f"{r:.3f}" for r in ratios))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n")
    keys = ("seconds", "latent_hf", "pixel_hf", "swd", "nn", "copy", "scales")
    entries = [
        {"size": None if size is None else size[0], "rectify": rectify} | {key: found[key] for key in keys}
        for (size, rectify), found in runs.items()
    ]
    settings = {"image": args.image, "latent": args.latent, "seeds": args.seeds, "rho": args.rho}
    payload = {"stamp": measured, "settings": settings, "entries": entries}
    results.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    plot(runs, figure)
    print(f"wrote {results} and {figure}")


def plot(runs: dict, path: Path) -> None:
    """HF ratio of xhat0 against step, one panel per scale, a line per configuration."""
    num_scales = max(found["scales"] for found in runs.values())
    figure, axes = plt.subplots(1, num_scales, figsize=(5 * num_scales, 4), squeeze=False)
    for (size, rectify), found in runs.items():
        label = "input size" if size is None else f"{size[0]}$^2$ " + ("plain" if rectify is None else f"rectified ({rectify})")
        style = "-" if rectify is None else "--"
        for scale in range(found["scales"]):
            steps, ratios = found["trace"].curve(scale)
            axes[0, num_scales - 1 - scale].plot(steps, ratios, style, marker="o", markersize=3, label=label)
    for index, axis in enumerate(axes[0]):
        axis.set_title(f"scale {num_scales - 1 - index} ({'coarsest' if index == 0 else 'finer'})")
        axis.set_xlabel("step t (sampling runs T -> 1)")
        axis.invert_xaxis()
        axis.axhline(1.0, color="gray", linewidth=0.5)
        axis.set_ylabel("HF energy of xhat0 / reference's")
    axes[0, -1].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
