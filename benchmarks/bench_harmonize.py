"""Harmonisation of pasted regions: the table of docs/inpainting.md (``harmonize``) and its hardest cases
(docs/img/results/harmonize_hardest.png).

    python benchmarks/bench_harmonize.py [--images N] [--out benchmarks/results/harmonize.json]

Every photo of benchmarks/sinddm15 (and scikit-image's astronaut, coffee, chelsea and rocket, halved) gets a
pasted region: a rectangle of about a tenth of the image cut from another photo of the set, tinted (a gain and
an offset per channel, drawn from a seeded generator) and pasted at a random place. Each method harmonises it:

- ``pasted``: nothing done (the starting point);
- ``sinfree``: ``sinfree harmonize`` with its defaults (level 0.5);
- ``poisson``: Poisson blending of the paste into its place (Perez et al. 2003: the paste's gradients inside,
  its ring's values across the edge; ``sinfree.editing.blending.poisson_blend``, the equation of OpenCV's
  ``seamlessClone``, which cannot take a paste already in place);
- ``reinhard``: the region's mean and standard deviation per Lab channel matched to a ring around it
  (Reinhard et al. 2001's colour transfer).

Per case, against a ring of 8 px around the region (``sinfree.metrics.fill.tone_and_contrast``):

- tone: |mean intensity inside - ring's| / ring's;
- contrast: |local contrast inside - ring's| / ring's (local contrast: the mean absolute difference to the
  3 x 3 neighbourhood's mean);
- seam: the squared step across the region's edge over that beside it (``edge_seam``; 1: no step);
- kept: the correlation of the region's coarse layout (a Gaussian blur of sigma 3, in gray) with the paste's:
  how much of the pasted layout survives (1: all of it, 0: none);
- seconds.

Target: tone and contrast within 10 % of the ring. Needs the medical extra (scipy, scikit-image).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import stamp
from bench_inpaint import photos, save_rows

from sinfree.editing.inpaint import harmonize
from sinfree.metrics.fill import edge_seam, tone_and_contrast

METHODS = ("pasted", "sinfree", "poisson", "reinhard")
TARGET = 0.10


def make_paste(image: np.ndarray, donor: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pasted image, region): a tinted rectangle of ``donor`` pasted into ``image`` away from its border."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    h, w = int(height * rng.uniform(0.25, 0.35)), int(width * rng.uniform(0.25, 0.35))
    h, w = min(h, donor.shape[0]), min(w, donor.shape[1])
    top, left = rng.integers(height // 8, height - h - height // 8), rng.integers(width // 8, width - w - width // 8)
    src_top, src_left = rng.integers(0, donor.shape[0] - h + 1), rng.integers(0, donor.shape[1] - w + 1)
    piece = donor[src_top : src_top + h, src_left : src_left + w].astype(np.float64)
    gain, offset = rng.uniform(0.7, 1.3, 3), rng.uniform(-30, 30, 3)
    pasted = image.copy()
    pasted[top : top + h, left : left + w] = np.clip(np.rint(piece * gain + offset), 0, 255).astype(np.uint8)
    region = np.zeros((height, width), bool)
    region[top : top + h, left : left + w] = True
    return pasted, region


def ring(region: np.ndarray, width: int = 8) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(region, iterations=width) & ~region


def reinhard(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The region's Lab mean and standard deviation matched to the ring's, per channel."""
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(image)
    around = ring(region)
    inside = lab[region]
    matched = (inside - inside.mean(0)) / inside.std(0).clip(1e-6) * lab[around].std(0) + lab[around].mean(0)
    lab[region] = matched
    return np.clip(np.rint(lab2rgb(lab) * 255), 0, 255).astype(np.uint8)


def poisson(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The paste re-solved in place with its own gradients inside and its ring's values across its edge."""
    import torch

    from sinfree.editing.blending import poisson_blend
    from sinfree.io.images import load_image, tensor_to_array

    tensor, layout = load_image(image)
    return tensor_to_array(poisson_blend(tensor, torch.from_numpy(region)).clamp(-1, 1), layout)


def harmonised(method: str, pasted: np.ndarray, region: np.ndarray, seed: int) -> np.ndarray:
    if method == "pasted":
        return pasted
    if method == "sinfree":
        return harmonize(pasted, region, seed=seed).samples[0]
    if method == "poisson":
        return poisson(pasted, region)
    return reinhard(pasted, region)


def layout_kept(result: np.ndarray, pasted: np.ndarray, region: np.ndarray) -> float:
    """Correlation of the region's coarse layout (gray, Gaussian blur of sigma 3) in ``result`` and the paste."""
    from scipy import ndimage

    def detail(image):
        return ndimage.gaussian_filter(image.astype(np.float64).mean(axis=-1), 3)[region]

    a, b = detail(result), detail(pasted)
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def scores(result: np.ndarray, pasted: np.ndarray, region: np.ndarray) -> dict:
    tone, contrast = tone_and_contrast(result, region)
    return {"tone": tone, "contrast": contrast, "seam": edge_seam(result, region), "kept": layout_kept(result, pasted, region)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="Use the first N photos only.")
    parser.add_argument("--out", type=Path, default=stamp.REPOSITORY / "benchmarks" / "results" / "harmonize.json")
    parser.add_argument("--sheet", type=Path, default=stamp.REPOSITORY / "docs" / "img" / "results" / "harmonize_hardest.png")
    args = parser.parse_args()
    run = {"stamp": stamp.measure(), "cases": []}
    found = photos(args.images)
    kept = {}
    for index, (name, image) in enumerate(found):
        donor_name, donor = found[(index + 7) % len(found)]
        pasted, region = make_paste(image, donor, seed=index)
        case = {"image": name, "donor": donor_name, "region": float(region.mean())}
        outputs = {}
        for method in METHODS:
            started = time.perf_counter()
            outputs[method] = harmonised(method, pasted, region, seed=0)
            case[method] = scores(outputs[method], pasted, region) | {"seconds": time.perf_counter() - started}
        run["cases"].append(case)
        kept[name] = (pasted, region, outputs)
        print(name, " ".join(f"{m}: {case[m]['tone']:.3f}/{case[m]['contrast']:.3f}" for m in METHODS), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run, indent=1))
    hardest = sorted(run["cases"], key=lambda c: -max(c["sinfree"]["tone"], c["sinfree"]["contrast"]))[:4]
    write_sheet(args.sheet, [(c["image"], *kept[c["image"]]) for c in hardest])
    print(summary(run))


def summary(run: dict) -> str:
    cases = run["cases"]
    lines = []
    for method in METHODS:
        mean = {key: np.mean([c[method][key] for c in cases]) for key in ("tone", "contrast", "seam", "kept", "seconds")}
        within = np.mean([c[method]["tone"] <= TARGET and c[method]["contrast"] <= TARGET for c in cases])
        lines.append(
            f"{method:>9}: tone {mean['tone']:.3f}  contrast {mean['contrast']:.3f}  seam {mean['seam']:.2f}  "
            f"kept {mean['kept']:.2f}  {mean['seconds']:.2f} s  both within {TARGET:.0%} on {within:.0%}"
        )
    return "\n".join(lines)


def write_sheet(path: Path, cases) -> None:
    """Rows of the hardest cases: the paste with its region outlined, then each method's result."""
    from sinfree.contact_sheet import contact_sheet

    rows = []
    for name, pasted, region, outputs in cases:
        outlined = pasted.copy()
        outlined[ring(region, 1)] = (255, 0, 0)
        tiles = [outlined] + [outputs[m] for m in METHODS[1:]]
        rows.append(contact_sheet(tiles, [f"{name}, pasted", *METHODS[1:]]))
    save_rows(rows, path)


if __name__ == "__main__":
    main()
