"""Fixtures shared by the test files; shared plain functions (the novelty check, run_cli, ...) are in helpers.py."""

import os

# Nothing fetched from outside the machine: gradio_client's huggingface_hub telemetry and hub lookups off.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import pytest
import skimage.data
import skimage.transform
import torch
from helpers import to_tensor

from sinfree.patches import all_patches


@pytest.fixture(scope="session")
def small_rgb() -> np.ndarray:
    """A real 48 x 40 RGB crop (scikit-image's astronaut), uint8."""
    return np.ascontiguousarray(skimage.data.astronaut()[180:276:2, 180:260:2])


@pytest.fixture(scope="session")
def astronaut64() -> np.ndarray:
    """scikit-image's whole astronaut, anti-aliased down to 64 x 64 RGB, uint8: a small image with a scene
    (face, suit, flag, rocket) and texture everywhere, whose samples the novelty check can judge."""
    image = skimage.transform.resize(skimage.data.astronaut(), (64, 64), anti_aliasing=True)
    return (image * 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def real_patches() -> torch.Tensor:
    """All 7 x 7 patches of a real 40 x 40 RGB crop in [-1, 1], (M, 147)."""
    crop = to_tensor(skimage.data.astronaut()[100:140, 100:140])
    return all_patches(crop, 7)
