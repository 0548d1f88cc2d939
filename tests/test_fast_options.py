"""Issue 3's fast-path options, each against exact Eq. 2 (float64 reference or the exact backend)."""

import pytest
import skimage.data
import torch
from helpers import to_tensor
from test_denoiser_math import EXACT_ATOL, noisy_queries

from sinfree import denoise_patches, make_backend
from sinfree.backends.candidates import duplicates
from sinfree.backends.merge import merge_patches
from sinfree.image_denoiser import ImageDenoiser
from sinfree.patches import all_patches

LEVELS = [(0.5, 0.5), (0.9, 0.1), (0.99, 0.01)]


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    """A real 36 x 44 RGB crop in [-1, 1]."""
    return to_tensor(skimage.data.astronaut()[90:126, 110:154])


def reference(x, patches, alpha, sigma):
    return denoise_patches(x.double(), patches.double(), alpha, sigma, backend="reference")


@pytest.mark.parametrize("alpha, sigma", LEVELS + [(0.9999, 1e-4)])
def test_chunked_softmax_matches_float64_reference(real_patches, alpha, sigma):
    x = noisy_queries(real_patches, alpha, sigma)
    out = make_backend("chunked", real_patches, chunk_size=50)(x.float(), alpha, sigma)
    assert (out.double() - reference(x, real_patches, alpha, sigma)).abs().max().item() < EXACT_ATOL


# -- merging duplicates ---------------------------------------------------------------------------


def test_merge_groups_duplicates_and_keeps_first_appearance(real_patches):
    patches = torch.cat([real_patches, real_patches[:30], real_patches[:5]])
    merged, counts = merge_patches(patches)
    assert torch.equal(merged, real_patches)
    assert counts[:5].tolist() == [3] * 5 and counts[5:30].tolist() == [2] * 25 and int(counts.sum()) == len(patches)


@pytest.mark.parametrize("backend, options", [("exact", {}), ("ivf", {"nprobe": 10**6, "k": 10**6})])
def test_merging_true_duplicates_is_exact_eq2(real_patches, backend, options):
    """log(count) on the logit makes one merged patch worth its copies."""
    patches = torch.cat([real_patches, real_patches[:100], real_patches[:40]])
    for alpha, sigma in LEVELS:
        x = noisy_queries(patches, alpha, sigma, n=128)
        merged = denoise_patches(x.float(), patches, alpha, sigma, backend=backend, merge=0.0, **options)
        assert (merged.double() - reference(x, patches, alpha, sigma)).abs().max().item() < EXACT_ATOL


def test_near_duplicate_merging_is_close_and_shrinks_the_set(crop):
    """A flat-ish image (quantised to 8 levels) has many near-equal patches; merging them on a
    fine grid keeps Eq. 2 within the grid step."""
    flat = torch.round(crop * 4) / 4
    patches = all_patches(flat, 5)
    noisy = patches + 1e-4 * torch.randn(patches.shape, generator=torch.Generator().manual_seed(0))
    backend = make_backend("exact", noisy, merge=0.01)
    assert backend.num_patches < 0.9 * len(patches)
    x = noisy_queries(noisy, 0.8, 0.2, n=128)
    assert (backend(x.float(), 0.8, 0.2).double() - reference(x, noisy, 0.8, 0.2)).abs().max().item() < 0.01


def test_merge_rejects_negative_tolerance(real_patches):
    with pytest.raises(ValueError, match="tolerance"):
        merge_patches(real_patches, -1.0)


# -- projected pre-scoring, exact re-scoring ------------------------------------------------------


def test_projected_search_with_everything_rescored_is_exact(real_patches):
    m = len(real_patches)
    for alpha, sigma in LEVELS:
        x = noisy_queries(real_patches, alpha, sigma, n=64)
        out = denoise_patches(x.float(), real_patches, alpha, sigma, backend="ivf", project=8, rescore=m, nprobe=10**6, k=m)
        assert (out.double() - reference(x, real_patches, alpha, sigma)).abs().max().item() < EXACT_ATOL


@pytest.mark.parametrize("alpha, sigma", [(0.97, 0.03), (0.99, 0.01)])
def test_projected_search_close_to_exact_at_low_noise(real_patches, alpha, sigma):
    x = noisy_queries(real_patches, alpha, sigma, n=300, seed=5).float()
    exact = denoise_patches(x, real_patches, alpha, sigma)
    fast = denoise_patches(x, real_patches, alpha, sigma, backend="ivf", project=32, rescore=20)
    assert ((fast - exact).abs().amax(dim=1) < 1e-3).float().mean() > 0.85  # plain ivf: 0.92, 0.99


def test_projected_scores_are_exact_after_rescoring(real_patches):
    backend = make_backend("ivf", real_patches, project=8, rescore=20)
    t = noisy_queries(real_patches, 0.9, 0.1, n=50).float() / 0.9 - backend.mean
    index, scores = backend.search(t)
    members = backend.members[index]
    expected = (members @ t[:, :, None]).squeeze(2) - 0.5 * members.square().sum(2)
    assert torch.allclose(scores, expected, atol=1e-4)


# -- coherence: propagation and search pruning ----------------------------------------------------


def test_duplicates_marks_repeats_only():
    index = torch.tensor([[3, 1, 3, -1, -1, 1, 2]])
    assert duplicates(index).tolist() == [[False, False, True, False, False, True, False]]


def test_shifted_candidates_move_on_the_patch_grid(crop):
    backend = make_backend("ivf", all_patches(crop, 7), propagate=True)
    height, width = crop.shape[1] - 6, crop.shape[2] - 6
    backend.set_patch_grid((height, width))
    positions = torch.tensor([0, width + 3, height * width - 1])  # (0,0), (1,3), last
    members = backend.position_member[positions]
    moved = backend.shifted(members, torch.tensor([1, 1, 1]), torch.tensor([0, -1, 0]))
    assert backend.member_order[moved[:2]].tolist() == [width, 2 * width + 2]
    assert moved[2].item() == -1  # off the grid


def image_error(denoiser, exact, x_t, alpha, sigma):
    return (denoiser(x_t, alpha, sigma) - exact(x_t, alpha, sigma)).abs().mean().item()


def test_propagation_with_everything_searched_is_exact(crop):
    exact = ImageDenoiser(crop, 7)
    full = ImageDenoiser(crop, 7, backend="ivf", nprobe=10**6, k=10**6, propagate=True)
    g = torch.Generator().manual_seed(0)
    for alpha, sigma in LEVELS:  # the second and third calls carry propagated candidates
        x_t = alpha * crop + sigma * torch.randn(crop.shape, generator=g)
        assert (full(x_t, alpha, sigma) - exact(x_t, alpha, sigma)).abs().max().item() < EXACT_ATOL


def test_propagation_brings_a_weak_search_closer_to_exact(crop):
    """One probed list and k = 2: the neighbours' shifted candidates recover missed patches."""
    exact = ImageDenoiser(crop, 7)
    options = {"nprobe": 1, "k": 2, "nlist": 16}
    plain, propagated = (
        ImageDenoiser(crop, 7, backend="ivf", **options),
        ImageDenoiser(crop, 7, backend="ivf", propagate=True, **options),
    )
    g = torch.Generator().manual_seed(1)
    errors = []
    for alpha, sigma in [(0.8, 0.2), (0.9, 0.1), (0.95, 0.05), (0.98, 0.02)]:
        x_t = alpha * crop + sigma * torch.randn(crop.shape, generator=g)
        errors.append((image_error(plain, exact, x_t, alpha, sigma), image_error(propagated, exact, x_t, alpha, sigma)))
    assert errors[0][0] == pytest.approx(errors[0][1])  # first call: nothing to propagate yet
    assert all(with_ < without for without, with_ in errors[1:])


def test_pruning_searches_one_query_in_four_late_and_stays_close(crop, monkeypatch):
    denoiser = ImageDenoiser(crop, 7, backend="ivf", propagate=True, prune_alpha=0.9)
    searched_rows = []
    original_pool = denoiser.backend.pool
    monkeypatch.setattr(denoiser.backend, "pool", lambda q, count: (searched_rows.append(len(q)), original_pool(q, count))[1])
    exact, unpruned = ImageDenoiser(crop, 7), ImageDenoiser(crop, 7, backend="ivf", propagate=True)
    g = torch.Generator().manual_seed(2)
    rows, cols = crop.shape[1] - 6, crop.shape[2] - 6
    for alpha, sigma in [(0.5, 0.5), (0.95, 0.05), (0.99, 0.01)]:
        searched_rows.clear()
        x_t = alpha * crop + sigma * torch.randn(crop.shape, generator=g)
        error, unpruned_error = image_error(denoiser, exact, x_t, alpha, sigma), image_error(unpruned, exact, x_t, alpha, sigma)
        expected = rows * cols if alpha < 0.9 else ((rows + 1) // 2) * ((cols + 1) // 2)
        assert sum(searched_rows) == expected
        if alpha < 0.9:
            assert error == unpruned_error
        else:  # measured: 0.017 and 0.005 (unpruned 0.003 and 0.0001) on pixels in [-1, 1]
            assert error < 0.03


def test_new_trajectory_forgets_candidates(crop):
    denoiser = ImageDenoiser(crop, 7, backend="ivf", propagate=True)
    denoiser(crop * 0.9, 0.9, 0.1)
    assert denoiser._previous is not None
    denoiser.start_trajectory()
    assert denoiser._previous is None


def test_option_conflicts_are_refused(real_patches):
    with pytest.raises(ValueError, match="prune_alpha needs propagate"):
        make_backend("ivf", real_patches, prune_alpha=0.5)
    with pytest.raises(ValueError, match="cannot be combined with merge"):
        make_backend("ivf", real_patches, propagate=True, merge=0.0)
