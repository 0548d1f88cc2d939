"""Helpers shared by the test files (imported as ``from helpers import ...``: pytest puts tests/ on sys.path,
as it does for ``from test_denoiser_math import ...``). Fixtures live in conftest.py.

``assert_new_image_of_input_patches`` is the check behind every "the sample is new but made of the input's
patches" claim (issue 19). Each of its three criteria rejects a kind of fake that passes the others:

- made of input patches: the median distance of the sample's 7 x 7 patches to their nearest input patch is
  at most ``MAX_PATCH_DISTANCE`` of a pixel-shuffled input's (rejects noise and shuffles);
- not a copy: under every circular shift and every flip, the sample stays at least ``MIN_COPY_DISTANCE`` of
  the input's typical distance to its own shifts away from the input (rejects exact, rolled and mirrored copies,
  which are at 0, and which the patch criterion cannot see: their patches are the input's);
- as detailed: the energy above a sigma-1 Gaussian low-pass is within ``DETAIL_RANGE`` times the input's
  (rejects blurs and flat images, whose patches can still be near some input patch).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

from sinfree.io.images import load_image

CHECK_PATCH = 7
MAX_PATCH_DISTANCE = 0.5  # of a pixel-shuffled input's median nearest-patch distance
MIN_COPY_DISTANCE = 0.2  # of the input's median distance to its own circular shifts
DETAIL_RANGE = (0.1, 3.0)  # high-frequency energy over the input's


def run_cli(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m sinfree.cli ARGS`` in a subprocess, its output captured as text; ``env``: variables added
    to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "sinfree.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else os.environ | env,
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 (H, W) or (H, W, C) array as sinfree's float (C, H, W) in [-1, 1]."""
    array = image[:, :, None] if image.ndim == 2 else image
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 127.5 - 1


def noisy(image: torch.Tensor, alpha: float, sigma: float, seed: int = 0) -> torch.Tensor:
    """``alpha * image + sigma * z`` with z standard normal drawn from ``seed``: x_t of the flow at (alpha, sigma)."""
    return alpha * image + sigma * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))


def _as_tensor(image) -> torch.Tensor:
    """A (C, H, W) tensor in [-1, 1] as it is; anything ``load_image`` reads through it; float64."""
    tensor = image if isinstance(image, torch.Tensor) else load_image(image)[0]
    return tensor.detach().to(torch.float64)


def patch_rows(image: torch.Tensor, patch_size: int = CHECK_PATCH) -> torch.Tensor:
    """Every patch_size x patch_size patch of a (C, H, W) tensor, one a row: (num_patches, C * P * P)."""
    return F.unfold(image[None], patch_size)[0].T


def nearest_patch_distances(sample, reference, patch_size: int = CHECK_PATCH) -> torch.Tensor:
    """RMS-per-value distance of each patch of ``sample`` to its nearest patch of ``reference`` (images as
    ``_as_tensor`` takes them), float64 (num_sample_patches,)."""
    queries, patches = patch_rows(_as_tensor(sample), patch_size), patch_rows(_as_tensor(reference), patch_size)
    return torch.cdist(queries, patches).min(dim=1).values / math.sqrt(patches.shape[1])


def _shift_distances(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """RMS distance of ``image`` circularly shifted by every (dy, dx) to ``reference`` (same shape): (H, W).
    ||roll(a, d) - b||^2 = ||a||^2 + ||b||^2 - 2 <roll(a, d), b>, the correlations by FFT."""
    correlation = torch.fft.ifft2(torch.fft.fft2(reference) * torch.conj(torch.fft.fft2(image))).real.sum(dim=0)
    squared = image.square().sum() + reference.square().sum() - 2 * correlation
    return (squared.clamp_min(0) / image.numel()).sqrt()


def high_frequency_energy(image: torch.Tensor) -> float:
    """Mean square of the image minus its sigma-1 Gaussian low-pass (per channel, reflected edges)."""
    array = image.numpy()
    return float(np.mean((array - scipy.ndimage.gaussian_filter(array, sigma=(0, 1, 1), mode="reflect")) ** 2))


def new_image_measures(sample, reference) -> dict[str, float]:
    """The three figures ``assert_new_image_of_input_patches`` judges (see the module's docstring):
    ``patch_distance`` (1: a pixel-shuffled input's), ``copy_distance`` (0: a copy of the input under some
    circular shift or flip; 1: as far as the input's typical shift; NaN when the sizes differ) and
    ``detail`` (1: as much high-frequency energy as the input)."""
    sample, reference = _as_tensor(sample), _as_tensor(reference)
    if sample.shape[0] != reference.shape[0]:
        raise ValueError(f"the sample has {sample.shape[0]} channels, the input {reference.shape[0]}")
    channels = reference.shape[0]
    pixels = reference.reshape(channels, -1)
    shuffled = pixels[:, torch.randperm(pixels.shape[1], generator=torch.Generator().manual_seed(0))].reshape(reference.shape)
    patch_distance = nearest_patch_distances(sample, reference).median() / nearest_patch_distances(shuffled, reference).median()
    copy_distance = math.nan
    if sample.shape == reference.shape:
        typical = _shift_distances(reference, reference).median()
        flips = (sample, sample.flip(2), sample.flip(1), sample.flip(1, 2))
        copy_distance = min(_shift_distances(flipped, reference).min().item() for flipped in flips) / typical.item()
    detail = high_frequency_energy(sample) / high_frequency_energy(reference)
    return {"patch_distance": float(patch_distance), "copy_distance": float(copy_distance), "detail": float(detail)}


def assert_new_image_of_input_patches(sample, reference) -> dict[str, float]:
    """Fail unless ``sample`` is a new image made of ``reference``'s patches, as detailed as it (criteria in
    the module's docstring); returns the measures. Images: numpy arrays of one pixel format (as ``generate``
    takes and returns them) or (C, H, W) tensors in [-1, 1]."""
    measures = new_image_measures(sample, reference)
    figures = ", ".join(f"{name} {value:.3f}" for name, value in measures.items())
    assert measures["patch_distance"] <= MAX_PATCH_DISTANCE, f"not made of the input's patches: {figures}"
    assert not measures["copy_distance"] < MIN_COPY_DISTANCE, f"a copy of the input (shifted or flipped): {figures}"
    low, high = DETAIL_RANGE
    assert low <= measures["detail"] <= high, f"not as detailed as the input (a blur, a flat or a noisy image): {figures}"
    return measures
