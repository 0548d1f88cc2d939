"""Screenshots of the web app's tabs for docs/web.md: the app is served on 127.0.0.1, headless Chromium (Debian's,
/usr/bin/chromium) runs each tab on an example of the repository and the page is saved as
``docs/img/web/<tab>.png`` (``python scripts/web_screenshots.py``, from the repository root; a few minutes on
2 CPU cores)."""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OUT = ROOT / "docs" / "img" / "web"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
RUN_MS = 300_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def upload(page, elem_id: str, path: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id}").locator("input[type=number], input[type=text], textarea").first.fill(text)
    page.keyboard.press("Tab")


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()
    page.wait_for_timeout(300)


def run(page, name: str, result: str) -> None:
    """Click the tab's Run and wait for ``result`` (a selector) and the command's summary line."""
    page.locator(f"#{name}-run").click()
    page.wait_for_selector(result, timeout=RUN_MS)
    page.wait_for_function(f"document.querySelector('#{name}-command').innerText.includes('file(s) in')", timeout=RUN_MS)
    page.wait_for_timeout(800)


def wait_idle(page, elem_id: str) -> None:
    """Until the component's progress indicator is gone (e.g. an image placed on the editor)."""
    page.wait_for_function(
        f"document.querySelector('#{elem_id} [data-testid=status-tracker]').classList.contains('hide')", timeout=60_000
    )
    page.wait_for_timeout(500)


def paint(page, elem_id: str, fx: float, fy: float, width: float, height: float) -> None:
    """Drag the brush over a box of the editor's canvas (fractions of its size), row by row."""
    box = page.locator(f"#{elem_id} canvas").first.bounding_box()
    for row in range(6):
        y = box["y"] + box["height"] * (fy + height * row / 5)
        page.mouse.move(box["x"] + box["width"] * fx, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * (fx + width), y, steps=8)
        page.mouse.up()


def shot(page, name: str) -> Path:
    """The page as docs/img/web/<name>.png, reduced to a palette to keep the file small."""
    path = OUT / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(path.relative_to(ROOT))
    return path


def tabs(page) -> None:
    """Each tab run on an example, then photographed."""
    upload(page, "generate-input", EXAMPLES / "balloons_small.png")
    fill(page, "generate-count", "3")
    run(page, "generate", "#generate-gallery img")
    shot(page, "generate")

    open_tab(page, "Retarget")
    upload(page, "retarget-input", EXAMPLES / "balloons_small.png")
    page.get_by_label("Output size WIDTHxHEIGHT (required)").fill("220x93")
    run(page, "retarget", "#retarget-gallery img")
    shot(page, "retarget")

    open_tab(page, "Symmetric")
    upload(page, "symmetric-input", EXAMPLES / "balloons_small.png")
    run(page, "symmetric", "#symmetric-gallery img")
    shot(page, "symmetric")

    open_tab(page, "Tile")
    upload(page, "tile-input", EXAMPLES / "starry_night.png")
    run(page, "tile", "#tile-gallery img")
    shot(page, "tile")

    open_tab(page, "Analogy")
    upload(page, "analogy-input", EXAMPLES / "balloons_small.png")
    upload(page, "analogy-style", EXAMPLES / "starry_night.png")
    run(page, "analogy", "#analogy-gallery img")
    shot(page, "analogy")

    open_tab(page, "Inpaint / remove object")
    upload(page, "inpaint-input", EXAMPLES / "balloons_small.png")
    wait_idle(page, "inpaint-editor")
    paint(page, "inpaint-editor", 0.62, 0.05, 0.16, 0.26)  # the big balloon
    run(page, "inpaint", "#inpaint-gallery img")
    shot(page, "inpaint")

    open_tab(page, "Harmonize")
    upload(page, "harmonize-input", EXAMPLES / "balloons_small_pasted.png")
    wait_idle(page, "harmonize-editor")
    upload(page, "harmonize-mask", EXAMPLES / "balloons_small_pasted_mask.png")
    run(page, "harmonize", "#harmonize-gallery img")
    shot(page, "harmonize")

    open_tab(page, "Style")
    shot(page, "style")

    open_tab(page, "Enhance")
    upload(page, "enhance-input", EXAMPLES / "ct_small.dcm")
    page.get_by_text("ct_small.dcm:").wait_for(timeout=60_000)
    fill(page, "enhance-count", "4")
    run(page, "enhance", "#enhance-compare img")
    shot(page, "enhance")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from sinfree.web.app import launch
    from sinfree.web.handlers import WebConfig

    OUT.mkdir(parents=True, exist_ok=True)
    config = WebConfig(outdir=Path(tempfile.mkdtemp(prefix="sinfree-web-shots-")), concurrency=2)
    demo, url = launch(config, port=free_port(), block=False, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            page.wait_for_selector("#generate-input", timeout=60_000)
            tabs(page)
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
