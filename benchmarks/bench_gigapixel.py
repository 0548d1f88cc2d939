"""Gigapixel outputs out of core (issue 23): 4096^2 .. 32768^2 in the PCA latent space (and in pixels where they
finish), in this process and on an embedded Dask cluster of 2 workers: time, peak memory and quality on crops:
docs/large-outputs.md, "Out of core".

    python benchmarks/bench_gigapixel.py --sides 4096 8192 16384 32768 --workers 1 2 --budget 1500
    python benchmarks/bench_gigapixel.py --sides 2048 4096 --workers 1 --spaces pixel --append
    python benchmarks/publish.py          # writes the table into docs/large-outputs.md

Input: scikit-image's astronaut resized (PIL bicubic) to min(side, 8192) and saved as a PNG, read band by band
(``sinfree.large.inputs``). Each entry runs ``sinfree.large.driver.generate_large`` in its own child process:
``paper`` settings (T = 10) with ``--latent pca`` (``--spaces pixel``: in pixels) and automatic S, seed 0, ``--max-memory-gb`` 4 (the tile side
follows from it), output a pyramidal BigTIFF (zlib) with a preview JPEG. ``workers 1`` runs the tiles in the
child itself (2 torch threads); ``workers 2`` on a LocalCluster of 2 one-thread worker processes.

Reported per entry: wall seconds of the whole run (reading the input to the closed TIFF) and of its stages, the
CPU seconds of the child and of its finished children (the workers), the load average before, and the peak
resident memory of the child and all its descendant processes together (sampled every 0.2 s with psutil;
the sum is what the machine must hold). Quality on crops at the same pixel scale: 4 crops of 512^2 of the output
(centre and three off-centre) and the crops at the same relative places of the input: patch sliced Wasserstein
distance (``sinfree.metrics.sliced_wasserstein``) of each output crop to its input crop, and the ratio of their
high-frequency energies (mean square of ``x - U(D(x))``; 1 = as sharp), averaged.

An entry runs only when its time predicted from the same column's measured entries (x4 per doubling of the side,
or the observed growth) is within ``--budget`` seconds; a child past 1.5 x budget is stopped. Writes ``--out``.json
(default ``benchmarks/results/gigapixel``) with the stamp that ``publish.py`` prints under the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CROP = 512
MAX_INPUT = 8192


def input_file(side: int, folder: Path) -> Path:
    import numpy as np
    import skimage.data
    from PIL import Image

    path = folder / f"astronaut{side}.png"
    if not path.exists():
        Image.fromarray(np.asarray(skimage.data.astronaut())).resize((side, side), Image.BICUBIC).save(path, compress_level=1)
    return path


class PeakTree:
    """Peak of the summed resident memory of this process and its descendants, sampled on a thread."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self.process, self.interval, self.peak, self._stop = psutil.Process(), interval, 0, threading.Event()
        self.base = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for p in [self.process, *self.process.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def high_frequency_energy(image) -> float:
    from sinfree.sampler import high_pass

    return high_pass(image, (-(-image.shape[-2] // 2), -(-image.shape[-1] // 2))).square().mean().item()


def crop_quality(output_tif: Path, input_png: Path) -> dict:
    """Patch SWD and HF energy ratio on 4 crops of CROP^2 at the same relative places of output and input."""
    import tifffile
    import zarr
    from PIL import Image

    from sinfree.io.images import load_image
    from sinfree.metrics import sliced_wasserstein

    Image.MAX_IMAGE_PIXELS = None
    source = load_image(input_png)[0]
    store = tifffile.imread(str(output_tif), aszarr=True, level=0)
    output = zarr.open(store, mode="r")
    swd, ratios = [], []
    for fy, fx in ((0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.4)):
        oy, ox = int(fy * (output.shape[0] - CROP)), int(fx * (output.shape[1] - CROP))
        iy, ix = int(fy * (source.shape[1] - CROP)), int(fx * (source.shape[2] - CROP))
        crop = load_image(output[oy : oy + CROP, ox : ox + CROP])[0]
        reference = source[:, iy : iy + CROP, ix : ix + CROP]
        swd.append(sliced_wasserstein(crop, reference))
        ratios.append(high_frequency_energy(crop) / high_frequency_energy(reference))
    store.close()
    return {"swd": sum(swd) / len(swd), "hf_energy_ratio": sum(ratios) / len(ratios)}


def child(side: int, workers: int, folder: Path, space: str = "latent") -> dict:
    import torch

    from sinfree.large.driver import LargeOptions, generate_large
    from sinfree.settings import preset_settings

    source = input_file(min(side, MAX_INPUT), folder)
    settings = preset_settings("paper", latent="pca" if space == "latent" else None, num_scales="auto")
    out = folder / f"out{side}_w{workers}_{space}"
    shutil.rmtree(out, ignore_errors=True)
    stages: dict[str, float] = {}
    marks = {"last": None, "start": time.perf_counter()}

    def progress(p):
        now = time.perf_counter()
        if marks["last"] != p.stage:
            stages[p.stage] = now - marks["start"]
            marks["last"] = p.stage

    options = LargeOptions(
        store=out / "store", max_memory_bytes=4 * 2**30, workers=workers if workers > 1 else None, output_format="tiff"
    )
    load_before = os.getloadavg()[0]
    peak = PeakTree()
    wall, cpu = time.perf_counter(), time.process_time()
    result = generate_large(source, out / "sample", settings, options, size=(side, side), seed=0, progress=progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_bytes = peak.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    quality = crop_quality(result.paths[0], source)
    entry = {
        "side": side,
        "workers": workers,
        "space": space,
        "measured": True,
        "input_side": min(side, MAX_INPUT),
        "seconds": wall,
        "cpu_seconds": cpu,
        "children_cpu_seconds": children.ru_utime + children.ru_stime,
        "stage_starts": stages,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "threads": torch.get_num_threads(),
        "tile": result.tile,
        "tiled_scales": result.tiled_scales,
        "num_scales": result.settings["num_scales"],
        "peak_tree_bytes": peak_bytes,
        "base_bytes": peak.base,
        "tiff_bytes": result.paths[0].stat().st_size,
        **quality,
    }
    shutil.rmtree(out, ignore_errors=True)
    return entry


def run_child(side: int, workers: int, folder: Path, timeout: float, space: str) -> dict:
    command = [sys.executable, __file__, "--child", str(side), str(workers), space, "--folder", str(folder)]
    key = {"side": side, "workers": workers, "space": space}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return key | {"measured": False, "timed_out": True, "seconds": timeout}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return key | {"measured": False, "error": " | ".join(tail), "seconds": math.nan}
    return json.loads(lines[-1])


def cell(entry: dict) -> str:
    if entry.get("error"):
        return "error: " + entry["error"]
    if entry.get("timed_out"):
        return f">{entry['seconds']:.0f} s (stopped)"
    if not entry["measured"]:
        return f"~{entry['seconds']:.0f} s (predicted)"
    return (
        f"{entry['seconds']:.1f} s (cpu {entry['cpu_seconds']:.0f} + workers {entry['children_cpu_seconds']:.0f}, load "
        f"{entry['load_before']:.1f}); peak {entry['peak_tree_bytes'] / 2**30:.2f} GiB; tile {entry['tile']}; "
        f"SWD {entry['swd']:.3f}, HF {entry['hf_energy_ratio']:.2f}"
    )


def joined_commands(earlier: str, command: str) -> str:
    """The commands that made OUT.json's entries, each once, in the order first run."""
    commands = dict.fromkeys([*earlier.split("; "), command])
    return "; ".join(commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--spaces", nargs="+", default=["latent"], choices=["latent", "pixel"], help="latent: --latent pca")
    parser.add_argument("--budget", type=float, default=1500.0, help="longest run made, in seconds (predicted)")
    parser.add_argument("--folder", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gigapixel", help="writes OUT.json")
    parser.add_argument("--append", action="store_true", help="keep OUT.json's other entries (replacing those run again)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "WORKERS", "SPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), int(args.child[1]), args.folder, args.child[2])), flush=True)
        return
    import stamp

    run_stamp = stamp.measure()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="sinfree-gigapixel-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"bench_gigapixel: scratch {folder}, load {os.getloadavg()[0]:.1f}", flush=True)
    history: dict[tuple[int, str], list[tuple[int, float]]] = {(w, sp): [] for w in args.workers for sp in args.spaces}
    entries, kept = [], []
    if args.append and args.out.with_suffix(".json").exists():
        earlier = json.loads(args.out.with_suffix(".json").read_text())
        run_stamp = earlier["stamp"] | {"command": joined_commands(earlier["stamp"]["command"], run_stamp["command"])}
        for e in earlier["entries"]:
            e.setdefault("space", "latent")
        kept = [
            e
            for e in earlier["entries"]
            if not (e["side"] in args.sides and e["workers"] in args.workers and e["space"] in args.spaces)
        ]
        for e in sorted(kept, key=lambda e: e["side"]):
            if e.get("measured") and (e["workers"], e["space"]) in history:
                history[(e["workers"], e["space"])].append((e["side"], e["seconds"]))
    for side, workers, space in sorted((si, w, sp) for si in args.sides for w in args.workers for sp in args.spaces):
        measured = history[(workers, space)]
        predicted = None
        if measured:
            growth = 4.0
            if len(measured) >= 2:
                (s0, t0), (s1, t1) = measured[-2], measured[-1]
                growth = max(4.0, (t1 / t0) ** (1.0 / math.log2(s1 / s0)))
            predicted = measured[-1][1] * growth ** math.log2(side / measured[-1][0])
        if predicted is not None and predicted > args.budget:
            entry = {"side": side, "workers": workers, "space": space, "measured": False, "seconds": predicted}
        else:
            entry = run_child(side, workers, folder, max(300.0, 1.5 * args.budget), space)
            entry["predicted_seconds"] = predicted
            if entry["measured"]:
                measured.append((side, entry["seconds"]))
        entries.append(entry)
        print(f"  {side:6d}^2 {space} workers {workers}: {cell(entry)}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        every = sorted(kept + entries, key=lambda e: (e["space"], e["side"], e["workers"]))
        args.out.with_suffix(".json").write_text(json.dumps({"stamp": run_stamp, "entries": every}, indent=1))
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
