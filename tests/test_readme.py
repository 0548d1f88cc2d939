"""README.md is a guide whose every command and picture works from a clone: the pictures exist and are
made by the commands it shows (scripts/make_figures.py), every file it names exists, its Python runs,
and it stays short."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_short_and_about_the_product():
    assert len(README.splitlines()) <= 300
    for word in ("session", "commit ", "issue", "this machine", "../shared", "DESIGN.md"):
        assert word not in README, word


def test_every_linked_file_and_picture_exists():
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    local = [t for t in targets if not t.startswith("http")]
    assert len(local) > 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


def test_every_example_path_in_a_command_exists():
    paths = set(re.findall(r"(?:examples|benchmarks)/[\w./-]+", README))
    assert "examples/balloons.png" in paths
    assert not [p for p in paths if not (ROOT / p.rstrip(".")).exists()]


def test_the_pictures_are_made_by_the_commands_shown():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from make_figures import COMMANDS
    finally:
        sys.path.pop(0)
    shown = re.findall(r"`(sinfree (?:generate|retarget|symmetric|tile|analogy|inpaint|harmonize|enhance) [^`]+)`", README)
    for _, command in COMMANDS:
        assert command in shown, command
    for command in shown:  # each parses: its subcommand and options exist
        args = shlex.split(command)
        help_text = subprocess.run([sys.executable, "-m", "sinfree", args[1], "--help"], capture_output=True, text=True).stdout
        for option in [a for a in args[2:] if a.startswith("-")]:
            assert option in help_text, (command, option)


def test_the_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert commands[1].endswith("python -m pytest")
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == commands[1]
    assert commands[0].endswith("sinfree generate examples/balloons_small.png -o samples -n 2")
