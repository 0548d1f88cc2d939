"""Enhancement benchmark: sinfree's training-free restoration (``sinfree.enhance.enhance``) against classical
baselines on real images that ship with packages, under synthetic degradations: docs/enhancement.md, its table.

    python benchmarks/bench_enhance.py --images CT_small,MR_small,anatomical_nii,camera,shepp_logan_phantom
    python benchmarks/publish.py          # writes the table into docs/enhancement.md

Options: [--crop 128] [--out benchmarks/results/enhance.json] [--text benchmarks/results/enhance.txt]
[--images a,b] [--rows r1,r2] [--method two-stage|one-stage]; the JSON carries the stamp (date, CPU, threads).

Images (float gray in [0, 1]; centre crops of at most ``--crop`` px per side, rounded down to a multiple
of 4 so that x2 / x4 downsampling is exact): pydicom's CT_small.dcm and MR_small.dcm and nibabel's
anatomical.nii middle axial slice (each normalised by its own crop's min / max), scikit-image's retina
(gray), microaneurysms, immunohistochemistry (gray), camera and shepp_logan_phantom (``img_as_float``,
colour to gray with ``rgb2gray``).

Degradations (numpy seed fixed per image and row): Gaussian noise sigma 10, 25, 50 / 255; Poisson at a
peak of 30 counts (counts ~ Poisson(30 x)); Rician sigma 0.05 (|x + n1 + i n2|); Gaussian blur 1.5 px
(scipy, mirror boundaries) + Gaussian noise 0.01; x2 and x4 downsampling (``sinfree.resize``,
antialiased bicubic); 30 % of pixels missing (uniformly at random).

Methods. ``ours``: ``enhance`` with the true degradation parameters (sigma, noise model, blur width and
noise (0 for the noise-free super-resolution and inpainting rows), scale, mask), every other setting its default (``--method``: two-stage, the default, or one-stage). Noise rows: scikit-image ``denoise_nl_means``
(h = 0.8 sigma, patch 5, distance 6, fast_mode, sigma given) and ``denoise_tv_chambolle`` (weight =
sigma, not tuned); Gaussian rows: ``bm3d.bm3d`` (sigma_psd = sigma). Poisson: the baselines run on
counts / 30 with sigma = sqrt(mean(x) / 30), the image-wide mean noise std (no variance stabilisation);
Rician: the baselines run on the magnitude with sigma = 0.05 (no bias correction). Blur:
``richardson_lucy`` (30 iterations, the true Gaussian PSF, input clipped at 0 and mirror-padded by 8 px,
then cropped). Super-resolution: bicubic (``skimage.transform.resize``, order 3). Missing pixels:
``inpaint_biharmonic``. ``input`` is the degraded image itself (zeros at missing pixels; for
super-resolution the nearest-neighbour upsampling).

PSNR and SSIM: ``skimage.metrics`` with data_range = the clean crop's max - min. Seconds: wall time per
image per method (CPU), after one untimed warm-up call of ``enhance``. The table's last
columns: the best baseline of the row (highest mean PSNR among non-local means, TV, BM3D, Richardson-Lucy,
bicubic and biharmonic) and ours minus it, and ours minus non-local means.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import stamp
import torch
from skimage.color import rgb2gray
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, inpaint_biharmonic, richardson_lucy
from skimage.transform import resize as sk_resize
from skimage.util import img_as_float

from sinfree.enhance import enhance as sinfree_enhance
from sinfree.enhance.operators import gaussian_blur
from sinfree.resize import resize as sf_resize

try:
    import bm3d as bm3d_package

    BM3D_ERROR = None
except Exception as error:  # noqa: BLE001 - any import failure leaves the column empty
    bm3d_package, BM3D_ERROR = None, f"{type(error).__name__}: {error}"

ROWS = (
    "gauss10",
    "gauss25",
    "gauss50",
    "poisson30",
    "rician0.05",
    "blur1.5",
    "sr_x2",
    "sr_x4",
    "missing30",
)
METHODS = ("input", "ours", "nlm", "tv", "bm3d", "rl", "bicubic", "biharmonic")
BASELINES = ("nlm", "tv", "bm3d", "rl", "bicubic", "biharmonic")
BLUR, BLUR_NOISE, PEAK, RICIAN = 1.5, 0.01, 30.0, 0.05


# ---- images


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


def _centre(a: np.ndarray, crop: int) -> np.ndarray:
    h, w = (min(crop, n) // 4 * 4 for n in a.shape[:2])
    top, left = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    return a[top : top + h, left : left + w]


def load_images(crop: int) -> dict[str, np.ndarray]:
    import nibabel
    import pydicom
    from nibabel.testing import data_path
    from pydicom.data import get_testdata_file
    from skimage import data

    images = {}
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        images[name.split(".")[0]] = _minmax(_centre(ds.pixel_array.astype(np.float64), crop))
    volume = np.asarray(nibabel.load(os.path.join(data_path, "anatomical.nii")).get_fdata())
    images["anatomical_nii"] = _minmax(_centre(volume[:, :, volume.shape[2] // 2], crop))
    for name in ("retina", "microaneurysms", "immunohistochemistry", "camera", "shepp_logan_phantom"):
        a = getattr(data, name)()
        a = rgb2gray(a) if a.ndim == 3 else img_as_float(a)
        images[name] = _centre(a.astype(np.float64), crop)
    return images


# ---- degradations and methods


def gaussian_psf(width: float, radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    g = np.exp(-(r**2) / (2 * width**2))
    psf = np.outer(g, g)
    return psf / psf.sum()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_row(clean: np.ndarray, row: str, seed: int, method: str = "two-stage") -> dict[str, tuple[np.ndarray, float]]:
    """{method: (restored image on the clean grid in [0, 1] units, seconds)} for one image and one row."""
    rng = np.random.default_rng(seed)
    enhance = functools.partial(sinfree_enhance, method=method)
    out: dict[str, tuple[np.ndarray, float]] = {}
    h, w = clean.shape
    if row.startswith(("gauss", "poisson", "rician")):
        if row.startswith("gauss"):
            sigma = float(row[5:]) / 255
            y = clean + rng.normal(0, sigma, clean.shape)
            out["ours"] = timed(lambda: enhance(y, "denoise", noise="gaussian", sigma=sigma).mean)
        elif row.startswith("poisson"):
            counts = rng.poisson(clean * PEAK).astype(np.float64)
            y = counts / PEAK
            sigma = float(np.sqrt(clean.mean() / PEAK))
            out["ours"] = timed(lambda: enhance(counts, "denoise", noise="poisson").mean / PEAK)
        else:
            sigma = RICIAN
            y = np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape))
            out["ours"] = timed(lambda: enhance(y, "denoise", noise="rician", sigma=sigma).mean)
        out["input"] = (y, 0.0)
        out["nlm"] = timed(
            lambda: denoise_nl_means(y, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
        )
        out["tv"] = timed(lambda: denoise_tv_chambolle(y, weight=sigma))
        if row.startswith("gauss") and bm3d_package is not None:
            out["bm3d"] = timed(lambda: np.asarray(bm3d_package.bm3d(y, sigma_psd=sigma), dtype=np.float64))
    elif row.startswith("blur"):
        y = gaussian_blur(clean, BLUR) + rng.normal(0, BLUR_NOISE, clean.shape)
        out["input"] = (y, 0.0)
        out["ours"] = timed(lambda: enhance(y, "deblur", blur=BLUR, sigma=BLUR_NOISE).mean)
        pad = 8
        psf = gaussian_psf(BLUR, int(np.ceil(4 * BLUR)))

        def rl():
            padded = np.pad(np.clip(y, 0, None), pad, mode="reflect")
            return richardson_lucy(padded, psf, num_iter=30)[pad:-pad, pad:-pad]

        out["rl"] = timed(rl)
    elif row.startswith("sr_x"):
        scale = int(row[4:])
        low = sf_resize(torch.from_numpy(clean)[None], (h // scale, w // scale))[0].numpy()
        out["input"] = (np.repeat(np.repeat(low, scale, 0), scale, 1), 0.0)
        out["ours"] = timed(lambda: enhance(low, "superres", scale=scale, sigma=0).mean)
        out["bicubic"] = timed(lambda: sk_resize(low, (h, w), order=3, mode="reflect", anti_aliasing=False))
    elif row.startswith("missing"):
        missing = rng.random(clean.shape) < 0.3
        y = np.where(missing, 0.0, clean)
        out["input"] = (y, 0.0)
        out["ours"] = timed(lambda: enhance(y, "inpaint", mask=missing, sigma=0).mean)
        out["biharmonic"] = timed(lambda: inpaint_biharmonic(y, missing))
    else:
        raise ValueError(row)
    return out


def score(clean: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    rng_ = float(clean.max() - clean.min())
    return (
        float(peak_signal_noise_ratio(clean, image, data_range=rng_)),
        float(structural_similarity(clean, image, data_range=rng_)),
    )


# ---- table


def mean_scores(per_image: dict, row: str, method: str) -> dict[str, float] | None:
    """Mean PSNR, SSIM and seconds of ``method`` on ``row`` over the images, None where it did not run."""
    entries = [per_image[name][row][method] for name in per_image if method in per_image[name][row]]
    if not entries:
        return None
    return {key: float(np.mean([e[key] for e in entries])) for key in ("psnr", "ssim", "seconds")}


def best_baseline(per_image: dict, row: str) -> tuple[str, dict[str, float]] | None:
    """The baseline with the highest mean PSNR on ``row``, and its mean scores."""
    scored = [(m, mean_scores(per_image, row, m)) for m in BASELINES]
    scored = [(m, s) for m, s in scored if s is not None]
    return max(scored, key=lambda item: item[1]["psnr"]) if scored else None


def table(per_image: dict, rows: tuple[str, ...]) -> str:
    extra = f"{'best baseline':>26}{'ours - best':>13}{'ours - nlm':>12}"
    header = f"{'degradation':<12}" + "".join(f"{m:>17}" for m in METHODS)
    lines = ["PSNR dB / SSIM, mean over images", header + extra, "-" * len(header + extra)]
    time_lines = ["seconds per image", header, "-" * len(header)]
    for row in rows:
        cells, tcells = [], []
        for m in METHODS:
            scores = mean_scores(per_image, row, m)
            if scores is None:
                cells.append(f"{'-':>17}")
                tcells.append(f"{'-':>17}")
                continue
            seconds = "-" if m == "input" else f"{scores['seconds']:.3f}"
            cells.append(f"{scores['psnr']:>10.2f} / {scores['ssim']:.3f}")
            tcells.append(f"{seconds:>17}")
        cells.extend(_comparison(per_image, row))
        lines.append(f"{row:<12}" + "".join(cells))
        time_lines.append(f"{row:<12}" + "".join(tcells))
    return "\n".join(lines + [""] + time_lines)


def _comparison(per_image: dict, row: str) -> list[str]:
    """The best baseline's cell, ours minus it and ours minus non-local means, for ``row``."""
    ours, best, nlm = mean_scores(per_image, row, "ours"), best_baseline(per_image, row), mean_scores(per_image, row, "nlm")
    if ours is None or best is None:
        return []
    name, scores = best
    label = f"{name} {scores['psnr']:.2f} / {scores['ssim']:.3f}"
    versus_nlm = f"{ours['psnr'] - nlm['psnr']:>+12.2f}" if nlm is not None else f"{'-':>12}"
    return [f"{label:>26}", f"{ours['psnr'] - scores['psnr']:>+13.2f}", versus_nlm]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128, help="centre crops of at most this many px per side")
    parser.add_argument("--out", default=None, help="per-image JSON (default results/enhance[_CROP].json here)")
    parser.add_argument("--text", default=None, help="the printed report (default results/enhance[_CROP].txt here)")
    parser.add_argument("--images", default="", help="comma-separated subset of image names")
    parser.add_argument("--rows", default="", help="comma-separated subset of rows")
    parser.add_argument("--method", default="two-stage", help="enhance's method: two-stage (default) or one-stage")
    args = parser.parse_args()
    stem = "enhance" + ("" if args.crop == 128 else f"_{args.crop}")
    out = Path(args.out or Path(__file__).parent / "results" / (stem + ".json"))
    text_path = Path(args.text or Path(__file__).parent / "results" / (stem + ".txt"))
    out.parent.mkdir(parents=True, exist_ok=True)
    text_path.parent.mkdir(parents=True, exist_ok=True)
    measured = stamp.measure()
    torch.manual_seed(0)
    started = time.perf_counter()
    all_images = load_images(args.crop)
    names = [k for k in all_images if not args.images or k in args.images.split(",")]
    rows = tuple(r for r in ROWS if not args.rows or r in args.rows.split(","))
    report = [
        (
            f"sinfree enhance benchmark (method {args.method}, crop {args.crop}); torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}, threads {torch.get_num_threads()}"
        ),
        "bm3d: " + ("available" if BM3D_ERROR is None else f"NOT available ({BM3D_ERROR}); column empty"),
        "images (centre crops, H x W): " + ", ".join(f"{k} {all_images[k].shape[0]}x{all_images[k].shape[1]}" for k in names),
    ]
    print("\n".join(report), flush=True)
    sinfree_enhance(np.random.default_rng(0).random((32, 32)), "denoise", sigma=0.1)  # warm-up: torch's first call
    per_image: dict = {}
    for name in names:
        clean, per_image[name] = all_images[name], {}
        for row in rows:  # seeds fixed per image and row, whatever subset runs
            results = run_row(clean, row, seed=1000 * list(all_images).index(name) + ROWS.index(row), method=args.method)
            per_image[name][row] = {}
            for method, (image, seconds) in results.items():
                p, s = score(clean, image)
                per_image[name][row][method] = {"psnr": p, "ssim": s, "seconds": seconds}
            ours = per_image[name][row]["ours"]
            line = f"  {name:<22} {row:<11} ours {ours['psnr']:6.2f} dB {ours['seconds']:.2f} s"
            report.append(line)
            print(line, flush=True)
    wall = time.perf_counter() - started
    summary = ["", table(per_image, rows), "", f"wall time {wall:.1f} s"]
    print("\n".join(summary))
    report.extend(summary)
    text_path.write_text("\n".join(report) + "\n")
    out.write_text(
        json.dumps(
            {
                "stamp": measured,
                "rows": rows,
                "methods": METHODS,
                "method": args.method,
                "crop": args.crop,
                "bm3d_error": BM3D_ERROR,
                "shapes": {k: list(all_images[k].shape) for k in names},
                "wall_seconds": wall,
                "per_image": per_image,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
