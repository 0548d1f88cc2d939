"""NIQE: monotone under noise and blur on real images, input paths agree, AGGD fit recovers known parameters."""

import math

import numpy as np
import pytest
import skimage.data
from helpers import to_tensor
from scipy import ndimage, stats

from sinfree.metrics.niqe import estimate_aggd_params, niqe


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    """A real 288 x 288 gray crop (scikit-image's camera), uint8: 9 blocks per scale."""
    return np.ascontiguousarray(skimage.data.camera()[100:388, 100:388])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """A real 288 x 288 RGB crop (scikit-image's astronaut), uint8."""
    return np.ascontiguousarray(skimage.data.astronaut()[50:338, 150:438])


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def test_niqe_grows_with_noise(camera):
    rng = np.random.default_rng(0)
    noisy = [to_uint8(camera + sigma * rng.standard_normal(camera.shape)) for sigma in (5, 15, 40)]
    values = [niqe(camera)] + [niqe(image) for image in noisy]
    assert values[0] < values[1] < values[2] < values[3], values


def test_niqe_grows_with_blur(camera, astronaut):
    for image, sigmas in ((camera, [(s, s) for s in (1, 2, 4)]), (astronaut, [(s, s, 0) for s in (1, 2, 4)])):
        blurred = [to_uint8(ndimage.gaussian_filter(image.astype(np.float64), sigma)) for sigma in sigmas]
        values = [niqe(image)] + [niqe(b) for b in blurred]
        assert values[0] < values[1] < values[2] < values[3], values


def test_reference_value(camera):
    """Regression value; BasicSR 1.4.2's implementation gives 3.28821 for the same crop (float32 resize)."""
    assert niqe(camera) == pytest.approx(3.28822, abs=1e-3)


def test_deterministic_and_input_paths_agree(camera, astronaut):
    assert niqe(astronaut) == niqe(astronaut)
    # the tensor path (quantised back to 8 bits) matches the uint8 path, with or without alpha
    assert niqe(to_tensor(astronaut)) == niqe(astronaut)
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert niqe(to_tensor(rgba)) == niqe(astronaut)
    assert niqe(to_tensor(camera)) == niqe(camera)
    # a gray image as 3 equal channels: rgb2ycbcr's Y is 16 + 219 g / 255 rounded (never a tie), so the
    # colour path equals the gray path on that Y exactly; MATLAB's rgb2gray (weights sum to 1) gives g back
    rgb = np.repeat(camera[:, :, None], 3, axis=2)
    luma_y = np.floor(16 + 219 * camera.astype(np.float64) / 255 + 0.5).astype(np.uint8)
    assert niqe(rgb) == niqe(luma_y)
    assert niqe(rgb, luminance="gray") == niqe(camera)
    # the studio-range Y only compresses contrast slightly: the scores stay close
    assert niqe(rgb) == pytest.approx(niqe(camera), rel=0.15)


@pytest.mark.parametrize("alpha, beta_l, beta_r", [(0.6, 0.4, 0.4), (1.0, 0.3, 0.6), (2.0, 1.0, 0.5)])
def test_aggd_fit_recovers_known_parameters(alpha, beta_l, beta_r):
    """Independent check of the estimator on 400k AGGD samples: |z| ~ |gennorm(alpha)|, side negative with
    probability beta_l / (beta_l + beta_r), scaled by that side's beta. Tolerance: 2% on alpha, 1.5% on betas."""
    rng = np.random.default_rng(1)
    count = 400_000
    magnitude = np.abs(stats.gennorm.rvs(alpha, size=count, random_state=rng))
    negative = rng.random(count) < beta_l / (beta_l + beta_r)
    samples = np.where(negative, -beta_l * magnitude, beta_r * magnitude)
    fit_alpha, fit_l, fit_r = estimate_aggd_params(samples)
    assert fit_alpha == pytest.approx(alpha, rel=0.02)
    assert fit_l == pytest.approx(beta_l, rel=0.015)
    assert fit_r == pytest.approx(beta_r, rel=0.015)
    # rows are fitted independently, as one-dimensional inputs
    rows = estimate_aggd_params(samples.reshape(4, -1))
    assert rows[0][0] == estimate_aggd_params(samples[: count // 4])[0]


def test_small_images_rejected_single_block_accepted(camera):
    with pytest.raises(ValueError, match="96 x 96"):
        niqe(camera[:64, :64])
    with pytest.raises(ValueError, match="96 x 96"):
        niqe(to_tensor(camera[:64, :200]))
    assert math.isfinite(niqe(camera[:96, :96]))
