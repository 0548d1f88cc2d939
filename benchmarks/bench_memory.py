"""Peak memory of one generation run against sinfree's own estimate: docs/performance.md, "Memory".

    python benchmarks/bench_memory.py --sides 512 1024 --presets paper default
    python benchmarks/publish.py          # writes the table into docs/performance.md

The input is scikit-image's astronaut (512 x 512 RGB) resized to each side; the output has the input's
size; the preset's settings otherwise (``--backend``, default ``auto``). Each entry runs in a fresh child
process, after a warm-up on a tiny input: the estimate (``sinfree.planning.estimate_peak_bytes``, what ``sinfree generate`` prints before a
run) against the measured peak RSS of the process minus what it held before the run (interpreter, torch).
Writes ``--json`` (default ``benchmarks/results/memory.json``) with the stamp.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import stamp

HERE = Path(__file__).resolve().parent


def child(side: int, preset: str, backend: str) -> dict:
    import numpy as np
    import skimage.data
    from PIL import Image

    from sinfree import generate_samples, preset_settings
    from sinfree.planning import estimate_peak_bytes

    def square(size: int):
        return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.BICUBIC))

    for name in ("patchmatch", "exact"):  # warm-up: numba kernels and torch's first calls, not counted
        generate_samples(square(64), preset_settings("paper", backend=name, patch_size=7, num_scales=1, steps=2), seed=0)
    image = square(side)
    settings = preset_settings(preset, backend=backend)
    estimate = estimate_peak_bytes(3, image.shape[:2], image.shape[:2], settings, 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    generate_samples(image, settings, seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "side": side,
        "preset": preset,
        "backend": backend,
        "seconds": seconds,
        "estimated_peak_bytes": estimate,
        "measured_peak_bytes": peak - before,
        "held_before_bytes": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--presets", nargs="+", default=["paper", "default"])
    parser.add_argument("--json", type=Path, default=HERE / "results" / "memory.json")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.backend)), flush=True)
        return
    measured = stamp.measure()
    entries = []
    for side in args.sides:
        for preset in args.presets:
            command = [sys.executable, __file__, "--child", str(side), preset, "--backend", args.backend]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            entry = json.loads(done.stdout.strip().splitlines()[-1])
            entries.append(entry)
            print(
                f"{side}^2 {preset:8s} {args.backend}: {entry['seconds']:.1f} s; estimated peak "
                f"{entry['estimated_peak_bytes'] / 2**20:.0f} MiB, measured {entry['measured_peak_bytes'] / 2**20:.0f} MiB "
                f"above the {entry['held_before_bytes'] / 2**20:.0f} MiB held before the run",
                flush=True,
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"stamp": measured, "entries": entries}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
