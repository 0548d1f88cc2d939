"""One sampler step (Eq. 5 with the TwoScaleBlend) on one tile of a canvas that lives on disk.

Every quantity of a step is local: the denoiser's fold of patches reaches P - 1 pixels, the blend's
antialiased down- and up-sampling a few more. A tile's interior ``R`` is therefore computed from a window
``E`` of x_t around it, chosen from the exact taps of the blend's resampling (``resize.resize_taps``) and
the patch size; E's first row and column lie on the lattice of every query stride the denoiser uses, so
that the tile's query grid is the canvas's grid shifted. With a denoiser whose queries are independent
(``exact``, ``chunked``...) a tiled step equals the in-memory step up to float rounding; PatchMatch keeps
its nearest-neighbour field per tile (its search is randomised per tile, so it matches in distribution).

The edits of the canvas's geometry fold its axes (``StepTask.folds``): a seamless tile's axes ``wrap`` (windows
and the blend's resampling read modulo the canvas: Eq. 2 on the periodic canvas, where the in-memory sampler
blends four half-shifted calls), a symmetric image's ``mirror`` (xhat0 of the second half is the first half's,
mirrored, as ``editing.geometry.mirror`` makes it in memory: a tile there denoises the window it mirrors).

Noise is drawn per 64 x 64 block of the canvas from a generator seeded by (seed, scale, step, block):
the result depends neither on the tile size, nor on the number of workers, nor on the order of the tiles.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..resize import resize_taps, unwrapped_taps

NOISE_BLOCK = 64
START = -1  # the step label of the starting noise x_T


@dataclass(frozen=True)
class Tile:
    index: int
    rows: tuple[int, int]
    cols: tuple[int, int]


def tile_grid(shape: tuple[int, int], tile: int) -> list[Tile]:
    """The tiles (row-major) of a canvas of ``shape``, ``tile`` x ``tile`` (the last row and column shorter)."""
    tiles = []
    for r in range(0, shape[0], tile):
        for c in range(0, shape[1], tile):
            tiles.append(Tile(len(tiles), (r, min(shape[0], r + tile)), (c, min(shape[1], c + tile))))
    return tiles


FOLDS = ("none", "wrap", "mirror")  # how an axis of the canvas folds (sinfree.edit.Edit.canvas_folds)


@lru_cache(maxsize=32)
def taps(in_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The resampling's taps from ``in_len`` to ``out_len``: (mirrored indices, unwrapped indices, weights)."""
    index, weights = resize_taps(in_len, out_len)
    return index.numpy(), unwrapped_taps(in_len, out_len)[0].numpy(), weights.to(torch.float32)


def axis_taps(in_len: int, out_len: int, positions: np.ndarray, fold: str) -> np.ndarray:
    """Tap indices (len(positions), K) of the output ``positions``: mirrored into [0, in_len), or for a
    ``wrap`` axis unwrapped (positions and indices may lie outside the canvas; read modulo its length)."""
    mirrored, unwrapped, _ = taps(in_len, out_len)
    if fold != "wrap":
        return mirrored[positions]
    period = np.floor_divide(positions, out_len)
    return unwrapped[positions - period * out_len] + (period * in_len)[:, None]


def mirror_source(positions: np.ndarray, length: int) -> np.ndarray:
    """Where a ``mirror`` axis takes each position's xhat0 from (``editing.geometry.mirror``: the first half
    is kept, the second is its mirror image; an odd length's middle sample is its own)."""
    return np.where(positions >= length - length // 2, length - 1 - positions, positions)


@dataclass(frozen=True)
class AxisWindow:
    """Along one axis: the x_t window [e0, e1) denoised for the interior [r0, r1), the coarse range [c0, c1)
    the blend uses, and the range [n0, n1) where xhat0 is needed, taken from the denoised window at ``gather``.
    On a ``wrap`` axis the ranges may reach past the canvas (read modulo its length)."""

    e0: int
    e1: int
    r0: int
    r1: int
    c0: int = 0
    c1: int = 0
    n0: int = 0
    n1: int = 0
    gather: np.ndarray | None = field(default=None, compare=False)


def axis_window(
    start: int, stop: int, length: int, coarse_length: int | None, patch: int, lattice: int, fold: str = "none"
) -> AxisWindow:
    """The window of one axis (see the module's docstring): xhat0 is needed on the interior and on the fine
    pixels under the coarse taps of the interior's upsampling; x_t on their sources (themselves, or on a
    ``mirror`` axis their mirror images) plus P - 1 before (rounded down to the query lattice) and P after
    (so that the window's extra last query covers none of them)."""
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {', '.join(FOLDS)}, got {fold!r}")
    n0, n1, c0, c1 = start, stop, 0, 0
    if coarse_length is not None and coarse_length != length:
        up = axis_taps(coarse_length, length, np.arange(start, stop), fold)
        c0, c1 = int(up.min()), int(up.max()) + 1
        down = axis_taps(length, coarse_length, np.arange(c0, c1), fold)
        n0, n1 = min(n0, int(down.min())), max(n1, int(down.max()) + 1)
    needed = np.arange(n0, n1)
    sources = mirror_source(needed, length) if fold == "mirror" else needed
    e0 = (int(sources.min()) - (patch - 1)) // lattice * lattice
    e1 = int(sources.max()) + 1 + patch
    if fold != "wrap":
        e0, e1 = max(0, e0), min(length, e1)
    return AxisWindow(e0, e1, start, stop, c0, c1, n0, n1, sources - e0)


def window_resize(
    image: torch.Tensor, dim: int, in_start: int, in_len: int, out_len: int, out_start: int, out_stop: int, fold: str = "none"
):
    """Rows ``out_start:out_stop`` along ``dim`` of ``resize`` from ``in_len`` to ``out_len`` samples (circular on a
    ``wrap`` axis), given the input's samples from ``in_start`` on (every tap of those rows must be among them)."""
    if in_len == out_len:
        return image.narrow(dim, out_start - in_start, out_stop - out_start)
    positions = np.arange(out_start, out_stop)
    local = torch.from_numpy(axis_taps(in_len, out_len, positions, fold) - in_start)
    if local.min() < 0 or local.max() >= image.shape[dim]:
        raise AssertionError("window_resize: a tap falls outside the window")
    weights = taps(in_len, out_len)[2][torch.from_numpy(positions % out_len)]
    matrix = torch.zeros(len(positions), image.shape[dim], dtype=image.dtype)  # one BLAS product, not a gather of taps
    matrix.scatter_add_(1, local, weights.to(image.dtype))
    return torch.matmul(matrix, image.movedim(dim, -2)).movedim(-2, dim).contiguous()


def contiguous_runs(indices: np.ndarray) -> list[tuple[int, int, int]]:
    """(offset, start, stop) of each run of consecutive values in ``indices``."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    bounds = [0, *breaks.tolist(), len(indices)]
    return [(a, int(indices[a]), int(indices[b - 1]) + 1) for a, b in zip(bounds[:-1], bounds[1:])]


def read_window(array, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """``array[:, rows, cols]`` of a (C, H, W) array, the ranges read modulo H and W (they may reach past them)."""
    height, width = array.shape[-2:]
    if 0 <= rows[0] and rows[1] <= height and 0 <= cols[0] and cols[1] <= width:
        return np.asarray(array[:, rows[0] : rows[1], cols[0] : cols[1]])
    out = np.empty((array.shape[0], rows[1] - rows[0], cols[1] - cols[0]), dtype=array.dtype)
    for ro, r0, r1 in contiguous_runs(np.arange(*rows) % height):
        for co, c0, c1 in contiguous_runs(np.arange(*cols) % width):
            out[:, ro : ro + r1 - r0, co : co + c1 - c0] = array[:, r0:r1, c0:c1]
    return out


def noise_seed(*key) -> int:
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1


def block_noise(channels: int, rows: tuple[int, int], cols: tuple[int, int], key: tuple) -> torch.Tensor:
    """Standard normal noise on the canvas region rows x cols, drawn per NOISE_BLOCK block from a generator
    seeded by (key, block row, block column): the same values whatever region is asked for."""
    out = torch.empty(channels, rows[1] - rows[0], cols[1] - cols[0])
    b = NOISE_BLOCK
    for br in range(rows[0] // b, -(-rows[1] // b)):
        for bc in range(cols[0] // b, -(-cols[1] // b)):
            block = torch.randn(channels, b, b, generator=torch.Generator().manual_seed(noise_seed(*key, br, bc)))
            r0, r1 = max(rows[0], br * b), min(rows[1], (br + 1) * b)
            c0, c1 = max(cols[0], bc * b), min(cols[1], (bc + 1) * b)
            out[:, r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]] = block[
                :, r0 - br * b : r1 - br * b, c0 - bc * b : c1 - bc * b
            ]
    return out


def noise_canvas(channels: int, shape: tuple[int, int], key: tuple) -> torch.Tensor:
    return block_noise(channels, (0, shape[0]), (0, shape[1]), key)


@dataclass(frozen=True)
class DenoiserSpec:
    """What a worker needs to build a scale's denoiser: the reference level's file and the backend."""

    reference: str  # .npy of the level (C, H, W) float32
    patch_size: int
    stride: int
    rho: float
    backend: str
    options: dict = field(default_factory=dict)


_DENOISERS: dict = {}  # per process: the denoiser of the scale being tiled (built once per worker)


def cached_denoiser(spec: DenoiserSpec):
    from ..image_denoiser import make_image_denoiser
    from ..memory import release_freed_memory

    key = (spec.reference, spec.backend, tuple(sorted(spec.options.items())))
    if key not in _DENOISERS:
        _DENOISERS.clear()
        release_freed_memory()  # the previous scale's denoiser, before the next (larger) one is built
        reference = torch.from_numpy(np.load(spec.reference))
        _DENOISERS[key] = make_image_denoiser(
            reference, spec.patch_size, stride=spec.stride, rho=spec.rho, backend=spec.backend, **spec.options
        )
    return _DENOISERS[key]


def query_lattice(denoiser) -> int:
    """The least common multiple of every query stride the denoiser may use."""
    strides = [getattr(denoiser, name, 1) for name in ("stride", "early_stride", "noisy_stride")]
    return math.lcm(*strides)


@dataclass(frozen=True)
class StepTask:
    """One sampler step of one tiled scale: x_t in canvas ``source`` -> x_{t-1} in ``target``, tile by tile."""

    root: str
    scale: int
    t: int
    num_steps: int
    source: str
    target: str
    coarse: str | None
    shape: tuple[int, int]
    coarse_shape: tuple[int, int] | None
    channels: int
    tile: int
    alpha: float
    sigma: float
    alpha_prev: float
    sigma_prev: float
    eta: float
    seed: int
    denoiser: DenoiserSpec
    start_step: int  # the scale's first step (its first call starts the search from scratch)
    folds: tuple[str, str] = ("none", "none")  # rows, columns: FOLDS (a seamless tile wraps, a symmetric one mirrors)

    def __call__(self, tile: Tile) -> float:
        """Run the step on ``tile``; returns the seconds it took."""
        from .store import open_array

        started = time.perf_counter()
        root = Path(self.root)
        denoiser = cached_denoiser(self.denoiser)
        lattice = query_lattice(denoiser)
        patch = self.denoiser.patch_size
        coarse_h, coarse_w = self.coarse_shape if self.coarse_shape is not None else (None, None)
        fold_rows, fold_cols = self.folds
        rows = axis_window(*tile.rows, self.shape[0], coarse_h, patch, lattice, fold_rows)
        cols = axis_window(*tile.cols, self.shape[1], coarse_w, patch, lattice, fold_cols)
        source = open_array(root / f"{self.source}.zarr", None, None, None, False)
        x = torch.from_numpy(read_window(source, (rows.e0, rows.e1), (cols.e0, cols.e1)))
        stateful = hasattr(denoiser, "field") and hasattr(denoiser, "start_trajectory")
        if stateful:
            load_search_state(denoiser, root, self, tile)
        denoised = denoiser(x, self.alpha, self.sigma)
        if stateful:
            save_search_state(denoiser, root, self, tile)
        xhat0 = denoised[:, torch.from_numpy(rows.gather)][:, :, torch.from_numpy(cols.gather)]  # on [n0, n1) per axis
        inner = (slice(None), slice(rows.r0 - rows.n0, rows.r1 - rows.n0), slice(cols.r0 - cols.n0, cols.r1 - cols.n0))
        x0 = xhat0[inner]
        if self.t == 1:
            out = x0
        else:
            if "mirror" in self.folds:  # the window denoised may lie in the other half
                x_tile = torch.from_numpy(np.asarray(source[:, tile.rows[0] : tile.rows[1], tile.cols[0] : tile.cols[1]]))
            else:
                x_tile = x[:, rows.r0 - rows.e0 : rows.r1 - rows.e0, cols.r0 - cols.e0 : cols.r1 - cols.e0]
            eps_hat = (x_tile - self.alpha * x0) / self.sigma
            if self.coarse is not None:
                coarse_store = open_array(root / f"{self.coarse}.zarr", None, None, None, False)
                coarse = torch.from_numpy(read_window(coarse_store, (rows.c0, rows.c1), (cols.c0, cols.c1)))
                height, width = self.shape
                down = window_resize(xhat0, -2, rows.n0, height, coarse_h, rows.c0, rows.c1, fold_rows)
                down = window_resize(down, -1, cols.n0, width, coarse_w, cols.c0, cols.c1, fold_cols)
                low = window_resize(down, -2, rows.c0, coarse_h, height, *tile.rows, fold_rows)
                low = window_resize(low, -1, cols.c0, coarse_w, width, *tile.cols, fold_cols)
                up = window_resize(coarse, -2, rows.c0, coarse_h, height, *tile.rows, fold_rows)
                up = window_resize(up, -1, cols.c0, coarse_w, width, *tile.cols, fold_cols)
                x0 = up + (x0 - low)  # TwoScaleBlend: U(x_coarse) + (xhat0 - U(D(xhat0)))
            out = self.alpha_prev * x0 + math.sqrt(1.0 - self.eta**2) * self.sigma_prev * eps_hat
            if self.eta > 0:
                out = out + self.eta * self.sigma_prev * block_noise(
                    self.channels, tile.rows, tile.cols, (self.seed, self.scale, self.t)
                )
        target = open_array(root / f"{self.target}.zarr", None, None, None, False)
        target[:, tile.rows[0] : tile.rows[1], tile.cols[0] : tile.cols[1]] = out.to(torch.float32).numpy()
        return time.perf_counter() - started


def _state_path(root, task: StepTask, tile: Tile, parity: int):
    folder = root / f"state_{task.scale}_{parity}"
    folder.mkdir(exist_ok=True)
    return folder / f"tile{tile.index}.npz"


def load_search_state(denoiser, root, task: StepTask, tile: Tile) -> None:
    """PatchMatch's field of this tile after the previous step (none on the scale's first step). States are
    double-buffered by the step's parity, as the canvases are: a step interrupted half-way is redone from whole state."""
    denoiser.start_trajectory()
    if task.t == task.start_step:
        return
    path = _state_path(root, task, tile, (task.t + 1) % 2)
    with np.load(path) as saved:
        if "cand" not in saved:  # the previous call searched nothing (a_t = 0: the mean patch)
            return
        cand = saved["cand"]
        denoiser._field = (cand, np.empty(cand.shape, dtype=np.float32))
        denoiser._field_grid = (saved["rows"], saved["cols"])
        denoiser._trajectory_seed = int(saved["seed"])
        denoiser._calls = int(saved["calls"])


def save_search_state(denoiser, root, task: StepTask, tile: Tile) -> None:
    import os
    import tempfile

    if task.t == 1:
        return
    path = _state_path(root, task, tile, task.t % 2)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(handle, "wb") as file:
        if denoiser._field is None:
            np.savez(file, none=np.zeros(0))
        else:
            rows, cols = denoiser._field_grid
            np.savez(file, cand=denoiser._field[0], rows=rows, cols=cols, seed=denoiser._trajectory_seed, calls=denoiser._calls)
    os.replace(temporary, path)
