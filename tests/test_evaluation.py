"""``sinfree eval`` end to end on two small real images: files written, generated and re-read samples
score the same, other runs compared, clean failures."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from helpers import run_cli
from PIL import Image

from sinfree.evaluation import METRICS

FAST = ["-P", "7", "-S", "2", "-T", "2", "-n", "2", "-q"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of two real 100 x 112 images (astronaut and coffee crops): NIQE needs 96 px."""
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(skimage.data.astronaut()[100:300:2, 150:374:2]).save(folder / "astronaut.png")
    Image.fromarray(skimage.data.coffee()[100:300:2, 200:424:2]).save(folder / "coffee.png")
    return folder


@pytest.fixture(scope="module")
def generated(inputs, tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("eval")
    result = run_cli("eval", str(inputs), "-o", str(outdir), *FAST)
    assert result.returncode == 0, result.stderr
    return outdir


def test_writes_results_report_and_figures(generated):
    results = json.loads((generated / "results.json").read_text())
    assert [row["image"] for row in results["rows"]] == ["astronaut", "coffee"]
    for row in results["rows"]:
        assert set(METRICS) <= set(row["metrics"]) and row["num_samples"] == 2
        # seams: NaN where a small sample holds no two coherently copied regions
        assert all(math.isfinite(row["metrics"][m]) for m in METRICS if m != "seams")
        assert row["seconds_per_sample"] > 0
    assert results["mean"]["sifid"] == pytest.approx(np.mean([r["metrics"]["sifid"] for r in results["rows"]]))
    rows = list(csv.DictReader((generated / "results.csv").open()))
    assert [r["image"] for r in rows] == ["astronaut", "coffee", "mean"] and set(METRICS) <= set(rows[0])
    report = (generated / "report.md").read_text()
    assert "SinDDM" in report and "LPIPS div." in report and "figures/diversity_vs_sifid.png" in report
    for name in ("diversity_vs_sifid.png", "astronaut_sheet.png", "coffee_sheet.png"):
        assert Image.open(generated / "figures" / name).size[0] > 100
    assert sorted(p.name for p in (generated / "samples" / "coffee").iterdir()) == ["coffee_seed0.png", "coffee_seed1.png"]


def test_samples_mode_reproduces_the_generated_run(inputs, generated, tmp_path):
    result = run_cli(
        "eval",
        str(inputs),
        "-o",
        str(tmp_path),
        "--samples-dir",
        str(generated / "samples"),
        "--label",
        "re-read",
        "--compare",
        str(generated),
        "-q",
    )
    assert result.returncode == 0, result.stderr
    first = json.loads((generated / "results.json").read_text())
    again = json.loads((tmp_path / "results.json").read_text())
    for a, b in zip(first["rows"], again["rows"]):
        for metric in METRICS:
            assert b["metrics"][metric] == pytest.approx(a["metrics"][metric], rel=1e-6, abs=1e-9, nan_ok=True), metric
    assert again["label"] == "re-read" and again["settings"] is None
    report = (tmp_path / "report.md").read_text()
    assert "| re-read |" in report and f"| {first['label']} |" in report


def test_more_diverse_samples_score_higher_diversity(inputs, tmp_path):
    """Another 'method': copies of the input (no diversity, full copying) against shuffled halves."""
    reference = np.asarray(Image.open(inputs / "astronaut.png"))
    copies, varied = tmp_path / "copies" / "astronaut", tmp_path / "varied" / "astronaut"
    copies.mkdir(parents=True), varied.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(reference).save(copies / f"{i}.png")
        Image.fromarray(np.roll(reference, 30 * (i + 1), axis=1)).save(varied / f"{i}.png")
    figures = {}
    for name in ("copies", "varied"):
        result = run_cli(
            "eval",
            str(inputs / "astronaut.png"),
            "-o",
            str(tmp_path / f"out_{name}"),
            "--samples-dir",
            str(tmp_path / name),
            "-q",
        )
        assert result.returncode == 0, result.stderr
        figures[name] = json.loads((tmp_path / f"out_{name}" / "results.json").read_text())["rows"][0]["metrics"]
    assert figures["copies"]["lpips_diversity"] == pytest.approx(0, abs=1e-6)
    assert figures["copies"]["pixel_diversity"] == 0 and figures["copies"]["copying_rate"] == 1.0
    assert figures["copies"]["sifid"] == pytest.approx(0, abs=1e-3)
    assert figures["varied"]["lpips_diversity"] > 0.1 and figures["varied"]["pixel_diversity"] > 0.3


def test_clean_failures(inputs, tmp_path):
    for args, needle in [
        (["eval", str(tmp_path / "missing.png")], "no such file"),
        (["eval", str(inputs), "--samples-dir", str(tmp_path)], "no sample folder"),
        (["eval", str(inputs), "--compare", str(inputs / "astronaut.png")], "not a results file"),
        (["eval", str(inputs), "--backend-option", "k"], "NAME=VALUE"),
    ]:
        result = run_cli(*args, "-o", str(tmp_path / "out"), "-q")
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert needle in result.stderr.strip().splitlines()[-1], result.stderr
