"""torch's thread count, changed for one block of work and restored."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    """torch on one thread within the block. For small dense decompositions (eigh of a D x D
    covariance, D <= 1024): on 2 cores, right after a convolution, a 2-thread eigh at D = 784 took
    10-12 s against 0.09 s on one thread (measured), its threads contending with the idle pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
