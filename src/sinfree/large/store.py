"""The on-disk state of an out-of-core run: chunked zarr arrays for the canvases, per-tile search state,
and the checkpoint that makes a run resumable.

A run folder holds, per tiled scale, two canvases (``x0`` and ``x1``: the sampler reads x_t from one and
writes x_{t-1} into the other, so a step interrupted half-way leaves x_t whole), the finished canvas of
the last in-memory scale (``coarse``), the reference level of each tiled scale (``reference_<s>.npy``,
read by the workers), and ``checkpoint.json``, rewritten atomically after every finished step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..extras import require

MARKER = "sinfree-run.json"  # a folder with this file was made by sinfree: a fresh run may empty it
CHECKPOINT = "checkpoint.json"


def zarr_module():
    return require("zarr", "cluster", "out-of-core runs")


def settings_hash(described: dict) -> str:
    """A short hash of a run's settings (JSON values): a checkpoint resumes only the same run."""
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json_atomically(path: Path, value: dict) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(handle, "w") as file:
        json.dump(value, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def save_npy_atomically(path: Path, array: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(handle, "wb") as file:
        np.save(file, array)
    os.replace(temporary, path)


class RunStore:
    """The folder of one out-of-core run (``root``), identified by its settings ``digest``."""

    def __init__(self, root: Path, digest: str):
        self.root = Path(root)
        self.digest = digest

    # lifecycle ---------------------------------------------------------------------------------

    def open(self) -> dict | None:
        """Prepare the folder; return the checkpoint of an unfinished run of the same settings (resume),
        else None after emptying a folder an earlier sinfree run made (a different run: its state is stale).
        A folder with other content is refused rather than emptied."""
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: the run's store must be a folder, and this is a file")
        marker = self.root / MARKER
        if self.root.exists() and any(self.root.iterdir()):
            if not marker.exists():
                raise OutputError(f"{self.root}: the store folder has other content; choose an empty or new folder with --store")
            recorded = json.loads(marker.read_text())
            checkpoint = self.checkpoint()
            if recorded.get("digest") == self.digest and checkpoint is not None:
                return checkpoint
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomically(marker, {"digest": self.digest})
        return None

    def checkpoint(self) -> dict | None:
        path = self.root / CHECKPOINT
        if not path.exists():
            return None
        value = json.loads(path.read_text())
        return value if value.get("digest") == self.digest else None

    def save_checkpoint(self, **state) -> None:
        write_json_atomically(self.root / CHECKPOINT, {"digest": self.digest, **state})

    def remove(self) -> None:
        if (self.root / MARKER).exists():
            shutil.rmtree(self.root, ignore_errors=True)

    # arrays ------------------------------------------------------------------------------------

    def canvas(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype="float32", create: bool = False):
        """The zarr array ``name`` (created, uncompressed, when ``create``; else opened for reading and writing)."""
        return open_array(self.root / f"{name}.zarr", shape, chunks, dtype, create)

    def path(self, name: str) -> Path:
        return self.root / name


def open_array(path: Path, shape, chunks, dtype, create: bool):
    zarr = zarr_module()
    if not create:
        return zarr.open_array(store=str(path), mode="r+")
    try:  # zarr 3
        return zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=dtype, compressors=None, overwrite=True)
    except AttributeError:  # zarr 2
        return zarr.open_array(store=str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype, compressor=None)
