"""NIQE, the "completely blind" natural image quality evaluator (Mittal, Soundararajan & Bovik 2013).

A numpy/scipy port of the official MATLAB release (niqe_release: computequality.m, computefeature.m,
estimateaggdparam.m) with its pristine multivariate Gaussian model (``data/niqe_pris_params.npz``,
see ``data/SOURCE.md``). The score is the distance between that model and a Gaussian fitted to the
natural-scene-statistics features of the image's 96 x 96 blocks at two scales: lower is better.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..extras import require
from ..resize import resize

NIQE_BLOCK = 96
NIQE_PARAMS = Path(__file__).parent / "data" / "niqe_pris_params.npz"
AGGD_SHAPES = 0.2 + 0.001 * np.arange(9801)  # gam = 0.2:0.001:10, as estimateaggdparam.m
PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, two diagonals (circular)
_ARGMIN_ROWS = 256


def _scipy(module: str):
    """scipy's ``ndimage`` or ``special`` (the ``eval`` extra)."""
    return require(f"scipy.{module}", "eval", "NIQE (sinfree eval)")


def gamma(x: np.ndarray) -> np.ndarray:
    return _scipy("special").gamma(x)


@lru_cache(maxsize=1)
def _aggd_ratios() -> np.ndarray:
    """Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) for each shape a of ``AGGD_SHAPES``."""
    return gamma(2 / AGGD_SHAPES) ** 2 / (gamma(1 / AGGD_SHAPES) * gamma(3 / AGGD_SHAPES))


@lru_cache(maxsize=1)
def _pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(NIQE_PARAMS) as params:
        return params["mu_pris_param"][0], params["cov_pris_param"], params["gaussian_window"]


def estimate_aggd_params(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit (alpha, beta_l, beta_r) of each row of ``samples`` (N, n) or of a 1-D array.

    Moment matching as estimateaggdparam.m (Lasmar et al. 2009): the shape alpha is the grid value
    of ``AGGD_SHAPES`` (0.2 to 10 in steps of 0.001) whose ratio Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))
    is nearest the normalised ratio E|x|^2 / E[x^2] of the samples; the scales follow from the
    root-mean-squares of the negative and positive samples. NaN where a side has no samples.
    """
    samples = np.asarray(samples, dtype=np.float64)
    rows = np.atleast_2d(samples) if samples.ndim == 1 else samples.reshape(len(samples), -1)
    squares = rows * rows
    negative, positive = rows < 0, rows > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.where(negative, squares, 0).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt(np.where(positive, squares, 0).sum(axis=1) / positive.sum(axis=1))
        ratio = left_std / right_std
        rhat = np.abs(rows).mean(axis=1) ** 2 / squares.mean(axis=1)
        rhat_norm = rhat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    index = np.empty(len(rows), dtype=np.int64)
    ratios = _aggd_ratios()
    for start in range(0, len(rows), _ARGMIN_ROWS):  # first minimum, as MATLAB's min; NaN rows give index 0
        chunk = rhat_norm[start : start + _ARGMIN_ROWS, None]
        index[start : start + _ARGMIN_ROWS] = np.argmin((ratios[None, :] - chunk) ** 2, axis=1)
    alpha = AGGD_SHAPES[index]
    scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    if samples.ndim == 1:
        return alpha[0], left_std[0] * scale[0], right_std[0] * scale[0]
    return alpha, left_std * scale, right_std * scale


def _mscn(luma: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Eq. 1), 'replicate' borders as imfilter."""
    ndimage = _scipy("ndimage")
    mu = ndimage.correlate(luma, window, mode="nearest")
    sigma = np.sqrt(np.abs(ndimage.correlate(luma * luma, window, mode="nearest") - mu * mu))
    return (luma - mu) / (sigma + 1)


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of computefeature.m for each block x block tile of ``mscn``, (num_blocks, 18)."""
    height, width = mscn.shape
    tiles = mscn.reshape(height // block, block, width // block, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, beta_l, beta_r = estimate_aggd_params(tiles.reshape(len(tiles), -1))
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in PAIR_SHIFTS:
        pairs = tiles * np.roll(tiles, shift, axis=(1, 2))  # circshift within each block
        alpha, beta_l, beta_r = estimate_aggd_params(pairs.reshape(len(tiles), -1))
        mean = (beta_r - beta_l) * gamma(2 / alpha) / gamma(1 / alpha)  # Eq. 8
        features += [alpha, mean, beta_l, beta_r]
    return np.stack(features, axis=1)


def _round(values: np.ndarray) -> np.ndarray:
    return np.floor(values + 0.5)  # MATLAB's round on non-negative values (half away from zero)


def _luminance(image: torch.Tensor | np.ndarray, luminance: str) -> np.ndarray:
    """Integer-valued luminance (H, W) in [0, 255], float64, as MATLAB gives it for an 8-bit image."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or not image.is_floating_point():
            raise ValueError(f"expected a float tensor (C, H, W) in [-1, 1], got {image.dtype} of shape {tuple(image.shape)}")
        pixels = _round((image.detach().cpu().double().clamp(-1, 1).numpy() + 1) * 127.5)  # 8-bit values
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 array (H, W) or (H, W, C), got {image.dtype} of shape {image.shape}")
        pixels = image.astype(np.float64)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    else:
        raise ValueError(f"expected a torch tensor or a numpy array, got {type(image).__name__}")
    channels = pixels.shape[0]
    if channels == 1:
        return pixels[0]
    if channels not in (3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    red, green, blue = pixels[:3]  # alpha dropped
    if luminance == "y":  # rgb2ycbcr's Y (BT.601, studio range)
        return _round(16 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255)
    return _round(0.298936021293775 * red + 0.587043074451121 * green + 0.114020904255103 * blue)  # rgb2gray


def niqe(image: torch.Tensor | np.ndarray, *, luminance: str = "y") -> float:
    """NIQE score of ``image`` (Mittal et al. 2013; the MATLAB release's computequality.m): lower is better.

    ``image`` is a float tensor (C, H, W) in [-1, 1] (quantised to 8 bits first) or a uint8 array
    (H, W) or (H, W, C); C is 1, 3 or 4 (alpha dropped). Colour goes to 8-bit luminance: rgb2ycbcr's
    Y by default (as BasicSR), or MATLAB's rgb2gray with ``luminance="gray"`` (as the MATLAB release).
    The luminance is cropped to whole 96 x 96 blocks; at the full and the half scale (MATLAB's
    antialiased bicubic imresize) each block gives 18 AGGD features of its MSCN coefficients and their
    neighbour products. The score is the Mahalanobis-like distance (Eq. 10) between the Gaussian fitted
    to the block features (blocks with NaN features left out of the covariance, zero covariance for a
    single block) and the pristine model. NaN for a flat image.

    Raises ValueError for images smaller than one 96 x 96 block. Small images have few blocks (about
    250 x 190 gives only 2 per scale), so their scores are noisy.
    """
    if luminance not in ("y", "gray"):
        raise ValueError(f"luminance must be 'y' or 'gray', got {luminance!r}")
    luma = _luminance(image, luminance)
    height, width = luma.shape
    if height < NIQE_BLOCK or width < NIQE_BLOCK:
        raise ValueError(f"NIQE needs at least one {NIQE_BLOCK} x {NIQE_BLOCK} block, got a {height} x {width} image")
    luma = luma[: height // NIQE_BLOCK * NIQE_BLOCK, : width // NIQE_BLOCK * NIQE_BLOCK]
    mu_pristine, cov_pristine, window = _pristine_model()

    features = [_block_features(_mscn(luma, window), NIQE_BLOCK)]
    half = resize(torch.from_numpy(luma)[None], (luma.shape[0] // 2, luma.shape[1] // 2))[0].numpy()
    features.append(_block_features(_mscn(half, window), NIQE_BLOCK // 2))
    features = np.concatenate(features, axis=1)  # (num_blocks, 36); both scales list blocks in the same order

    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu_image = np.nanmean(features, axis=0)
    cov_image = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pristine)
    difference = mu_pristine - mu_image
    return float(np.sqrt(difference @ np.linalg.pinv((cov_pristine + cov_image) / 2) @ difference))
