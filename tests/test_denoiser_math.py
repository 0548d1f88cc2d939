"""Eq. 2: the exact backend against a brute-force float64 reference, and its limits."""

import pytest
import torch

from sinfree import denoise_patches, make_backend

# Stated tolerance of the fp32 exact backend against float64 Eq. 2, on pixels in [-1, 1].
EXACT_ATOL = 1e-4


def noisy_queries(patches: torch.Tensor, alpha: float, sigma: float, n: int = 256, seed: int = 0) -> torch.Tensor:
    """x = alpha y + sigma eps for random patches y of the set (the distribution the sampler sees)."""
    g = torch.Generator().manual_seed(seed)
    picks = patches[torch.randint(0, len(patches), (n,), generator=g)].double()
    return alpha * picks + sigma * torch.randn(picks.shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    "alpha, sigma", [(0.1, 0.9), (0.5, 0.5), (0.8, 0.2), (0.9, 0.1), (0.97, 0.03), (0.99, 0.01), (0.9999, 1e-4)]
)
def test_exact_matches_float64_reference(real_patches, alpha, sigma):
    x = noisy_queries(real_patches, alpha, sigma)
    reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
    exact = denoise_patches(x.float(), real_patches, alpha, sigma, backend="exact")
    assert exact.dtype == torch.float32 and exact.shape == x.shape
    assert (exact.double() - reference).abs().max().item() < EXACT_ATOL


def test_exact_matches_reference_between_patches(real_patches):
    """Queries half-way between two patches: weights spread over several patches, not one."""
    g = torch.Generator().manual_seed(1)
    a, b = real_patches[torch.randint(0, len(real_patches), (2, 128), generator=g)].double()
    for sigma in (0.05, 0.3):
        alpha = 1 - sigma
        x = alpha * (a + b) / 2
        reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
        exact = denoise_patches(x.float(), real_patches, alpha, sigma)
        assert (exact.double() - reference).abs().max().item() < EXACT_ATOL


def test_reference_is_literally_eq2():
    """The oracle itself, against a hand-written loop of Eq. 2 on a tiny set."""
    g = torch.Generator().manual_seed(2)
    patches = torch.randn(5, 3, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    alpha, sigma = 0.6, 0.7
    expected = torch.stack(
        [
            sum(
                w * y
                for w, y in zip(
                    torch.softmax(torch.stack([-((xi - alpha * y) ** 2).sum() / (2 * sigma**2) for y in patches]), 0), patches
                )
            )
            for xi in x
        ]
    )
    assert torch.allclose(denoise_patches(x, patches, alpha, sigma, backend="reference"), expected, atol=1e-12)


@pytest.mark.parametrize("backend", ["exact", "reference"])
def test_alpha_zero_gives_mean_patch(real_patches, backend):
    x = torch.randn(10, real_patches.shape[1])
    out = denoise_patches(x, real_patches, 0.0, 1.0, backend=backend)
    assert torch.allclose(out, real_patches.mean(0).expand_as(out), atol=1e-6)


@pytest.mark.parametrize("backend", ["exact", "reference"])
def test_tiny_alpha_approaches_mean_patch(real_patches, backend):
    x = torch.randn(10, real_patches.shape[1])
    out = denoise_patches(x, real_patches, 1e-6, 1.0, backend=backend)
    assert torch.allclose(out, real_patches.mean(0).expand_as(out), atol=1e-4)


@pytest.mark.parametrize("backend", ["exact", "reference"])
@pytest.mark.parametrize("sigma", [0.0, 1e-3])
def test_small_sigma_gives_nearest_patch(real_patches, backend, sigma):
    alpha = 0.999
    x = noisy_queries(real_patches, alpha, 0.02, n=64, seed=3).float()
    nearest = real_patches[torch.cdist(x.double() / alpha, real_patches.double()).argmin(1)]
    out = denoise_patches(x, real_patches, alpha, sigma, backend=backend)
    assert (out - nearest).abs().max().item() < 1e-4


def test_duplicated_patch_set_gives_same_result(real_patches):
    """Eq. 2 is a weighted mean: duplicating every patch changes nothing."""
    x = noisy_queries(real_patches, 0.7, 0.3, n=64).float()
    once = denoise_patches(x, real_patches, 0.7, 0.3)
    twice = denoise_patches(x, torch.cat([real_patches, real_patches]), 0.7, 0.3)
    assert (once - twice).abs().max().item() < 1e-5


def test_chunking_does_not_change_the_result(real_patches):
    x = noisy_queries(real_patches, 0.6, 0.4, n=300).float()
    whole = make_backend("exact", real_patches, chunk_size=4096)(x, 0.6, 0.4)
    chunked = make_backend("exact", real_patches, chunk_size=64)(x, 0.6, 0.4)
    assert torch.equal(whole, chunked) or (whole - chunked).abs().max().item() < 1e-6


def test_bad_arguments_raise(real_patches):
    with pytest.raises(ValueError, match="unknown backend"):
        denoise_patches(real_patches[:2], real_patches, 0.5, 0.5, backend="nope")
    with pytest.raises(ValueError, match=r"\(N, 147\)"):
        denoise_patches(real_patches[:2, :10], real_patches, 0.5, 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        denoise_patches(real_patches[:2], real_patches, -0.5, 0.5)
