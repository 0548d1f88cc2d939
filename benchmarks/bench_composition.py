"""Quality of the default preset against the paper's Table-1 setting (and each lever): docs/quality.md.

    python benchmarks/bench_composition.py --samples 10 --configs paper default default+guidance1 default+guidance0.5
    python benchmarks/bench_composition.py --images benchmarks/sinddm15/{balloons,mountains,seascape,pyramids,aurora}.png \
        --samples 3 --configs paper default --outdir benchmarks/results/composition_5x3 --no-sheet \
        --metrics sifid lpips_diversity niqe swd copying_rate layout row_profile seams
    python benchmarks/publish.py          # writes the tables into docs/quality.md

For each configuration (``CONFIGS``: "paper" is the Table-1 setting; "default" the default preset; the
others one lever changed), ``sinfree eval``'s ``evaluate`` makes ``--samples`` samples of every input
(default: the paper's 15 images, ``$SINFREE_BENCHMARK_DIR`` or ``benchmarks/sinddm15``) and computes the
figures: SIFID, LPIPS diversity, NIQE, patch SWD, copying rate, the layout figure (row and column colour
profiles against the input's) and the seam figure (``sinfree.metrics.layout``). Each configuration's run is
written as ``OUTDIR/NAME/`` (``results.json``, ``stamp.json``, ``report.md`` with contact sheets) and reused
when present, so an interrupted run resumes. Prints the table of means with each figure's ratio to "paper",
and (unless ``--no-sheet``) writes ``--sheet``, the contact sheet of docs/quality.md: each input, then three
samples of "paper" and the same seeds of "default" (from the runs' saved samples, which git does not keep); with
the position prior's runs, a second sheet of the default against them.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import stamp
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
    "default+guidance0.8": dataclasses.replace(DEFAULT, layout_guidance=0.8),
    "default+guidance1to0": dataclasses.replace(DEFAULT, layout_guidance=1.0, layout_guidance_end=0.0),
    "default+guidance0+prior0.1": dataclasses.replace(DEFAULT, layout_guidance=0.0, position_prior=0.1),
    "default+guidance1to0+prior0.1": dataclasses.replace(
        DEFAULT, layout_guidance=1.0, layout_guidance_end=0.0, position_prior=0.1
    ),
}
# the second contact sheet of docs/quality.md: the default against the position prior, alone and with the faded guidance
PRIOR_SHEET = {"default": "default", "default+guidance0+prior0.1": "prior", "default+guidance1to0+prior0.1": "prior+faded"}
METRICS = ("sifid", "lpips_diversity", "niqe", "swd", "copying_rate", "layout", "row_profile", "seams")


def run_config(name: str, files: list[Path], outdir: Path, samples: int, metrics: tuple[str, ...]):
    folder = outdir / name
    if (folder / "results.json").exists():
        return load_run(folder)
    measured = stamp.measure()
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
    write_report(run, folder, command=measured["command"])
    (folder / "stamp.json").write_text(json.dumps(measured, indent=1))
    return run


def summary(runs: dict, metrics: tuple[str, ...]) -> list[str]:
    base = runs["paper"].mean()
    header = ["configuration", *metrics, "s / sample"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, run in runs.items():
        mean = run.mean()
        cells = [
            f"{mean[m]:.4g} ({mean[m] / base[m]:.2f})" if base[m] == base[m] and base[m] else f"{mean[m]:.4g}" for m in metrics
        ]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {mean['seconds_per_sample']:.2f} ({mean['seconds_per_sample'] / base['seconds_per_sample']:.2f}) |"
        )
    return lines


def comparison_sheet(files: list[Path], outdir: Path, path: Path, configs: dict[str, str], per_image: int = 3) -> None:
    """Rows of: the input, then ``per_image`` samples of each configuration (``configs``: name -> its label in the
    sheet), the same seeds (from the runs' saved samples, which git does not keep)."""
    rows = []
    for file in files:
        images = [as_rgb(load_image(file)[0])]
        labels = ["input"]
        for name, label in configs.items():
            samples = read_sample_folder(outdir / name / "samples" / file.stem)[:per_image]
            images += samples
            labels += [f"{label} {i}" for i in range(len(samples))]
        rows.append(contact_sheet([((x + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy() for x in images], labels))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(padded, axis=0)).save(buffer, format="JPEG", quality=88)  # a figure: 1 MB, not 7 as PNG
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="*")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--metrics", nargs="*", default=list(METRICS))
    parser.add_argument("--outdir", type=Path, default=Path(__file__).parent / "composition")
    parser.add_argument(
        "--sheet", type=Path, default=Path(__file__).parents[1] / "docs" / "img" / "results" / "composition_old_vs_new.jpg"
    )
    parser.add_argument("--no-sheet", action="store_true", help="write no contact sheet")
    args = parser.parse_args()
    inputs = args.images or [default_benchmark_dir()]
    if inputs[0] is None:
        sys.exit("no --images and the paper's 15 images are not found ($SINFREE_BENCHMARK_DIR)")
    files = image_files(inputs)
    configs = ["paper", *(name for name in args.configs if name != "paper")]
    metrics = tuple(args.metrics)
    runs = {name: run_config(name, files, args.outdir, args.samples, metrics) for name in configs}
    shown = tuple(m for m in metrics if any(run.mean().get(m) == run.mean().get(m) for run in runs.values()))
    print("\n".join(summary(runs, shown)))
    if "default" in runs and not args.no_sheet:
        comparison_sheet(files, args.outdir, args.sheet, {"paper": "paper", "default": "default"})
        print(f"wrote {args.sheet}")
    if set(PRIOR_SHEET) <= set(runs) and not args.no_sheet:
        prior_sheet = args.sheet.with_name("composition_position_prior.jpg")
        comparison_sheet(files, args.outdir, prior_sheet, PRIOR_SHEET, per_image=2)
        print(f"wrote {prior_sheet}")


if __name__ == "__main__":
    main()
