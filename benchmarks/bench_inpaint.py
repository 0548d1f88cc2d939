"""Inpainting against the classical fills: the table of docs/inpainting.md (``inpaint``) and its hardest cases
(docs/img/results/inpaint_hardest.png).

    python benchmarks/bench_inpaint.py [--images N] [--out benchmarks/results/inpaint.json]

Every photo of benchmarks/sinddm15 (and scikit-image's astronaut, coffee, chelsea and rocket, halved) gets
three masks with the truth known (the masked pixels of the original): a rectangle, a free-form stroke and an
object-sized blob, each drawn from a seeded generator. Each method fills them: sinfree inpaint (the default
preset), OpenCV's Telea and Navier-Stokes inpainting, and scikit-image's biharmonic fill. Per case:

- LPIPS in the hole: LPIPS (AlexNet) between the fill and the truth on the hole's bounding box, grown by 8 px;
- PSNR in the hole: over the masked pixels only;
- seam: the mean squared difference across the mask's edge (pairs of neighbours, one inside, one outside)
  over the same in a band of 4 px on either side of it (pairs not crossing the edge): 1 where the edge is
  as smooth as its surroundings, above 1 where a step shows;
- seconds.

Needs the bench extra (OpenCV: ``pip install -e ".[bench]"``) and the eval extra (LPIPS weights).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import stamp

from sinfree.editing.inpaint import inpaint
from sinfree.io.images import load_image, read_image_file
from sinfree.metrics.fill import edge_seam
from sinfree.metrics.lpips import load_lpips, lpips_distance

BENCHMARK = stamp.REPOSITORY / "benchmarks" / "sinddm15"
METHODS = ("sinfree", "telea", "navier-stokes", "biharmonic")
MASKS = ("rectangle", "stroke", "blob")


def photos(limit: int | None) -> list[tuple[str, np.ndarray]]:
    import skimage.data

    found = [(path.stem, read_image_file(path)) for path in sorted(BENCHMARK.glob("*.png"))]
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = getattr(skimage.data, name)()
        found.append((name, np.ascontiguousarray(image[::2, ::2, :3])))
    return [(name, rgb(image)) for name, image in found[:limit]]


def rgb(image: np.ndarray) -> np.ndarray:
    """8-bit RGB (what every method takes): gray repeated, alpha dropped."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def make_mask(kind: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A hole of about a tenth of the image: a rectangle, a thick random stroke, or a smooth random blob."""
    rng = np.random.default_rng(seed)
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    if kind == "rectangle":
        h, w = int(height * rng.uniform(0.25, 0.35)), int(width * rng.uniform(0.25, 0.35))
        top, left = rng.integers(height // 8, height - h - height // 8), rng.integers(width // 8, width - w - width // 8)
        return (yy >= top) & (yy < top + h) & (xx >= left) & (xx < left + w)
    if kind == "stroke":
        mask = np.zeros(shape, bool)
        point = np.array([rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width])
        angle, radius = rng.uniform(0, 2 * math.pi), max(3.0, min(shape) / 30)
        for _ in range(60):
            angle += rng.normal(0, 0.35)
            point = np.clip(point + 3 * np.array([math.sin(angle), math.cos(angle)]), [8, 8], [height - 9, width - 9])
            mask |= (yy - point[0]) ** 2 + (xx - point[1]) ** 2 <= radius**2
        return mask
    centre = np.array([rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width])
    theta = np.arctan2(yy - centre[0], xx - centre[1])
    wobble = sum(rng.uniform(0.05, 0.15) * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    size = math.sqrt(0.1 * height * width / math.pi)
    return np.hypot(yy - centre[0], xx - centre[1]) <= size * (1 + wobble)


def fill(method: str, image: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    if method == "sinfree":
        return inpaint(image, mask, seed=seed).samples[0]
    if method in ("telea", "navier-stokes"):
        import cv2

        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, mask.astype(np.uint8) * 255, 5, flag)
    from skimage.restoration import inpaint_biharmonic

    filled = inpaint_biharmonic(image.astype(np.float64) / 255, mask, channel_axis=-1)
    return np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8)


def hole_scores(result: np.ndarray, truth: np.ndarray, mask: np.ndarray, network) -> dict:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom = max(0, rows[0] - 8), min(mask.shape[0], rows[-1] + 9)
    left, right = max(0, cols[0] - 8), min(mask.shape[1], cols[-1] + 9)
    crop = (slice(top, bottom), slice(left, right))
    a, b = load_image(np.ascontiguousarray(result[crop]))[0], load_image(np.ascontiguousarray(truth[crop]))[0]
    error = ((result.astype(np.float64) - truth.astype(np.float64)) ** 2)[mask].mean()
    return {
        "lpips": lpips_distance(a, b, network),
        "psnr": 10 * math.log10(255**2 / max(error, 1e-12)),
        "seam": edge_seam(result, mask),
        "seam_truth": edge_seam(truth, mask),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="Use the first N photos only.")
    parser.add_argument("--out", type=Path, default=stamp.REPOSITORY / "benchmarks" / "results" / "inpaint.json")
    parser.add_argument("--sheet", type=Path, default=stamp.REPOSITORY / "docs" / "img" / "results" / "inpaint_hardest.png")
    args = parser.parse_args()
    run = {"stamp": stamp.measure(), "cases": []}
    network = load_lpips()
    kept = {}
    for index, (name, image) in enumerate(photos(args.images)):
        for number, kind in enumerate(MASKS):
            mask = make_mask(kind, image.shape[:2], seed=100 * index + number)
            case = {"image": name, "mask": kind, "hole": float(mask.mean())}
            outputs = {}
            for method in METHODS:
                started = time.perf_counter()
                outputs[method] = fill(method, image, mask, seed=0)
                case[method] = hole_scores(outputs[method], image, mask, network) | {"seconds": time.perf_counter() - started}
            run["cases"].append(case)
            kept[(name, kind)] = (image, mask, outputs)
            print(name, kind, " ".join(f"{m}: {case[m]['lpips']:.3f}/{case[m]['seam']:.2f}" for m in METHODS), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run, indent=1))
    hardest = sorted(run["cases"], key=lambda c: -c["sinfree"]["lpips"])[:4]
    write_sheet(args.sheet, [(c["image"], c["mask"], *kept[(c["image"], c["mask"])]) for c in hardest])
    print(summary(run))


def summary(run: dict) -> str:
    cases = run["cases"]
    lines = []
    for method in METHODS:
        lp = np.mean([c[method]["lpips"] for c in cases])
        ps = np.mean([c[method]["psnr"] for c in cases])
        se = np.mean([c[method]["seam"] for c in cases])
        sec = np.mean([c[method]["seconds"] for c in cases])
        lines.append(f"{method:>14}: LPIPS {lp:.3f}  PSNR {ps:.2f}  seam {se:.2f}  {sec:.2f} s")
    best = np.mean([min(METHODS, key=lambda m: c[m]["lpips"]) == "sinfree" for c in cases])
    within = np.mean([c["sinfree"]["seam"] <= 1.2 for c in cases])
    lines.append(f"sinfree best LPIPS on {best:.0%} of cases; seam <= 1.2 on {within:.0%}")
    return "\n".join(lines)


def write_sheet(path: Path, cases) -> None:
    """Rows of the hardest cases: the input with its hole greyed, the truth, each method's fill."""
    from sinfree.contact_sheet import contact_sheet

    rows = []
    for name, kind, image, mask, outputs in cases:
        holed = image.copy()
        holed[mask] = 128
        tiles = [holed, image] + [outputs[m] for m in METHODS]
        rows.append(contact_sheet(tiles, [f"{name}, {kind}", "truth", *METHODS]))
    save_rows(rows, path)


def save_rows(rows: list[np.ndarray], path: Path) -> None:
    """Contact-sheet rows stacked (padded white to the widest) into one PNG."""
    from sinfree.io.images import save_png

    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(np.concatenate(padded), path)


if __name__ == "__main__":
    main()
