"""Where the tiles of a step run: in this process, on an embedded Dask LocalCluster (``--workers N``: N
processes of one thread each, torch and numba on one thread), or on an existing Dask cluster
(``--scheduler ADDRESS``; its workers must see the run's store folder, e.g. on a shared file system).

Each tile's result depends only on the tile and on the state on disk, so every executor gives the same
canvases (up to float rounding of the thread count: 1e-6).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable

from ..errors import SinfreeError
from ..extras import require

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "SINFREE_WORKER_THREADS": "1"}


def worker_threads() -> None:
    """In a worker of the embedded cluster: torch on one thread (the cluster's env says so)."""
    threads = os.environ.get("SINFREE_WORKER_THREADS")
    if threads:
        import torch

        if torch.get_num_threads() != int(threads):
            torch.set_num_threads(int(threads))


class InProcess:
    """Tiles one after another in this process."""

    workers = 1

    def map(self, task: Callable, items: Iterable, done: Callable | None = None) -> list:
        results = []
        for item in items:
            results.append(task(item))
            if done is not None:
                done(item, results[-1])
        return results

    def close(self) -> None:
        pass


class _InWorker:
    """The task, with the worker's thread setting applied first (picklable)."""

    def __init__(self, task):
        self.task = task

    def __call__(self, item):
        worker_threads()
        return self.task(item)


class DaskExecutor:
    """Tiles as Dask tasks: results in any order, each reported as it finishes."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        distributed = require("dask.distributed", "cluster", "--workers and --scheduler")
        self.cluster = None
        try:
            if scheduler is not None:
                self.client = distributed.Client(scheduler, timeout="20s")
            else:
                with warnings.catch_warnings():  # "port 8787 in use": no dashboard is asked for
                    warnings.simplefilter("ignore", UserWarning)
                    self.cluster = distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        env=WORKER_ENV,
                        silence_logs=40,
                    )
                self.client = distributed.Client(self.cluster)
        except OSError as error:
            raise SinfreeError(f"cannot reach the Dask scheduler {scheduler}: {error}") from None
        self.workers = len(self.client.scheduler_info().get("workers", {})) or (workers or 1)
        self._distributed = distributed

    def map(self, task: Callable, items: Iterable, done: Callable | None = None) -> list:
        items = list(items)
        futures = self.client.map(_InWorker(task), items, pure=False)
        position = {future.key: n for n, future in enumerate(futures)}
        results = [None] * len(items)
        for future in self._distributed.as_completed(futures):
            n = position[future.key]
            results[n] = future.result()
            if done is not None:
                done(items[n], results[n])
        return results

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(workers: int | None, scheduler: str | None):
    if workers is not None and workers < 1:
        raise SinfreeError(f"--workers must be at least 1, got {workers}")
    if scheduler is None and workers is None:
        return InProcess()
    return DaskExecutor(workers, scheduler)
