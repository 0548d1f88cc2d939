"""Issue 19, item 1: two-stage denoising must not put bright specks into empty air.

Denoising nibabel's example4d (first volume) turned 226-416 voxels that are exactly 0 in the air around the
head into 150-182 (mid-range in normalised units: the 0.5 / 99.5 percentiles are 0 and 729). The cause: block
matching ranked a group's candidates by distance alone, and in a flat area k of the ~441 candidates tie at
distance 0, so the reference patch could be left out of its own group. Pixels that only the reference covers
(the image's corners, and edges in flat air) then got no estimate at all: zero aggregation weight, 0 in
normalised units. Each group now holds its reference first, as in BM3D and NL-Bayes.
"""

from __future__ import annotations

import os

import nibabel
import numpy as np
import torch
from nibabel.testing import data_path as NIBABEL_DATA
from scipy import ndimage

from sinfree.enhance import enhance
from sinfree.enhance.groups import GroupStage, group_denoise, match_groups


def test_every_group_holds_its_reference_patch_first():
    flat = torch.full((1, 20, 17), -1.0)  # every candidate ties at distance 0
    groups = match_groups(flat, 6, stride=3, radius=10, k=48)
    rows = [0, 3, 6, 9, 12, 14]
    cols = [0, 3, 6, 9, 11]
    own = torch.tensor([r * groups.grid[1] + c for r in rows for c in cols])
    assert torch.equal(groups.index[:, 0], own)


def test_group_pass_covers_every_pixel_of_a_flat_image():
    flat = torch.full((1, 20, 17), -1.0)
    for stage in (GroupStage(5, 32), GroupStage(6, 48), GroupStage(8, 64)):
        mean, draw = group_denoise(flat, flat, 0.05, stage, torch.Generator().manual_seed(0))
        assert torch.allclose(mean, flat) and torch.isfinite(draw).all(), stage


def test_two_stage_denoising_keeps_empty_air_dark_on_example4d():
    """The upper 64 rows of the 10th slice of the real MRI volume (as ``read_scan`` lays it out: (j, i)); air:
    exactly 0 in a 5 x 5 neighbourhood. The output there stays within 3 noise stds of 0 (before: up to 168
    at the crop's top corners and edge, with sigma ~ 23)."""
    volume = np.asarray(nibabel.load(os.path.join(NIBABEL_DATA, "example4d.nii.gz")).dataobj)[..., 0]
    image = volume[:, :, 9].T[:64].astype(np.float64)  # (64, 128), values 0..~1000
    result = enhance(image, "denoise")
    air = ndimage.maximum_filter(image, size=5, mode="nearest") == 0
    limit = 3 * result.settings["sigma"]
    assert np.abs(result.mean[air]).max() < limit, np.sort(result.mean[air])[-5:]
    assert air.sum() > 3000
    body = ndimage.binary_erosion(image > 200, iterations=2)
    assert body.sum() > 1500
    assert np.abs(result.mean[body] - image[body]).mean() < result.settings["sigma"]  # the head is still there
