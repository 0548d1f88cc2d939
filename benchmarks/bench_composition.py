"""Composition, seams and statistics of the default preset against the paper's Table-1 setting and each lever.

    python benchmarks/bench_composition.py [--images DIR_OR_FILES ...] [--samples 10] [--configs NAME ...]
                                           [--outdir benchmarks/composition] [--metrics sifid swd ...]

For each configuration (``CONFIGS``: "paper" is the Table-1 setting, the old default; "default" the
default preset; the others the paper's setting with one lever changed), ``sinfree eval``'s
``evaluate`` makes ``--samples`` samples of every input (default: the paper's 15 images, from
``$SINFREE_BENCHMARK_DIR`` or ``../shared/benchmarks/sinddm15`` beside the checkout) and computes the
figures: SIFID, patch SWD, copying rate, LPIPS diversity, the layout figure (row and column colour
profiles against the input's) and the seam figure (``sinfree.metrics.layout``). Each configuration's
run is written as ``OUTDIR/NAME/`` (``results.json``, ``report.md`` with contact sheets) and reused
when present, so an interrupted run resumes. Prints the table of means with each figure's ratio to
"paper", says which of issue 18's targets the default meets, and writes it as ``DOCS/composition.md``
with ``DOCS/composition_old_vs_new.jpg`` (each input, then samples of "paper" and of "default").
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sinfree.contact_sheet import contact_sheet
from sinfree.evaluation import evaluate, image_files, load_run, write_report
from sinfree.evaluation.evaluate import as_rgb, default_benchmark_dir, read_sample_folder
from sinfree.io.images import load_image, write_atomically
from sinfree.settings import preset_settings

PAPER = preset_settings("paper")
DEFAULT = preset_settings("default")
CONFIGS = {
    "paper": PAPER,  # the old default: Table 1
    "default": DEFAULT,
    "paper+auto_scales": dataclasses.replace(PAPER, num_scales=None),  # S from the sizes, coarsest >= 2 P
    "paper+layout_guidance": dataclasses.replace(PAPER, layout_guidance=1.0),
    "paper+variation0.8": dataclasses.replace(PAPER, variation=0.8),
    "paper+completeness": dataclasses.replace(PAPER, completeness=1.0),
    "paper+rho_inf": dataclasses.replace(PAPER, rho=math.inf),
    "paper+eta1": dataclasses.replace(PAPER, eta=1.0),
    "default+guidance0.5": dataclasses.replace(DEFAULT, layout_guidance=0.5),
    "default+guidance1": dataclasses.replace(DEFAULT, layout_guidance=1.0),
}
METRICS = ("sifid", "swd", "copying_rate", "lpips_diversity", "layout", "row_profile", "seams")
# Issue 18's targets for the default against the old default: (metric, bound as a factor of the old, or absolute)
TARGETS = (
    ("sifid", "<=", 0.5, "ratio"),
    ("swd", "<=", 0.5, "ratio"),
    ("layout", "<=", 1 / 3, "ratio"),
    ("copying_rate", "<=", 1.0, "ratio"),
    ("lpips_diversity", ">=", 0.40, "absolute"),
)


def run_config(name: str, files: list[Path], outdir: Path, samples: int, metrics: tuple[str, ...]):
    folder = outdir / name
    if (folder / "results.json").exists():
        return load_run(folder)
    print(f"{name}: generating and evaluating {len(files)} images x {samples} samples", file=sys.stderr, flush=True)
    run = evaluate(
        files,
        settings=CONFIGS[name],
        num_samples=samples,
        save_samples_to=folder / "samples",
        label=name,
        metrics=metrics,
        on_image=lambda i, stem, stage: print(f"  {stem}: {stage}", file=sys.stderr, flush=True),
    )
    write_report(run, folder, command=f"python benchmarks/bench_composition.py --configs {name} --samples {samples}")
    return run


def summary(runs: dict, metrics: tuple[str, ...]) -> list[str]:
    base = runs["paper"].mean()
    header = ["configuration", *metrics, "s / sample"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, run in runs.items():
        mean = run.mean()
        cells = [f"{mean[m]:.4g} ({mean[m] / base[m]:.2f})" if base[m] else f"{mean[m]:.4g}" for m in metrics]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {mean['seconds_per_sample']:.2f} ({mean['seconds_per_sample'] / base['seconds_per_sample']:.2f}) |"
        )
    if "default" in runs:
        new = runs["default"].mean()
        lines += ["", "Targets for the default (issue 18):", ""]
        for metric, op, bound, kind in TARGETS:
            if metric not in metrics:
                continue
            value = new[metric] / base[metric] if kind == "ratio" else new[metric]
            held = value <= bound if op == "<=" else value >= bound
            what = "of the old default" if kind == "ratio" else ""
            lines.append(f"- {metric}: {value:.3f} {what} ({op} {bound:.3g}): {'holds' if held else 'MISSED'}")
    return lines


def old_vs_new(files: list[Path], outdir: Path, path: Path, per_image: int = 3) -> None:
    """Rows of: the input, ``per_image`` samples of "paper", the same seeds of "default"."""
    rows = []
    for file in files:
        reference = as_rgb(load_image(file)[0])
        old = read_sample_folder(outdir / "paper" / "samples" / file.stem)[:per_image]
        new = read_sample_folder(outdir / "default" / "samples" / file.stem)[:per_image]
        images = [((x + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy() for x in [reference, *old, *new]]
        labels = ["input", *(f"paper {i}" for i in range(len(old))), *(f"default {i}" for i in range(len(new)))]
        rows.append(contact_sheet(images, labels))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(padded, axis=0)).save(buffer, format="JPEG", quality=88)  # a figure: 1 MB, not 7 as PNG
    write_atomically(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="*")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--metrics", nargs="*", default=list(METRICS))
    parser.add_argument("--outdir", type=Path, default=Path(__file__).parent / "composition")
    parser.add_argument("--docs", type=Path, default=Path(__file__).parents[1] / "docs")
    args = parser.parse_args()
    inputs = args.images or [default_benchmark_dir()]
    if inputs[0] is None:
        sys.exit("no --images and the paper's 15 images are not found ($SINFREE_BENCHMARK_DIR)")
    files = image_files(inputs)
    configs = ["paper", *(name for name in args.configs if name != "paper")]
    metrics = tuple(args.metrics)
    runs = {name: run_config(name, files, args.outdir, args.samples, metrics) for name in configs}
    lines = [
        "# Composition: default preset against the paper's setting and each lever",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads; {len(files)} images x {args.samples} samples; "
        'each figure\'s ratio to "paper" in brackets. s / sample was measured while other work shared the '
        "cores: compare speed with `python benchmarks/bench_timing.py --presets`.",
        "",
        "```bash",
        "python benchmarks/bench_composition.py " + " ".join(sys.argv[1:]),
        "```",
        "",
        *summary(runs, metrics),
    ]
    if "default" in runs:
        old_vs_new(files, args.outdir, args.docs / "composition_old_vs_new.jpg")
        lines += [
            "",
            "Each input, then three samples of the paper's setting and the same seeds of the default:",
            "",
            "![paper vs default](composition_old_vs_new.jpg)",
        ]
    text = "\n".join(lines) + "\n"
    write_atomically(args.docs / "composition.md", text.encode())
    print(text)


if __name__ == "__main__":
    main()
