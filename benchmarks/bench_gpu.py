"""Seconds per sample and peak GPU memory of the paper's timing table (Table 1 of Qiu et al.) on a chosen device.

    python benchmarks/bench_gpu.py --device cuda                     # Table-1 setting, 256^2 .. 8192^2 where it fits
    python benchmarks/bench_gpu.py --device cuda cpu --budget 120    # the CPU beside the GPU, in one run
    python benchmarks/bench_gpu.py --device cpu --sides 256 --json /tmp/check.json   # a quick check without a GPU

Rows: the Table-1 setting on the 248 x 186 balloons image (``benchmarks/sinddm15``), then square inputs of each
``--sides`` (scikit-image's astronaut, resized with PIL bicubic) generating an output of the same size, with the
``paper`` preset (P = 15, S = 4, T = 10) and ``--backend`` (default ``auto``: exact on the cheap coarse scales, the
device's fast backend elsewhere: ``patchmatch`` on the CPU, ``ivf`` on CUDA). One column per ``--device``.

Each device first runs one small sample (CUDA context, kernels, the numba cache), then each row once, timed between
``torch.cuda.synchronize()`` calls; ``--repeats`` keeps the best of several. Each non-CPU device also gets a seed
check: the same seed's sample on it and on the CPU (exact backend, 96 x 96), their largest difference recorded.
On CUDA the peak is ``torch.cuda.max_memory_allocated`` over the sample, reset before it. A row is skipped (``~``, predicted) when the
last measured time scaled by the pixel count exceeds ``--budget`` seconds, and recorded as refused when sinfree's
memory planning refuses it (the estimate above the free GPU memory) or CUDA runs out of memory: larger rows are
then not tried on that device.

Writes ``--json`` (default ``benchmarks/results/gpu_timing.json``) with the stamp of ``stamp.py`` and, per device,
the card's name, CUDA version and memory. The paper's own GPU figures, for reference: 0.88 s at the Table-1
setting, 1.30 s at 1024^2, 69 s at 8192^2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import skimage.data
import stamp
import torch
from PIL import Image

from sinfree import MemoryBudgetError, generate_samples, preset_settings
from sinfree.backends import choose_backend
from sinfree.device import device_name, resolve_device
from sinfree.io.images import load_image
from sinfree.planning import scale_backend

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = Path(os.environ.get("SINFREE_BENCHMARK_DIR") or HERE / "sinddm15")
PAPER_SECONDS = {"Table 1": 0.88, "1024^2": 1.30, "8192^2": 69.0}  # the paper's GPU figures
SIDES = [256, 512, 1024, 2048, 4096, 8192]


def square_input(side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.BICUBIC))


def device_stamp(device: torch.device) -> dict:
    """What the stamp records of a device: its name (the card's on CUDA), CUDA version and total memory."""
    described = {"device": str(device), "card": device_name(device)}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        described |= {"cuda": torch.version.cuda, "memory_bytes": int(properties.total_memory)}
    return described


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sample(image, settings, device: torch.device) -> tuple[float, int | None]:
    """Seconds for one sample (seed 0) and, on CUDA, the peak of allocated GPU memory during it."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    generate_samples(image, settings, num_samples=1, seed=0)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return seconds, peak


def seed_agreement(devices: list[torch.device]) -> dict[str, float]:
    """Per device: the largest difference (in 8-bit levels) between its sample and the CPU's for the same seed, on a
    96 x 96 input with the exact backend everywhere (the backends ``auto`` picks differ between CPU and GPU)."""
    if not devices:
        return {}
    image = square_input(96)
    samples = {}
    for device in [torch.device("cpu"), *devices]:
        settings = preset_settings("paper", backend="exact", device=str(device), patch_size=7, num_scales=2)
        samples[str(device)] = generate_samples(image, settings, seed=0).samples[0].astype(np.int16)
    return {key: int(np.abs(sample - samples["cpu"]).max()) for key, sample in samples.items() if key != "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", nargs="+", default=["auto"], help="auto, cpu, cuda or cuda:N; several: one column each")
    parser.add_argument("--sides", type=int, nargs="+", default=SIDES)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--budget", type=float, default=600.0, help="longest run made, in seconds (predicted)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per entry; the best is kept")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "gpu_timing.json")
    args = parser.parse_args()
    devices = [resolve_device(spec) for spec in args.device]  # a missing GPU: refused here, before any work
    measured = stamp.measure() | {"devices": [device_stamp(device) for device in devices]}
    print(", ".join(f"{d['device']} ({d['card']})" for d in measured["devices"]))
    print(f"paper preset (T = 10, P = 15, S = 4), backend {args.backend}; budget {args.budget:.0f} s per run\n")

    balloons = BENCHMARK_DIR / "balloons.png"
    shape = tuple(load_image(balloons)[0].shape[-2:])
    rows = [(f"Table 1 (balloons, {shape[1]} x {shape[0]})", balloons, shape)]
    rows += [(f"{side}^2 -> {side}^2", None, (side, side)) for side in sorted(args.sides)]

    table = [{"row": label, "pixels": h * w} for label, _, (h, w) in rows]
    for device in devices:
        key = str(device)
        fast = choose_backend(args.backend, {}, math.inf, device=device)  # a tiny input would run auto's exact path only
        warm = preset_settings("paper", backend=fast[0], backend_options=fast[1], device=key, patch_size=7, num_scales=1)
        generate_samples(square_input(64), warm, seed=0)
        last: tuple[float, int] | None = None  # (seconds, pixels) of the last measured row
        stopped = None
        for entry, (label, source, (height, width)) in zip(table, rows):
            if stopped is not None:
                entry[key] = {"status": "not tried", "reason": stopped}
                continue
            pixels = height * width
            if last is not None and last[0] * pixels / last[1] > args.budget:
                entry[key] = {"status": "predicted", "seconds": last[0] * pixels / last[1]}
                continue
            image = source if source is not None else square_input(height)
            settings = preset_settings("paper", backend=args.backend, device=key)
            fast = scale_backend(settings, 3, (height, width), (height, width))[0]  # the finest scale's backend
            try:
                runs = [time_sample(image, settings, device) for _ in range(max(1, args.repeats))]
            except (MemoryBudgetError, torch.cuda.OutOfMemoryError) as error:
                reason = str(error).splitlines()[0]
                entry[key] = {"status": "refused", "reason": reason}
                stopped = f"{label} was refused"
                print(f"  {label:28s} {key:8s} refused: {reason}", flush=True)
                continue
            seconds, peak = min(runs)
            last = (seconds, pixels)
            entry[key] = {"status": "measured", "seconds": seconds, "peak_gpu_bytes": peak, "finest_backend": fast}
            memory = "" if peak is None else f", peak GPU memory {peak / 2**30:.2f} GiB"
            print(f"  {label:28s} {key:8s} {seconds:9.2f} s ({fast} on the finest scale{memory})", flush=True)

    print(f"\n{'seconds per sample (~ predicted)':36s}" + "".join(f"{str(d):>22s}" for d in devices) + "   paper (GPU)")
    for entry in table:
        cells = []
        for device in devices:
            cell = entry[str(device)]
            if cell["status"] == "measured":
                text = f"{cell['seconds']:.2f}" + (
                    "" if cell["peak_gpu_bytes"] is None else f" ({cell['peak_gpu_bytes'] / 2**30:.1f} GiB)"
                )
            elif cell["status"] == "predicted":
                text = f"~{cell['seconds']:.1f}"
            else:
                text = cell["status"]
            cells.append(text.rjust(22))
        paper = next((seconds for name, seconds in PAPER_SECONDS.items() if entry["row"].startswith(name)), math.nan)
        print(f"{entry['row']:36s}" + "".join(cells) + ("" if math.isnan(paper) else f"   {paper:.2f}"))
    agreement = seed_agreement([device for device in devices if device.type != "cpu"])
    for key, levels in agreement.items():
        print(f"same seed, exact backend, 96 x 96: {key} differs from the CPU by at most {levels} of 255 levels")
    measured["load_after"] = os.getloadavg()[0]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "stamp": measured,
        "backend": args.backend,
        "preset": "paper",
        "paper_gpu_seconds": PAPER_SECONDS,
        "rows": table,
        "seed_agreement_levels": agreement,
    }
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
