"""The FLUX.1 VAE (or any diffusers AutoencoderKL) as a latent space, from a local folder only.

DESIGN.md §1, "Accelerations": 16 channels, 8x smaller per side, the posterior's mode as the
latent, ``z = (mode - shift_factor) * scaling_factor`` with the factors of the VAE's config (FLUX.1:
shift 0.1159, scale 0.3611), decoded as ``decode(z / scale + shift)``. ``periodic`` decoding switches
the decoder's convolutions to circular padding, so a periodic latent decodes to a seamless tile.
diffusers is imported only when the weights are loaded: ``import sinfree`` never needs it.
"""

from __future__ import annotations

import copy
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import MissingModelError
from ..extras import require
from .codec import Codec, Shape, pad_to_multiple

WEIGHT_PATTERNS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin")
DOWNLOAD_HINT = (
    'get the FLUX.1 VAE with `hf download black-forest-labs/FLUX.1-dev --include "vae/*" --local-dir DIR` '
    "(a gated model: accept its licence on huggingface.co and log in first), then use vae:DIR"
)
ACTIVATION_COPIES = 4  # live tensors of a resnet block at its widest: input, normalised, convolved, the sum


class VAECodec(Codec):
    """A diffusers ``AutoencoderKL`` at ``path``: a folder with config.json and the weights, or a
    FLUX.1 checkpoint folder holding them in ``vae/``. The config is read at once (a missing or
    invalid folder fails here, before any work); the weights on the first encode or decode."""

    name = "vae"

    def __init__(self, path: str | os.PathLike):
        self.path = find_vae_folder(path)
        self.config = read_config(self.path)
        self.factor = 2 ** (len(self.config["block_out_channels"]) - 1)
        self.image_channels: int | None = None  # set by fit: gray images go through the VAE as RGB
        self._model = None

    def latent_channels(self, image_channels: int) -> int:
        return int(self.config["latent_channels"])

    @property
    def channels(self) -> int:
        return int(self.config["latent_channels"])

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has seen the reference's channel count (the sampler fits once before encoding)."""
        return self.image_channels is not None

    @property
    def scaling_factor(self) -> float:
        return float(self.config.get("scaling_factor", 0.18215))  # diffusers' default

    @property
    def shift_factor(self) -> float:
        return float(self.config.get("shift_factor") or 0.0)  # None: no shift

    def fit(self, image: torch.Tensor) -> VAECodec:
        """This VAE, remembering the reference's channel count (1: gray, decoded as the mean of RGB)."""
        check_channels(image.shape[0], int(self.config.get("in_channels", 3)))
        fitted = copy.copy(self)  # shares the loaded model
        fitted.image_channels = image.shape[0]
        return fitted

    @property
    def model(self):
        """The AutoencoderKL in float32, eval mode, no gradients (loaded once)."""
        if self._model is None:
            self._model = load_autoencoder(self.path)
        return self._model

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The posterior's mode of the mirror-padded image, shifted and scaled."""
        in_channels = int(self.config.get("in_channels", 3))
        check_channels(image.shape[0], in_channels)
        pixels = pad_to_multiple(image.to(torch.float32), self.factor)
        if pixels.shape[0] == 1 and in_channels != 1:
            pixels = pixels.expand(in_channels, -1, -1)
        with torch.inference_mode():
            mode = self.model.to(pixels.device).encode(pixels[None]).latent_dist.mode()[0]  # the model follows the image
        return ((mode - self.shift_factor) * self.scaling_factor).clone()

    def decode(self, latent: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        """``decode(z / scale + shift)``; with ``periodic`` every decoder convolution pads circularly."""
        z = latent.to(torch.float32)[None] / self.scaling_factor + self.shift_factor
        self.model.to(z.device)
        with torch.inference_mode(), circular_padding(self.model.decoder, periodic):
            image = self.model.decode(z).sample[0]
        if self.image_channels == 1 and image.shape[0] != 1:
            image = image.mean(dim=0, keepdim=True)
        return image.clone()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "factor": self.factor,
            "channels": self.channels,
            "latent": "posterior mode",
            "shift_factor": self.shift_factor,
            "scaling_factor": self.scaling_factor,
        }

    def estimate_bytes(self, image_channels: int, input_shape: Shape, output_shape: Shape) -> int:
        """The weights (their files' size) and the widest activations of the encoder (input size)
        or the decoder (output size): ACTIVATION_COPIES float32 tensors at the widest level."""
        widths = [int(width) for width in self.config["block_out_channels"]]
        activations = max(activation_bytes(widths, input_shape), activation_bytes(widths, output_shape))
        return weight_bytes(self.path) + activations


def activation_bytes(widths: list[int], shape: Shape) -> int:
    """Peak activation bytes of an AutoencoderKL half at ``shape`` (full resolution): at level j
    (1 / 2^j of the size) the blocks hold widths[j] channels and the upsampler from below widths[j + 1]."""
    height, width = shape
    peak = 0
    for level in range(len(widths)):
        channels = max(widths[level : level + 2])
        peak = max(peak, channels * -(-height // 2**level) * -(-width // 2**level))
    return 4 * ACTIVATION_COPIES * peak


def find_vae_folder(path: str | os.PathLike) -> Path:
    """``path`` itself when it holds config.json and weights, else ``path/vae``; MissingModelError otherwise."""
    path = Path(path).expanduser().absolute()
    for folder in (path, path / "vae"):
        if (folder / "config.json").is_file() and any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
            return folder
    found = "not a folder" if not path.is_dir() else "no config.json with diffusion_pytorch_model weights there or in vae/"
    raise MissingModelError(f"no VAE at {path} ({found}); {DOWNLOAD_HINT}")


def read_config(folder: Path) -> dict:
    """The AutoencoderKL config of ``folder``, checked for what the codec reads."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise MissingModelError(f"{folder / 'config.json'}: not a readable JSON config ({error}); {DOWNLOAD_HINT}") from None
    kind = config.get("_class_name", "AutoencoderKL")
    if kind != "AutoencoderKL" or not config.get("block_out_channels"):
        raise MissingModelError(f"{folder}: config.json describes a {kind}, not an AutoencoderKL; {DOWNLOAD_HINT}")
    config.setdefault("latent_channels", 4)  # diffusers' default
    return config


def weight_bytes(folder: Path) -> int:
    return sum(file.stat().st_size for pattern in WEIGHT_PATTERNS for file in folder.glob(pattern))


def load_autoencoder(folder: Path):
    """``AutoencoderKL.from_pretrained(folder, local_files_only=True)``, float32, eval, frozen."""
    AutoencoderKL = require("diffusers", "vae", "the VAE latent space (--latent vae:PATH)").AutoencoderKL
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # no advice about optional packages on the CLI's stderr
    try:
        model = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise MissingModelError(
            f"{folder}: cannot load the VAE ({lines[0][:200] if lines else type(error).__name__}); {DOWNLOAD_HINT}"
        ) from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return model.float().eval().requires_grad_(False)


def check_channels(channels: int, in_channels: int) -> None:
    if channels not in (1, in_channels):
        raise ValueError(
            f"the VAE takes images with {in_channels} channels (or gray); this one has {channels}: drop the alpha channel, or use --latent pca"
        )


@contextmanager
def circular_padding(module: torch.nn.Module, enabled: bool = True):
    """Within the block, every padded Conv2d of ``module`` pads circularly (restored afterwards)."""
    convs = [layer for layer in module.modules() if isinstance(layer, torch.nn.Conv2d) and any(layer.padding)] if enabled else []
    saved = [layer.padding_mode for layer in convs]
    for layer in convs:
        layer.padding_mode = "circular"
    try:
        yield
    finally:
        for layer, mode in zip(convs, saved):
            layer.padding_mode = mode
