"""Peak memory of one generation run against sinfree's own estimate, printed before the run.

    python benchmarks/bench_memory.py --backend ivf --side 512

The input is scikit-image's astronaut (512 x 512 RGB) resized to ``--side``; the output has the
input's size; Table-1 settings otherwise. Peak RSS is the process's, minus what it held before.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import skimage.data
from PIL import Image

from sinfree import generate_samples, preset_settings
from sinfree.memory import format_bytes
from sinfree.planning import estimate_peak_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="ivf")
    parser.add_argument("--side", type=int, default=512)
    args = parser.parse_args()
    image = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((args.side, args.side), Image.BICUBIC))
    settings = preset_settings("paper", backend=args.backend)
    estimate = estimate_peak_bytes(3, image.shape[:2], image.shape[:2], settings, 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    generate_samples(image, settings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"{args.side}^2, backend {args.backend}: {seconds:.1f} s; estimated peak {format_bytes(estimate)}, "
        f"measured {format_bytes(peak - before)} above the {format_bytes(before)} held before the run"
    )


if __name__ == "__main__":
    main()
