"""The web app (issue 22) through its API, with gradio_client against the app served on 127.0.0.1, and its job
functions on their own: the runs are the CLI's commands (same parser, same outputs and metadata), bad uploads
and memory refusals are one-line messages, and the app keeps working after them."""

from __future__ import annotations

import inspect
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from skimage import data

import sinfree.cli
from sinfree.errors import InputImageError, MemoryBudgetError, SinfreeError
from sinfree.io.images import read_image_file, read_png_settings
from sinfree.web import handlers
from sinfree.web.handlers import WebConfig

CT_SMALL = pydicom.data.get_testdata_file("CT_small.dcm")
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio")  # gradio's own deprecation notices (pandas)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Small uploads: a 48 x 40 photo crop, a mask for it, and bad files."""
    folder = tmp_path_factory.mktemp("uploads")
    photo = data.astronaut()[100:140, 150:198]
    paths = {name: folder / name for name in ("astro.png", "layer.png", "text.png", "truncated.png", "tiny.png", "mask9.png")}
    Image.fromarray(photo).save(paths["astro.png"])
    layer = np.zeros((40, 48, 4), np.uint8)
    layer[14:24, 18:30] = (255, 0, 255, 255)
    Image.fromarray(layer).save(paths["layer.png"])
    paths["text.png"].write_text("not an image\n")
    paths["truncated.png"].write_bytes(paths["astro.png"].read_bytes()[:300])
    Image.fromarray(photo[:2, :2]).save(paths["tiny.png"])
    Image.fromarray(np.full((9, 9), 255, np.uint8)).save(paths["mask9.png"])
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port of 127.0.0.1 in this process, two jobs at a time; (client, config, demo)."""
    from sinfree.web.app import launch

    config = WebConfig(outdir=tmp_path_factory.mktemp("web"), max_pixels=20_000, concurrency=2)
    demo, url = launch(config, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    yield Client(url, verbose=False), config, demo
    demo.close()


def generate_args(path, **given):
    values = dict(input=handle_file(str(path)), size="", num_samples=1, seed=0, preset="default", steps=2)
    values |= (
        dict(patch_size=None, scales="", layout_guidance=None, layout_guidance_end=None, position_prior=None, variation=None)
        | given
    )
    return values


def test_generate_returns_images_saved_like_the_cli(server, files):
    client, config, _ = server
    gallery, downloads, command = client.predict(**generate_args(files["astro.png"], num_samples=2, seed=3), api_name="/generate")
    assert command.splitlines()[0] == "sinfree generate astro.png -n 2 --seed 3 -T 2"
    assert len(gallery) == 2 and len(downloads) == 2
    for item, seed in zip(gallery, (3, 4)):
        assert Path(item["image"]).name == f"astro_seed{seed}.png"
        assert read_image_file(item["image"]).shape == (40, 48, 3)
        settings = read_png_settings(item["image"])  # the CLI's metadata, through the download
        assert settings["input"] == "astro.png" and settings["seed"] == seed and settings["steps"] == 2
        assert settings["version"] == sinfree.__version__


def test_generate_any_size_and_the_pixel_limit(server, files):
    client, _, _ = server
    gallery, _, command = client.predict(**generate_args(files["astro.png"], size="64x30"), api_name="/generate")
    assert read_image_file(gallery[0]["image"]).shape == (30, 64, 3) and "--size 64x30" in command
    with pytest.raises(AppError, match="more than this server allows .*--max-pixels"):
        client.predict(**generate_args(files["astro.png"], size="400x400"), api_name="/generate")


def test_inpaint_with_a_painted_mask_keeps_the_other_pixels(server, files):
    client, _, _ = server
    editor = {
        "background": handle_file(str(files["astro.png"])),
        "layers": [handle_file(str(files["layer.png"]))],
        "composite": None,
    }
    values = dict(input=handle_file(str(files["astro.png"])), dilate=0, tone_guidance=0.5, blend=True, num_samples=1, seed=0)
    values |= dict(preset="default", steps=2, patch_size=None, scales="", editor=editor, mask_file=None)
    gallery, downloads, command = client.predict(**values, api_name="/inpaint")
    assert command.splitlines()[0] == "sinfree inpaint astro.png -m astro_mask.png -T 2"
    mask = next(path for path in downloads if Path(path).name == "astro_mask.png")
    region = read_image_file(mask) > 0
    assert region.sum() == 10 * 12 and region[14:24, 18:30].all()
    result, photo = read_image_file(gallery[0]["image"]), read_image_file(files["astro.png"])
    assert np.array_equal(result[~region], photo[~region]) and not np.array_equal(result[region], photo[region])
    assert read_png_settings(gallery[0]["image"])["input"] == "astro.png"


def test_enhance_a_dicom_gives_a_dicom_and_its_uncertainty(server):
    client, _, _ = server
    values = dict(input=handle_file(CT_SMALL), task="denoise", noise="gaussian", sigma="auto", blur="auto", scale=2, mask=None)
    values |= dict(method="two-stage", steps=None, patch_size=None, num_samples=2, seed=0)
    compare, uncertainty, slider, downloads, command = client.predict(**values, api_name="/enhance")
    assert command.splitlines()[0] == "sinfree enhance CT_small.dcm -n 2"
    names = sorted(Path(path).name for path in downloads)
    assert names == ["CT_small_denoise.dcm", "CT_small_denoise_uncertainty.dcm"]
    source = pydicom.dcmread(CT_SMALL)
    result = pydicom.dcmread(next(path for path in downloads if path.endswith("_denoise.dcm")))
    assert result.Rows == source.Rows and result.PatientID == source.PatientID
    assert int(result.SeriesNumber) == int(source.SeriesNumber) + 1000
    before, after = (read_image_file(path) for path in compare)
    assert before.shape == after.shape == (128, 128) and not np.array_equal(before, after)
    assert read_image_file(uncertainty).max() > 0
    assert slider["visible"] is False  # one slice: no slider


def test_enhance_a_volume_has_a_slice_slider(server, tmp_path):
    nibabel = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    voxels = (np.linspace(0, 200, 32)[None, :, None] + rng.normal(0, 10, (32, 32, 3))).astype(np.int16)
    nibabel.save(nibabel.Nifti1Image(voxels, np.diag([0.5, 0.5, 2.0, 1.0])), tmp_path / "vol.nii.gz")
    client, _, _ = server
    values = dict(input=handle_file(str(tmp_path / "vol.nii.gz")), task="denoise", noise="gaussian", sigma="auto", blur="auto")
    values |= dict(scale=2, mask=None, method="two-stage", steps=None, patch_size=None, num_samples=1, seed=0)
    compare, uncertainty, slider, downloads, command = client.predict(**values, api_name="/enhance")
    assert slider["visible"] is True and slider["maximum"] == 2 and slider["value"] == 1
    assert [Path(path).name for path in downloads] == ["vol_denoise.nii.gz"] and uncertainty is None
    result = nibabel.load(downloads[0])
    assert result.shape == (32, 32, 3) and np.allclose(result.affine, np.diag([0.5, 0.5, 2.0, 1.0]))
    assert all(read_image_file(path).shape == (32, 32) for path in compare)


@pytest.mark.parametrize(
    "name, message",
    [
        ("text.png", "text.png: not an image file that can be read"),
        ("truncated.png", "truncated.png: cannot read the image .*truncated or corrupt"),
        ("tiny.png", r"the input \(2x2 px\) is smaller than the 3 px patch"),
    ],
)
def test_bad_uploads_give_a_message_and_the_app_keeps_working(server, files, name, message):
    client, _, _ = server
    with pytest.raises(AppError, match=message):
        client.predict(**generate_args(files[name]), api_name="/generate")
    gallery, _, _ = client.predict(**generate_args(files["astro.png"]), api_name="/generate")
    assert len(gallery) == 1


def test_a_wrong_size_mask_gives_a_message(server, files):
    client, _, _ = server
    values = dict(input=handle_file(str(files["astro.png"])), dilate=0, tone_guidance=0.5, blend=True, num_samples=1, seed=0)
    values |= dict(
        preset="default", steps=2, patch_size=None, scales="", editor=None, mask_file=handle_file(str(files["mask9.png"]))
    )
    with pytest.raises(AppError, match="mask9.png: .*9x9.*48x40|mask9.png: .*size"):
        client.predict(**values, api_name="/inpaint")
    with pytest.raises(AppError, match="paint the region"):
        client.predict(**(values | {"mask_file": None}), api_name="/inpaint")


def test_two_jobs_at_once_both_finish(server, files):
    client, _, demo = server
    runs = [fn for fn in demo.fns.values() if fn.api_name in handlers.COMMANDS]
    assert len(runs) == 8 and {(fn.concurrency_id, fn.concurrency_limit) for fn in runs} == {("sinfree-runs", 2)}  # one queue
    jobs = [client.submit(**generate_args(files["astro.png"], seed=seed), api_name="/generate") for seed in (10, 11, 12)]
    names = [Path(job.result(timeout=120)[0][0]["image"]).name for job in jobs]
    assert names == ["astro_seed10.png", "astro_seed11.png", "astro_seed12.png"]


# --------------------------------------------------------------------------------------------------- handlers


def test_the_jobs_run_the_cli_commands():
    for name, function in handlers.COMMANDS.items():
        assert sinfree.cli.COMMANDS[name] is function


@pytest.mark.parametrize(
    "name, values",
    [
        (
            "generate",
            {
                "input": "a b.png",
                "size": "64x48",
                "num_samples": 3,
                "seed": 7,
                "steps": 4,
                "layout_guidance": 0.25,
                "layout_guidance_end": 0.0,
                "position_prior": 0.1,
            },
        ),
        ("tile", {"input": "t.png", "preview": True, "patch_size": 9, "scales": "2"}),
        ("analogy", {"structure": "s.png", "style": "t.png", "level": 0.35}),
        ("inpaint", {"input": "x.png", "mask": "m.png", "blend": False, "dilate": 3, "tone_guidance": 0.75}),
        ("enhance", {"input": "ct.dcm", "task": "superres", "scale": 3, "sigma": "12.5", "num_samples": 4}),
    ],
)
def test_the_command_shown_is_what_the_cli_parses(name, values):
    line = handlers.command_line(name, values)
    command = handlers.click_command(name)
    words = shlex.split(line)
    assert words[:2] == ["sinfree", name]
    parsed = command.make_context(f"sinfree {name}", words[2:]).params
    for key, value in values.items():
        assert parsed[key] == (Path(value) if key in ("input", "mask", "structure", "style") else value), key
    defaults = {param.name: param.default for param in inspect.signature(sinfree.cli.COMMANDS[name]).parameters.values()}
    assert all(parsed[key] == defaults[key] for key in parsed if key not in values and key != "backend_option")


def test_the_memory_refusal_is_a_message_with_the_settings_that_fit(tmp_path, files):
    config = WebConfig(outdir=tmp_path, max_memory_gb=1e-6)
    with pytest.raises(MemoryBudgetError, match=r"needs about .* MiB but only 1.0 KiB is available"):
        handlers.generation_job(
            config, "generate", {"input": str(files["astro.png"]), "steps": 2, "preset": "paper", "scales": "1"}
        )
    assert not any(tmp_path.iterdir())  # a refused run leaves no folder behind


def test_the_memory_refusal_reaches_the_browser_as_gr_error(tmp_path, files):
    import gradio as gr

    from sinfree.web.app import job_function

    config = WebConfig(outdir=tmp_path, max_memory_gb=1e-6)
    body = lambda values, progress: handlers.generation_job(config, "generate", values)  # noqa: E731
    function = job_function(gr, ["input", "steps", "preset", "scales"], body)
    assert list(inspect.signature(function).parameters) == ["input", "steps", "preset", "scales", "progress"]
    with pytest.raises(gr.Error) as caught:
        function(str(files["astro.png"]), 2.0, "paper", "1")
    assert caught.value.message.startswith("generating 1 sample(s) of 48x40 px needs about")


def test_progress_goes_from_the_sampler_to_the_report(tmp_path, files):
    seen = []
    result = handlers.generation_job(
        WebConfig(outdir=tmp_path),
        "generate",
        {"input": str(files["astro.png"]), "steps": 3},
        lambda f, text: seen.append((f, text)),
    )
    fractions = [fraction for fraction, _ in seen]
    assert len(seen) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(text.startswith("sample 1/1 scale 0") for _, text in seen)
    assert [path.name for path in result.extra["samples"]] == ["astro_seed0.png"]


def test_uploads_are_checked(tmp_path, files):
    config = WebConfig(outdir=tmp_path, max_pixels=1000)
    with pytest.raises(InputImageError, match=r"^astro.png: 1,920 pixels is more than this server allows \(1,000"):
        handlers.read_upload(str(files["astro.png"]), config)
    with pytest.raises(InputImageError, match="upload an image first"):
        handlers.read_upload(None, config)
    with pytest.raises(SinfreeError, match="^text.png: "):
        handlers.read_scan_upload(str(files["text.png"]), WebConfig(outdir=tmp_path))


def test_painted_mask():
    layer = np.zeros((5, 6, 4), np.uint8)
    assert handlers.painted_mask({"layers": [layer]}, (5, 6)) is None
    layer[1:3, 2:4, 3] = 128
    region = handlers.painted_mask({"background": None, "layers": [layer], "composite": None}, (5, 6))
    assert region.sum() == 4 and region[1:3, 2:4].all()
    with pytest.raises(InputImageError, match="painted mask is 6x5 px, the image 7x5 px"):
        handlers.painted_mask({"layers": [layer]}, (5, 7))


def test_the_server_binds_to_localhost_by_default_and_imports_nothing_heavy():
    from sinfree.cli import web

    assert inspect.signature(web.web).parameters["host"].default == "127.0.0.1"
    code = "import sys, sinfree.cli; print('torch' in sys.modules, 'gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]


def test_nothing_is_fetched_from_outside(server):
    import os

    _, _, demo = server
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and demo.analytics_enabled is False
    import gradio as gr

    from sinfree.web.app import local_theme

    theme = local_theme(gr)
    assert all(isinstance(font, str) for font in theme._font + theme._font_mono)
    assert "googleapis" not in theme._get_theme_css()


def test_concurrent_runs_use_separate_folders(tmp_path, files):
    config = WebConfig(outdir=tmp_path)
    results = []
    threads = [
        threading.Thread(
            target=lambda s=seed: results.append(
                handlers.generation_job(config, "generate", {"input": str(files["astro.png"]), "steps": 1, "seed": s})
            )
        )
        for seed in (0, 0)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({result.folder for result in results}) == 2 and all(len(result.files) == 1 for result in results)


def test_before_after_puts_a_super_resolved_result_beside_its_input(tmp_path):
    from sinfree.io.images import save_png

    source = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 100).astype(np.uint16)
    save_png(source, tmp_path / "scan.png")
    save_png(np.kron(source, np.ones((2, 2), np.uint16)), tmp_path / "scan_superres.png")
    before, after = handlers.before_after(tmp_path / "scan.png", tmp_path / "scan_superres.png", 0)
    assert before.shape == after.shape == (40, 48) and before.dtype == np.uint8
    assert np.array_equal(before, after)  # one display window for both
    assert handlers.uncertainty_view(None, 0) is None


def test_the_style_tab_runs_where_clip_is_configured(tmp_path):
    pytest.importorskip("transformers")
    from sinfree.web.app import build_app

    demo = build_app(WebConfig(outdir=tmp_path, clip=tmp_path))
    assert "style" in {fn.api_name for fn in demo.fns.values()}
    line = handlers.command_line("style", {"input": "a.png", "prompt": "a watercolour painting", "clip": tmp_path, "steps": 200})
    assert line == f"sinfree style a.png --prompt 'a watercolour painting' --clip {tmp_path.name}"


def test_sinfree_web_serves_on_localhost(tmp_path):
    import time
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sinfree", "web", "--port", str(port), "-o", str(tmp_path / "out"), "--concurrency", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in server.stdout:  # the startup lines, up to the address (EOF if the server dies)
            lines.append(line)
            if "serving on" in line:
                break
        output = "".join(lines)
        assert f"outputs in {tmp_path / 'out'}; 1 run(s) at a time" in output
        assert f"serving on http://127.0.0.1:{port}/" in output
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "sinfree web does not answer"
                time.sleep(0.5)
        assert "<title>sinfree</title>" in page or "sinfree" in page
        assert "fonts.googleapis" not in page and "cdn" not in page.lower()
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_server_asks_no_other_machine_anything(tmp_path, monkeypatch, files):
    """Every host name the server resolves and every address it connects to, from launch to a finished run, is local."""
    import socket as sockets
    import urllib.request

    from sinfree.web.app import launch

    hosts = []
    resolve, connect = sockets.getaddrinfo, sockets.socket.connect
    monkeypatch.setattr(
        sockets, "getaddrinfo", lambda host, *args, **kwargs: hosts.append(host) or resolve(host, *args, **kwargs)
    )
    monkeypatch.setattr(sockets.socket, "connect", lambda self, address: hosts.append(address[0]) or connect(self, address))
    demo, url = launch(WebConfig(outdir=tmp_path), port=free_port(), block=False, quiet=True)
    try:
        for path in ("", "config", "gradio_api/info"):
            with urllib.request.urlopen(url + path, timeout=30) as response:
                assert response.status == 200
        handlers.generation_job(WebConfig(outdir=tmp_path), "generate", {"input": str(files["astro.png"]), "steps": 1})
    finally:
        demo.close()
    assert hosts and set(hosts) <= {"127.0.0.1", "localhost", "::1"}, sorted(set(map(str, hosts)))
