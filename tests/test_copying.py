"""Copying rate: 1 for the input itself and any crop of it, falling under noise, brute force agrees."""

import math

import pytest
import skimage.data
import torch
from helpers import to_tensor

from sinfree.metrics.copying import _tiles, copying_rate, nearest_crop_distances


@pytest.fixture(scope="module")
def reference():
    """A real 128 x 128 RGB crop (astronaut) in [-1, 1]."""
    return to_tensor(skimage.data.astronaut()[40:296:2, 150:406:2])


def test_copies_score_one(reference):
    assert copying_rate(reference, reference) == 1.0
    assert copying_rate(reference[:, 5:, 9:], reference) == 1.0  # shifted: tiles off the reference's grid


def test_rate_falls_with_noise(reference):
    generator = torch.Generator().manual_seed(0)
    rates = [
        copying_rate(reference + level * torch.randn(reference.shape, generator=generator), reference)
        for level in (0.0, 0.02, 0.3)
    ]
    assert rates[0] == 1.0 and rates[0] > rates[1] > rates[2] and rates[2] == 0.0


def test_flat_samples_have_no_textured_tile(reference):
    assert math.isnan(copying_rate(torch.zeros_like(reference), reference))


def test_nearest_crop_distance_matches_brute_force(reference):
    generator = torch.Generator().manual_seed(1)
    sample = reference.flip(-1) + 0.05 * torch.randn(reference.shape, generator=generator)
    tiles = _tiles(sample, 32)[:3]
    fast = nearest_crop_distances(tiles, reference)
    windows = reference.unfold(1, 32, 1).unfold(2, 32, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 32, 32).double()
    brute = torch.stack([((windows - t.double()) ** 2).mean(dim=(1, 2, 3)).min().sqrt() for t in tiles])
    torch.testing.assert_close(fast.double(), brute, rtol=1e-4, atol=1e-5)


def test_too_small_is_refused(reference):
    with pytest.raises(ValueError, match="at least 32"):
        copying_rate(reference[:, :20, :20], reference)
