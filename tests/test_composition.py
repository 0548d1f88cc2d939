"""The levers that keep an input's composition (issue 18): the varied start of the coarsest scale, the
balanced (completeness) Eq. 2, automatic scales, and the layout and seam figures that measure them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from helpers import assert_new_image_of_input_patches, to_tensor
from skimage import data, transform

from sinfree import GenerationSettings, ImageDenoiser, InputImageError, generate_samples, preset_settings
from sinfree.backends import denoise_patches, make_backend
from sinfree.backends.balanced import balanced_weights
from sinfree.coarse_to_fine import sample_coarse_to_fine
from sinfree.edit import Edit
from sinfree.metrics import copying_rate, layout_distance, profile_distances, seam_ratio
from sinfree.pyramid import build_pyramid
from sinfree.schedule import flow_schedule


def sinkhorn_reference(x, patches, alpha, sigma, completeness, iterations):
    """Eq. 2 with Sinkhorn patch potentials, brute force in float64."""
    x, patches = x.double(), patches.double()
    logits = -((x[:, None, :] - alpha * patches[None]) ** 2).sum(-1) / (2 * sigma**2)
    potentials = torch.zeros(len(patches), dtype=torch.float64)
    for _ in range(iterations):
        usage = torch.softmax(logits + potentials, dim=1).sum(dim=0)
        potentials -= completeness * torch.log(usage / (len(x) / len(patches)))
    weights = torch.softmax(logits + potentials, dim=1)
    return weights @ patches, weights


@pytest.fixture
def patch_problem():
    generator = torch.Generator().manual_seed(0)
    patches = torch.rand(60, 27, generator=generator) * 2 - 1
    return torch.randn(45, 27, generator=generator), patches


@pytest.mark.parametrize("alpha,sigma", [(0.9, 0.1), (0.6, 0.4), (0.2, 0.8)])
def test_balanced_backend_is_eq2_at_zero_completeness_and_sinkhorn_eq2_otherwise(patch_problem, alpha, sigma):
    x, patches = patch_problem
    exact = denoise_patches(x, patches, alpha, sigma, "reference")
    plain = make_backend("balanced", patches, completeness=0.0)(x, alpha, sigma)
    assert (plain.double() - exact.double()).abs().max().item() < 1e-5
    expected, weights = sinkhorn_reference(x, patches, alpha, sigma, 1.0, 20)
    balanced = make_backend("balanced", patches, completeness=1.0, iterations=20)(x, alpha, sigma)
    assert (balanced.double() - expected).abs().max().item() < 1e-5
    assert not torch.allclose(balanced.double(), exact.double(), atol=1e-3)  # the term changes the denoiser
    plain_usage = torch.softmax(-((x.double()[:, None] - alpha * patches.double()[None]) ** 2).sum(-1) / (2 * sigma**2), 1).sum(0)
    assert weights.sum(0).std() < 0.5 * plain_usage.std()  # usage evened out towards N / M


def test_balanced_weights_survive_patches_no_query_wants():
    logits = torch.tensor([[0.0, -500.0, -1000.0], [1.0, -400.0, -900.0]])  # patches 1, 2 underflow in fp32
    weights = balanced_weights(logits, 1.0, 10)
    assert torch.isfinite(weights).all() and torch.allclose(weights.sum(1), torch.ones(2))
    assert weights[:, 2].sum() > 0.1  # the unused patch is brought in


def test_schedule_from_a_partial_noise_level():
    schedule = flow_schedule(10, s_max=0.8)
    assert schedule[10] == pytest.approx((0.2, 0.8)) and schedule[1][1] == pytest.approx(1e-4)
    assert flow_schedule(10).sigmas[-1].item() == 1.0
    with pytest.raises(ValueError, match="s_max"):
        flow_schedule(10, s_max=1.5)


class StartSpy(Edit):
    """Plain generation that records what each scale starts from."""

    def __init__(self, varies: bool):
        self.keeps_input_layout, self.starts = varies, {}

    def start(self, scale, level, noise, schedule, denoiser, coarse=None):
        self.starts[scale] = (noise.clone(), schedule)
        return super().start(scale, level, noise, schedule, denoiser)


def test_variation_starts_the_coarsest_scale_from_the_noised_input():
    reference = torch.rand(3, 40, 44) * 2 - 1
    settings = GenerationSettings(patch_size=7, num_scales=2, steps=3, variation=0.7)
    spy = StartSpy(True)
    sample_coarse_to_fine(reference, (40, 44), settings, 2, 1, 5, edit=spy)
    coarse = build_pyramid(reference, 2)[1]
    noise = torch.randn(3, *coarse.shape[-2:], generator=torch.Generator().manual_seed(5))
    start, schedule = spy.starts[1]
    assert torch.allclose(start, 0.3 * coarse + 0.7 * noise, atol=1e-6) and schedule[3] == pytest.approx((0.3, 0.7))
    assert spy.starts[0][1][3] == pytest.approx((0.0, 1.0))  # finer scales: pure noise, the full schedule
    unvaried = StartSpy(False)  # an edit choosing its own start gets pure noise
    sample_coarse_to_fine(reference, (40, 44), settings, 2, 1, 5, edit=unvaried)
    assert torch.allclose(unvaried.starts[1][0], noise)


def test_variation_is_validated():
    with pytest.raises(ValueError, match="variation"):
        GenerationSettings(variation=0.0).validate()
    with pytest.raises(ValueError, match="completeness"):
        GenerationSettings(completeness=1.5).validate()


@pytest.fixture(scope="module")
def scene():
    """scikit-image's coffee at 96 x 64: a cup on a table, a dark band on top."""
    image = transform.resize(data.coffee(), (64, 96), anti_aliasing=True)
    return (image * 255).round().astype(np.uint8)


def test_default_keeps_the_layout_that_the_paper_setting_loses_and_makes_new_images(scene):
    small = dict(patch_size=11, steps=6)  # P = 7 keeps less: the start's evidence sums over C P^2 values
    default = generate_samples(scene, preset_settings(**small), num_samples=3, seed=0)
    paper = generate_samples(scene, preset_settings("paper", num_scales=2, **small), num_samples=3, seed=0)
    reference = to_tensor(scene)
    new = [to_tensor(s) for s in default.samples]
    old = [to_tensor(s) for s in paper.samples]
    assert np.mean([layout_distance(s, reference) for s in new]) < 0.7 * np.mean([layout_distance(s, reference) for s in old])
    # new images made of the input's patches (not a copy, shifted or mirrored, a blur or a flat image; measured:
    # patch distance 0.11-0.12, copy distance 0.61-0.68, detail 0.34-0.61), few crops copied, each seed its own
    for sample in new:
        assert_new_image_of_input_patches(sample, reference)
        assert copying_rate(sample, reference) < 0.9
    assert (new[0] - new[1]).abs().mean() > 0.03 and (new[1] - new[2]).abs().mean() > 0.03


def test_layout_figures_see_a_moved_horizon_and_seam_figure_a_hard_seam(scene):
    reference = to_tensor(scene)
    assert profile_distances(reference, reference) == (0.0, 0.0)
    flipped = reference.flip(1)  # the dark band moved to the bottom
    assert profile_distances(flipped, reference)[0] > 0.05 and layout_distance(flipped, reference) > 0.03
    # two copies of the image, shifted against each other, meeting at a straight seam or a smooth blend
    other = torch.roll(reference, 23, dims=2)  # its right half: the reference's columns 25..72, no wrap
    hard = torch.where(torch.arange(96) < 48, reference, other)
    ramp = ((torch.arange(96) - 28) / 40).clamp(0, 1)
    smooth = reference * (1 - ramp) + other * ramp
    assert seam_ratio(hard, reference) > 1.5
    assert seam_ratio(hard, reference) > 1.3 * seam_ratio(smooth, reference)


def test_completeness_runs_end_to_end_on_the_coarse_scales(scene):
    settings = preset_settings(patch_size=7, steps=4, completeness=1.0)
    result = generate_samples(scene, settings, num_samples=1, seed=0)
    assert result.settings["completeness"] == 1.0 and result.samples[0].shape == scene.shape


def test_match_profiles_is_a_projection_onto_the_targets_row_and_column_means():
    from sinfree.composition import match_profiles

    generator = torch.Generator().manual_seed(1)
    image, target = torch.randn(3, 20, 30, generator=generator), torch.randn(3, 20, 30, generator=generator)
    matched = match_profiles(image, target, 1.0)
    assert torch.allclose(matched.mean(dim=-1), target.mean(dim=-1), atol=1e-5)
    assert torch.allclose(matched.mean(dim=-2), target.mean(dim=-2), atol=1e-5)
    assert torch.allclose(match_profiles(matched, target, 1.0), matched, atol=1e-5)  # a projection: idempotent
    assert torch.equal(match_profiles(image, target, 0.0), image)

    # what the profiles do not see is left alone: the image minus its profiles is unchanged
    def residual(x):
        return x - x.mean(dim=-1, keepdim=True) - x.mean(dim=-2, keepdim=True) + x.mean(dim=(-2, -1), keepdim=True)

    assert torch.allclose(residual(matched), residual(image), atol=1e-5)


def test_layout_guidance_keeps_the_layout_from_pure_noise(scene):
    small = dict(patch_size=11, steps=6, num_scales=2, variation=1.0)
    guided = generate_samples(scene, preset_settings(layout_guidance=1.0, **small), num_samples=3, seed=0)
    free = generate_samples(scene, preset_settings(layout_guidance=0.0, **small), num_samples=3, seed=0)
    reference = to_tensor(scene)

    def layout(result):
        return np.mean([layout_distance(to_tensor(s), reference) for s in result.samples])

    assert layout(guided) < 0.7 * layout(free) and guided.settings["layout_guidance"] == 1.0
    with pytest.raises(ValueError, match="layout_guidance"):
        GenerationSettings(layout_guidance=2.0).validate()


def test_an_input_under_two_patches_gets_a_smaller_patch_by_default():
    icon = (transform.resize(data.astronaut(), (20, 24), anti_aliasing=True) * 255).round().astype(np.uint8)
    result = generate_samples(icon, preset_settings(steps=3), num_samples=1, seed=0)
    assert result.settings["patch_size"] == 9 and result.samples[0].shape == icon.shape
    paper = generate_samples(icon, preset_settings("paper", num_scales=1, steps=3), num_samples=1, seed=0)
    assert paper.settings["patch_size"] == 15  # the paper's setting keeps its patch (6 x 10 positions)
    with pytest.raises(InputImageError, match="smaller than the 15 px patch"):
        generate_samples(icon[:12], preset_settings("paper", num_scales=1), num_samples=1, seed=0)


def test_start_blur_keeps_only_the_broad_layout_of_the_start(scene):
    from sinfree.composition import noised_level
    from sinfree.sampler import high_pass

    level = to_tensor(scene)
    schedule = flow_schedule(4, s_max=0.5)
    zero = torch.zeros_like(level)
    sharp, blurred = noised_level(level, zero, schedule), noised_level(level, zero, schedule, blur=4.0)
    assert torch.allclose(sharp, 0.5 * level, atol=1e-6)
    assert high_pass(blurred, (16, 24)).square().mean() < 0.2 * high_pass(sharp, (16, 24)).square().mean()
    assert (blurred.mean(dim=(1, 2)) - sharp.mean(dim=(1, 2))).abs().max() < 0.02  # the broad colours stay


def test_guidance_strength_runs_from_its_start_at_pure_noise_to_its_end():
    from sinfree.composition import guidance_strength, profile_guided

    assert guidance_strength(0.7, None, 0.3) == 0.7  # constant
    assert guidance_strength(1.0, 0.0, 1.0) == 1.0 and guidance_strength(1.0, 0.0, 0.25) == 0.25
    assert guidance_strength(0.5, 1.0, 0.0) == 1.0
    generator = torch.Generator().manual_seed(2)
    x, target = torch.randn(3, 12, 16, generator=generator), torch.randn(3, 12, 16, generator=generator)
    guided = profile_guided(lambda x, alpha, sigma: x, target, 1.0, end=0.0)
    assert torch.equal(guided(x, 1.0, 0.0), x)  # no guidance left at the end
    assert torch.allclose(guided(x, 0.0, 1.0).mean(dim=-1), target.mean(dim=-1), atol=1e-5)  # all of it at pure noise
    with pytest.raises(ValueError, match="layout_guidance_end"):
        GenerationSettings(layout_guidance_end=1.5).validate()


class WrapSpy(Edit):
    """Plain generation that records the denoiser each scale's edit constraint wraps."""

    def __init__(self):
        self.wrapped = {}

    def wrap(self, denoiser, scale):
        self.wrapped[scale] = denoiser
        return denoiser


def test_the_paper_preset_runs_eq2_unguided_on_every_scale():
    from sinfree.denoiser_wrapper import WrappedDenoiser

    paper = preset_settings("paper", patch_size=7, steps=2)
    assert paper.layout_guidance == 0.0 and paper.layout_guidance_end is None
    reference = torch.rand(3, 40, 44) * 2 - 1
    spy = WrapSpy()
    sample_coarse_to_fine(reference, (40, 44), paper, 3, 1, 0, edit=spy)
    assert not any(isinstance(d, WrappedDenoiser) for d in spy.wrapped.values())
    faded = WrapSpy()  # guidance fading to 0 wraps the coarsest scale only
    sample_coarse_to_fine(
        reference, (40, 44), dataclasses.replace(paper, layout_guidance_end=0.0, layout_guidance=1.0), 3, 1, 0, edit=faded
    )
    assert isinstance(faded.wrapped[2], WrappedDenoiser) and not isinstance(faded.wrapped[1], WrappedDenoiser)


def test_guidance_fading_to_zero_keeps_the_layout_between_none_and_constant_guidance(scene):
    small = dict(patch_size=11, steps=6, num_scales=2)
    reference = to_tensor(scene)

    def row_error(**guidance):
        result = generate_samples(scene, preset_settings(**small, **guidance), num_samples=3, seed=0)
        return np.mean([profile_distances(to_tensor(s), reference)[0] for s in result.samples])

    free, faded, constant = (
        row_error(layout_guidance=0.0),
        row_error(layout_guidance=1.0, layout_guidance_end=0.0),
        row_error(layout_guidance=1.0),
    )
    assert constant < 0.8 * faded and faded < 0.8 * free  # measured: 0.026, 0.042, 0.078


def position_prior_reference(x_t, reference, patch_size, rho, alpha, sigma, tau):
    """Algorithm 1 over Eq. 2 with the position prior, brute force in float64: every query patch, every reference
    patch, the log-weight -|centre_i - centre_j|^2 / (2 tau^2) in fractions of each image's sides, the window fold."""
    from sinfree.patches import gaussian_window

    def unfold(image):
        c, h, w = image.shape
        patches, centres = [], []
        for r in range(h - patch_size + 1):
            for col in range(w - patch_size + 1):
                patches.append(image[:, r : r + patch_size, col : col + patch_size].reshape(-1))
                centres.append([(r + patch_size / 2) / h, (col + patch_size / 2) / w])
        return torch.stack(patches), torch.tensor(centres, dtype=torch.float64)

    queries, query_centres = unfold(x_t.double())
    patches, patch_centres = unfold(reference.double())
    logits = -((queries[:, None] - alpha * patches[None]) ** 2).sum(-1) / (2 * sigma**2)
    logits -= ((query_centres[:, None] - patch_centres[None]) ** 2).sum(-1) / (2 * tau**2)
    denoised = torch.softmax(logits, dim=1) @ patches
    window = gaussian_window(patch_size, rho).double().repeat(x_t.shape[0])
    out, weight = torch.zeros_like(x_t, dtype=torch.float64), torch.zeros_like(x_t, dtype=torch.float64)
    c, h, w = x_t.shape
    i = 0
    for r in range(h - patch_size + 1):
        for col in range(w - patch_size + 1):
            out[:, r : r + patch_size, col : col + patch_size] += (denoised[i] * window).view(c, patch_size, patch_size)
            weight[:, r : r + patch_size, col : col + patch_size] += window.view(c, patch_size, patch_size)
            i += 1
    return out / weight


@pytest.mark.parametrize("alpha,sigma", [(0.0, 1.0), (0.05, 0.95), (0.5, 0.5), (0.95, 0.05)])
def test_position_prior_denoiser_is_eq2_with_the_prior_in_float64(alpha, sigma):
    """At a = 0 (pure noise) xhat0 is the prior's own mean: each place's average of the patches near it."""
    # tolerance 1e-4 (fp32 scores); the prior changes the result, and a huge tau is plain Eq. 2
    from sinfree.composition import PositionPriorDenoiser

    g = torch.Generator().manual_seed(4)
    reference, x_t = torch.rand(3, 14, 17, generator=g) * 2 - 1, torch.randn(3, 16, 12, generator=g)  # a retarget
    denoiser = PositionPriorDenoiser(reference, 5, 0.2, 0.15)
    expected = position_prior_reference(x_t, reference, 5, 0.2, alpha, sigma, 0.15)
    assert (denoiser(x_t, alpha, sigma).double() - expected).abs().max().item() < 1e-4
    plain = ImageDenoiser(reference, 5, rho=0.2, backend="exact")(x_t, alpha, sigma).double()
    assert (expected - plain).abs().max().item() > 1e-2
    unconstrained = PositionPriorDenoiser(reference, 5, 0.2, 1e6)(x_t, alpha, sigma).double()
    assert (unconstrained - plain).abs().max().item() < 1e-4
    denoiser.mask_rows = 7  # the prior in blocks of 7 queries (a band's rows split across blocks)
    assert (denoiser(x_t, alpha, sigma).double() - expected).abs().max().item() < 1e-4
    assert denoiser.stats.calls == 2 and denoiser.stats.flops > 0


def test_position_prior_limits_validation_and_cost_refusal():
    from sinfree.composition import PositionPriorDenoiser
    from sinfree.errors import SinfreeError

    g = torch.Generator().manual_seed(5)
    reference, x_t = torch.rand(3, 14, 17, generator=g) * 2 - 1, torch.randn(3, 14, 17, generator=g)
    denoiser, plain = PositionPriorDenoiser(reference, 5, 0.2, 0.1), ImageDenoiser(reference, 5, backend="exact")
    assert torch.allclose(denoiser(x_t, 1.0, 0.0), plain(x_t, 1.0, 0.0))  # s -> 0: the nearest patch, the prior aside
    with pytest.raises(ValueError, match="alpha and sigma"):
        denoiser(x_t, -0.5, 0.5)
    for bad in (-0.1, 1e-5, math.inf):
        with pytest.raises(ValueError, match="position_prior"):
            GenerationSettings(position_prior=bad).validate()
    with pytest.raises(ValueError, match="choose one"):
        GenerationSettings(position_prior=0.1, completeness=0.5).validate()
    big = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(SinfreeError, match="position prior runs exact Eq. 2"):  # one scale: the whole image exact
        generate_samples(big, preset_settings(position_prior=0.1, num_scales=1, steps=1), num_samples=1)


def test_position_prior_keeps_the_layout_unguided_and_makes_new_images(scene):
    small = dict(patch_size=11, steps=6, num_scales=2, layout_guidance=0.0)
    reference = to_tensor(scene)

    def run(prior):
        result = generate_samples(scene, preset_settings(position_prior=prior, **small), num_samples=3, seed=0)
        return result, np.mean([layout_distance(to_tensor(s), reference) for s in result.samples])

    (placed, placed_layout), (_, free_layout) = run(0.1), run(0.0)
    assert placed_layout < 0.7 * free_layout and placed.settings["position_prior"] == 0.1
    for sample in placed.samples:
        assert_new_image_of_input_patches(sample, scene)
    with pytest.raises(ValueError, match="position_prior"):
        GenerationSettings(position_prior=-0.1).validate()
