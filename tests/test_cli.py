"""The ``sinfree`` command end to end, in a subprocess: outputs, metadata, and clean failures."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sinfree.io.images import read_png_settings

FAST = ["-P", "7", "-S", "2", "-T", "3", "-q"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sinfree.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture()
def input_png(tmp_path, small_rgb) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(small_rgb).save(path)
    return path


def assert_clean_failure(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_generate():
    result = run_cli("--help")
    assert result.returncode == 0 and "generate" in result.stdout
    result = run_cli("generate", "--help")
    assert result.returncode == 0 and "--backend" in result.stdout and "--rho" in result.stdout


def test_generate_writes_samples_with_settings(input_png, tmp_path):
    outdir = tmp_path / "out"
    result = run_cli("generate", str(input_png), "-o", str(outdir), "-n", "2", "--seed", "7", "--size", "50x30", *FAST)
    assert result.returncode == 0, result.stderr
    files = sorted(outdir.glob("*.png"))
    assert [f.name for f in files] == ["in_seed7.png", "in_seed8.png"]
    assert Image.open(files[0]).size == (50, 30)
    settings = read_png_settings(files[1])
    assert settings["seed"] == 8 and settings["patch_size"] == 7 and settings["steps"] == 3
    assert settings["output_size"] == [50, 30] and settings["input"] == "in.png"
    assert "s per sample" in result.stdout
    assert not list(outdir.glob(".*"))  # no temporary files left


def test_contact_sheet(input_png, tmp_path, small_rgb):
    result = run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), "-n", "2", "--sheet", *FAST)
    assert result.returncode == 0, result.stderr
    sheet = np.asarray(Image.open(tmp_path / "out" / "in_seed0-1_sheet.png"))
    height, width = small_rgb.shape[:2]
    assert sheet.shape == (height + 14, 3 * width + 2 * 4, 3)
    assert np.array_equal(sheet[14:, :width], small_rgb)  # the input, unscaled, first
    sample = np.asarray(Image.open(tmp_path / "out" / "in_seed0.png"))
    assert np.array_equal(sheet[14:, width + 4 : 2 * width + 4], sample)


def test_cli_matches_the_api(input_png, tmp_path, small_rgb):
    from sinfree import generate

    run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), "--seed", "3", *FAST)
    api = generate(small_rgb, seed=3, patch_size=7, num_scales=2, steps=3)[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "in_seed3.png")), api)


def test_ivf_backend_from_the_cli(input_png, tmp_path):
    result = run_cli(
        "generate",
        str(input_png),
        "-o",
        str(tmp_path / "out"),
        "--backend",
        "ivf",
        "--backend-option",
        "nprobe=3",
        "--backend-option",
        "k=4",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    settings = read_png_settings(tmp_path / "out" / "in_seed0.png")
    assert settings["backend"] == "ivf" and settings["backend_options"] == {"nprobe": 3, "k": 4}


def test_fast_options_from_the_cli(input_png, tmp_path):
    from sinfree import generate

    options = [f"--backend-option={item}" for item in ("project=8", "rescore=10", "propagate=true", "prune_alpha=0.9")]
    result = run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), "--backend", "ivf", *options, *FAST)
    assert result.returncode == 0, result.stderr
    recorded = read_png_settings(tmp_path / "out" / "in_seed0.png")["backend_options"]
    assert recorded == {"project": 8, "rescore": 10, "propagate": True, "prune_alpha": 0.9}
    api = generate(input_png, backend="ivf", patch_size=7, num_scales=2, steps=3, **recorded)[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "in_seed0.png")), api)


def test_progress_bar_is_shown(input_png, tmp_path):
    result = run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), "-P", "7", "-S", "2", "-T", "3")
    assert result.returncode == 0 and "100%" in result.stderr and "sample 1/1" not in result.stdout


def test_sixteen_bit_rgb_round_trip(tmp_path, small_rgb):
    """A 16-bit colour PNG in gives a 16-bit colour PNG out (Pillow alone would drop to 8 bits)."""
    from sinfree.io.images import read_image_file, save_png

    deep = small_rgb.astype(np.uint16) * 257 + 3
    save_png(deep, tmp_path / "deep.png", {"x": 1})
    assert np.array_equal(read_image_file(tmp_path / "deep.png"), deep)
    assert read_png_settings(tmp_path / "deep.png") == {"x": 1}
    result = run_cli("generate", str(tmp_path / "deep.png"), "-o", str(tmp_path / "out"), *FAST)
    assert result.returncode == 0, result.stderr
    out = read_image_file(tmp_path / "out" / "deep_seed0.png")
    assert out.dtype == np.uint16 and out.shape == deep.shape


@pytest.mark.parametrize(
    "make, mode",
    [
        (lambda rgb: Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), "I;16"),
        (lambda rgb: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])), "RGBA"),
        (lambda rgb: Image.fromarray(rgb[:, :, 1]), "L"),
        (lambda rgb: Image.fromarray(rgb).convert("P"), "RGB"),  # palette images come out as RGB
    ],
    ids=["gray16", "rgba", "gray8", "palette"],
)
def test_pixel_formats_through_the_cli(tmp_path, small_rgb, make, mode):
    make(small_rgb).save(tmp_path / "in.png")
    result = run_cli("generate", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), *FAST)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "in_seed0.png") as out:
        assert out.mode == mode and out.size == (small_rgb.shape[1], small_rgb.shape[0])


def test_too_small_image_fails_cleanly(tmp_path, small_rgb):
    path = tmp_path / "tiny.png"
    Image.fromarray(small_rgb[:10, :12]).save(path)
    result = run_cli("generate", str(path), "-o", str(tmp_path / "out"), "-P", "15")  # a patch given is kept
    assert_clean_failure(result, "smaller than the 15 px patch")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "content, needle",
    [(b"", "not an image"), (b"hello, this is text\n" * 10, "not an image"), (os.urandom(4096), "not an image")],
    ids=["empty", "text", "random"],
)
def test_non_image_fails_cleanly(tmp_path, content, needle):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    assert_clean_failure(run_cli("generate", str(path), "-o", str(tmp_path / "out")), needle)


def test_truncated_png_fails_cleanly(tmp_path, input_png):
    data = input_png.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    assert_clean_failure(run_cli("generate", str(truncated), "-o", str(tmp_path / "out")), "truncated")


def test_missing_file_fails_cleanly(tmp_path):
    assert_clean_failure(run_cli("generate", str(tmp_path / "nope.png")), "no such file")


def test_unwritable_output_fails_cleanly_before_work(input_png, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_cli("generate", str(input_png), "-o", str(blocker / "out"), *FAST)  # a run that could go ahead
    assert_clean_failure(result, "cannot write")
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--max-memory-gb", "0.001", "-P", "7", "-S", "2"], "needs about"),
        (["--size", "12by5"], "WIDTHxHEIGHT"),
        (["--scales", "x"], "--scales"),
        (["--rho", "-1"], "--rho"),
        (["--backend", "nope"], "unknown backend"),
        (["--backend", "exact", "--backend-option", "propagate=true", "-P", "7", "-S", "2"], "takes no option propagate"),
        (["--backend", "ivf", "--backend-option", "prune_alpha=0.5", "-P", "7", "-S", "2"], "needs propagate"),
        (["--backend-option", "k"], "NAME=VALUE"),
    ],
)
def test_bad_options_fail_cleanly(input_png, tmp_path, args, needle):
    assert_clean_failure(run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), *args), needle)


def test_refused_run_creates_no_output_folder(input_png, tmp_path):
    result = run_cli("generate", str(input_png), "-o", str(tmp_path / "out"), "--max-memory-gb", "0.001", *FAST)
    assert_clean_failure(result, "needs about")
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_reported_without_traceback(input_png):
    for args in (["generate", str(input_png), "-n", "0"], ["generate"], ["no-such-command"]):
        result = run_cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "Usage" in result.stderr


def test_version_and_bare_command_print_something():
    assert run_cli("--version").stdout.strip().startswith("sinfree ")
    bare = run_cli()  # no command: the help, as click does (exit 2)
    assert "generate" in bare.stdout + bare.stderr and "Traceback" not in bare.stderr


def test_never_overwrites_the_input(tmp_path, small_rgb):
    path = tmp_path / "img_seed0.png"
    Image.fromarray(small_rgb).save(path)
    before = path.read_bytes()
    # the would-be output name of input "img_seed0.png" is img_seed0_seed0.png: distinct by construction
    result = run_cli("generate", str(path), "-o", str(tmp_path), *FAST)
    assert result.returncode == 0 and path.read_bytes() == before


def test_presets_and_the_composition_options(input_png, tmp_path):
    """The default preset keeps the composition (S from the sizes, layout guidance); --preset paper is Table 1;
    options given override the preset; bad values are one clean line."""
    default = run_cli("generate", str(input_png), "-o", str(tmp_path / "default"), "-P", "7", "-T", "3", "-q")
    assert default.returncode == 0, default.stderr
    settings = read_png_settings(tmp_path / "default" / "in_seed0.png")
    assert (
        settings["layout_guidance"] == 0.7 and settings["variation"] == 1.0 and settings["num_scales"] == 2
    )  # 40 x 48: coarsest 20 x 24, >= 2 P
    paper = run_cli("generate", str(input_png), "-o", str(tmp_path / "paper"), "--preset", "paper", "-P", "7", "-S", "2", "-q")
    assert paper.returncode == 0, paper.stderr
    settings = read_png_settings(tmp_path / "paper" / "in_seed0.png")
    assert (settings["layout_guidance"], settings["rho"], settings["steps"], settings["num_scales"]) == (0.0, 0.2, 10, 2)
    tuned = run_cli(
        "generate",
        str(input_png),
        "-o",
        str(tmp_path / "tuned"),
        "--variation",
        "0.9",
        "--completeness",
        "0.5",
        "--start-blur",
        "2",
        "--layout-guidance",
        "0.5",
        "--layout-guidance-end",
        "0",
        *FAST,
    )
    assert tuned.returncode == 0, tuned.stderr
    settings = read_png_settings(tmp_path / "tuned" / "in_seed0.png")
    assert (settings["variation"], settings["completeness"], settings["start_blur"], settings["layout_guidance"]) == (
        0.9,
        0.5,
        2.0,
        0.5,
    )
    assert settings["layout_guidance_end"] == 0.0
    placed = run_cli("generate", str(input_png), "-o", str(tmp_path / "placed"), "--position-prior", "0.2", *FAST)
    assert placed.returncode == 0, placed.stderr
    assert read_png_settings(tmp_path / "placed" / "in_seed0.png")["position_prior"] == 0.2
    both = ("--position-prior", "0.2", "--completeness", "0.5")
    assert_clean_failure(run_cli("generate", str(input_png), "-o", str(tmp_path / "bad"), *both, *FAST), "choose one")
    assert_clean_failure(run_cli("generate", str(input_png), "-o", str(tmp_path / "bad"), "--variation", "0", *FAST), "variation")
    assert_clean_failure(run_cli("generate", str(input_png), "-o", str(tmp_path / "bad"), "--preset", "fast", *FAST), "preset")
    assert not (tmp_path / "bad").exists()


def test_defaults_run_off_the_benchmark_size(tmp_path):
    """No flags: a 64^2 input and the retarget 160 x 120 -> 240 x 100 that S = 4 refused."""
    from skimage import data, transform

    for name, shape in (("tiny", (64, 64)), ("photo", (120, 160))):
        image = (transform.resize(data.astronaut(), shape, anti_aliasing=True) * 255).round().astype(np.uint8)
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    tiny = run_cli("generate", str(tmp_path / "tiny.png"), "-o", str(tmp_path / "out"), "-T", "4", "-q")
    assert tiny.returncode == 0, tiny.stderr
    assert read_png_settings(tmp_path / "out" / "tiny_seed0.png")["num_scales"] == 2
    retarget = run_cli("retarget", str(tmp_path / "photo.png"), "--size", "240x100", "-o", str(tmp_path / "out"), "-T", "4", "-q")
    assert retarget.returncode == 0, retarget.stderr
    assert Image.open(tmp_path / "out" / "photo_retarget_seed0.png").size == (240, 100)


def test_version_and_help_do_not_import_torch():
    code = (
        "import sys, runpy; sys.argv = ['sinfree', '--version'];\n"
        "try:\n    runpy.run_module('sinfree.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.argv = ['sinfree', 'generate', '--help']\n"
        "try:\n    runpy.run_module('sinfree.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "sinfree 0.2.0" in result.stdout, result.stderr


def test_importing_the_library_leaves_the_environment_alone():
    code = (
        "import os; before = dict(os.environ); import sinfree, sinfree.generation, sinfree.cli; assert dict(os.environ) == before"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_cli_lists_what_the_library_accepts():
    from sinfree.backends import backend_names
    from sinfree.cli import enhance, options
    from sinfree.enhance import TASKS
    from sinfree.latent import LATENT_CHOICES
    from sinfree.settings import PRESETS

    assert list(options.BACKEND_NAMES) == backend_names()
    assert enhance.TASKS == TASKS and options.LATENT_CHOICES == LATENT_CHOICES and list(options.PRESET_NAMES) == list(PRESETS)


def test_every_subcommand_shares_the_common_options():
    """-o, -n, --seed, --overwrite, -q mean the same in every subcommand that writes files."""
    from typer.main import get_command

    from sinfree.cli import app

    group = get_command(app)
    for name, command in group.commands.items():
        if name == "batch":  # runs the other subcommands, which take these options through its --args
            continue
        if name == "web":  # serves the other subcommands, whose options each tab sets
            continue
        flags = {opt: param.name for param in command.params for opt in getattr(param, "opts", [])}
        for flag, meaning in (
            ("-o", "outdir"),
            ("-n", "num_samples"),
            ("--seed", "seed"),
            ("--overwrite", "overwrite"),
            ("-q", "quiet"),
        ):
            assert flags.get(flag) == meaning, (name, flag)
        if name not in ("eval", "enhance"):
            for flag in ("--sheet", "--preset", "--backend-option", "-P", "-T", "--rho", "--max-memory-gb"):
                assert flag in flags, (name, flag)
            assert ("-S" in flags) == (name != "style"), name  # style runs on one scale
        if name in ("inpaint", "harmonize", "enhance"):
            assert flags.get("-m") == "mask", name


def test_earlier_outputs_are_kept_unless_overwrite(input_png, tmp_path):
    outdir = tmp_path / "out"
    assert run_cli("generate", str(input_png), "-o", str(outdir), *FAST).returncode == 0
    first = (outdir / "in_seed0.png").read_bytes()
    again = run_cli("generate", str(input_png), "-o", str(outdir), "-T", "2", "-P", "7", "-S", "2", "-q")
    assert_clean_failure(again, "exists", "--overwrite")
    assert (outdir / "in_seed0.png").read_bytes() == first
    replaced = run_cli("generate", str(input_png), "-o", str(outdir), "-T", "2", "-P", "7", "-S", "2", "-q", "--overwrite")
    assert replaced.returncode == 0 and (outdir / "in_seed0.png").read_bytes() != first


def test_memory_refusal_names_flags_that_fit(input_png, tmp_path):
    result = run_cli(
        "generate",
        str(input_png),
        "-o",
        str(tmp_path / "out"),
        "-n",
        "4",
        "--backend",
        "exact",
        "--max-memory-gb",
        "0.0005",
        "-P",
        "7",
        "-S",
        "2",
    )
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "needs about" in line and ("--stride" in line or "-n 1" in line or "none" in line or "no larger" in line), line
    assert "stride=" not in line and "num_samples=" not in line  # flags, not library keywords


def test_interrupted_run_leaves_no_output_folder(input_png, tmp_path):
    import signal
    import time

    outdir = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinfree.cli",
            "generate",
            str(input_png),
            "-o",
            str(outdir),
            "-P",
            "7",
            "-S",
            "2",
            "-T",
            "400",
            "-n",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    line = "start"
    while line and "scales x" not in line and time.time() < deadline:  # the run is planned: sampling starts
        line = process.stderr.readline()
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not outdir.exists()


def test_time_estimate_weighs_each_scale_by_its_cost():
    """The bar's work is calls x the canvas's pixels: after the coarse scale's calls (a quarter of the fine
    one's pixels) a two-scale run is a fifth done, not half."""
    from rich.progress import Progress

    from sinfree.cli.running import WeightedProgress
    from sinfree.coarse_to_fine import Progress as Call

    with Progress(disable=True) as bar:
        progress = WeightedProgress(bar, [(40, 40), (20, 20)], steps=3, num_samples=1)
        for done, (scale, step) in enumerate([(1, 3), (1, 2), (1, 1)], start=1):
            progress(Call(0, scale, step, done, 6))
        task = bar.tasks[0]
        assert task.completed / task.total == pytest.approx(400 / 2000)
        for done, step in enumerate([3, 2, 1], start=4):
            progress(Call(0, 0, step, done, 6))
        assert bar.tasks[0].completed == bar.tasks[0].total
