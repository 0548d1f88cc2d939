"""The public ``generate`` API: determinism, sizes, patch statistics, pixel formats, memory."""

import numpy as np
import pytest
import scipy.ndimage
from helpers import assert_new_image_of_input_patches
from PIL import Image

import sinfree
from sinfree import GenerationSettings, MemoryBudgetError, generate, generate_samples

FAST = dict(patch_size=7, num_scales=2, steps=4)


def test_same_seed_same_sample_and_different_seeds_differ(small_rgb):
    a = generate(small_rgb, num_samples=2, seed=5, **FAST)
    b = generate(small_rgb, num_samples=1, seed=5, **FAST)
    c = generate(small_rgb, num_samples=1, seed=6, **FAST)
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], c[0])  # sample i uses seed + i
    assert np.abs(a[0].astype(int) - a[1]).mean() > 5


# Fakes that the former check (not equal to the input, patches near the input's) let through, but the last. The
# check of helpers.py rejects each for the reason named: a copy under some shift or flip, less detail than the
# input, or patches far from the input's.
FAKES = {
    "copy": (lambda rgb: rgb.copy(), "a copy"),
    "rolled": (lambda rgb: np.roll(rgb, (21, 16), axis=(0, 1)), "a copy"),
    "rolled-slightly": (lambda rgb: np.roll(rgb, (5, 9), axis=(0, 1)), "a copy"),
    "mirrored": (lambda rgb: np.ascontiguousarray(rgb[:, ::-1]), "a copy"),
    "blurred": (
        lambda rgb: np.round(scipy.ndimage.gaussian_filter(rgb.astype(float), sigma=(3, 3, 0))).astype(np.uint8),
        "not as detailed",
    ),
    "flat": (lambda rgb: np.broadcast_to(np.round(rgb.mean(axis=(0, 1))).astype(np.uint8), rgb.shape).copy(), "not as detailed"),
    "shuffled": (lambda rgb: np.random.default_rng(1).permutation(rgb.reshape(-1, 3)).reshape(rgb.shape), "not made of"),
}


@pytest.mark.parametrize("fake", FAKES)
def test_novelty_check_rejects_copies_shifts_mirrors_blurs_and_flat_images(astronaut64, fake):
    make, reason = FAKES[fake]
    with pytest.raises(AssertionError, match=reason):
        assert_new_image_of_input_patches(make(astronaut64), astronaut64)


# Measured on astronaut64, seeds 0-2: patch distance <= 0.12 (limit 0.5), copy distance >= 0.55 (limit 0.2),
# detail 0.68-0.88 (limits 0.1-3); the fakes: copy distance 0 (copies, rolls, mirror), detail <= 0.008 (blur, flat).
SAMPLERS = {
    "default": {},
    "paper": {"preset": "paper", "num_scales": 2},  # Table 1 but S = 2: a 64 px input's 4th scale is under the 15 px patch
    "paper-eta1": {"preset": "paper", "num_scales": 2, "eta": 1.0},
}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sample_is_new_but_made_of_input_patches(astronaut64, sampler):
    sample = generate(astronaut64, seed=0, **SAMPLERS[sampler])[0]
    assert sample.shape == astronaut64.shape and sample.dtype == np.uint8
    assert_new_image_of_input_patches(sample, astronaut64)


def test_requested_size_retargets(small_rgb):
    sample = generate(small_rgb, size=(30, 64), **FAST)[0]
    assert sample.shape == (30, 64, 3)


def test_paper_preset_is_table_1_and_the_default_keeps_the_composition():
    from sinfree import preset_settings

    paper = preset_settings("paper")
    assert (paper.patch_size, paper.num_scales, paper.steps, paper.eta, paper.rho, paper.stride) == (15, 4, 10, 0.0, 0.2, 1)
    assert (paper.variation, paper.layout_guidance, paper.completeness, paper.backend) == (1.0, 0.0, 0.0, "auto")
    default = preset_settings()
    assert default == GenerationSettings() and default.num_scales is None and default.layout_guidance == 0.7
    assert preset_settings("paper", steps=20, rho=None).steps == 20  # None: the preset's
    assert preset_settings("paper", num_scales="auto").num_scales is None
    with pytest.raises(ValueError, match="unknown preset"):
        preset_settings("fast")


def test_auto_runs_exact_on_cheap_scales_and_patchmatch_on_costly_ones():
    from sinfree.backends import AUTO_EXACT_FLOPS
    from sinfree.planning import scale_backend

    settings = GenerationSettings(backend_options={"k": 12})
    assert scale_backend(settings, 3, (31, 24), (31, 24)) == ("exact", {})  # coarsest Table-1 scale: 170 queries
    assert scale_backend(settings, 3, (62, 47), (62, 47))[0] == "patchmatch"  # the third: 1584 x 1584 x 675, 6.8e9
    name, options = scale_backend(settings, 3, (186, 248), (186, 248))  # full size: 40k x 40k x 675
    assert name == "patchmatch" and options["k"] == 12
    assert 4 * 40248**2 * 675 > AUTO_EXACT_FLOPS


def test_auto_equals_exact_where_every_scale_is_cheap(small_rgb):
    options = dict(patch_size=7, num_scales=2, steps=3, seed=4)
    assert np.array_equal(generate(small_rgb, backend="auto", **options)[0], generate(small_rgb, backend="exact", **options)[0])


def test_result_records_settings_and_timing(small_rgb):
    result = generate_samples(small_rgb, GenerationSettings(patch_size=7, num_scales=None, steps=3), num_samples=2, seed=3)
    assert result.seeds == [3, 4]
    assert result.settings["num_scales"] == 2  # 40 x 48 -> 20 x 24 -> 10 x 12: a third is below 1.5 P
    assert result.settings["output_size"] == [40, 48]
    assert result.seconds_per_sample > 0


def test_progress_reports_every_call(small_rgb):
    events = []
    generate(small_rgb, num_samples=2, progress=events.append, **FAST)
    assert len(events) == 2 * 2 * 4
    assert events[-1].calls_done == events[-1].calls_total == 16
    assert [e.scale for e in events[:8]] == [1] * 8  # coarse-to-fine, all samples per scale


@pytest.mark.parametrize(
    "make",
    [
        lambda rgb: rgb[:, :, 0],  # gray uint8
        lambda rgb: rgb[:, :, 0].astype(np.uint16) * 257,  # gray uint16
        lambda rgb: rgb.astype(np.float32) / 255,  # float RGB in [0, 1]
        lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]),  # RGBA
        lambda rgb: rgb.astype(np.float64) * 4 - 100,  # float outside [0, 1]: its own range
    ],
    ids=["gray8", "gray16", "float", "rgba", "float-range"],
)
def test_pixel_formats_come_back_as_they_went_in(small_rgb, make):
    image = make(small_rgb)
    sample = generate(image, **FAST)[0]
    assert sample.shape == image.shape and sample.dtype == image.dtype
    # the last step is a convex combination of input pixels: the sample stays within the input's range
    assert sample.min() >= image.min() - 1e-6 and sample.max() <= image.max() + 1e-6
    if image.dtype == np.uint16:
        assert len(np.unique(sample)) > 256  # 16-bit precision kept


def test_pil_and_path_inputs(small_rgb, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(small_rgb).save(path)
    from_path = generate(path, **FAST)[0]
    from_pil = generate(Image.open(path), **FAST)[0]
    from_array = generate(small_rgb, **FAST)[0]
    assert np.array_equal(from_path, from_array) and np.array_equal(from_pil, from_array)


def test_too_small_input_is_refused(small_rgb):
    with pytest.raises(sinfree.InputImageError, match="smaller than the 15 px patch"):
        generate(small_rgb[:10, :10], patch_size=15)  # a patch given is kept; by default a 10 px input gets 3 px patches
    with pytest.raises(sinfree.InputImageError, match="smaller than the 3 px patch"):
        generate(small_rgb[:2, :10])


def test_memory_estimate_refuses_before_running(small_rgb):
    with pytest.raises(MemoryBudgetError, match="needs about"):
        generate(small_rgb, max_memory_bytes=1000, **FAST)


def test_memory_estimate_grows_with_the_problem():
    from sinfree.planning import estimate_peak_bytes

    small = estimate_peak_bytes(3, (190, 250), (190, 250), GenerationSettings(), 1)
    large = estimate_peak_bytes(3, (1024, 1024), (1024, 1024), GenerationSettings(), 1)
    assert 100 * 2**20 < small < 1 * 2**30
    assert large > 10 * small
    for backend in ("exact", "ivf", "auto"):  # a 1024^2 input and output fit in 8 GiB
        assert estimate_peak_bytes(3, (1024, 1024), (1024, 1024), GenerationSettings(backend=backend), 1) < 8 * 2**30


def test_bad_settings_raise(small_rgb):
    with pytest.raises(ValueError, match="eta"):
        generate(small_rgb, eta=1.5, **{k: v for k, v in FAST.items()})
    with pytest.raises(ValueError, match="rho"):
        generate(small_rgb, rho=0.0, **FAST)


def test_outputs_get_the_usual_file_permissions(tmp_path):
    """Atomic writes go through a 0600 temporary file; the output gets 0666 minus the umask, like open()."""
    import os
    import stat

    from sinfree.io.images import save_png

    path = save_png(np.zeros((4, 4), dtype=np.uint8), tmp_path / "out.png")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_generate_takes_the_layout_levers(small_rgb):
    """The composition's options reach the sampler through the API's keywords (not the backend's)."""
    plain = generate(small_rgb, seed=1, **FAST)[0]
    faded = generate(small_rgb, seed=1, layout_guidance=1.0, layout_guidance_end=0.0, **FAST)[0]
    placed = generate(small_rgb, seed=1, position_prior=0.1, **FAST)[0]
    assert faded.shape == placed.shape == plain.shape
    assert not np.array_equal(faded, plain) and not np.array_equal(placed, plain) and not np.array_equal(placed, faded)
