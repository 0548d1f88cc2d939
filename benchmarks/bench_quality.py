"""Quality of each backend at equal settings against the exact backend (issue 3, item 5).

    python benchmarks/bench_quality.py [--backends exact ivf auto] [--seeds 3] [--images PATH ...]
                                       [--cache benchmarks/cache] [--json FILE] [--baseline FILE]

For every benchmark image (default: the 15 of ../shared/benchmarks/sinddm15) and every backend,
samples for seeds 0 .. seeds-1 are made at the Table-1 setting and compared with the input:

- ``swd``: multi-scale sliced Wasserstein distance between 7 x 7 patch sets (fixed projections),
- ``nn_dist``: median distance of sample patches to their nearest input patch,
- ``diversity``: per-pixel std across the samples over the input's std.

Each sample is cached as ``.npy`` under ``--cache`` with its time, keyed by image, backend
configuration and seed, so that an interrupted run resumes and the slow exact samples (minutes
each on two cores) are made once. Figures are averaged over images, and each backend's mean is
printed as a ratio to the first backend's (the issue's target: every ratio within 10 % of 1).
A backend is named ``name`` or ``name:key=value,key=value`` (e.g. ``ivf:nprobe=4,k=16``).

``--baseline FILE`` (a ``--json`` output of an earlier run with the same seeds) supplies the first
backend's figures for the images it holds, so that they need not be made again (exact samples
whose cache was lost). The committed cache of exact samples is ``benchmarks/cache/exact``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from sinfree import generate_samples, preset_settings
from sinfree.backends import AUTO, AUTO_EXACT_FLOPS, AUTO_FAST, AUTO_FAST_OPTIONS
from sinfree.io.images import load_image
from sinfree.metrics import nearest_patch_distance, pixel_diversity, sliced_wasserstein

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15"
FIGURES = ("swd", "nn_dist", "diversity")


def parse_backend(spec: str) -> tuple[str, dict]:
    """``"ivf:nprobe=4,k=16"`` -> ``("ivf", {"nprobe": 4, "k": 16})`` (values parsed as JSON when they can be)."""
    name, _, options = spec.partition(":")
    parsed = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return name, parsed


def cache_key(spec: str) -> str:
    """A folder name for a backend spec; ``auto`` also names what it resolves to, so that a change
    of its defaults does not reuse stale samples."""
    key = spec.replace(":", "_").replace(",", "_").replace("=", "-")
    if parse_backend(spec)[0] == AUTO:
        digest = hashlib.sha1(json.dumps([AUTO_EXACT_FLOPS, AUTO_FAST, AUTO_FAST_OPTIONS], sort_keys=True).encode()).hexdigest()
        key += f"_{digest[:8]}"
    return key


def cached_sample(image: Path, spec: str, seed: int, cache: Path) -> tuple[np.ndarray, float]:
    """One sample of ``image`` with backend ``spec`` and ``seed``, from the cache or made now."""
    folder = cache / cache_key(spec) / image.stem
    array_path, time_path = folder / f"seed{seed}.npy", folder / f"seed{seed}.json"
    if array_path.exists() and time_path.exists():
        return np.load(array_path), json.loads(time_path.read_text())["seconds"]
    name, options = parse_backend(spec)
    start = time.perf_counter()
    result = generate_samples(image, preset_settings("paper", backend=name, backend_options=options), num_samples=1, seed=seed)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    np.save(array_path, result.samples[0])
    time_path.write_text(json.dumps({"seconds": seconds, "settings": result.settings}, default=str))
    return result.samples[0], seconds


def image_figures(image: Path, spec: str, seeds: int, cache: Path) -> dict[str, float]:
    """Mean figures over the seeds of one image and backend."""
    reference, _ = load_image(image)
    made = [cached_sample(image, spec, seed, cache) for seed in range(seeds)]
    samples = [load_image(array)[0] for array, _ in made]
    swd = [sliced_wasserstein(s, reference) for s in samples]
    nn = [nearest_patch_distance(s, reference) for s in samples]
    return {
        "seconds": float(np.mean([s for _, s in made])),
        "swd": float(np.mean(swd)),
        "nn_dist": float(np.mean(nn)),
        "diversity": pixel_diversity(samples, reference) if len(samples) > 1 else float("nan"),
        "swd_se": standard_error(swd),
        "nn_dist_se": standard_error(nn),
    }


def standard_error(values: list[float]) -> float:
    """Standard error of the mean over the seeds (nan for one seed)."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def per_image_ratios(rows: dict, specs: list[str]) -> str:
    """Each image's ratio of every figure to the first backend's, and whether a per-figure
    difference exceeds twice the combined standard error over the seeds (``*``: the seeds cannot
    tell the two apart otherwise; copy-heavy images vary by 10x between seeds)."""
    base_spec = specs[0]
    lines = [f"{'image':18s} {'backend':24s} {'SWD ratio':>10s} {'NN ratio':>10s} {'div ratio':>10s}"]
    for image in sorted(rows[base_spec]):
        base = rows[base_spec][image]
        for spec in specs[1:]:
            row = rows[spec].get(image)
            if row is None:
                continue
            cells = []
            for figure in FIGURES:
                ratio = row[figure] / base[figure]
                se_key = f"{figure}_se"
                spread = 2 * np.hypot(row.get(se_key, np.nan), base.get(se_key, np.nan))
                significant = abs(row[figure] - base[figure]) > spread if np.isfinite(spread) else False
                cells.append(f"{ratio:9.3f}{'*' if significant else ' '}")
            lines.append(f"{image:18s} {spec:24s} " + " ".join(cells))
    return "\n".join(lines)


def summarise(rows: dict[str, dict[str, dict[str, float]]], specs: list[str]) -> dict[str, dict[str, float]]:
    """Means over the images that every backend finished, and ratios to the first backend."""
    images = sorted(set.intersection(*(set(rows[s]) for s in specs)))
    means = {s: {k: float(np.mean([rows[s][i][k] for i in images])) for k in ("seconds", *FIGURES)} for s in specs}
    base = means[specs[0]]
    for spec in specs:
        means[spec]["speed_up"] = base["seconds"] / means[spec]["seconds"]
        for k in FIGURES:
            means[spec][f"{k}_ratio"] = means[spec][k] / base[k]
        means[spec]["images"] = len(images)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="+", default=sorted(BENCHMARK_DIR.glob("*.png")))
    parser.add_argument("--backends", nargs="+", default=["exact", "ivf"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "cache")
    parser.add_argument("--json", type=Path, help="write per-image rows and means here")
    parser.add_argument("--baseline", type=Path, help="an earlier --json output: the first backend's rows from it")
    args = parser.parse_args()
    baseline = {}
    if args.baseline:
        earlier = json.loads(args.baseline.read_text())
        if earlier["seeds"] != args.seeds:
            parser.error(f"{args.baseline} was made with {earlier['seeds']} seeds, not {args.seeds}")
        baseline = earlier["rows"].get(args.backends[0], {})
    print(f"{len(args.images)} image(s), Table-1 setting, seeds 0..{args.seeds - 1}, {torch.get_num_threads()} threads")
    rows: dict[str, dict[str, dict[str, float]]] = {spec: {} for spec in args.backends}
    for image in args.images:
        for spec in args.backends:
            if spec == args.backends[0] and image.stem in baseline:
                rows[spec][image.stem] = baseline[image.stem]
            else:
                rows[spec][image.stem] = image_figures(image, spec, args.seeds, args.cache)
            print(
                f"  {spec:24s} {image.stem:18s} "
                + " ".join(f"{k} {v:.4g}" for k, v in rows[spec][image.stem].items() if not k.endswith("_se")),
                flush=True,
            )
    means = summarise(rows, args.backends)
    print(f"\nmeans over {len(args.images)} images; ratios to {args.backends[0]}")
    print(f"{'backend':24s} {'s/sample':>9s} {'speed-up':>9s} {'SWD':>8s} {'NN dist':>8s} {'diversity':>9s}  SWD  NN  div ratios")
    for spec, m in means.items():
        ratios = " ".join(f"{m[f'{k}_ratio']:.3f}" for k in FIGURES)
        print(
            f"{spec:24s} {m['seconds']:9.2f} {m['speed_up']:8.1f}x {m['swd']:8.4f} {m['nn_dist']:8.4f} {m['diversity']:9.3f}  {ratios}"
        )
    print("\nper image, ratios to the first backend (* = the difference exceeds 2 standard errors over the seeds)")
    print(per_image_ratios(rows, args.backends))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "means": means, "seeds": args.seeds}, indent=1))


if __name__ == "__main__":
    main()
