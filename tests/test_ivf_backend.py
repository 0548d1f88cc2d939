"""The inverted-file (ANN) backends, own ("ivf") and faiss ("faiss-ivf"), against exact Eq. 2."""

import numpy as np
import pytest
import torch
from test_denoiser_math import EXACT_ATOL, noisy_queries

from sinfree import denoise_patches, generate, make_backend
from sinfree.backends.ivf import kmeans, principal_directions

ANN = pytest.mark.parametrize("backend", ["ivf", "faiss-ivf"])


@ANN
def test_full_probe_and_full_k_is_exact_eq2(real_patches, backend):
    """nprobe = nlist and k = M: every patch is a candidate, so it is Eq. 2 itself."""
    m = len(real_patches)
    for alpha, sigma in [(0.5, 0.5), (0.9, 0.1), (0.99, 0.01)]:
        x = noisy_queries(real_patches, alpha, sigma, n=64)
        reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
        ivf = denoise_patches(x.float(), real_patches, alpha, sigma, backend=backend, nprobe=10**6, k=m)
        assert (ivf.double() - reference).abs().max().item() < EXACT_ATOL


def recall_of_nearest(backend, patches, x, alpha):
    """Share of queries whose exact nearest patch (to x / alpha) is among the searched candidates."""
    exact_nn = torch.cdist(x / alpha, patches).argmin(1)
    found = backend.members[backend.search(x / alpha - backend.mean)[0]] + backend.mean  # (n, k, D)
    hit = (found - patches[exact_nn][:, None]).abs().amax(dim=2).min(dim=1).values < 1e-5
    return hit.float().mean().item()


@ANN
def test_search_recall_grows_with_probes_and_is_total_with_all_lists(real_patches, backend):
    x = noisy_queries(real_patches, 0.95, 0.05, n=400, seed=4).float()
    recalls = [
        recall_of_nearest(make_backend(backend, real_patches, nprobe=p, k=5), real_patches, x, 0.95) for p in (2, 8, 10**6)
    ]
    assert recalls[2] == 1.0  # every list probed: the search itself is exact
    assert 0.6 < recalls[0] <= recalls[1] <= recalls[2]


@ANN
@pytest.mark.parametrize("alpha, sigma", [(0.97, 0.03), (0.99, 0.01)])
def test_default_ivf_close_to_exact_at_low_noise(real_patches, backend, alpha, sigma):
    """At low noise Eq. 2 is dominated by the nearest patches, which the index finds."""
    x = noisy_queries(real_patches, alpha, sigma, n=300, seed=5).float()
    exact = denoise_patches(x, real_patches, alpha, sigma)
    ivf = denoise_patches(x, real_patches, alpha, sigma, backend=backend)
    per_query = (ivf - exact).abs().amax(dim=1)
    assert (per_query < 1e-3).float().mean() > 0.9


@ANN
def test_ivf_limits(real_patches, backend):
    x = torch.randn(5, real_patches.shape[1])
    assert torch.allclose(
        denoise_patches(x, real_patches, 0.0, 1.0, backend=backend), real_patches.mean(0).expand(5, -1), atol=1e-6
    )
    nearest = denoise_patches(real_patches[:20], real_patches, 1.0, 0.0, backend=backend)
    assert torch.allclose(nearest, real_patches[:20], atol=1e-5)


def test_kmeans_lists_partition_the_patches(real_patches):
    centroids, assignment = kmeans(real_patches, 20, 5, torch.Generator().manual_seed(0), 1000)
    assert centroids.shape == (20, real_patches.shape[1]) and assignment.shape == (len(real_patches),)
    assert torch.equal(assignment, torch.cdist(real_patches, centroids).argmin(1))


@ANN
def test_generate_with_ivf_backend(small_rgb, backend):
    sample = generate(small_rgb, backend=backend, patch_size=7, num_scales=2, steps=4)[0]
    assert sample.shape == small_rgb.shape
    everything = generate(small_rgb, backend=backend, nprobe=10**6, k=10**6, patch_size=7, num_scales=2, steps=4)[0]
    exact = generate(small_rgb, backend="exact", patch_size=7, num_scales=2, steps=4)[0]
    difference = np.abs(everything.astype(int) - exact)
    assert difference.mean() < 0.05 and difference.max() <= 3  # all candidates: exact up to fp32 rounding


def test_backend_options_are_checked(small_rgb):
    with pytest.raises(ValueError, match="takes no option nprobe"):
        generate(small_rgb, backend="exact", nprobe=3, patch_size=7, num_scales=2, steps=4)


def test_principal_directions_capture_the_leading_eigenvectors_variance(real_patches):
    """The subspace iteration's directions are orthonormal and hold within 1 % of the variance of
    the exact top-16 eigenvectors (float64 eigh) of real patches."""
    centred = real_patches[:1024].float() - real_patches[:1024].float().mean(dim=0)
    covariance = centred.T.double() @ centred.double() / len(centred)
    exact = torch.linalg.eigh(covariance)[1][:, -16:]
    directions = principal_directions(centred, 16).double()
    assert torch.allclose(directions.T @ directions, torch.eye(16, dtype=torch.float64), atol=1e-5)
    captured = torch.trace(directions.T @ covariance @ directions) / torch.trace(exact.T @ covariance @ exact)
    assert 0.99 <= float(captured) <= 1.0 + 1e-6
