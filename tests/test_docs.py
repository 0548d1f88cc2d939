"""The documentation site builds in strict mode (every page, link and API reference resolves), and its
command-line reference is the one the code generates."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs")
    assert mkdocs, "mkdocs is in the docs extra: pip install -e '.[docs]'"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("generate_samples") > 1


def test_the_command_line_page_is_current(tmp_path):
    out = tmp_path / "cli.md"
    command = [sys.executable, "-m", "typer", "sinfree.cli", "utils", "docs", "--name", "sinfree", "--title", "Command line"]
    subprocess.run([*command, "--output", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), "regenerate: " + " ".join(command) + " --output docs/cli.md"


def test_no_page_points_outside_the_repository():
    for page in [ROOT / "README.md", ROOT / "DEVELOPERS.md", *(ROOT / "docs").rglob("*.md")]:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page


def test_the_published_tables_match_their_results():
    """Every table of the measurement pages is what benchmarks/publish.py makes from the results files."""
    result = subprocess.run(
        [sys.executable, "benchmarks/publish.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
