"""Patch-statistics metrics: ideal values, monotone under degradation, agreement with brute force."""

import pytest
import torch
from helpers import noisy, to_tensor

from sinfree.metrics import nearest_patch_distance, pixel_diversity, sliced_wasserstein
from sinfree.patches import all_patches


@pytest.fixture(scope="module")
def image(small_rgb):
    return to_tensor(small_rgb)


def test_identical_images_score_ideal(image):
    assert sliced_wasserstein(image, image) == 0.0
    assert nearest_patch_distance(image, image) == pytest.approx(0.0, abs=1e-3)


def test_swd_grows_with_noise(image):
    values = [sliced_wasserstein(noisy(image, 1.0, level), image) for level in (0.02, 0.1, 0.3)]
    assert values[0] < values[1] < values[2]


def test_swd_ignores_layout_but_not_content(image):
    """Swapping the halves keeps most patches (small SWD); a flat image does not."""
    swapped = torch.cat([image[:, :, 20:], image[:, :, :20]], dim=2)
    flat = torch.full_like(image, image.mean().item())
    assert sliced_wasserstein(swapped, image) < 0.3 * sliced_wasserstein(flat, image)


def test_nearest_patch_distance_matches_brute_force(image):
    sample = noisy(image, 1.0, 0.1)
    queries, patches = all_patches(sample, 7).double(), all_patches(image, 7).double()
    brute = (torch.cdist(queries, patches).min(dim=1).values / patches.shape[1] ** 0.5).median().item()
    assert nearest_patch_distance(sample, image) == pytest.approx(brute, rel=1e-3)


def test_nearest_patch_distance_grows_with_noise(image):
    values = [nearest_patch_distance(noisy(image, 1.0, level), image) for level in (0.02, 0.1, 0.3)]
    assert values[0] < values[1] < values[2]


def test_pixel_diversity(image):
    assert pixel_diversity([image, image, image], image) == 0.0
    low = pixel_diversity([noisy(image, 1.0, 0.05, s) for s in range(3)], image)
    high = pixel_diversity([noisy(image, 1.0, 0.5, s) for s in range(3)], image)
    assert 0 < low < high
    with pytest.raises(ValueError):
        pixel_diversity([image], image)
