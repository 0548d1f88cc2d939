import numpy as np
import pytest
import skimage.data
import torch

from sinfree.patches import all_patches


@pytest.fixture(scope="session")
def small_rgb() -> np.ndarray:
    """A real 48 x 40 RGB crop (scikit-image's astronaut), uint8."""
    return np.ascontiguousarray(skimage.data.astronaut()[180:276:2, 180:260:2])


@pytest.fixture(scope="session")
def real_patches() -> torch.Tensor:
    """All 7 x 7 patches of a real 40 x 40 RGB crop in [-1, 1], (M, 147)."""
    crop = torch.tensor(skimage.data.astronaut()[100:140, 100:140]).permute(2, 0, 1).float() / 127.5 - 1
    return all_patches(crop, 7)
