"""Out-of-core generation (issue 23): the coarse scales in memory as ``sample_coarse_to_fine`` runs them,
the scales whose canvas is larger than a tile run tile by tile on canvases on disk (``tiled``), the result
decoded band by band into a pixel array on disk and written as a PNG or a pyramidal BigTIFF with a preview.

Memory is bounded by the tile size (from ``max_memory_bytes``), not by the output's size; every finished
step is checkpointed, so the same call after an interruption resumes from the last finished step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..backends import backend_class_for
from ..coarse_to_fine import sample_coarse_to_fine
from ..edit import Edit
from ..editing.geometry import mirror
from ..errors import SinfreeError
from ..io.images import PixelFormat, load_image, save_png, tensor_to_array
from ..latent.pca import PCACodec
from ..memory import format_bytes, release_freed_memory
from ..planning import plan_run, scale_backend
from ..pyramid import build_pyramid, level_shapes
from ..resize import resize, resize_matrix
from ..schedule import flow_schedule
from ..settings import GenerationSettings
from . import pyramid_tiff
from .cluster import make_executor
from .inputs import LargeImage, encode_streaming, fit_streaming
from .store import RunStore, open_array, save_npy_atomically, settings_hash
from .tiled import _DENOISERS, START, DenoiserSpec, StepTask, axis_taps, block_noise, read_window, tile_grid, window_resize

logger = logging.getLogger("sinfree")
STREAM_INPUT_PIXELS = 2**24  # inputs above this many pixels are read and encoded band by band
PNG_MAX_PIXELS = 2**26  # the automatic format: PNG up to 8192^2, a pyramidal BigTIFF above
DEFAULT_MEMORY = 4 * 2**30
MIN_TILE, MAX_TILE = 64, 2048
# the interpreter, torch, numba's kernels, zarr and the coarse scales' leftovers: 0.60-0.68 GiB measured at a
# 4096^2 run's largest scale once the freed pages are returned (``memory.release_freed_memory``)
BASELINE_BYTES = 640 * 2**20
# PatchMatch's rows and columns layouts of the reference, and a call's two copies of them scaled by a_t
REFERENCE_COPIES = 4
DECODE_ROWS = 256


@dataclass
class LargeOptions:
    """How an out-of-core run is laid out: its store folder, tile side (canvas px; None: from the memory
    budget), workers or scheduler, output format (auto, png, tiff) and whether the store is kept."""

    store: Path
    tile: int | None = None
    workers: int | None = None
    scheduler: str | None = None
    max_memory_bytes: int | None = None
    output_format: str = "auto"
    keep_store: bool = False
    compression: str | None = "zlib"


@dataclass(frozen=True)
class LargeProgress:
    stage: str  # "coarse scales", "tiles", "decode", "write"
    scale: int
    step: int
    tiles_done: int
    tiles_total: int
    work_done: float
    work_total: float


@dataclass
class LargeResult:
    paths: list[Path]
    seconds: float
    settings: dict
    tile: int
    tiled_scales: list[int] = field(default_factory=list)
    resumed_from: dict | None = None
    seam_error: float | None = None  # a periodic output's wrap-around seam error (editing.geometry.seam_error)


def output_format(shape: tuple[int, int], requested: str) -> str:
    if requested not in ("auto", "png", "tiff"):
        raise SinfreeError(f"unknown output format {requested!r}: auto, png or tiff")
    if requested != "auto":
        return requested
    return "png" if shape[0] * shape[1] <= PNG_MAX_PIXELS else "tiff"


def output_paths(base: Path, fmt: str) -> list[Path]:
    """The files a run writes for ``base`` (a path without suffix): the PNG, or the BigTIFF and its preview."""
    if fmt == "png":
        return [base.with_name(base.name + ".png")]
    return [base.with_name(base.name + ".tif"), base.with_name(base.name + "_preview.jpg")]


def tile_side(settings: GenerationSettings, channels: int, reference_shape, budget: int, workers: int) -> int:
    """The largest tile side (a multiple of 64, at most MAX_TILE) whose denoiser call fits ``budget`` per worker."""
    p = settings.patch_size
    dim = channels * p * p
    num_patches = (reference_shape[0] - p + 1) * (reference_shape[1] - p + 1)
    backend = backend_class_for(settings.backend)
    fixed = denoiser_fixed_bytes(backend, num_patches, dim, channels * reference_shape[0] * reference_shape[1])
    per_query = backend.estimate_bytes(num_patches, dim, 1 << 20) - backend.estimate_bytes(num_patches, dim, 0)
    per_pixel = per_query / (1 << 20) + 12 * 4 * channels
    room = budget / max(1, workers) - BASELINE_BYTES - fixed
    if room < per_pixel * MIN_TILE**2 * 1.5:
        raise SinfreeError(
            f"--max-memory-gb {budget / 2**30:g} leaves no room for a {MIN_TILE} px tile per worker (the reference's "
            f"patch index alone needs ~{format_bytes(fixed)}); allow more memory or use fewer workers"
        )
    side = int(math.sqrt(room / per_pixel / 1.5))  # 1.5: the tile's halo and the allocator's slack
    return max(MIN_TILE, min(MAX_TILE, side // 64 * 64))


def denoiser_fixed_bytes(backend, num_patches: int, dim: int, reference_values: int) -> int:
    """A scale's denoiser whatever the tile: the backend's index (``estimate_bytes`` of one query), the reference
    in REFERENCE_COPIES float32 copies, and 9 bytes per patch (PatchMatch's valid flags and int64 positions)."""
    return backend.estimate_bytes(num_patches, dim, 1) + REFERENCE_COPIES * 4 * reference_values + 9 * num_patches


def release_coarse_memory() -> None:
    """After the in-memory scales: their freed buffers and the pyramid's cached resampling matrices (~0.1 GiB
    at 4096^2; the tiled steps resample by taps) go back to the system before the tiled scales' denoisers."""
    resize_matrix.cache_clear()
    release_freed_memory()


def _identity(source) -> str:
    if isinstance(source, (str, Path)):
        stat = Path(source).stat()
        return f"{Path(source).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.blake2b(np.ascontiguousarray(source).tobytes(), digest_size=16).hexdigest()


def read_reference(source, codec) -> tuple[torch.Tensor, PixelFormat, object, tuple[int, int]]:
    """(the reference as the sampler sees it: pixels or latent, the output's pixel format, the fitted codec,
    the input's (H, W)); large files read band by band."""
    if isinstance(source, (str, Path)):
        image = LargeImage(Path(source))
        height, width, channels = image.shape
        if height * width > STREAM_INPUT_PIXELS or Path(source).suffix.lower() in (".tif", ".tiff", ".btf", ".tf8"):
            if codec is None:
                reference = torch.empty(channels, height, width)
                for r in range(0, height, 1024):
                    reference[:, r : r + 1024] = image.tensor(r, min(height, r + 1024))
                return reference, image.format, None, (height, width)
            if not isinstance(codec, PCACodec):
                raise SinfreeError(f"large inputs are encoded band by band in the PCA latent space only, not {codec.name}")
            codec = fit_streaming(codec, image)
            return encode_streaming(codec, image), image.format, codec, (height, width)
        del image
    reference, fmt = load_image(source)
    shape = tuple(reference.shape[-2:])
    if codec is None:
        return reference, fmt, None, shape
    codec = codec if codec.fitted else codec.fit(reference)
    return codec.encode(reference), fmt, codec, shape


def decode_bands(final, pixels, codec, fmt: PixelFormat, edit: Edit, report: Callable[[float], None]) -> None:
    """The final canvas (C, h, w; pixels or a latent) into ``pixels`` (H, W, C) band by band: the centred crop of
    the decoded canvas, or for a periodic edit its circular resize; a symmetric edit's mirror re-imposed on the
    pixels (each tile denoised its own windows, so PatchMatch's halves may differ by its randomness)."""
    height, width = pixels.shape[:2]
    factor = codec.factor if codec is not None else 1
    decoded_h, decoded_w = final.shape[-2] * factor, final.shape[-1] * factor
    top, left = (decoded_h - height) // 2, (decoded_w - width) // 2
    folds = edit.canvas_folds
    for y0 in range(0, height, DECODE_ROWS):
        y1 = min(height, y0 + DECODE_ROWS)
        resampled = edit.periodic and decoded_h != height
        rows = axis_taps(decoded_h, height, np.arange(y0, y1), "wrap") if resampled else np.arange(y0 + top, y1 + top)
        l0, l1 = int(rows.min()) // factor, -(-(int(rows.max()) + 1) // factor)
        latent = torch.from_numpy(read_window(final, (l0, l1), (0, final.shape[-1])))
        decoded = codec.decode(latent, periodic=edit.periodic) if codec is not None else latent
        if resampled:
            band = window_resize(decoded, -2, l0 * factor, decoded_h, height, y0, y1, "wrap")
        else:
            band = decoded[:, y0 + top - l0 * factor : y1 + top - l0 * factor]
        if edit.periodic and decoded_w != width:
            band = resize(band, (y1 - y0, width), circular=True)
        elif not edit.periodic:
            band = band[:, :, left : left + width]
        if folds[1] == "mirror":
            band = mirror(band, "vertical")
        pixels[y0:y1] = tensor_to_array(band.clamp(-1.0, 1.0), dataclasses.replace(fmt, squeeze=False))
        report((l1 - l0) * final.shape[-1])
    if folds[0] == "mirror":  # the bottom half from the top half, upside down
        for y0 in range(height - height // 2, height, DECODE_ROWS):
            y1 = min(height, y0 + DECODE_ROWS)
            pixels[y0:y1] = np.asarray(pixels[height - y1 : height - y0])[::-1]


def seam_error_by_bands(pixels) -> float:
    """``editing.geometry.seam_error`` of the (H, W, C) pixels, read band by band: the mean absolute difference
    across the wrap-around edges over that between interior neighbours."""
    height = pixels.shape[0]
    across = inside = 0.0
    across_n = inside_n = 0
    previous = first = None
    for y0 in range(0, height, DECODE_ROWS):
        band = np.asarray(pixels[y0 : min(height, y0 + DECODE_ROWS)]).astype(np.float64)
        stacked = band if previous is None else np.concatenate([previous[None], band])
        vertical, horizontal = np.abs(np.diff(stacked, axis=0)), np.abs(np.diff(band, axis=1))
        inside, inside_n = inside + vertical.sum() + horizontal.sum(), inside_n + vertical.size + horizontal.size
        wrap = np.abs(band[:, 0] - band[:, -1])
        across, across_n = across + wrap.sum(), across_n + wrap.size
        first = band[0] if first is None else first
        previous = band[-1]
    wrap = np.abs(first - previous)
    return float(((across + wrap.sum()) / (across_n + wrap.size)) / (inside / max(1, inside_n)))


def generate_large(
    source,
    base: Path,
    settings: GenerationSettings,
    options: LargeOptions,
    *,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    metadata: dict | None = None,
    progress: Callable[[LargeProgress], None] | None = None,
    edit: Edit | None = None,
) -> LargeResult:
    """One sample of ``source`` (a path or an array) at ``size`` (H, W), written to ``base`` + .png or .tif
    (and _preview.jpg), out of core; see the module's docstring. ``edit``: plain generation (None), or an
    edit of the geometry (``editing.Retarget``, ``Symmetric``, ``Tile``: those with ``canvas_folds``)."""
    started = time.perf_counter()
    settings.validate()
    edit = edit if edit is not None else Edit()
    if edit.canvas_folds is None:
        raise SinfreeError(f"{type(edit).__name__} runs in memory only, not out of core")
    from ..latent import make_codec

    codec = make_codec(settings.latent)
    reference, fmt, codec, input_shape = read_reference(source, codec)
    channels = fmt.channels
    plan = plan_run(channels, input_shape, size, settings, 1, max_memory_bytes=1 << 62)
    settings, num_scales, canvas = plan.settings, plan.num_scales, plan.canvas_shape
    output_shape = plan.output_shape
    fmt_name = output_format(output_shape, options.output_format)
    paths = output_paths(base, fmt_name)
    pyramid = build_pyramid(reference, num_scales)
    shapes = level_shapes(canvas, num_scales)
    budget = options.max_memory_bytes or DEFAULT_MEMORY
    workers = 1 if options.scheduler is not None else (options.workers or 1)
    tile = options.tile or tile_side(settings, reference.shape[0], tuple(reference.shape[-2:]), budget, workers)
    if tile < 16:
        raise SinfreeError(f"the tile side must be at least 16 canvas px, got {tile}")
    tiled = [s for s in range(num_scales) if max(shapes[s]) > tile]
    first_tiled = max(tiled) + 1 if tiled else 0  # the finest in-memory scale (num_scales: none)
    if first_tiled == num_scales and type(edit).start is not Edit.start:
        raise SinfreeError(
            f"{type(edit).__name__} sets the coarsest scale itself, which needs it in memory, but its canvas "
            f"({shapes[-1][1]}x{shapes[-1][0]}) is larger than a tile ({tile}): allow more memory (--max-memory-gb) or more scales (-S)"
        )
    guided = settings.guides_layout or settings.variation < 1 or settings.position_prior > 0
    if first_tiled == num_scales and edit.keeps_input_layout and guided:
        logger.warning(
            "the coarsest scale is tiled (%dx%d canvas px): the layout guidance, position prior and variation, which act on the whole "
            "coarsest canvas, are off; allow more memory (--max-memory-gb) or more scales (-S) to keep them",
            shapes[-1][1],
            shapes[-1][0],
        )
        settings = dataclasses.replace(settings, layout_guidance=0.0, layout_guidance_end=None, variation=1.0, position_prior=0.0)
    if tiled and settings.rectify is not None:
        raise SinfreeError("energy rectification (--rectify) is not available for tiled scales; run without it")
    recorded = settings.record(codec) | {"num_scales": num_scales, "output_size": [output_shape[1], output_shape[0]]}
    if codec is not None:
        recorded["latent_size"] = [canvas[1], canvas[0]]
    recorded |= {"out_of_core": {"tile": tile, "tiled_scales": tiled}}
    if type(edit) is not Edit:
        recorded["edit"] = edit.describe()
    digest = settings_hash(
        {"settings": recorded, "input": _identity(source), "seed": seed, "format": fmt_name, "compression": options.compression}
    )
    store = RunStore(options.store, digest)
    checkpoint = store.open()
    resumed = dict(checkpoint) if checkpoint is not None else None
    schedule = flow_schedule(settings.steps, settings.s_min)
    C = reference.shape[0]
    weights = {s: shapes[s][0] * shapes[s][1] * settings.steps for s in range(num_scales)}
    total = sum(weights.values()) + shapes[0][0] * shapes[0][1]
    done = {"work": 0.0}

    def report(stage, scale, step, tiles_done=0, tiles_total=0, work=0.0):
        done["work"] += work
        if progress is not None:
            progress(LargeProgress(stage, scale, step, tiles_done, tiles_total, done["work"], total))

    def save(**state):
        store.save_checkpoint(**state)
        nonlocal checkpoint
        checkpoint = state

    # the coarse scales, in memory -------------------------------------------------------------
    if checkpoint is None and first_tiled == num_scales:
        save(scale=num_scales, t=0)
    elif checkpoint is None:

        def coarse_progress(p):
            report("coarse scales", p.scale + first_tiled, p.step, work=weights[p.scale + first_tiled] / settings.steps)

        finished, _ = sample_coarse_to_fine(
            reference,
            shapes[first_tiled],
            settings,
            num_scales - first_tiled,
            1,
            seed,
            coarse_progress,
            edit,
            pyramid[first_tiled:],
        )
        array = store.canvas(f"s{first_tiled}_x0", (C, *shapes[first_tiled]), (C, tile, tile), create=True)
        array[:] = finished[0].numpy()
        del finished
        save(scale=first_tiled, t=0)
    else:
        report("coarse scales", first_tiled, 0, work=sum(weights[s] for s in range(first_tiled, num_scales)))

    # the tiled scales: their reference levels go to files the workers read; this process lets go of its copies
    level_shapes_in = [tuple(level.shape[-2:]) for level in pyramid]
    for s in tiled:
        if not store.path(f"reference_{s}.npy").exists():
            save_npy_atomically(store.path(f"reference_{s}.npy"), pyramid[s].numpy())
    del reference, pyramid
    release_coarse_memory()
    executor = make_executor(options.workers, options.scheduler) if tiled else None
    try:
        for s in sorted(tiled, reverse=True):
            tiles = tile_grid(shapes[s], tile)
            pixels_per_step = shapes[s][0] * shapes[s][1]
            if checkpoint["scale"] < s or (checkpoint["scale"] == s and checkpoint["t"] == 0):
                report("tiles", s, 0, work=weights[s])
                continue
            reference_file = store.path(f"reference_{s}.npy")
            backend, backend_options = scale_backend(settings, C, level_shapes_in[s], shapes[s])
            spec = DenoiserSpec(str(reference_file), settings.patch_size, settings.stride, settings.rho, backend, backend_options)
            if checkpoint["scale"] == s + 1:  # the scale starts: x_T
                for parity in (0, 1):
                    store.canvas(f"s{s}_x{parity}", (C, *shapes[s]), (C, tile, tile), create=True)
                start = store.canvas(f"s{s}_x{settings.steps % 2}", None, None)
                for t_ in tiles:
                    start[:, t_.rows[0] : t_.rows[1], t_.cols[0] : t_.cols[1]] = block_noise(
                        C, t_.rows, t_.cols, (seed, s, START)
                    ).numpy()
                save(scale=s, t=settings.steps)
            else:
                report("tiles", s, checkpoint["t"], work=weights[s] * (settings.steps - checkpoint["t"]) / settings.steps)
            for t in range(checkpoint["t"], 0, -1):
                alpha, sigma = schedule[t]
                alpha_prev, sigma_prev = schedule[t - 1]
                task = StepTask(
                    root=str(store.root),
                    scale=s,
                    t=t,
                    num_steps=settings.steps,
                    source=f"s{s}_x{t % 2}",
                    target=f"s{s}_x{(t - 1) % 2}",
                    coarse=f"s{s + 1}_x0" if s + 1 < num_scales else None,
                    shape=tuple(shapes[s]),
                    coarse_shape=tuple(shapes[s + 1]) if s + 1 < num_scales else None,
                    channels=C,
                    tile=tile,
                    alpha=float(alpha),
                    sigma=float(sigma),
                    alpha_prev=float(alpha_prev),
                    sigma_prev=float(sigma_prev),
                    eta=settings.eta,
                    seed=seed,
                    denoiser=spec,
                    start_step=settings.steps,
                    folds=tuple(edit.canvas_folds),
                )
                counter = {"n": 0}

                def tile_done(item, seconds, s=s, t=t, counter=counter):
                    counter["n"] += 1
                    area = (item.rows[1] - item.rows[0]) * (item.cols[1] - item.cols[0])
                    report("tiles", s, t, counter["n"], len(tiles), work=area * weights[s] / settings.steps / pixels_per_step)

                executor.map(task, tiles, tile_done)
                save(scale=s, t=t - 1)
                release_freed_memory()  # the step's freed buffers, before the next step's
            _DENOISERS.clear()
            release_freed_memory()
    finally:
        if executor is not None:
            executor.close()

    # decode into pixels on disk, then write the output ------------------------------------------
    final = store.canvas("s0_x0", None, None)
    height, width = output_shape
    pixel_chunks = (DECODE_ROWS, min(width, 4096), channels)
    if not checkpoint.get("decoded"):
        pixels = store.canvas("pixels", (height, width, channels), pixel_chunks, dtype=fmt.dtype, create=True)
        decode_bands(final, pixels, codec, fmt, edit, lambda work: report("decode", 0, 0, work=work))
        save(scale=0, t=0, decoded=True)
    pixels = store.canvas("pixels", None, None)
    recorded |= metadata or {}
    report("write", 0, 0)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    if fmt_name == "png":
        array = np.asarray(pixels[:])
        save_png(array[:, :, 0] if fmt.squeeze else array, paths[0], recorded)
    else:
        levels = pyramid_tiff.make_levels(pixels, store.root, pyramid_tiff.level_count(output_shape), open_array)
        pyramid_tiff.write_pyramid_tiff(paths[0], levels, recorded, options.compression)
        pyramid_tiff.write_preview(paths[1], levels)
    seams = seam_error_by_bands(pixels) if edit.periodic else None
    if not options.keep_store:
        store.remove()
    return LargeResult(paths, time.perf_counter() - started, recorded, tile, tiled, resumed, seams)
