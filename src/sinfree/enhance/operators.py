"""Degradation operators ``y = A x + n`` and their data-consistency (proximal) steps, after DiffPIR
(Zhu et al., CVPR 2023) and DDRM (Kawar et al., NeurIPS 2022).

Every operator works on float64 tensors (C, H, W) in the restorer's normalised units and offers
``apply(x) = A x`` and ``prox(x0, rho)``: the solution of

    argmin_x ||y - A x||^2 + rho ||x - x0||^2,

DiffPIR's data subproblem, with ``rho = lambda sigma_n^2 / sigma_bar_t^2`` chosen by the sampler.
``rho -> 0`` is the projection onto ``A x = y``; ``rho -> inf`` keeps the prior's ``x0``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..extras import require
from ..resize import resize

BLUR_TRUNCATE = 4.0  # kernel radius in widths, as scipy.ndimage.gaussian_filter


@dataclass(frozen=True)
class RobustScale:
    """Affine map of physical units to the restorer's [-1, 1]: the ``low``/``high`` percentiles go to -1/1.

    Values outside them map beyond [-1, 1]; nothing is clipped either way.
    """

    low: float
    high: float

    @classmethod
    def fit(cls, data: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> RobustScale:
        low, high = (float(v) for v in np.percentile(data, percentiles))
        if not high - low > 1e-12 * max(1.0, abs(high)):
            low, high = float(data.min()), float(data.max())
        if not high - low > 1e-12 * max(1.0, abs(high)):  # a constant image
            low, high = low - 0.5, low + 0.5
        return cls(low, high)

    @property
    def gain(self) -> float:
        """Normalised units per physical unit."""
        return 2.0 / (self.high - self.low)

    def to_unit(self, data):
        return (data - self.low) * self.gain - 1.0

    def from_unit(self, unit):
        return (unit + 1.0) / self.gain + self.low


class Identity:
    """Denoising: ``A = I``; the prox is the closed-form average ``(y + rho x0) / (1 + rho)``."""

    def __init__(self, y: torch.Tensor):
        self.y = y

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        return (self.y + rho * x0) / (1.0 + rho)


class GaussianBlur:
    """``A x = k * x``: a Gaussian of width ``width`` px (truncated at 4 widths, as scipy's) with half-sample
    symmetric boundaries (scipy's ``mode='reflect'``).

    Both ``apply`` and ``prox`` are exact products in the Fourier domain of the image's even
    (mirror) extension to 2H x 2W, on which the mirror-boundary convolution is circular; the prox is
    ``x = F^-1[(conj(K) Y + rho X0) / (|K|^2 + rho)]`` (the FFT step of DiffPIR's deblurring).
    """

    def __init__(self, y: torch.Tensor, width: float):
        self.y = y
        self.width = float(width)
        height, wide = y.shape[-2:]
        self.spectrum = torch.outer(_kernel_spectrum(2 * height, width), _kernel_spectrum(2 * wide, width))
        self.y_spectrum = torch.fft.fft2(_mirror_extend(y))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._crop(torch.fft.ifft2(torch.fft.fft2(_mirror_extend(x)) * self.spectrum).real)

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        numerator = self.spectrum * self.y_spectrum + rho * torch.fft.fft2(_mirror_extend(x0))
        return self._crop(torch.fft.ifft2(numerator / (self.spectrum**2 + rho)).real)

    def _crop(self, extended: torch.Tensor) -> torch.Tensor:
        return extended[..., : self.y.shape[-2], : self.y.shape[-1]].contiguous()


def _kernel_spectrum(length: int, width: float) -> torch.Tensor:
    """The (real, even) DFT of length ``length`` of the sampled, normalised, truncated 1-D Gaussian."""
    radius = int(BLUR_TRUNCATE * width + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / width) ** 2) if width > 0 else (taps == 0).double()
    kernel = kernel / kernel.sum()
    circular = torch.zeros(length, dtype=torch.float64)
    circular.index_add_(0, torch.remainder(taps.long(), length), kernel)
    return torch.fft.fft(circular).real


def _mirror_extend(x: torch.Tensor) -> torch.Tensor:
    """The half-sample symmetric extension of (..., H, W) to (..., 2H, 2W)."""
    x = torch.cat([x, x.flip(-2)], dim=-2)
    return torch.cat([x, x.flip(-1)], dim=-1)


def gaussian_blur(x: np.ndarray, width: float) -> np.ndarray:
    """The blur operator on a numpy image (H, W) or (H, W, C): scipy's ``gaussian_filter``, mirror boundaries."""
    sigma = (width, width) + (0,) * (x.ndim - 2)
    ndimage = require("scipy.ndimage", "medical", "sinfree enhance")
    return ndimage.gaussian_filter(np.asarray(x, dtype=np.float64), sigma, mode="reflect", truncate=BLUR_TRUNCATE)


class Downsample:
    """``A x = resize(x, low shape)``: antialiased bicubic downsampling (``sinfree.resize``), applied as its two
    1-D matrices (taken by resizing identities), ``A x = R_h x R_w^T``, so that ``A^T r = R_h^T r R_w`` is its
    exact adjoint.

    The prox solves ``(A^T A + rho I) x = A^T y + rho x0`` by ``iterations`` conjugate-gradient steps from
    ``x0``: iterative back-projection (Irani and Peleg 1991) regularised towards the prior's estimate. The
    small products run in numpy: torch's threads on them starve beside other work (30 ms against 0.03 ms).
    """

    def __init__(self, y: torch.Tensor, high_shape: tuple[int, int], iterations: int = 8):
        self.y = y
        self.high_shape = tuple(high_shape)
        self.iterations = iterations
        (height, width), (low_height, low_width) = self.high_shape, tuple(y.shape[-2:])
        self.rows = resize(torch.eye(height, dtype=torch.float64)[None], (low_height, height))[0].numpy()  # (h, H)
        self.cols = resize(torch.eye(width, dtype=torch.float64)[None], (width, low_width))[0].numpy().T.copy()  # (w, W)
        self.back_projected_y = self._adjoint(y.numpy())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._apply(x.numpy()))

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._adjoint(r.numpy()))

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return self.rows @ x @ self.cols.T

    def _adjoint(self, r: np.ndarray) -> np.ndarray:
        return self.rows.T @ r @ self.cols

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        start = x0.numpy()

        def normal(v):
            return self._adjoint(self._apply(v)) + rho * v

        return torch.from_numpy(conjugate_gradient(normal, self.back_projected_y + rho * start, start, self.iterations))


def conjugate_gradient(operator, rhs: np.ndarray, x: np.ndarray, iterations: int) -> np.ndarray:
    """``iterations`` steps of CG on ``operator(x) = rhs`` (operator symmetric positive semi-definite)."""
    residual = rhs - operator(x)
    direction = residual.copy()
    norm = float((residual * residual).sum())
    for _ in range(iterations):
        if norm <= 1e-24:
            break
        applied = operator(direction)
        step = norm / float((direction * applied).sum())
        x = x + step * direction
        residual = residual - step * applied
        new_norm = float((residual * residual).sum())
        direction = residual + (new_norm / norm) * direction
        norm = new_norm
    return x


class Masking:
    """``A x = x`` on the known pixels (``known`` (H, W) bool); the prox replaces them by
    ``(y + rho x0) / (1 + rho)`` and keeps ``x0`` elsewhere (noise-free: the known pixels themselves)."""

    def __init__(self, y: torch.Tensor, known: torch.Tensor):
        self.y = y
        self.known = known.to(torch.bool).expand_as(y)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.known, x, torch.zeros_like(x))

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        return torch.where(self.known, (self.y + rho * x0) / (1.0 + rho), x0)


def biharmonic_fill(y: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``y`` (C, H, W) with the pixels where ``known`` (H, W) is False filled by biharmonic inpainting
    (``skimage.restoration.inpaint_biharmonic``: a smooth interpolant, exact at the known pixels); the start of
    inpainting. Where nothing is known, the data's known mean."""
    inpaint_biharmonic = require("skimage.restoration", "medical", "sinfree enhance").inpaint_biharmonic

    if known.all():
        return np.array(y, dtype=np.float64)
    if not known.any():
        return np.zeros_like(y, dtype=np.float64)
    filled = inpaint_biharmonic(np.moveaxis(np.asarray(y, dtype=np.float64), 0, -1), ~known, channel_axis=-1)
    return np.where(known, y, np.moveaxis(filled, -1, 0))


def legendre_basis(shape: tuple[int, int], degree: int) -> torch.Tensor:
    """Products ``P_i(v) P_j(u)``, i + j <= ``degree``, of Legendre polynomials on [-1, 1]^2: (K, H, W)."""
    v = torch.linspace(-1.0, 1.0, shape[0], dtype=torch.float64)
    u = torch.linspace(-1.0, 1.0, shape[1], dtype=torch.float64)
    pv, pu = _legendre(v, degree), _legendre(u, degree)
    return torch.stack([pv[i][:, None] * pu[j][None, :] for i in range(degree + 1) for j in range(degree + 1 - i)])


def _legendre(x: torch.Tensor, degree: int) -> list[torch.Tensor]:
    polys = [torch.ones_like(x), x]
    for n in range(1, degree):
        polys.append(((2 * n + 1) * x * polys[n] - n * polys[n - 1]) / (n + 1))
    return polys[: degree + 1]


class Illumination:
    """UniMIE's illumination model ``y = f x + M``: f a smooth multiplicative field, M an additive offset.

    Estimator, at every call of ``prox``, against the prior's current estimate ``xhat0``: log f is the L1
    (IRLS) fit of ``log((y - M) / xhat0)`` in the span of the 2-D Legendre polynomials of degree <= ``degree``
    (a robust low-pass fit of y / xhat0; edges where xhat0 is off count little), rescaled to mean(f) = 1 (the
    gain of x is not identifiable; this keeps the input's mean level); M is the median of ``y - f xhat0`` (a
    constant offset). The prox step then is ``((y - M) / f + rho xhat0) / (1 + rho)``. The start is
    ``log_gradient_field_fit`` (the same field class, fitted to the gradients of log y). ``y`` (C, H, W) in
    units whose zero is the physical zero; one field and offset for every channel.
    """

    def __init__(self, y: torch.Tensor, degree: int = 2, max_fit_pixels: int = 16384):
        self.y = y
        self.basis = legendre_basis(tuple(y.shape[-2:]), degree)
        step = max(1, math.isqrt(y.shape[-1] * y.shape[-2] // max_fit_pixels))
        self.sub = (slice(None), slice(None, None, step), slice(None, None, step))
        self.field = log_gradient_field_fit(y, degree)
        self.offset = 0.0

    def fit(self, x: torch.Tensor) -> None:
        """Refit f (and then M) against the current estimate ``x``."""
        ys, xs = (self.y - self.offset)[self.sub].mean(dim=0), x[self.sub].mean(dim=0)
        floor = 1e-2 * float(ys.abs().mean().clamp_min(1e-300))
        usable = (ys > floor) & (xs > floor)
        if int(usable.sum()) < 4 * len(self.basis):
            return
        basis = self.basis[:, self.sub[1], self.sub[2]][:, usable].T
        coef = l1_fit(basis, torch.log(ys[usable] / xs[usable]))
        field = torch.exp(torch.einsum("k,khw->hw", coef, self.basis))[None]
        self.field = field / field.mean()
        self.offset = float((self.y - self.field * x).median())

    def corrected(self) -> torch.Tensor:
        return (self.y - self.offset) / self.field

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.field * x + self.offset

    def prox(self, x0: torch.Tensor, rho: float) -> torch.Tensor:
        self.fit(x0)
        return (self.corrected() + rho * x0) / (1.0 + rho)


def l1_fit(design: torch.Tensor, target: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """``argmin_c sum |target - design c|`` by iteratively reweighted least squares (weights 1 / |r|), each
    step through the K x K normal equations (K the few basis functions). In numpy: torch's threads on these
    small products starve beside other work on this machine (0.7 s against 0.01 s per fit)."""
    a, b = design.numpy(), target.numpy()
    weights = np.ones_like(b)
    ridge = 1e-10 * np.eye(a.shape[1])
    for _ in range(iterations):
        weighted = a * weights[:, None]
        coef = np.linalg.solve(weighted.T @ a + ridge * weights.sum(), weighted.T @ b)
        weights = 1.0 / np.maximum(np.abs(b - a @ coef), 1e-4)
    return torch.from_numpy(coef)


def log_gradient_field_fit(y: torch.Tensor, degree: int) -> torch.Tensor:
    """The start of the field (1, H, W), mean 1: a robust fit in the gradient domain of the log image (retinex:
    Land and McCann 1971). ``log y = log f + log x`` with log f in the span of the Legendre polynomials of
    degree <= ``degree``; the gradient of log x is sparse (edges) while log f is smooth, so the polynomial's
    gradient is fitted to the gradient of log y in the L1 sense (``l1_fit``), which ignores the edges. The
    constant is fixed by mean(f) = 1. ``y`` (C, H, W) positive; channels averaged.
    """
    basis = legendre_basis(tuple(y.shape[-2:]), degree)[1:]  # the constant has no gradient
    level = y.mean(dim=0)
    logs = torch.log(level.clamp_min(1e-3 * float(level.mean().clamp_min(1e-300))))
    design = torch.cat(
        [
            (basis[:, 1:, :] - basis[:, :-1, :]).reshape(len(basis), -1),
            (basis[:, :, 1:] - basis[:, :, :-1]).reshape(len(basis), -1),
        ],
        dim=1,
    ).T
    target = torch.cat([(logs[1:, :] - logs[:-1, :]).flatten(), (logs[:, 1:] - logs[:, :-1]).flatten()])
    field = torch.exp(torch.einsum("k,khw->hw", l1_fit(design, target), basis))[None]
    return field / field.mean()


def estimate_blur(y: np.ndarray, noise_sigma: float) -> float:
    """Width (px) of a Gaussian blur from the power spectrum of ``y`` (H, W): natural images fall as
    ``|w|^-gamma``, a Gaussian blur multiplies that by ``exp(-b^2 |w|^2)``, so ``log P(w) = c - gamma log|w|
    - b^2 |w|^2`` is fitted by least squares over the radial frequencies whose power is at least 4 times the
    noise floor ``noise_sigma^2`` (white noise of that std). Returns b (0 when no blur is seen).
    """
    height, width = y.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2((y - y.mean()) * window)) ** 2
    noise_floor = noise_sigma**2 * float((window**2).sum())
    fy = np.fft.fftfreq(height)[:, None] * 2 * np.pi
    fx = np.fft.fftfreq(width)[None, :] * 2 * np.pi
    radius = np.sqrt(fy**2 + fx**2)
    bins = np.linspace(0.1, np.pi, 40)
    centres, levels = [], []
    for lo, hi in itertools.pairwise(bins):
        ring = (radius >= lo) & (radius < hi)
        if ring.any():
            centres.append(0.5 * (lo + hi))
            levels.append(power[ring].mean())
    centres, levels = np.array(centres), np.array(levels)
    usable = levels > 4 * noise_floor
    if usable.sum() < 4:
        return 0.0
    w, p = centres[usable], np.log(levels[usable] - noise_floor)
    design = np.stack([np.ones_like(w), -np.log(w), -(w**2)], axis=1)
    coef, *_ = np.linalg.lstsq(design, p, rcond=None)
    return float(math.sqrt(max(coef[2], 0.0)))
