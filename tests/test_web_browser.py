"""The web app in a real browser (issue 22): headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright
loads the page, generates from an uploaded example, paints a mask and inpaints, enhances a DICOM, shows the
message of a bad upload, and never asks anything of a machine other than 127.0.0.1.

Without /usr/bin/chromium the tests skip, unless SINFREE_REQUIRE_BROWSER is set (CI), where they fail."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from sinfree.io.images import read_image_file, read_png_settings
from sinfree.web.handlers import WebConfig

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = 180_000
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio")  # gradio's own deprecation notices (pandas)

if not CHROMIUM.exists():
    if os.environ.get("SINFREE_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing and SINFREE_REQUIRE_BROWSER is set (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app served on 127.0.0.1 (config, url)."""
    from sinfree.web.app import launch

    config = WebConfig(outdir=tmp_path_factory.mktemp("web"), concurrency=2)
    demo, url = launch(config, port=free_port(), block=False, quiet=True)
    yield config, url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(app, browser):
    """The app's page, with every URL it requested recorded in ``page.requested``."""
    _, url = app
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("websocket", lambda socket: page.requested.append(socket.url))
    page.goto(url)
    page.wait_for_selector("#generate-input", timeout=60_000)
    yield page
    page.close()


def upload(page, elem_id: str, path: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def wait_for_result(page, selector: str) -> None:
    """Until ``selector`` shows; an error message shown instead fails the test with its text."""
    page.wait_for_selector(f"{selector}, .toast-body", timeout=RUN_TIMEOUT_MS)
    if not page.locator(selector).count():
        pytest.fail(f"the page shows: {page.locator('.toast-body').first.inner_text()}")


def newest(config: WebConfig, pattern: str) -> Path:
    return max(Path(config.outdir).glob(pattern), key=lambda path: path.stat().st_mtime)


def test_generate_shows_the_result(app, page):
    config, _ = app
    upload(page, "generate-input", EXAMPLES / "balloons_small.png")
    page.wait_for_selector("#generate-input-preview img", timeout=30_000)  # the preview
    page.locator("#generate-run").click()
    wait_for_result(page, "#generate-gallery img")
    page.wait_for_function("document.querySelector('#generate-command').innerText.includes('# 1 file(s)')", timeout=30_000)
    assert "sinfree generate balloons_small.png" in page.locator("#generate-command").inner_text()
    sample = newest(config, "*-generate/balloons_small_seed0.png")
    assert read_image_file(sample).shape == (93, 124, 3) and read_png_settings(sample)["input"] == "balloons_small.png"


def test_paint_a_mask_and_inpaint(app, page):
    config, _ = app
    page.get_by_role("tab", name="Inpaint / remove object").click()
    upload(page, "inpaint-input", EXAMPLES / "balloons_small.png")
    canvas = page.locator("#inpaint-editor canvas").first
    canvas.wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#inpaint-command').innerText.includes('balloons_small.png')", timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#inpaint-editor [data-testid=status-tracker]').classList.contains('hide')", timeout=60_000
    )  # the image is on the editor
    page.wait_for_timeout(500)  # the image drawn on the canvas
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + step * box["width"] * 0.01, y + step * box["height"] * 0.005)
    page.mouse.up()
    page.locator("#inpaint-sampler").get_by_text("Sampler").click()
    page.locator("#inpaint-steps").locator("input, textarea").first.fill("3")
    page.locator("#inpaint-run").click()
    wait_for_result(page, "#inpaint-gallery img")
    mask = read_image_file(newest(config, "*-inpaint/inputs/balloons_small_mask.png")) > 0
    assert mask.shape == (93, 124) and 0 < mask.mean() < 0.3
    result = read_image_file(newest(config, "*-inpaint/balloons_small_inpaint_seed0.png"))
    photo = read_image_file(EXAMPLES / "balloons_small.png")
    assert np.array_equal(result[~mask], photo[~mask]) and not np.array_equal(result[mask], photo[mask])
    assert "sinfree inpaint balloons_small.png -m balloons_small_mask.png -T 3" in page.locator("#inpaint-command").inner_text()


def test_enhance_a_dicom(app, page):
    config, _ = app
    page.get_by_role("tab", name="Enhance").click()
    upload(page, "enhance-input", EXAMPLES / "ct_small.dcm")
    page.get_by_text("ct_small.dcm:").wait_for(timeout=30_000)  # what the scan is, read on upload
    page.locator("#enhance-run").click()
    wait_for_result(page, "#enhance-compare img")
    assert newest(config, "*-enhance/ct_small_denoise.dcm").stat().st_size > 0
    assert "sinfree enhance ct_small.dcm" in page.locator("#enhance-command").inner_text()


def test_a_bad_upload_shows_the_message(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text, not a picture\n")
    page.get_by_role("tab", name="Symmetric").click()
    upload(page, "symmetric-input", bad)
    page.get_by_text("notes.png: not an image file that can be read").first.wait_for(timeout=30_000)
    page.locator("#symmetric-run").click()  # the run says the same, and the app keeps working
    page.get_by_text("notes.png: not an image file that can be read").first.wait_for(timeout=30_000)


def test_every_request_stays_on_this_machine(page):
    assert page.requested
    elsewhere = []
    for url in page.requested:
        parsed = urlparse(url[len("blob:") :] if url.startswith("blob:") else url)
        if parsed.scheme != "data" and parsed.hostname != "127.0.0.1":
            elsewhere.append(url)
    assert not elsewhere
