"""SIFID: the plain Inception stem against the TorchScript file, the Frechet distance against closed forms, behaviour."""

import warnings

import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import torch
from helpers import noisy, to_tensor

import sinfree.metrics.weights
from sinfree.metrics.sifid import (
    feature_statistics,
    frechet_distance,
    inception_features,
    load_inception_stem,
    sifid,
    sifid_many,
)
from sinfree.metrics.weights import MissingWeightsError, weight_file


@pytest.fixture(scope="module")
def network():
    return load_inception_stem()  # installed by README's test command: a missing file fails, never skips


@pytest.fixture(scope="module")
def image():
    """A real 96 x 96 RGB crop (scikit-image's astronaut) in [-1, 1]."""
    return to_tensor(skimage.data.astronaut()[60:156, 180:276])


def blurred(image, sigma):
    return torch.tensor(scipy.ndimage.gaussian_filter(image.numpy(), sigma=(0, sigma, sigma), mode="reflect"))


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:DeprecationWarning")
def test_stem_matches_torchscript(network, image):
    layers = torch.jit.load(str(weight_file("inception")), map_location="cpu").net.layers
    inputs = torch.stack([image, torch.rand(image.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1])
    with torch.no_grad():
        expected = inputs
        for name in ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4"):
            expected = getattr(layers, name)(expected)
        actual = network(inputs)
    assert actual.shape == expected.shape == (2, 192, 20, 20)
    assert (actual - expected).abs().max().item() < 1e-5
    features = inception_features(image, network)
    assert features.shape == (400, 192) and features.dtype == torch.float64
    assert torch.equal(features, actual[0].flatten(1).T.double())


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_full_covariance_matches_eigendecomposition():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    x, y = rng.normal(size=(12, 12)), rng.normal(size=(12, 12))
    cov1, cov2 = x @ x.T / 12 + 0.01 * np.eye(12), y @ y.T / 12 + 0.01 * np.eye(12)
    # Tr sqrt(cov1 cov2) = Tr sqrt(S cov2 S) with S = cov1^(1/2), a symmetric PSD matrix
    w, v = np.linalg.eigh(cov1)
    root = v @ np.diag(np.sqrt(w)) @ v.T
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root @ cov2 @ root), 0, None)).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(torch.tensor(mu1), torch.tensor(cov1), mu1, cov1) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_singular_covariances():
    """A singular product gets eps I added (no warning); the result stays close to the exact value 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frechet_distance(np.zeros(3), np.diag([1.0, 0, 0]), np.zeros(3), np.diag([0, 1.0, 0]))
    assert value == pytest.approx(2.0, abs=1e-2)


def test_identical_images_score_zero(network, image):
    mu, cov = feature_statistics(image, network)
    assert abs(sifid(image, image, network)) < 1e-8 * np.trace(cov)  # the features' total variance is ~180


def test_sifid_grows_with_noise_and_blur(network, image):
    noise = sifid_many([noisy(image, 1.0, level).clamp(-1, 1) for level in (0.05, 0.1, 0.2)], image, network)
    blur = sifid_many([blurred(image, sigma) for sigma in (0.5, 1.0, 2.0)], image, network)
    assert 0 < noise[0] < noise[1] < noise[2]
    assert 0 < blur[0] < blur[1] < blur[2]
    assert sifid(noisy(image, 1.0, 0.05).clamp(-1, 1), image, network) == pytest.approx(noise[0], rel=1e-9)


def test_channels_and_size(network, image):
    grey = image.mean(dim=0, keepdim=True)
    assert torch.equal(inception_features(grey, network), inception_features(grey.expand(3, -1, -1), network))
    rgba = torch.cat([image, torch.ones_like(image[:1])])
    assert torch.equal(inception_features(rgba, network), inception_features(image, network))
    assert inception_features(image[:, :19, :23], network).shape == (2, 192)
    with pytest.raises(ValueError, match="too small"):
        inception_features(image[:, :18, :40], network)
    with pytest.raises(ValueError, match="too small"):
        inception_features(image[:, :22, :22], network)


def test_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("SINFREE_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(sinfree.metrics.weights, "package_folder", lambda package: None)
    with pytest.raises(MissingWeightsError, match="inception"):
        load_inception_stem()
    with pytest.raises(MissingWeightsError):
        sifid(torch.zeros(3, 32, 32), torch.zeros(3, 32, 32))
