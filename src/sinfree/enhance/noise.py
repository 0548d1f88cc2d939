"""Noise models: a variance-stabilising transform to additive Gaussian noise of known std, and its inverse.

``forward(y, sigma) -> (z, sigma_z)`` maps the data to a domain where the noise is (close to) additive
white Gaussian of std ``sigma_z``; the restorer denoises ``z`` and ``inverse`` maps the result back.

- gaussian: identity; ``sigma`` given or estimated (``estimate_noise``: wavelet MAD, Donoho and Johnstone 1994).
- poisson: counts ``y / gain ~ Poisson(x / gain)``; Anscombe's transform ``z = 2 sqrt(y / gain + 3/8)``
  (std 1), inverted with the closed-form approximation of the exact unbiased inverse (Makitalo and
  Foi, IEEE TIP 2011).
- rician: MRI magnitude ``m = |x + n_1 + i n_2|``, ``n ~ N(0, sigma^2)``. Denoised on the squared magnitude,
  whose mean is ``x^2 + 2 sigma^2`` (its noise std, ``2 sigma sqrt(x^2 + sigma^2)``, is taken at its
  image-wide RMS), then the Rician bias removed: ``x = sqrt(max(E[m^2] - 2 sigma^2, 0))`` (McGibney and
  Smith 1993; Nowak 1999). ``sigma`` is estimated on the magnitude (valid where SNR >~ 2).
- speckle: multiplicative ``y = x n``, E[n] = 1; the log transform makes it additive, and the lognormal bias
  is removed on the way back: ``x = exp(z + sigma_log^2 / 2)``; ``sigma`` is the std of log n.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SinfreeError
from ..extras import require

NOISE_MODELS = ("gaussian", "poisson", "rician", "speckle")


def estimate_noise(data: np.ndarray, channel_axis: int | None = None) -> float:
    """Std of additive white Gaussian noise in a 2-D image ``data`` (channels along ``channel_axis``, averaged):
    ``skimage.restoration.estimate_sigma`` (Donoho and Johnstone 1994: median |HH| / 0.6745 of the finest
    db2 wavelet band; it needs PyWavelets: both in the ``medical`` extra)."""
    require("pywt", "medical", "sinfree enhance's noise estimate")  # estimate_sigma's wavelets
    estimate_sigma = require("skimage.restoration", "medical", "sinfree enhance's noise estimate").estimate_sigma

    return float(estimate_sigma(np.asarray(data, dtype=np.float64), channel_axis=channel_axis, average_sigmas=True))


def forward(model: str, y: np.ndarray, sigma: float | None, gain: float = 1.0, channel_axis: int | None = None):
    """``(z, sigma_z)``: the stabilised data and its Gaussian noise std (``sigma`` None: estimated)."""
    if model == "gaussian":
        return y, estimate_noise(y, channel_axis) if sigma is None else sigma
    if model == "poisson":
        counts = y / gain
        if counts.min() < 0:
            raise SinfreeError(f"poisson noise needs counts >= 0; the data reach {y.min():.4g} (set the gain or shift the data)")
        return anscombe(counts), 1.0
    if model == "rician":
        sigma = estimate_noise(y, channel_axis) if sigma is None else sigma
        square = y.astype(np.float64) ** 2
        return square, 2.0 * sigma * math.sqrt(max(float(square.mean()) - sigma**2, sigma**2))
    if model == "speckle":
        if y.min() <= 0:
            raise SinfreeError(f"speckle noise is multiplicative: the data must be positive, they reach {y.min():.4g}")
        logs = np.log(y.astype(np.float64))
        return logs, estimate_noise(logs, channel_axis) if sigma is None else sigma
    raise SinfreeError(f"unknown noise model {model!r}; choose one of {', '.join(NOISE_MODELS)}")


def inverse(model: str, z: np.ndarray, sigma: float, gain: float = 1.0) -> np.ndarray:
    """Back from the stabilised domain; ``sigma`` is the one ``forward`` was given or estimated (original units)."""
    if model == "gaussian":
        return z
    if model == "poisson":
        return gain * inverse_anscombe(z)
    if model == "rician":
        return np.sqrt(np.maximum(z - 2.0 * sigma**2, 0.0))
    if model == "speckle":
        return np.exp(z + 0.5 * sigma**2)
    raise SinfreeError(f"unknown noise model {model!r}; choose one of {', '.join(NOISE_MODELS)}")


def anscombe(counts: np.ndarray) -> np.ndarray:
    """Anscombe's variance-stabilising transform: Poisson counts to noise of std ~1."""
    return 2.0 * np.sqrt(counts + 3.0 / 8.0)


def inverse_anscombe(z: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse of Anscombe's transform (Makitalo and Foi 2011),
    floored at 0 (the exact inverse reaches 0 at z = 2 sqrt(3/8))."""
    z = np.maximum(np.asarray(z, dtype=np.float64), 2.0 * math.sqrt(3.0 / 8.0))
    r = math.sqrt(1.5)
    out = 0.25 * z**2 + 0.25 * r / z - 11.0 / 8.0 / z**2 + 0.625 * r / z**3 - 0.125
    return np.maximum(out, 0.0)
