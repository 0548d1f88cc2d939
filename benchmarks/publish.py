"""Every measured table of the documentation, from the benchmarks' results files, each with its stamp.

    python benchmarks/publish.py [--check]

Rewrites the part of each page between ``<!-- BEGIN name -->`` and ``<!-- END name -->``:

- docs/performance.md: ``timing-backends``, ``timing-presets`` (benchmarks/results/timing.json, from
  ``bench_timing.py``) and ``memory`` (benchmarks/results/memory.json, ``bench_memory.py``);
- docs/quality.md: ``quality`` (benchmarks/composition/*/results.json, ``bench_composition.py`` on the 15
  images x 10 samples) and ``quality-check`` (benchmarks/results/composition_5x3/, its reduced rerun);
- docs/enhancement.md: ``enhance`` (benchmarks/results/enhance.json, ``bench_enhance.py``);
- docs/large-outputs.md: ``large`` (benchmarks/results/large.json, ``bench_large.py``), ``gigapixel``
  (benchmarks/results/gigapixel.json, ``bench_gigapixel.py``) and ``energy`` (benchmarks/results/energy.json,
  ``bench_energy.py``);
- docs/inpainting.md: ``inpaint`` (benchmarks/results/inpaint.json, ``bench_inpaint.py``) and ``harmonize``
  (benchmarks/results/harmonize.json, ``bench_harmonize.py``).

Under each table: the stamp the benchmark recorded (date, CPU, cores, torch threads, load average, command).
A table whose results file is missing is left as it is. ``--check``: change nothing, exit 1 if a page is
out of date.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import stamp

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
RESULTS = HERE / "results"


def read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


# ---- performance


def timing_tables() -> dict[str, list[str]]:
    found = read(RESULTS / "timing.json")
    if found is None:
        return {}
    backends, base = found["backends"], found["backends"][0]
    rows = []
    for entry in found["rows"]:
        cells = [entry["row"]]
        for backend in backends:
            cell = entry[backend]
            ratio = entry[base]["seconds"] / cell["seconds"]
            seconds = f"{cell['seconds']:.2f}" if cell["measured"] else f"~{cell['seconds']:.0f}"
            cells.append(seconds + ("" if backend == base else f" ({ratio:.1f}x)"))
        rows.append(cells)
    header = ["input -> output", *(f"`{b}`" for b in backends)]
    line = stamp.line(found["stamp"])
    tables = {
        "timing-backends": [
            *markdown(header, rows),
            "",
            f"Seconds per sample, `paper` preset, seed 0, one sample per entry; in brackets the speed-up over `{base}` "
            "in the same run; `~`: predicted from the entry above (not run). " + line,
        ]
    }
    if found.get("presets"):
        rows = [
            [p["row"], f"{p['paper']:.2f}", f"{p['default']:.2f}", f"{p['default'] / p['paper']:.2f}"] for p in found["presets"]
        ]
        repeats = found["presets"][0]["repeats"]
        tables["timing-presets"] = [
            *markdown(["input -> output", "`paper` s", "`default` s", "default / paper"], rows),
            "",
            f"Seconds per sample, `auto` backend, best of {repeats} runs of each preset, interleaved. " + line,
        ]
    return tables


def memory_table() -> dict[str, list[str]]:
    found = read(RESULTS / "memory.json")
    if found is None:
        return {}
    rows = [
        [
            f"{e['side']}^2 -> {e['side']}^2",
            f"`{e['preset']}`",
            f"{e['estimated_peak_bytes'] / 2**20:.0f}",
            f"{e['measured_peak_bytes'] / 2**20:.0f}",
            f"{e['seconds']:.1f}",
        ]
        for e in found["entries"]
    ]
    header = ["input -> output", "preset", "estimate (MiB)", "measured peak (MiB)", "s"]
    note = (
        f"`{found['entries'][0]['backend']}` backend; measured: the process's peak resident memory during the run minus "
        "what it held before (interpreter, torch); each entry in a fresh process. "
    )
    return {"memory": [*markdown(header, rows), "", note + stamp.line(found["stamp"])]}


# ---- quality

QUALITY_COLUMNS = (
    ("sifid", "SIFID* (lower)", "{:.2f}"),
    ("lpips_diversity", "LPIPS diversity (higher)", "{:.3f}"),
    ("niqe", "NIQE (lower)", "{:.2f}"),
    ("swd", "patch SWD (lower)", "{:.3f}"),
    ("copying_rate", "copying rate (lower)", "{:.2f}"),
    ("layout", "layout (lower)", "{:.3f}"),
    ("seams", "seams (lower)", "{:.2f}"),
)
LABELS = {
    "paper": "`paper` (Table 1)",
    "default": "`default`",
    "default+guidance1": "`default`, `--layout-guidance 1`",
    "default+guidance0.5": "`default`, `--layout-guidance 0.5`",
    "default+guidance0.8": "`default`, `--layout-guidance 0.8`",
    "default+guidance1to0": "`default`, `--layout-guidance 1 --layout-guidance-end 0`",
    "default+guidance0+prior0.1": "`default`, `--layout-guidance 0 --position-prior 0.1`",
    "default+guidance1to0+prior0.1": "`default`, `--layout-guidance 1 --layout-guidance-end 0 --position-prior 0.1`",
}


def quality_rows(folder: Path, names: list[str]) -> tuple[list[str], list[list[str]], dict] | None:
    runs = {name: read(folder / name / "results.json") for name in names}
    runs = {name: run for name, run in runs.items() if run is not None}
    if "paper" not in runs:
        return None

    def present(key):  # a figure every run measured (a column of "nan" compares nothing)
        return all(not math.isnan(run["mean"].get(key, math.nan)) for run in runs.values())

    columns = [column for column in QUALITY_COLUMNS if present(column[0])]
    base = runs["paper"]["mean"]
    rows = []
    for name, run in runs.items():
        cells = [LABELS.get(name, name)]
        for key, _, form in columns:
            value = run["mean"][key]
            ratio = "" if name == "paper" or not base[key] else f" ({value / base[key]:.2f}x)"
            cells.append(form.format(value) + ratio)
        rows.append(cells)
    first = runs["paper"]
    counts = {"images": len(first["rows"]), "samples": first["num_samples"]}
    return ["settings", *(title for _, title, _ in columns)], rows, counts


def recorded_stamp(folder: Path) -> str:
    """A run's stamp: its stamp.json, else the date and threads its report.md recorded (older runs)."""
    found = read(folder / "stamp.json")
    if found is not None:
        return stamp.line(found)
    report = (folder / "report.md").read_text() if (folder / "report.md").exists() else ""
    match = re.search(r"^(\d{4}-\d\d-\d\d) [\d:]+ UTC; sinfree ([^;]+); (\d+) threads", report, re.M)
    if not match:
        return "Date, CPU and threads not recorded."
    date, version, threads = match.groups()
    return (
        f"Measured {date} with {threads} torch threads, sinfree {version}; the results files of this run do not "
        "record the CPU (no figure in this table depends on it)"
    )


def quality_tables() -> dict[str, list[str]]:
    tables = {}
    full = HERE / "composition"
    names = [
        "paper",
        "default",
        "default+guidance1",
        "default+guidance0.8",
        "default+guidance0.5",
        "default+guidance1to0",
        "default+guidance0+prior0.1",
        "default+guidance1to0+prior0.1",
    ]
    found = quality_rows(full, names)
    if found:
        header, rows, counts = found
        tables["quality"] = [
            *markdown(header, rows),
            "",
            f"Means over the {counts['images']} images x {counts['samples']} samples (seeds 0-{counts['samples'] - 1}); "
            '"x": ratio to `paper`. ' + recorded_stamp(full / "paper") + ": `python benchmarks/bench_composition.py "
            "--samples 10 --configs paper default default+guidance1 default+guidance0.8 default+guidance0.5 "
            "default+guidance1to0 default+guidance0+prior0.1 default+guidance1to0+prior0.1`",
        ]
    reduced = RESULTS / "composition_5x3"
    found = quality_rows(reduced, ["paper", "default"])
    if found:
        header, rows, counts = found
        tables["quality-check"] = [
            *markdown(header, rows),
            "",
            f"Means over {counts['images']} images x {counts['samples']} samples. " + recorded_stamp(reduced / "paper"),
        ]
    return tables


# ---- enhancement

ENHANCE_METHODS = (
    ("input", "degraded"),
    ("ours", "**sinfree**"),
    ("nlm", "non-local means"),
    ("tv", "TV"),
    ("bm3d", "BM3D"),
    ("rl", "Richardson-Lucy"),
    ("bicubic", "bicubic"),
    ("biharmonic", "biharmonic"),
)


def enhance_table() -> dict[str, list[str]]:
    found = read(RESULTS / "enhance.json")
    if found is None:
        return {}
    per_image = found["per_image"]
    methods = [(key, title) for key, title in ENHANCE_METHODS if key in found["methods"]]
    rows = []
    for row in found["rows"]:
        cells = [row]
        for key, _ in methods:
            scores = [image[row][key] for image in per_image.values() if key in image.get(row, {})]
            if not scores:
                cells.append("-")
                continue
            psnr = sum(s["psnr"] for s in scores) / len(scores)
            ssim = sum(s["ssim"] for s in scores) / len(scores)
            cells.append(f"{psnr:.2f} / {ssim:.3f}")
        rows.append(cells)
    note = (
        f"PSNR (dB) / SSIM against the clean crop, mean over the {len(per_image)} images; `-`: the method does not "
        f"apply to the degradation. sinfree: `enhance`, method {found['method']}, with the true degradation "
        "parameters. " + stamp.line(found["stamp"])
    )
    return {"enhance": [*markdown(["degradation", *(title for _, title in methods)], rows), "", note]}


# ---- inpainting


INPAINT_METHODS = (
    ("sinfree", "sinfree"),
    ("telea", "OpenCV Telea"),
    ("navier-stokes", "OpenCV Navier-Stokes"),
    ("biharmonic", "biharmonic"),
)


def inpaint_table() -> dict[str, list[str]]:
    found = read(RESULTS / "inpaint.json")
    if found is None:
        return {}
    cases = found["cases"]
    rows = []
    for key, title in INPAINT_METHODS:
        mean = {figure: sum(c[key][figure] for c in cases) / len(cases) for figure in ("lpips", "psnr", "seam", "seconds")}
        best = sum(min((k for k, _ in INPAINT_METHODS), key=lambda k: c[k]["lpips"]) == key for c in cases)
        within = sum(c[key]["seam"] <= 1.2 for c in cases)
        rows.append(
            [title, f"{mean['lpips']:.3f}", f"{mean['psnr']:.2f}", f"{mean['seam']:.2f}", f"{within / len(cases):.0%}",
             f"{best / len(cases):.0%}", f"{mean['seconds']:.2f}"]
        )  # fmt: skip
    truth = sum(c["sinfree"]["seam_truth"] for c in cases) / len(cases)
    images = len({c["image"] for c in cases})
    note = (
        f"Means over {len(cases)} cases ({images} photos x {len(cases) // images} masks: a rectangle, a free-form stroke, "
        f"an object-sized blob). LPIPS on the hole's box (lower is better), PSNR over the hole, seam: gradient energy across "
        f"the hole's edge over beside it (the originals: {truth:.2f}). " + stamp.line(found["stamp"])
    )
    header = ["method", "LPIPS in the hole", "PSNR in the hole (dB)", "seam", "seam <= 1.2", "best LPIPS", "seconds"]
    return {"inpaint": [*markdown(header, rows), "", note]}


HARMONIZE_METHODS = (
    ("pasted", "the paste, untouched"),
    ("sinfree", "sinfree harmonize"),
    ("poisson", "Poisson blending"),
    ("reinhard", "Reinhard colour transfer"),
)


def harmonize_table() -> dict[str, list[str]]:
    found = read(RESULTS / "harmonize.json")
    if found is None:
        return {}
    cases = found["cases"]
    rows = []
    for key, title in HARMONIZE_METHODS:
        mean = {
            figure: sum(c[key][figure] for c in cases) / len(cases) for figure in ("tone", "contrast", "seam", "kept", "seconds")
        }
        within = sum(c[key]["tone"] <= 0.1 and c[key]["contrast"] <= 0.1 for c in cases)
        rows.append(
            [title, f"{mean['tone']:.3f}", f"{mean['contrast']:.3f}", f"{within / len(cases):.0%}", f"{mean['seam']:.2f}",
             f"{mean['kept']:.2f}", f"{mean['seconds']:.2f}"]
        )  # fmt: skip
    note = (
        f"Means over {len(cases)} photos, each with a tinted rectangle of another photo pasted in. Tone and contrast: the "
        "region's mean intensity and local contrast against an 8 px ring around it, as relative differences (0: the same; "
        "the target is 0.1 at most); seam: gradient energy across the region's edge over beside it; layout kept: the "
        "correlation of the region's coarse layout with the paste's (1: all kept). " + stamp.line(found["stamp"])
    )
    header = ["method", "tone", "local contrast", "both within 10 %", "seam", "layout kept", "seconds"]
    return {"harmonize": [*markdown(header, rows), "", note]}


# ---- large outputs


def large_table() -> dict[str, list[str]]:
    found = read(RESULTS / "large.json")
    if found is None:
        return {}
    names = {"auto": "pixels (`auto`)", "pca": "latent (`--latent pca`)", "pca:4": "latent (`--latent pca:4`)"}
    rows = []
    for e in found["entries"]:
        config = names.get(e["config"], e["config"])
        if not e.get("measured"):
            rows.append([f"{e['side']}^2", config, f"~{e['seconds']:.0f} (predicted, not run)", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                f"{e['side']}^2",
                config,
                f"{e['seconds']:.1f}",
                f"{e['peak_rss_increase_bytes'] / 2**20:.0f}",
                f"{e['estimated_peak_bytes'] / 2**20:.0f}",
                f"{e['swd']:.3f}",
                f"{e['hf_energy_ratio']:.2f}",
            ]
        )
    header = ["output", "path", "s / sample", "peak MiB", "estimate MiB", "patch SWD", "HF energy ratio"]
    note = (
        "Input: scikit-image's astronaut resized to the output's side; `paper` settings (T = 10), seed 0, one sample, "
        "each entry in a fresh process after a warm-up. Peak: the run's resident memory above what the process held "
        "before it. Patch SWD against the input on copies downscaled to 512 px; HF energy ratio: the sample's "
        "high-frequency energy over the input's (1 = as sharp). " + stamp.line(found["stamp"])
    )
    return {"large": [*markdown(header, rows), "", note]}


def gigapixel_table() -> dict[str, list[str]]:
    found = read(RESULTS / "gigapixel.json")
    if found is None:
        return {}
    rows = []
    for e in found["entries"]:
        where = "this process" if e["workers"] == 1 else f"{e['workers']} Dask workers"
        space = "PCA latent" if e.get("space", "latent") == "latent" else "pixels"
        if not e.get("measured"):
            state = "stopped" if e.get("timed_out") else ("error" if e.get("error") else "predicted, not run")
            rows.append([f"{e['side']}^2", space, where, f"~{e['seconds']:.0f} ({state})", "-", "-", "-", "-", "-"])
            continue
        cpu = e["cpu_seconds"] + e["children_cpu_seconds"]
        rows.append(
            [
                f"{e['side']}^2",
                space,
                where,
                f"{e['seconds']:.0f}",
                f"{cpu:.0f}",
                f"{e['load_before']:.1f}",
                f"{e['peak_tree_bytes'] / 2**30:.2f}",
                f"{e['swd']:.3f}",
                f"{e['hf_energy_ratio']:.2f}",
            ]
        )
    header = ["output", "space", "tiles on", "s / sample", "CPU s", "load", "peak GiB", "patch SWD (crops)", "HF ratio (crops)"]
    note = (
        "Input: scikit-image's astronaut resized to min(side, 8192) px, read band by band; `paper` settings (T = 10), "
        "in the PCA latent space (`--latent pca`) or in pixels, automatic S, seed 0, `--max-memory-gb 4`, output a pyramidal BigTIFF (zlib) and a preview, "
        "each entry in a fresh process; time from reading the input to the closed TIFF. Peak: the summed resident "
        "memory of the process and its workers. CPU s: the process's and its workers'. load: the 1-minute load "
        "average before the entry (other work on the 2 cores). Quality on four 512^2 crops of the output against "
        "the input's crops at the same places and pixel scale: patch SWD and HF energy ratio (1 = as sharp). "
        + stamp.line(found["stamp"])
    )
    return {"gigapixel": [*markdown(header, rows), "", note]}


def energy_table() -> dict[str, list[str]]:
    found = read(RESULTS / "energy.json")
    if found is None:
        return {}
    rows = [
        [
            "input size" if e["size"] is None else f"{e['size']}^2",
            "off" if e["rectify"] is None else f"{e['rectify']:g}",
            str(e["scales"]),
            f"{e['latent_hf']:.3f}",
            f"{e['pixel_hf']:.3f}",
            f"{e['swd']:.4f}",
            f"{e['nn']:.4f}",
            f"{e['copy']:.3f}",
        ]
        for e in found["entries"]
    ]
    header = ["output", "rectify", "S", "HF latent", "HF pixels", "patch SWD", "NN distance", "copying rate"]
    settings = found["settings"]
    note = (
        f"{settings['image']}, latent {settings['latent']}, automatic scales, {settings['seeds']} seed(s), "
        "metrics on the central 1024^2 crop. HF: high-frequency energy over the reference's (latent: the last "
        "step's xhat0; pixels: the decoded output). " + stamp.line(found["stamp"])
    )
    return {"energy": [*markdown(header, rows), "", note]}


PAGES = {
    "performance.md": (timing_tables, memory_table),
    "quality.md": (quality_tables,),
    "enhancement.md": (enhance_table,),
    "large-outputs.md": (large_table, gigapixel_table, energy_table),
    "inpainting.md": (inpaint_table, harmonize_table),
}


def update(text: str, tables: dict[str, list[str]]) -> str:
    for name, lines in tables.items():
        pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            print(f"no <!-- BEGIN {name} --> marker: table left out", file=sys.stderr)
            continue
        text = pattern.sub(lambda match: match.group(1) + "\n".join(lines) + "\n" + match.group(2), text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is out of date")
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args()
    stale = []
    for page, makers in PAGES.items():
        path = args.docs / page
        text = path.read_text()
        tables = {name: lines for make in makers for name, lines in make().items()}
        new = update(text, tables)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new)
        print(f"{page}: {', '.join(tables) or 'no results'}{' (updated)' if new != text else ''}")
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)}; run python benchmarks/publish.py")


if __name__ == "__main__":
    main()
