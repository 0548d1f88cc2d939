"""sinfree: training-free single-image diffusion with a closed-form patch denoiser.

Qiu, Kutulakos, Lindell, "Efficient and Training-Free Single-Image Diffusion Models", CVPR 2026.

The public names load on first use (PEP 562), so that ``import sinfree`` and ``sinfree --version`` do not
import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> the module that defines it
_EXPORTS = {
    "BACKENDS": "backends",
    "denoise_patches": "backends",
    "make_backend": "backends",
    "InputImageError": "errors",
    "MemoryBudgetError": "errors",
    "MissingExtraError": "errors",
    "OutputError": "errors",
    "SinfreeError": "errors",
    "GenerationResult": "generation",
    "generate": "generation",
    "generate_samples": "generation",
    "Progress": "coarse_to_fine",
    "PRESETS": "settings",
    "GenerationSettings": "settings",
    "preset_settings": "settings",
    "ImageDenoiser": "image_denoiser",
    "load_image": "io.images",
    "save_png": "io.images",
    "ddim_eta_step": "sampler",
    "sample_scale": "sampler",
    "two_scale_blend": "sampler",
    "flow_schedule": "schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sinfree' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
