"""Patch geometry (unfold, windowed fold), ImgDenoise, the pyramid and resampling."""

import math

import numpy as np
import pytest
import torch
from helpers import to_tensor
from PIL import Image

from sinfree import ImageDenoiser, denoise_patches
from sinfree.errors import InputImageError
from sinfree.patches import all_patches, extract_patches, fold_patches, gaussian_window, patch_positions
from sinfree.pyramid import auto_num_scales, build_pyramid, level_shapes, resolve_num_scales
from sinfree.resize import resize


def test_patch_positions_cover_every_pixel():
    assert patch_positions(20, 5, 1).tolist() == list(range(16))
    assert patch_positions(20, 5, 4).tolist() == [0, 4, 8, 12, 15]
    assert patch_positions(5, 5, 3).tolist() == [0]
    with pytest.raises(ValueError):
        patch_positions(4, 5)


def test_extract_matches_unfold_order():
    image = torch.randn(3, 12, 10)
    patches = all_patches(image, 4)
    assert patches.shape == (9 * 7, 3 * 16)
    assert torch.equal(patches[7 * 2 + 3], image[:, 2:6, 3:7].reshape(-1))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_fold_is_adjoint_of_extract(stride):
    """<extract(x), v> == <x, fold(v)> for any grid: the fold puts every value where it came from."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(2, 13, 11, generator=g, dtype=torch.float64)
    rows, cols = patch_positions(13, 4, stride), patch_positions(11, 4, stride)
    values = torch.randn(len(rows) * len(cols), 32, generator=g, dtype=torch.float64)
    folded = fold_patches(values, rows, cols, 4, torch.zeros(2, 13, 11, dtype=torch.float64))
    assert torch.allclose((extract_patches(image, rows, cols, 4) * values).sum(), (image * folded).sum())


def test_fold_paths_agree():
    """The F.fold fast path (unit stride) and the strided index_add path give the same sums."""
    values = torch.randn(6 * 5, 3 * 9)
    rows, cols = torch.arange(6), torch.arange(5)
    fast = fold_patches(values, rows, cols, 3, torch.zeros(3, 8, 7))
    patches = values.reshape(6, 5, 3, 3, 3)
    slow = torch.zeros(3, 8, 7)
    for r in range(6):
        for c in range(5):
            slow[:, r : r + 3, c : c + 3] += patches[r, c]
    assert torch.allclose(fast, slow, atol=1e-6)


def test_gaussian_window():
    w = gaussian_window(15, 0.2).reshape(15, 15)
    assert w[7, 7] == 1 and torch.allclose(w, w.T)
    u = 1 / 7  # the pixel next to the centre
    assert math.isclose(w[7, 8].item(), math.exp(-(u**2) / (2 * 0.2**2)), rel_tol=1e-6)
    assert torch.equal(gaussian_window(5, math.inf), torch.ones(25))
    assert gaussian_window(15, 0.01).min() > 0  # floored: every pixel keeps a normaliser


def test_rho_inf_is_plain_overlap_averaging(small_rgb):
    """ImgDenoise with rho = inf: every pixel is the plain mean of the denoised patches covering it."""
    reference = to_tensor(small_rgb[:20, :18])
    x = torch.randn(3, 11, 9, generator=torch.Generator().manual_seed(0))
    p, alpha, sigma = 5, 0.6, 0.4
    out = ImageDenoiser(reference, p, rho=math.inf, backend="reference")(x, alpha, sigma)
    denoised = denoise_patches(all_patches(x, p), all_patches(reference, p), alpha, sigma, backend="reference")
    denoised = denoised.reshape(7, 5, 3, p, p)
    total, count = torch.zeros(3, 11, 9), torch.zeros(1, 11, 9)
    for r in range(7):
        for c in range(5):
            total[:, r : r + p, c : c + p] += denoised[r, c]
            count[:, r : r + p, c : c + p] += 1
    assert torch.allclose(out, total / count, atol=1e-5)


def test_gaussian_window_weights_the_fold(small_rgb):
    """With rho -> 0 the centre pixel dominates: each interior pixel is its own patch's centre value."""
    reference = to_tensor(small_rgb[:20, :18])
    x = torch.randn(3, 11, 9, generator=torch.Generator().manual_seed(0))
    out = ImageDenoiser(reference, 5, rho=0.05, backend="reference")(x, 0.6, 0.4)
    centres = denoise_patches(all_patches(x, 5), all_patches(reference, 5), 0.6, 0.4, backend="reference")
    centres = centres.reshape(7, 5, 3, 5, 5)[:, :, :, 2, 2].permute(2, 0, 1)
    assert torch.allclose(out[:, 2:-2, 2:-2], centres, atol=1e-4)


def test_stride_changes_queries_not_shape(small_rgb):
    reference = to_tensor(small_rgb)
    denoiser = ImageDenoiser(reference, 7, stride=3)
    x = torch.randn(3, 30, 25, generator=torch.Generator().manual_seed(0))
    assert denoiser.num_queries((30, 25)) == 9 * 7  # rows 0, 3, ..., 21, 23; cols 0, 3, ..., 18
    out = denoiser(x, 0.5, 0.5)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_image_denoiser_bands_do_not_change_the_result(small_rgb):
    reference = to_tensor(small_rgb)
    x = torch.randn(3, 30, 25, generator=torch.Generator().manual_seed(0))
    whole = ImageDenoiser(reference, 7, chunk_size=100000)(x, 0.7, 0.3)
    banded = ImageDenoiser(reference, 7, chunk_size=50)(x, 0.7, 0.3)
    assert (whole - banded).abs().max().item() < 1e-5


def test_pyramid_shapes_and_auto_scales():
    assert level_shapes((190, 250), 4) == [(190, 250), (95, 125), (48, 63), (24, 32)]
    assert auto_num_scales((190, 250), 22.5) == 4
    assert resolve_num_scales((190, 250), (190, 250), 15, None, None) == 3  # coarsest >= 2 P: 48 x 63
    assert resolve_num_scales((190, 250), (190, 250), 15, None, 22.5) == 4
    assert resolve_num_scales((190, 250), (400, 500), 15, None, None) == 3  # limited by the input
    assert resolve_num_scales((1024, 1024), (1024, 1024), 15, None, None) == 6  # coarsest 32 px: a few patches across
    assert resolve_num_scales((120, 160), (100, 240), 15, None, None) == 2  # a retarget: limited by the output's height
    with pytest.raises(InputImageError, match="at most 3 scales"):
        resolve_num_scales((100, 100), (100, 100), 15, 4, None)
    with pytest.raises(InputImageError, match="smaller than the 15 px patch"):
        resolve_num_scales((10, 100), (100, 100), 15, 1, None)


def test_build_pyramid_halves_each_level():
    image = torch.rand(3, 50, 37)
    levels = build_pyramid(image, 3)
    assert [tuple(level.shape) for level in levels] == [(3, 50, 37), (3, 25, 19), (3, 13, 10)]
    assert torch.allclose(levels[2].mean(), image.mean(), atol=0.02)


def test_resize_keeps_constants_and_matches_pil_inside():
    constant = torch.full((1, 20, 30), 0.3)
    for size in [(9, 13), (41, 61), (20, 30)]:
        assert torch.allclose(resize(constant, size), torch.full((1, *size), 0.3), atol=1e-6)
    array = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    pil = np.asarray(Image.fromarray(array, mode="F").resize((30, 20), Image.BICUBIC))
    ours = resize(torch.tensor(array), (20, 30)).numpy()
    assert np.abs(pil - ours)[3:-3, 3:-3].max() < 1e-4  # PIL renormalises at borders; we mirror


def test_resize_mirrors_at_the_border():
    """Resizing equals resizing the explicitly mirror-padded image and cropping (half-sample symmetric)."""
    image = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    padded = torch.from_numpy(np.pad(image.numpy(), ((0, 0), (8, 8), (8, 8)), mode="symmetric"))
    expected = resize(padded, (16, 14))[:, 4:12, 4:10]
    assert torch.allclose(resize(image, (8, 6)), expected, atol=1e-12)
