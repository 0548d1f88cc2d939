"""The schedule, the Eq. 5 update, TwoScaleBlend and the sampler's mathematics."""

import math

import pytest
import torch

from sinfree import ImageDenoiser, ddim_eta_step, flow_schedule, sample_scale, two_scale_blend
from sinfree.resize import resize


def test_schedule_end_points():
    schedule = flow_schedule(10)
    assert schedule.num_steps == 10 and len(schedule.alphas) == len(schedule.sigmas) == 11  # t = 0 .. T
    assert schedule[0] == (1.0, 0.0)  # terminal point, never denoised
    assert schedule[10] == (0.0, 1.0)  # pure noise
    alpha_1, sigma_1 = schedule[1]
    assert math.isclose(sigma_1, 1e-4) and math.isclose(alpha_1, 1 - 1e-4)
    assert torch.all(schedule.sigmas[1:].diff() > 0)
    assert torch.allclose(schedule.alphas + schedule.sigmas, torch.ones(11, dtype=torch.float64))
    tau = 1e-4 + 4 / 9 * (1 - 1e-4)
    assert math.isclose(schedule[5][1], tau)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        flow_schedule(0)
    with pytest.raises(ValueError):
        flow_schedule(10, s_min=0.0)


def test_eta_step_limits():
    g = torch.Generator().manual_seed(0)
    x_t, xhat0 = torch.randn(2, 1, 4, 4, generator=g)
    eps_hat = (x_t - 0.3 * xhat0) / 0.7
    ddim = ddim_eta_step(x_t, xhat0, eps_hat, 0.6, 0.4, 0.0, None)
    assert torch.allclose(ddim, 0.6 * xhat0 + 0.4 * eps_hat)
    last = ddim_eta_step(x_t, xhat0, eps_hat, 1.0, 0.0, 1.0, g)
    assert torch.equal(last, xhat0)


def test_eta_step_keeps_the_marginal_variance():
    """x_{t-1} = a xhat0 + s (sqrt(1 - eta^2) eps_hat + eta z) has noise variance s^2 for every eta."""
    g = torch.Generator().manual_seed(0)
    eps_hat = torch.randn(200_000, generator=g)
    for eta in (0.0, 0.5, 1.0):
        x = ddim_eta_step(eps_hat, torch.zeros_like(eps_hat), eps_hat, 0.5, 0.5, eta, g)
        assert abs(x.std().item() - 0.5) < 0.005


def test_two_scale_blend_is_identity_for_its_own_low_pass():
    xhat0 = torch.randn(3, 40, 30, generator=torch.Generator().manual_seed(0))
    coarse = resize(xhat0, (20, 15))
    assert torch.allclose(two_scale_blend(xhat0, coarse), xhat0, atol=1e-5)


def test_two_scale_blend_takes_low_frequencies_from_the_coarse_image():
    xhat0 = torch.zeros(1, 40, 40)
    coarse = torch.full((1, 20, 20), 0.5)
    assert torch.allclose(two_scale_blend(xhat0, coarse), torch.full((1, 40, 40), 0.5), atol=1e-5)


def test_sampler_with_one_patch_returns_it():
    """A patch set of one patch: every xhat0 is that patch, so the sample is the reference exactly."""
    reference = torch.rand(3, 9, 9, generator=torch.Generator().manual_seed(0)) * 2 - 1
    denoiser = ImageDenoiser(reference, 9, backend="reference")
    noise = torch.randn(3, 9, 9, generator=torch.Generator().manual_seed(1))
    out = sample_scale(denoiser, noise, flow_schedule(5))
    assert torch.allclose(out, reference, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_lands_on_a_data_point(eta):
    """With a finite data set (P = image size), the sampler ends on one of its points (s_min -> 0)."""
    g = torch.Generator().manual_seed(2)
    data = [torch.rand(1, 6, 6, generator=g) * 2 - 1 for _ in range(3)]
    reference = torch.cat(data, dim=2)  # 6 x 18: its 6 x 6 patches include the three data points
    denoiser = ImageDenoiser(reference, 6, backend="reference")
    out = sample_scale(denoiser, torch.randn(1, 6, 6, generator=g), flow_schedule(20), eta=eta, generator=g)
    patches = reference.unfold(2, 6, 1).permute(2, 0, 1, 3)  # every 6 x 6 window
    assert min((out - p).abs().max().item() for p in patches) < 1e-3


def test_sampler_callback_sees_every_step():
    reference = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(0))
    seen = []
    sample_scale(ImageDenoiser(reference, 5), torch.randn(1, 12, 12), flow_schedule(4), callback=lambda t, x, x0: seen.append(t))
    assert seen == [4, 3, 2, 1]
