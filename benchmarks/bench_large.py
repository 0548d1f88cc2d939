"""Large outputs, 256^2 .. 8192^2: pixel fast path against the latent path, seconds per sample and peak
memory: docs/large-outputs.md, "Pixels or latent".

    python benchmarks/bench_large.py --sides 1024 4096 8192 --configs auto pca --budget 150
    python benchmarks/publish.py          # writes the table into docs/large-outputs.md

Rows: square inputs of each side (scikit-image's astronaut, 512^2, or ``--image``, resized with PIL
bicubic to the side) generating an output of the same size, T = 10, one sample, seed 0. Columns:

- ``auto``: the pixel fast path, ``generate(image, backend="auto")`` (P = 15, S = 4, Table 1);
- ``pca`` / ``pca:4``: the latent path, ``generate(image, latent="pca", num_scales=None)`` (8 x 8
  or 4 x 4 blocks, 16 channels, latent patch 7, S automatic: coarsest latent side 1.5-2 x P).

Every entry runs in its own child process (``--child``), which first warms up on a tiny input (the
numba kernels of ``patchmatch`` and SDPA, both in pixel and latent space) and then times one sample.
Reported per entry: wall seconds and the process's CPU seconds (on shared cores the CPU time
is the steadier figure), the load average (``os.getloadavg()``, 1 min) before and after, the peak
resident memory of the run (the kernel's VmHWM, reset through /proc/self/clear_refs right before the
run, minus the resident memory then), the plan's estimate (``plan_run(...).peak_bytes``), the patch
sliced Wasserstein distance to the input (``sinfree.metrics.sliced_wasserstein`` on copies
downscaled to at most 512 px a side) and the high-frequency energy ratio (mean square of
``x - U(D(x))``, D the antialiased half, of the sample over the same of the input; 1 = as sharp).

An entry runs only when its time predicted from the same column's measured entries is within
``--budget`` seconds: the last measured time times the observed growth per doubling of the side
(the ratio of the last two measured entries, at least 4, the growth of the output's pixels; x4
with one entry). Predicted entries are marked ``~``. A child that runs past 1.5 x budget is stopped
and its entry reads ``>``. Writes ``--out``.txt and ``--out``.json (default ``benchmarks/results/large``), the
JSON with the stamp that ``publish.py`` prints under the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SIDES = [256, 512, 1024, 2048, 4096, 8192]
SWD_SIDE = 512


def config_settings(config: str) -> dict:
    """generate() keywords of a column."""
    if config == "auto":
        return {"backend": "auto", "preset": "paper"}
    if config.startswith("pca"):
        return {"latent": config, "num_scales": "auto", "preset": "paper"}
    raise ValueError(f"unknown configuration {config!r}: auto, pca or pca:K")


def square_input(side: int, image: str):
    import numpy as np
    import skimage.data
    from PIL import Image

    source = Image.fromarray(skimage.data.astronaut()) if image == "astronaut" else Image.open(image).convert("RGB")
    return np.asarray(source.resize((side, side), Image.BICUBIC))


def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def high_frequency_energy(image) -> float:
    """Mean square of ``x - U(D(x))``: what the next coarser level cannot hold."""
    from sinfree.sampler import high_pass

    coarse = (-(-image.shape[-2] // 2), -(-image.shape[-1] // 2))
    return high_pass(image, coarse).square().mean().item()


def downscaled(image, side: int = SWD_SIDE):
    from sinfree.resize import resize

    scale = side / max(image.shape[-2:])
    if scale >= 1:
        return image
    return resize(image, (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale))))


def warm_up() -> None:
    """Tiny runs through every path the timed run takes: pixel patchmatch and exact, latent patchmatch."""
    from sinfree import generate

    tiny = square_input(64, "astronaut")
    generate(tiny, backend="patchmatch", patch_size=7, num_scales=1, steps=2)
    generate(tiny, backend="exact", patch_size=7, num_scales=1, steps=2)
    generate(square_input(192, "astronaut"), latent="pca", backend="patchmatch", num_scales=1, steps=2)
    generate(square_input(192, "astronaut"), latent="pca:4", backend="patchmatch", num_scales=1, steps=2)


def child(side: int, config: str, image_name: str) -> dict:
    """One timed sample in this (fresh) process; returns the entry's figures."""
    import torch

    from sinfree import generate
    from sinfree.io.images import load_image
    from sinfree.metrics import sliced_wasserstein
    from sinfree.planning import plan_run
    from sinfree.settings import preset_settings

    warm_up()
    image = square_input(side, image_name)
    keywords = config_settings(config)
    settings = preset_settings(**keywords)
    plan = plan_run(3, (side, side), None, settings, 1)
    tracked = reset_peak_rss()
    rss_before = rss_bytes("VmRSS")
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    sample = generate(image, seed=0, **keywords)[0]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = os.getloadavg()[0]
    peak = rss_bytes("VmHWM") if tracked else 0
    reference, sample_tensor = load_image(image)[0], load_image(sample)[0]
    del image, sample
    return {
        "side": side,
        "config": config,
        "measured": True,
        "seconds": wall,
        "cpu_seconds": cpu,
        "load_before": load_before,
        "load_after": load_after,
        "threads": torch.get_num_threads(),
        "num_scales": plan.num_scales,
        "canvas": list(plan.canvas_shape),
        "peak_rss_increase_bytes": max(0, peak - rss_before) if tracked else None,
        "rss_before_bytes": rss_before,
        "estimated_peak_bytes": plan.peak_bytes,
        "swd": sliced_wasserstein(downscaled(sample_tensor), downscaled(reference)),
        "hf_energy_ratio": high_frequency_energy(sample_tensor) / high_frequency_energy(reference),
    }


def run_child(side: int, config: str, image_name: str, timeout: float) -> dict:
    command = [sys.executable, __file__, "--child", str(side), config, "--image", image_name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {
            "side": side,
            "config": config,
            "measured": False,
            "timed_out": True,
            "seconds": timeout,
            "load_after": os.getloadavg()[0],
        }
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"side": side, "config": config, "measured": False, "error": " | ".join(tail), "seconds": math.nan}
    return json.loads(lines[-1])


def predict(history: list[tuple[int, float]], side: int) -> float | None:
    """Seconds at ``side`` from a column's measured (side, seconds): the last time times the growth
    per doubling (last two entries' ratio per doubling, at least 4; 4 with one entry)."""
    if not history:
        return None
    growth = 4.0
    if len(history) >= 2:
        (s0, t0), (s1, t1) = history[-2], history[-1]
        growth = max(4.0, (t1 / t0) ** (1.0 / math.log2(s1 / s0)))
    last_side, last_time = history[-1]
    return last_time * growth ** math.log2(side / last_side)


def mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def cell(entry: dict) -> str:
    if entry.get("error"):
        return "error"
    if entry.get("timed_out"):
        return f">{entry['seconds']:.0f} s (stopped)"
    if not entry["measured"]:
        return f"~{entry['seconds']:.0f} s"
    return (
        f"{entry['seconds']:.2f} s (cpu {entry['cpu_seconds']:.1f}, load {entry['load_before']:.1f}); "
        f"{mib(entry['peak_rss_increase_bytes'])} MiB (est {mib(entry['estimated_peak_bytes'])}); "
        f"SWD {entry['swd']:.4f}, HF {entry['hf_energy_ratio']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=DEFAULT_SIDES)
    parser.add_argument("--configs", nargs="+", default=["auto", "pca", "pca:4"])
    parser.add_argument("--budget", type=float, default=600.0, help="longest run made, in seconds (predicted)")
    parser.add_argument("--image", default="astronaut", help="astronaut (scikit-image) or an image path")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "large", help="writes OUT.txt and OUT.json")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.image)), flush=True)
        return

    for config in args.configs:
        config_settings(config)
    import stamp

    run_stamp = stamp.measure()
    lines = [
        f"bench_large: input {args.image} resized (PIL bicubic) to each side, output the same size, T = 10, one sample, seed 0;",
        f"budget {args.budget:.0f} s per entry (predicted); {os.cpu_count()} CPUs; started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
        f"load {os.getloadavg()[0]:.1f}",
    ]
    print("\n".join(lines), flush=True)
    history: dict[str, list[tuple[int, float]]] = {config: [] for config in args.configs}
    chained: dict[str, tuple[int, float]] = {}
    table = []
    for side in sorted(args.sides):
        for config in args.configs:
            if config in chained:  # a predicted entry before: keep predicting from it
                last_side, last_time = chained[config]
                measured = history[config]
                growth = (
                    4.0
                    if len(measured) < 2
                    else max(4.0, (measured[-1][1] / measured[-2][1]) ** (1.0 / math.log2(measured[-1][0] / measured[-2][0])))
                )
                predicted = last_time * growth ** math.log2(side / last_side)
            else:
                predicted = predict(history[config], side)
            if predicted is not None and predicted > args.budget:
                entry = {"side": side, "config": config, "measured": False, "seconds": predicted}
                chained[config] = (side, predicted)
            else:
                entry = run_child(side, config, args.image, timeout=max(120.0, 1.5 * args.budget))
                entry["predicted_seconds"] = predicted
                if entry["measured"]:
                    history[config].append((side, entry["seconds"]))
                elif entry.get("timed_out"):
                    chained[config] = (side, entry["seconds"])
            table.append(entry)
            print(f"  {side:5d}^2 {config:6s} {cell(entry)}", flush=True)

    lines.append("")
    lines.append(
        "seconds per sample (wall; cpu = process CPU s; load = 1-min load average before); peak RSS increase (plan's estimate); "
        "SWD to the input (<= 512 px copies); HF = high-frequency energy ratio sample / input; ~ predicted"
    )
    for side in sorted(args.sides):
        for config in args.configs:
            entry = next(e for e in table if e["side"] == side and e["config"] == config)
            lines.append(f"{side}^2 -> {side}^2  {config:6s} {cell(entry)}")
    lines.append(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}, load {os.getloadavg()[0]:.1f}")
    text = "\n".join(lines) + "\n"
    print("\n" + "\n".join(lines[3:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"stamp": run_stamp, "entries": table}, indent=1))


if __name__ == "__main__":
    main()
