"""The paper's Table 1 protocol offline: samples per input image, then every metric per image and on average.

Samples are generated with sinfree (any ``GenerationSettings``) or read from a folder holding one
sub-folder per input, named after the input's file stem (``--samples-dir DIR``), so that any
generator's outputs can be ranked beside ours.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..contact_sheet import contact_sheet
from ..errors import InputImageError, SinfreeError
from ..extras import require
from ..generation import generate_samples
from ..io.images import load_image, save_png
from ..metrics.copying import copying_rate
from ..metrics.layout import layout_distance, profile_distances, seam_ratio
from ..metrics.lpips import load_lpips, lpips_diversity
from ..metrics.niqe import niqe
from ..metrics.patch_statistics import nearest_patch_distance, pixel_diversity, sliced_wasserstein
from ..metrics.sifid import load_inception_stem, sifid_many
from ..settings import GenerationSettings

# what the metrics and the report import (lazily): checked before any work, so that a missing one fails in seconds
EVAL_MODULES = ("scipy.linalg", "scipy.ndimage", "scipy.special", "threadpoolctl", "faiss", "skimage.measure", "matplotlib")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
METRICS = (
    "sifid",
    "lpips_diversity",
    "pixel_diversity",
    "niqe",
    "swd",
    "nn_dist",
    "copying_rate",
    "layout",
    "row_profile",
    "seams",
)
# What a better sample does to each metric, for the report's header.
BETTER = {
    "sifid": "lower",
    "lpips_diversity": "higher",
    "pixel_diversity": "higher",
    "niqe": "lower",
    "swd": "lower",
    "nn_dist": "context",
    "copying_rate": "lower",
    "layout": "lower",
    "row_profile": "lower",
    "seams": "lower",
}
NIQE_MIN_SIDE = 96
# The nearest-patch distance's median over this many sample patches (exact search over all the input's):
# 40 % of the cost at a 250 x 190 sample (8 s per sample in full here). Measured against the full median on
# 4 samples each of aqueduct and aurora: within 11 % per sample (aqueduct's distances are bimodal: copies
# and new patches), within 2 % on the mean over the samples.
NN_QUERIES = 16384


def default_benchmark_dir() -> Path | None:
    """The paper's 15 images: ``$SINFREE_BENCHMARK_DIR``, else ``benchmarks/sinddm15`` of a clone of the repository."""
    candidates = [Path(os.environ["SINFREE_BENCHMARK_DIR"])] if os.environ.get("SINFREE_BENCHMARK_DIR") else []
    candidates.append(Path(__file__).resolve().parents[3] / "benchmarks" / "sinddm15")
    return next((path for path in candidates if path.is_dir()), None)


def image_files(paths: list[Path]) -> list[Path]:
    """Input files, folders expanded to their images (sorted); a clear error for anything else."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputImageError(f"{path}: no images in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputImageError(f"{path}: no such file or folder")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise InputImageError("two inputs share a file name stem; sample folders are named after it")
    return files


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) in [-1, 1] -> 3 channels: gray repeated, alpha dropped."""
    if image.shape[0] in (2, 4):
        image = image[:-1]
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


def read_sample_folder(folder: Path) -> list[torch.Tensor]:
    """All images of one input's sample folder, sorted by name, as RGB tensors in [-1, 1]."""
    if not folder.is_dir():
        raise InputImageError(f"{folder}: no sample folder for this input (expected one folder per input, named after it)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise InputImageError(f"{folder}: diversity needs at least 2 samples, found {len(files)}")
    return [as_rgb(load_image(path)[0]) for path in files]


@dataclass
class ImageEvaluation:
    """Every metric of one input's samples (means over samples; diversities over the set)."""

    image: str
    num_samples: int
    metrics: dict[str, float]
    seconds_per_sample: float | None = None
    metric_seconds: dict[str, float] = field(default_factory=dict)


def evaluate_image(
    name: str,
    reference: torch.Tensor,
    samples: list[torch.Tensor],
    seconds_per_sample: float | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> ImageEvaluation:
    """The metrics of ``samples`` (RGB tensors in [-1, 1]) against their ``reference``.

    SIFID, SWD, nearest-patch distance, copying rate, NIQE, the layout (row and column colour profiles;
    row profiles alone) and the seam figure (``sinfree.metrics.layout``) are means over the samples;
    LPIPS and pixel diversity are figures of the set. NIQE is NaN for samples under 96 px per side (one block).
    """
    reference = as_rgb(reference)
    if len({tuple(s.shape) for s in samples}) != 1:
        raise InputImageError(f"{name}: the samples differ in size; diversity needs samples of one size")
    figures: dict[str, Callable[[], float]] = {
        "sifid": lambda: float(np.mean(sifid_many(samples, reference))),
        "lpips_diversity": lambda: lpips_diversity(samples),
        "pixel_diversity": lambda: pixel_diversity(samples, reference) if samples[0].shape == reference.shape else math.nan,
        "niqe": lambda: float(np.mean([niqe(s) for s in samples])) if min(samples[0].shape[-2:]) >= NIQE_MIN_SIDE else math.nan,
        "swd": lambda: float(np.mean([sliced_wasserstein(s, reference) for s in samples])),
        "nn_dist": lambda: float(np.mean([nearest_patch_distance(s, reference, max_queries=NN_QUERIES) for s in samples])),
        "copying_rate": lambda: float(np.nanmean([copying_rate(s, reference) for s in samples])),
        "layout": lambda: float(np.mean([layout_distance(s, reference) for s in samples])),
        "row_profile": lambda: float(np.mean([profile_distances(s, reference)[0] for s in samples])),
        "seams": lambda: _nanmean([seam_ratio(s, reference) for s in samples]),
    }
    unknown = set(metrics) - set(figures)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}")
    values, seconds = {}, {}
    for metric in metrics:
        started = time.perf_counter()
        with torch.inference_mode():
            values[metric] = figures[metric]()
        seconds[metric] = time.perf_counter() - started
    return ImageEvaluation(name, len(samples), values, seconds_per_sample, seconds)


@dataclass
class EvaluationRun:
    """One evaluated setting (ours, or a folder of another method's samples) over several inputs."""

    label: str
    rows: list[ImageEvaluation]
    num_samples: int
    settings: dict | None = None  # generation settings, None for --samples
    samples_dir: str | None = None
    sheets: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # input beside samples; not saved in JSON

    def mean(self) -> dict[str, float]:
        """Mean of each metric over the images (NaNs left out), and of the seconds per sample."""
        mean = {m: _nanmean([row.metrics.get(m) for row in self.rows]) for m in METRICS}
        mean["seconds_per_sample"] = _nanmean([row.seconds_per_sample for row in self.rows])
        mean["metric_seconds_per_image"] = _nanmean([sum(row.metric_seconds.values()) for row in self.rows])
        return mean

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "num_samples": self.num_samples,
            "settings": self.settings,
            "samples_dir": self.samples_dir,
            "rows": [asdict(row) for row in self.rows],
            "mean": self.mean(),
        }

    @classmethod
    def from_json(cls, data: dict) -> EvaluationRun:
        rows = [ImageEvaluation(**row) for row in data["rows"]]
        return cls(data["label"], rows, data["num_samples"], data.get("settings"), data.get("samples_dir"))


def _nanmean(values: list) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def check_eval_extra() -> None:
    """MissingExtraError (one line) unless the ``eval`` extra's packages are installed."""
    for module in EVAL_MODULES:
        require(module, "eval", "sinfree eval")


def evaluate(
    inputs: list[Path],
    *,
    settings: GenerationSettings | None = None,
    num_samples: int = 10,
    seed: int = 0,
    samples_dir: Path | None = None,
    save_samples_to: Path | None = None,
    label: str | None = None,
    on_image: Callable[[int, str, str], None] | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> EvaluationRun:
    """Evaluate sinfree (``settings``, ``num_samples`` per input from ``seed``) or, with
    ``samples_dir``, the samples found there, on each input image. Generated samples are written
    to ``save_samples_to/<stem>/`` (so that the run can be re-read with ``samples_dir``).
    ``on_image(index, name, stage)`` reports progress; ``metrics`` chooses the figures (default all)."""
    if samples_dir is None and settings is None:
        settings = GenerationSettings()
    check_eval_extra()
    load_inception_stem(), load_lpips()  # a missing weight file fails here, before any work
    rows, sheets = [], {}
    for index, path in enumerate(inputs):
        reference = load_image(path)[0]
        seconds = None
        if samples_dir is not None:
            if on_image:
                on_image(index, path.stem, "reading samples")
            samples = read_sample_folder(samples_dir / path.stem)
        else:
            if on_image:
                on_image(index, path.stem, "generating")
            result = generate_samples(path, settings, num_samples=num_samples, seed=seed)
            seconds = result.seconds_per_sample
            samples = [as_rgb(load_image(array)[0]) for array in result.samples]
            if save_samples_to is not None:
                folder = save_samples_to / path.stem
                folder.mkdir(parents=True, exist_ok=True)
                for array, sample_seed in zip(result.samples, result.seeds):
                    save_png(
                        array,
                        folder / f"{path.stem}_seed{sample_seed}.png",
                        result.settings | {"input": path.name, "seed": sample_seed},
                    )
        if on_image:
            on_image(index, path.stem, "metrics")
        rows.append(evaluate_image(path.stem, reference, samples, seconds, metrics))
        sheets[path.stem] = sample_sheet(reference, samples)
    if label is None:
        label = f"samples in {samples_dir.name}" if samples_dir is not None else default_label(settings)
    recorded = None if settings is None or samples_dir is not None else asdict(settings)
    count = num_samples if samples_dir is None else int(np.mean([row.num_samples for row in rows])) if rows else 0
    return EvaluationRun(label, rows, count, recorded, None if samples_dir is None else str(samples_dir), sheets)


SHEET_SAMPLES = 6


def sample_sheet(reference: torch.Tensor, samples: list[torch.Tensor]) -> np.ndarray:
    """The input beside its first SHEET_SAMPLES samples, uint8 RGB."""
    shown = [as_rgb(reference), *samples[:SHEET_SAMPLES]]
    arrays = [((image + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy() for image in shown]
    return contact_sheet(arrays, ["input"] + [f"sample {i + 1}" for i in range(len(shown) - 1)])


def default_label(settings: GenerationSettings) -> str:
    return f"sinfree T={settings.steps}, eta={settings.eta:g}, {settings.backend}"


def load_run(path: Path) -> EvaluationRun:
    """An earlier run's ``results.json`` (or the folder holding it)."""
    import json

    if path.is_dir():
        path = path / "results.json"
    try:
        return EvaluationRun.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SinfreeError(f"{path}: not a results file of 'sinfree eval' ({error})") from None
