"""Inpainting and harmonisation (issue 5, item 5): the patch set misses the mask at every scale, known
pixels are kept exactly, the fill is made of the unmasked region's patches; the CLI end to end."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from helpers import run_cli, to_tensor
from PIL import Image

from sinfree import GenerationSettings, ImageDenoiser, InputImageError, SinfreeError
from sinfree.editing.inpaint import (
    Harmonize,
    Inpaint,
    MaskedImageDenoiser,
    clean_patch_grid,
    harmonize,
    inpaint,
    load_mask,
    mask_pyramid,
    masked_backend,
    masked_patches,
    nearest_step,
)
from sinfree.io.images import load_image, read_png_settings
from sinfree.patches import all_patches
from sinfree.pyramid import build_pyramid
from sinfree.schedule import flow_schedule

FAST = GenerationSettings(patch_size=7, num_scales=2, steps=6)
P = 7


@pytest.fixture(scope="module")
def wood() -> np.ndarray:
    """A real 48 x 48 RGB crop of a wood grain (scikit-image's coffee, top right), uint8."""
    return np.ascontiguousarray(skimage.data.coffee()[0:96:2, 440:536:2])


@pytest.fixture(scope="module")
def square() -> np.ndarray:
    mask = np.zeros((48, 48), dtype=bool)
    mask[16:28, 22:34] = True
    return mask


def inside_patches(image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """The P x P patches of ``image`` that lie wholly inside ``mask``."""
    outside = torch.from_numpy(~mask).float()[None, None]
    inside = F.max_pool2d(outside, P, stride=1)[0, 0] == 0
    return all_patches(to_tensor(image), P)[inside.flatten()]


def split_patches(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The P x P patches of ``image`` clear of ``mask``, and those overlapping it."""
    clean = clean_patch_grid(torch.from_numpy(mask), P).flatten()
    patches = all_patches(to_tensor(image), P)
    return patches[clean], patches[~clean]


def nearest_distance(queries: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    return torch.cdist(queries.double(), patches.double()).min(dim=1).values


# --- the mask and the patch set ----------------------------------------------------------------------


def test_load_mask_reads_any_mode_and_ignores_transparent_pixels(tmp_path, square):
    white = np.where(square, 255, 0).astype(np.uint8)
    rgba = np.zeros((48, 48, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white everywhere, but opaque only on the square
    rgba[..., 3] = white
    Image.fromarray(white).convert("1").save(tmp_path / "bilevel.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    for mask in (
        white,
        square,
        torch.from_numpy(square),
        Image.fromarray(white).convert("RGB"),
        tmp_path / "bilevel.png",
        tmp_path / "rgba.png",
    ):
        assert torch.equal(load_mask(mask), torch.from_numpy(square))


def test_mask_pyramid_holds_every_pixel_a_change_inside_the_mask_reaches():
    """Perturbing the masked pixels changes exactly the pyramid pixels marked unknown (footprint dilation)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 60, 52, generator=generator) * 2 - 1
    mask = torch.zeros(60, 52, dtype=torch.bool)
    mask[20:31, 9:17] = True
    perturbed = torch.where(mask, torch.rand(3, 60, 52, generator=generator) * 2 - 1, image)
    for unknown, level, other in zip(mask_pyramid(mask, 3), build_pyramid(image, 3), build_pyramid(perturbed, 3)):
        changed = (level != other).any(dim=0)
        assert torch.equal(changed, unknown)
        assert 0 < unknown.sum() < unknown.numel()


def test_masked_patch_set_misses_the_mask():
    generator = torch.Generator().manual_seed(1)
    reference = -torch.rand(3, 30, 26, generator=generator)  # in [-1, 0]
    unknown = torch.zeros(30, 26, dtype=torch.bool)
    unknown[10:15, 4:12] = True
    reference[:, unknown] = 1.0  # the content to remove
    patches = masked_patches(reference, unknown, P)
    clear = [(r, c) for r in range(30 - P + 1) for c in range(26 - P + 1) if not unknown[r : r + P, c : c + P].any()]
    assert len(patches) == len(clear) and patches.max() <= 0
    masked = MaskedImageDenoiser(reference, unknown, P, backend="exact")
    plain = ImageDenoiser(reference, P, backend="exact")
    for alpha, sigma in ((0.0, 1.0), (0.5, 0.5), (0.99, 0.01)):
        noisy = alpha * reference + sigma * torch.randn(3, 30, 26, generator=generator)
        assert masked(noisy, alpha, sigma).max() <= 1e-6
    assert plain(0.99 * reference, 0.99, 0.01).max() > 0.9  # the full patch set brings the removed content back


def test_backend_choice():
    assert masked_backend("auto", {"k": 3, "tail": 4}, 100, 100, 147) == ("exact", {})
    name, options = masked_backend("auto", {"k": 3, "tail": 4}, 10**5, 10**5, 675)
    assert name == "patchmatch" and options["k"] == 3 and options["tail"] == 4  # the same policy as generation's
    assert masked_backend("exact", {}, 10**5, 10**5, 675) == ("exact", {})
    assert Inpaint(np.ones((4, 4)), backend="patchmatch").backend == "patchmatch"  # searches the unmasked patches only
    with pytest.raises(SinfreeError, match="unknown backend"):
        Inpaint(np.ones((4, 4)), backend="nonsense")


def test_nearest_step():
    schedule = flow_schedule(10)
    assert nearest_step(schedule, 1.0) == 10 and nearest_step(schedule, 1e-4) == 1
    assert abs(schedule[nearest_step(schedule, 0.5)][1] - 0.5) <= 0.5 / 9
    with pytest.raises(ValueError, match="level must be"):
        Harmonize(np.ones((4, 4)), 0.0)


@pytest.mark.parametrize(
    "mask, needle",
    [
        (np.ones((40, 48)), "the mask is 48x40 px but the image is 48x48 px"),
        (np.zeros((48, 48)), "empty"),
        (np.ones((48, 48)), "whole image"),
        (np.pad(np.ones((40, 40)), 4), "no 7x7 patch clear of it"),
    ],
)
def test_bad_masks_fail_with_one_line(wood, mask, needle):
    with pytest.raises(InputImageError, match=needle) as error:
        inpaint(wood, mask, FAST)
    assert "\n" not in str(error.value)


# --- inpainting and harmonisation --------------------------------------------------------------------


def test_inpaint_keeps_known_pixels_and_fills_with_unmasked_patches(wood, square):
    """A blue square on wood is removed: the known pixels are the input's bit for bit, no blue comes back,
    and every patch of the fill is near a patch of the unmasked region, far from any of the blue square's."""
    painted = wood.copy()
    painted[square] = (0, 0, 255)
    result = inpaint(painted, square, FAST, num_samples=2, seed=3)
    clean, dirty = split_patches(painted, square)
    for sample in result.samples:
        assert sample.dtype == np.uint8 and np.array_equal(sample[~square], painted[~square])
        fill = sample[square].astype(int)
        assert (fill[:, 2] < fill[:, 0]).all()  # wood: red over blue everywhere, as in the removed region's surroundings
        queries = inside_patches(sample, square)
        assert len(queries) == 36
        to_clean, to_dirty = nearest_distance(queries, clean), nearest_distance(queries, dirty)
        assert (to_clean < to_dirty).all() and to_clean.max() < 0.5 * to_dirty.min()
    assert np.abs(result.samples[0][square].astype(int) - result.samples[1][square]).mean() > 2  # the seed matters
    scales = result.settings["edit"]["scales"]
    assert [s["scale"] for s in scales] == [1, 0] and all(s["backend"] == "exact" and s["patches"] < s["of"] for s in scales)
    assert result.denoiser_stats.calls > 0  # the masked denoiser's work is counted


def test_inpaint_with_the_ivf_backend(wood, square):
    settings = GenerationSettings(patch_size=7, num_scales=1, steps=3, backend="ivf")  # ivf: about 1 s per call here
    result = inpaint(wood, square, settings, seed=0)
    assert np.array_equal(result.samples[0][~square], wood[~square])
    assert {s["backend"] for s in result.settings["edit"]["scales"]} == {"ivf"}


def test_harmonize_keeps_outside_and_gives_a_pasted_square_the_image_texture(wood, square):
    pasted = wood.copy()
    pasted[square] = 128  # a flat grey square pasted on wood
    result = harmonize(pasted, square, FAST, level=0.5, seed=0)
    out = result.samples[0]
    assert np.array_equal(out[~square], pasted[~square])
    clean, _ = split_patches(pasted, square)
    before = nearest_distance(inside_patches(pasted, square), clean).mean()
    after = nearest_distance(inside_patches(out, square), clean).mean()
    assert after < 0.25 * before
    assert out[square].astype(float).std(axis=0).mean() > 0.25 * wood[square].astype(float).std(axis=0).mean()
    edit = result.settings["edit"]
    assert edit["name"] == "Harmonize" and edit["start_step"] == nearest_step(flow_schedule(FAST.steps), 0.5) < FAST.steps


# --- the command line --------------------------------------------------------------------------------


@pytest.fixture()
def files(tmp_path, wood, square):
    Image.fromarray(wood).save(tmp_path / "in.png")
    Image.fromarray(np.where(square, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
    return tmp_path


def test_cli_inpaint_and_harmonize_keep_known_pixels_after_saving(files, wood, square):
    fast = ["-P", "7", "-S", "2", "-T", "3", "-q", "-o", str(files / "out")]
    result = run_cli("inpaint", str(files / "in.png"), "--mask", str(files / "mask.png"), "--seed", "4", *fast)
    assert result.returncode == 0, result.stderr
    out = files / "out" / "in_inpaint_seed4.png"
    assert np.array_equal(np.asarray(Image.open(out))[~square], wood[~square])
    assert read_png_settings(out)["edit"]["name"] == "Inpaint"
    result = run_cli("harmonize", str(files / "in.png"), "-m", str(files / "mask.png"), "--level", "0.3", "-n", "2", *fast)
    assert result.returncode == 0, result.stderr
    for seed in (0, 1):
        out = files / "out" / f"in_harmonize_seed{seed}.png"
        assert np.array_equal(np.asarray(Image.open(out))[~square], wood[~square])
        assert read_png_settings(out)["edit"]["level"] == 0.3


@pytest.mark.parametrize(
    "mask, needle",
    [
        (np.zeros((20, 30), np.uint8), "the mask is 30x20 px but the image is 48x48 px"),
        (np.zeros((48, 48), np.uint8), "empty"),
        (np.full((48, 48), 255, np.uint8), "whole image"),
    ],
)
@pytest.mark.parametrize("command", ["inpaint", "harmonize"])
def test_cli_bad_masks_fail_cleanly(files, mask, needle, command):
    Image.fromarray(mask).save(files / "bad.png")
    result = run_cli(
        command, str(files / "in.png"), "--mask", str(files / "bad.png"), "-P", "7", "-S", "2", "-q", "-o", str(files / "out")
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"sinfree: error: {files / 'bad.png'}: ")
    assert needle in result.stderr.strip().splitlines()[-1]
    assert not (files / "out").exists()  # failed before any work


def test_masked_patchmatch_is_eq2_over_the_unmasked_patches(small_rgb):
    """PatchMatch restricted to the patches that miss the hole: with k at least their number it is exact Eq. 2
    over them (against the float64 brute force, to fp32's rounding); with the default k the search never proposes a masked patch and
    the fill stays close to exact."""
    import torch

    from sinfree.backends.patchmatch import PatchMatchDenoiser
    from sinfree.editing.inpaint import clean_patch_grid
    from sinfree.image_denoiser import ImageDenoiser

    image = torch.tensor(small_rgb).permute(2, 0, 1).double() / 127.5 - 1
    unknown = torch.zeros(image.shape[1:], dtype=torch.bool)
    unknown[12:26, 10:30] = True
    p = 5
    valid = clean_patch_grid(unknown, p)
    grid = image.unfold(1, p, 1).unfold(2, p, 1).permute(1, 2, 0, 3, 4)
    brute = ImageDenoiser(image, p, backend="reference", patches=grid[valid].reshape(int(valid.sum()), -1))
    x = 0.6 * image + 0.4 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    everything = PatchMatchDenoiser(image.float(), p, k=10**6, tail=0, min_weight=0, valid=valid)  # no weight dropped
    # fp32 distances: at s = 0.05 their rounding is scaled by 1 / (2 s^2) = 200 in the logits
    for alpha, sigma, tolerance in ((0.6, 0.4, 2e-5), (0.0, 1.0, 1e-6), (0.95, 0.05, 5e-4)):
        assert torch.allclose(everything(x.float(), alpha, sigma).double(), brute(x, alpha, sigma), atol=tolerance)
    searched = PatchMatchDenoiser(image.float(), p, valid=valid)
    out = searched(x.float(), 0.6, 0.4)
    flags = valid.reshape(-1).numpy()
    assert flags[searched.field[0][searched.field[0] >= 0]].all()  # no masked patch among the candidates
    assert (out.double() - brute(x, 0.6, 0.4)).abs().mean() < 0.02


# --- a fill nobody can spot ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_and_hole():
    """scikit-image's coffee halved to 200 x 150 (a real photo: table, cup, wall) and a 40 x 50 rectangle
    on the wall and table edge."""
    photo = np.ascontiguousarray(skimage.data.coffee()[::2, ::2])[:150, :200]
    hole = np.zeros(photo.shape[:2], bool)
    hole[20:60, 130:180] = True
    return photo, hole


def test_the_fill_shows_no_step_and_takes_the_surroundings_tone(photo_and_hole):
    """No lighter rectangle: across the hole's edge no more gradient energy than beside it (1.2 at most), and
    the fill's mean tone within 10 % of its ring; a fill offset by 12 % of the range fails the same checks."""
    from sinfree.editing.inpaint import inpaint
    from sinfree.metrics.fill import edge_seam, tone_and_contrast

    photo, hole = photo_and_hole
    filled = inpaint(photo, hole, seed=0).samples[0]
    assert np.array_equal(filled[~hole], photo[~hole])
    assert edge_seam(filled, hole) <= 1.2
    assert tone_and_contrast(filled, hole)[0] <= 0.1
    lighter = filled.astype(np.int16)
    lighter[hole] += 30
    lighter = np.clip(lighter, 0, 255).astype(np.uint8)
    assert edge_seam(lighter, hole) > 1.2


def test_blending_removes_an_offset_and_keeps_the_texture():
    """Poisson blending: a fill = truth + a constant offset comes back within a fifth of the offset in the
    region's interior (the texture's gradients kept), the known pixels untouched."""
    from sinfree.editing.blending import poisson_blend

    truth = to_tensor(np.ascontiguousarray(skimage.data.astronaut()[200:260:2, 200:270:2])).double()
    hole = torch.zeros(truth.shape[1:], dtype=torch.bool)
    hole[8:22, 10:25] = True
    offset = torch.where(hole, torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    blended = poisson_blend(truth + offset, hole)
    assert torch.equal(blended[:, ~hole], truth[:, ~hole])
    assert (blended - truth)[:, hole].mean().abs() < 0.2 * 0.3  # the step is gone from the mean
    assert (blended - truth)[:, hole].abs().mean() < (offset[hole].mean() / 2)


def test_scales_adapt_to_the_hole():
    """A small hole in a small image needs one or two scales, a large one more; never more than the image allows."""
    from sinfree.editing.inpaint import hole_radius, mask_num_scales

    small = torch.zeros(120, 160, dtype=torch.bool)
    small[40:80, 50:100] = True  # 50 x 40: radius 20
    large = torch.zeros(512, 512, dtype=torch.bool)
    large[100:400, 150:300] = True
    assert hole_radius(small) == 20 and hole_radius(large) == 75
    assert mask_num_scales(small, 15, GenerationSettings()) == 1
    assert mask_num_scales(large, 15, GenerationSettings()) == 3  # 75 px -> about 19 px at the coarsest


def test_cli_defaults_take_any_hole_and_the_alpha_channel(tmp_path, photo_and_hole):
    """A 40 x 50 hole in a 160 x 120 photo and a hole a third of the image run with no flags; without -m the
    input's transparent pixels are the region; --dilate grows it."""
    photo, hole = photo_and_hole
    small = np.ascontiguousarray(photo[:120, :160])
    Image.fromarray(small).save(tmp_path / "small.png")
    mask = np.zeros(small.shape[:2], np.uint8)
    mask[30:70, 60:110] = 255
    Image.fromarray(mask).save(tmp_path / "hole.png")
    third = np.zeros(small.shape[:2], np.uint8)
    third[20:100, 40:120] = 255
    Image.fromarray(third).save(tmp_path / "third.png")
    for name in ("hole", "third"):
        result = run_cli(
            "inpaint", str(tmp_path / "small.png"), "-m", str(tmp_path / f"{name}.png"), "-q", "-o", str(tmp_path / name)
        )
        assert result.returncode == 0, result.stderr
    rgba = np.dstack([small, np.where(mask > 0, 0, 255).astype(np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    result = run_cli("inpaint", str(tmp_path / "cut.png"), "--dilate", "2", "-q", "-o", str(tmp_path / "alpha"))
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "alpha" / "cut_inpaint_seed0.png"))
    grown = F.max_pool2d(torch.from_numpy(mask > 0).float()[None, None], 5, 1, 2)[0, 0].numpy() > 0
    assert out.shape == small.shape and np.array_equal(out[~grown], small[~grown])
    assert not np.array_equal(out[grown & (mask == 0)], small[grown & (mask == 0)])  # the dilated ring was filled too
    opaque = run_cli("inpaint", str(tmp_path / "small.png"), "-q", "-o", str(tmp_path / "none"))
    assert opaque.returncode == 1 and "alpha channel" in opaque.stderr and len(opaque.stderr.strip().splitlines()) == 1


def test_the_region_denoiser_equals_the_whole_canvas_in_the_region(small_rgb):
    """Denoising only the region's box grown by P - 1 gives the region's pixels of a whole-canvas call (exact
    Eq. 2 over the unmasked patches, fp32 rounding), and the known image elsewhere."""
    from sinfree.editing.inpaint import MaskedImageDenoiser, RegionDenoiser

    image = to_tensor(small_rgb)
    unknown = torch.zeros(image.shape[1:], dtype=torch.bool)
    unknown[15:25, 12:30] = True
    whole = MaskedImageDenoiser(image, unknown, 7)
    region = RegionDenoiser(MaskedImageDenoiser(image, unknown, 7), image, unknown, 7)
    x = 0.5 * image + 0.5 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    full, cropped = whole(x, 0.5, 0.5), region(x, 0.5, 0.5)
    assert torch.allclose(cropped[:, unknown], full[:, unknown], atol=1e-5)
    assert torch.equal(cropped[:, ~unknown], image.to(cropped.dtype)[:, ~unknown])
    assert region.box[0].stop - region.box[0].start == 10 + 2 * 6


def test_harmonize_gives_a_tinted_patch_the_surroundings_tone_and_texture(photo_and_hole):
    """A flat, tinted paste on the woven table: after harmonize its mean tone and local contrast are within 10 %
    of a ring around it (``metrics.fill.tone_and_contrast``); without the detail matching the contrast is not."""
    from sinfree.editing.inpaint import match_detail
    from sinfree.metrics.fill import tone_and_contrast

    photo = photo_and_hole[0].copy()
    region = np.zeros(photo.shape[:2], bool)
    region[90:120, 20:60] = True
    pasted = photo.copy()
    pasted[region] = (photo[region] * 0.5 + np.array([40, 90, 160]) * 0.5).astype(np.uint8)
    result = harmonize(pasted, region, seed=0).samples[0]
    tone, contrast = tone_and_contrast(result, region)
    assert tone <= 0.1 and contrast <= 0.1
    assert np.array_equal(result[~region], pasted[~region])
    # the detail matching alone: the original photo with its region blurred gets its local contrast back
    from sinfree.editing.inpaint import low_pass
    from sinfree.io.images import tensor_to_array

    image, mask = to_tensor(photo).float(), torch.from_numpy(region)
    blurred = torch.where(mask, low_pass(image, 2), image)
    matched = match_detail(blurred, mask)
    as_array = lambda x: tensor_to_array(x.clamp(-1, 1), load_image(photo)[1])  # noqa: E731
    assert tone_and_contrast(as_array(matched), region)[1] < 0.85 * tone_and_contrast(as_array(blurred), region)[1]


def test_harmonize_takes_a_smooth_skys_tone_and_contrast_without_a_ghost():
    """A flat grey square pasted in the balloons' sky (a smooth region, where a contrast ratio is hard to meet):
    tone and local contrast within 10 % of the ring after harmonize, none before; the region's tone is matched
    with no step at its edge (``match_tone`` is feathered)."""
    from pathlib import Path

    from sinfree.editing.inpaint import match_tone
    from sinfree.io.images import tensor_to_array
    from sinfree.metrics.fill import edge_seam, tone_and_contrast

    examples = Path(__file__).resolve().parents[1] / "examples"
    photo = np.array(Image.open(examples / "balloons_small.png").convert("RGB"))
    region = np.zeros(photo.shape[:2], bool)
    region[20:50, 60:100] = True
    pasted = photo.copy()
    pasted[region] = 150
    assert max(tone_and_contrast(pasted, region)) > 0.1
    result = harmonize(pasted, region, seed=0).samples[0]
    assert max(tone_and_contrast(result, region)) <= 0.1
    assert np.array_equal(result[~region], pasted[~region])
    # the tone match alone: a region brightened smoothly inside comes back to its ring's tone, with no step made
    image, mask = to_tensor(photo).float(), torch.from_numpy(region)
    inside = (2 * F.avg_pool2d(mask.float()[None, None], 17, stride=1, padding=8)[0, 0] - 1).clamp(0, 1) * mask
    brightened = image + 0.4 * inside  # no step at the edge
    matched = match_tone(brightened, mask)
    as_array = lambda x: tensor_to_array(x.clamp(-1, 1), load_image(photo)[1])  # noqa: E731
    assert tone_and_contrast(as_array(matched), region)[0] < 0.02 < 0.1 < tone_and_contrast(as_array(brightened), region)[0]
    assert edge_seam(as_array(matched), region) <= 1.2
