"""OpenMP wait policy on shared cores: seconds per job with waiting threads spinning (ACTIVE) or sleeping (PASSIVE).

    python benchmarks/bench_threads.py [--busy 0 2] [--repeats 2]

Each job runs in a fresh process (libgomp reads ``OMP_WAIT_POLICY`` when torch loads it), alternating the
two policies, with ``--busy`` other processes spinning on the cores meanwhile (0: an idle machine; 2 on
2 cores: a machine shared with two other jobs). Jobs: one Table-1 sample (balloons, ``auto``, after a
warm-up) and the two-stage denoising of nibabel's example volume (25 slices of 41 x 33). Prints the
seconds of each run and the ratio of the medians, ACTIVE over PASSIVE.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = {
    "table-1 sample": f"""
import sys, time
sys.path.insert(0, {str(HERE)!r})
from bench_timing import warm_up, BENCHMARK_DIR
from sinfree import preset_settings, generate_samples
warm_up("auto")
start = time.perf_counter()
generate_samples(BENCHMARK_DIR / "balloons.png", preset_settings("paper", backend="auto"), num_samples=1, seed=0)
print(time.perf_counter() - start)
""",
    "volume denoise": """
import os, time
from nibabel.testing import data_path
from sinfree.enhance import enhance
from sinfree.io.scans import read_scan
scan = read_scan(os.path.join(data_path, "anatomical.nii"))
enhance(scan.data[:2], "denoise")
start = time.perf_counter()
enhance(scan.data, "denoise")
print(time.perf_counter() - start)
""",
}


def spin(_: int) -> None:
    while True:
        pass


def run_job(code: str, policy: str) -> float:
    environment = dict(os.environ, OMP_WAIT_POLICY=policy)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="spinning processes beside the job")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    for busy in args.busy:
        pool = multiprocessing.Pool(busy) if busy else None
        if pool is not None:
            pool.map_async(spin, range(busy))
        try:
            for name, code in JOBS.items():
                seconds: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
                for _ in range(args.repeats):
                    for policy, runs in seconds.items():
                        runs.append(run_job(code, policy))
                cells = "  ".join(f"{p} " + ", ".join(f"{s:.2f}" for s in v) for p, v in seconds.items())
                ratio = statistics.median(seconds["ACTIVE"]) / statistics.median(seconds["PASSIVE"])
                print(f"busy {busy}  {name:15s} {cells}  s;  ACTIVE / PASSIVE {ratio:.2f}", flush=True)
        finally:
            if pool is not None:
                pool.terminate()


if __name__ == "__main__":
    main()
