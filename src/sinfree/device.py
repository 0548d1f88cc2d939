"""The device a run computes on: ``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.

Tensors follow the device of the reference image; random numbers are always drawn from CPU
``torch.Generator``s and then moved, so a seed gives the same noise on every device.
"""

from __future__ import annotations

import copy
import re

import torch

from .errors import SinfreeError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


class DeviceError(SinfreeError, ValueError):
    """The device asked for does not exist on this machine, or is not one of DEVICE_CHOICES (a ValueError
    too, as the settings' other refusals)."""


def check_device_spec(spec: str) -> str:
    """``spec`` if it is one of DEVICE_CHOICES (checked without asking torch), else a DeviceError."""
    if not isinstance(spec, str) or not DEVICE_PATTERN.fullmatch(spec.strip()):
        raise DeviceError(f"unknown device {spec!r}; choose {DEVICE_CHOICES}")
    return spec.strip()


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device of ``spec``: None or "auto" is ``cuda:0`` where CUDA is available, else the CPU;
    "cuda" is ``cuda:0``. A CUDA device on a machine without one, or past its device count, is a DeviceError."""
    if spec is None:
        spec = "auto"
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = check_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} asked for, but this machine has no CUDA GPU that torch can use; use --device cpu or auto"
        )
    index = int(spec.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} asked for, but this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """The card's name for a CUDA device (e.g. "NVIDIA H100 80GB HBM3"), "cpu" otherwise."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device; None for the CPU (``sinfree.memory.available_bytes`` applies)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def cpu_noise(shape, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise drawn from the CPU ``generator`` and moved to ``device``: the same for a seed on every device."""
    return torch.randn(tuple(shape), generator=generator, dtype=dtype).to(device)


class OnDevice:
    """A denoiser ``D(x_t, a_t, s_t)`` that computes on ``device``: x_t is moved there for each call and
    xhat0 comes back to x_t's device. Every other attribute is the wrapped denoiser's."""

    def __init__(self, denoiser, device: torch.device):
        self.denoiser, self.device = denoiser, torch.device(device)

    def __getattr__(self, name):
        if name == "denoiser":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.denoiser, name)

    def __copy__(self):
        """A copy with its own shallow copy of the denoiser (its own trajectory state, as ``TiledDenoiser`` needs)."""
        return OnDevice(copy.copy(self.denoiser), self.device)

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        return self.denoiser(x_t.to(self.device), alpha, sigma).to(x_t.device)
