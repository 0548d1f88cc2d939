"""The fused PatchMatch denoiser (issue 3) against exact Eq. 2: the float64 reference, the exact
softmax over its own candidates, its search, its sampled tail, and its reproducibility."""

import math

import numba
import numpy as np
import pytest
import skimage.data
import torch
from helpers import assert_new_image_of_input_patches, noisy, to_tensor

from sinfree import generate
from sinfree.backends.patchmatch import PatchMatchDenoiser
from sinfree.image_denoiser import ImageDenoiser, make_image_denoiser
from sinfree.patches import all_patches, fold_patches, gaussian_window, patch_positions

# fp32 kernels against float64 Eq. 2, on values in [-1, 1]: 3x the exact backend's 1e-4, as the
# distances are summed uncentred (||x - a y||^2 ~ D s^2 at the flat steps; its fp32 rounding enters the logits)
TOLERANCE = 3e-4
LEVELS = [(0.0, 1.0), (0.3, 0.7), (0.5, 0.5), (0.9, 0.1), (0.99, 0.01), (1.0, 0.0)]


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    """A real 30 x 36 RGB crop in [-1, 1]."""
    return to_tensor(skimage.data.astronaut()[100:130, 200:236])


@pytest.mark.parametrize("stride, rho", [(1, 0.2), (3, float("inf"))])
def test_every_candidate_is_exact_eq2(crop, stride, rho):
    """With k at least the number of reference patches, ImgDenoise over them is Eq. 2 exactly."""
    reference = ImageDenoiser(crop.double(), 7, stride=stride, rho=rho, backend="reference")
    fused = PatchMatchDenoiser(crop, 7, stride=stride, rho=rho, k=10**6)
    for alpha, sigma in LEVELS:
        x = noisy(crop, alpha, sigma)
        error = (fused(x, alpha, sigma).double() - reference(x.double(), alpha, sigma)).abs().max().item()
        assert error < TOLERANCE, (alpha, sigma, error)


def eq2_over_candidates(image, x, alpha, sigma, cand, patch_size, rho, log_weights=None):
    """Float64 ImgDenoise with each query's softmax restricted to its candidate positions ``cand`` (n, j),
    each weighted by exp(``log_weights``) (n, j) (None: 1; -inf: left out)."""
    patches = all_patches(image.double(), patch_size)
    rows, cols = patch_positions(x.shape[1], patch_size), patch_positions(x.shape[2], patch_size)
    queries = all_patches(x.double(), patch_size)
    chosen = patches[torch.from_numpy(cand)]  # (n, j, D)
    logits = -((queries[:, None] - alpha * chosen) ** 2).sum(-1) / (2 * sigma**2)
    if log_weights is not None:
        logits = logits + torch.as_tensor(log_weights, dtype=torch.float64)
    denoised = (torch.softmax(logits, dim=1)[:, :, None] * chosen).sum(1)
    window = gaussian_window(patch_size, rho).double().repeat(image.shape[0])
    out = fold_patches(denoised * window, rows, cols, patch_size, torch.zeros(x.shape, dtype=torch.float64))
    norm = fold_patches(window.expand(len(queries), -1), rows, cols, patch_size, torch.zeros(x.shape, dtype=torch.float64))
    return out / norm


@pytest.mark.parametrize("alpha, sigma", [(0.5, 0.5), (0.9, 0.1), (0.99, 0.01)])
def test_softmax_is_exact_over_the_candidates(crop, alpha, sigma):
    """Without the sampled tail, the output is exact Eq. 2 over the k candidates it found (the
    search may be approximate; the weights and the fold are not)."""
    fused = PatchMatchDenoiser(crop, 7, k=6, tail=0, min_weight=0.0)
    x = noisy(crop, alpha, sigma)
    fused(x, alpha, sigma)  # a first call finds the candidates; the second re-ranks and improves them
    out = fused(x, alpha, sigma)
    expected = eq2_over_candidates(crop, x, alpha, sigma, fused.field[0], 7, 0.2)
    assert (out.double() - expected).abs().max().item() < TOLERANCE


def test_search_finds_exact_matches(crop):
    """Queries that are reference patches (a shifted crop of it) find themselves: distance 0."""
    shifted = crop[:, 3:27, 4:32]
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0)
    for _ in range(3):
        fused(0.9 * shifted, 0.9, 0.1)
    rows, cols = fused.query_grid(tuple(shifted.shape[-2:]))
    wp = fused.position_shape[1]
    expected = (rows[:, None] + 3) * wp + (cols[None, :] + 4)
    found = (fused.field[0] == expected.reshape(-1, 1)).any(axis=1)
    assert found.mean() > 0.95


def test_full_distance_passes_find_nearest_patches_the_subspace_misses(crop):
    """At the sharp last steps, passes scored by full distances find exact matches that a search in a
    poor (2-dimensional) subspace misses; above ``full_search_below`` they do not run."""
    shifted = crop[:, 3:27, 4:32]
    rows, cols = patch_positions(24, 7).numpy(), patch_positions(28, 7).numpy()
    wp = 36 - 7 + 1
    expected = ((rows[:, None] + 3) * wp + (cols[None, :] + 4)).reshape(-1, 1)

    def found(**options):
        fused = PatchMatchDenoiser(crop, 7, k=2, tail=0, project=2, passes=1, first_passes=1, **options)
        fused(shifted, 1.0, 0.01)
        return (fused.field[0] == expected).any(axis=1).mean()

    subspace_only = found(full_passes=0)
    assert subspace_only < 0.9
    assert found(full_passes=2) > subspace_only + 0.05
    assert found(full_passes=2, full_search_below=0.001) == subspace_only


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_sliding_distances_equal_full_sums(crop, stride):
    """On a coherent field (a shifted crop of the reference finds itself) most distances are slid
    from the left neighbour's (``stride`` columns out, as many in); all must equal float64 full sums
    to 1e-5 relative, and match the kernel without sliding (refresh 0)."""
    from sinfree.backends import patchmatch as pm

    shifted = crop[:, 3:27, 4:32]
    x = noisy(shifted, 0.9, 0.1, seed=1)
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0, stride=stride)
    for _ in range(3):
        fused(x, 0.9, 0.1)
    rows, cols = fused.query_grid(tuple(x.shape[-2:]))
    cand, bounds = fused.field
    residuals = (fused._residuals, fused.member_residuals, np.float32(0.9))
    wp = fused.position_shape[1]
    grid = cand.reshape(len(rows), len(cols), -1)
    assert ((grid[:, 1:] - stride)[..., None] == grid[:, :-1, None, :]).any(axis=-1).mean() > 0.5  # mostly slid

    def distances(refresh):
        scaled = fused.reference_rows * np.float32(0.9)
        scaled_columns = fused.reference_columns * np.float32(0.9)
        args = (pm._rows_layout(x), scaled, pm._columns_layout(x), scaled_columns, rows, cols, cand, bounds, *residuals, math.inf)
        return pm._kernels().exact_distances(*args, 7, 3, wp, refresh)

    queries = all_patches(x.double(), 7).reshape(x.shape[1] - 6, x.shape[2] - 6, -1)[rows][:, cols].reshape(len(cand), -1)
    patches = all_patches(crop.double(), 7)
    expected = ((queries[:, None] - 0.9 * patches[torch.from_numpy(cand)]) ** 2).sum(-1).numpy()
    for refresh in (0, 32):
        assert np.allclose(distances(refresh), expected, rtol=1e-5, atol=1e-6), refresh


def test_full_distance_pass_slides_neighbour_distances_exactly(crop):
    """The full-distance PatchMatch pass slides a propagated candidate's distance from its neighbour's
    (one column or row out, one in): after a forward and a backward pass on a coherent field every kept
    distance equals its float64 full sum to 1e-5 relative, and the pass keeps the same candidates as
    with no sliding (refresh 0: every distance a full sum)."""
    from sinfree.backends import patchmatch as pm

    shifted = crop[:, 3:27, 4:32]
    x = noisy(shifted, 0.9, 0.1, seed=1)
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0, full_passes=0)
    for _ in range(3):
        fused(x, 0.9, 0.1)
    rows, cols = fused.query_grid(tuple(x.shape[-2:]))
    hp, wp = fused.position_shape
    scaled, scaled_columns = fused.reference_rows * np.float32(0.9), fused.reference_columns * np.float32(0.9)
    x_rows, x_columns = pm._rows_layout(x), pm._columns_layout(x)
    residuals = (fused._residuals, fused.member_residuals)
    start = pm._kernels().exact_distances(
        x_rows, scaled, x_columns, scaled_columns, rows, cols, *fused.field, *residuals, np.float32(0.9), math.inf, 7, 3, wp, 32
    )
    order = np.argsort(start, axis=1, kind="stable")

    def passes(refresh):
        cand = np.ascontiguousarray(np.take_along_axis(fused.field[0], order, axis=1))
        dist = np.ascontiguousarray(np.take_along_axis(start, order, axis=1))
        for forward in (True, False):
            pm._kernels().propagate_and_search(
                fused._queries, residuals[0], fused.members, residuals[1], np.float32(0.9), len(cols), cand, dist, np.diff(rows), np.diff(cols), hp, wp,
                pm.BAND_ROWS, forward, 5, True, x_rows, scaled, x_columns, scaled_columns, rows, cols, 3, 7, refresh, 2, fused.valid,
            )  # fmt: skip
        return cand, dist

    slid_cand, slid_dist = passes(32)
    full_cand, full_dist = passes(0)
    queries, patches = all_patches(x.double(), 7), all_patches(crop.double(), 7)
    expected = ((queries[:, None] - 0.9 * patches[torch.from_numpy(slid_cand)]) ** 2).sum(-1).numpy()
    assert np.allclose(slid_dist, expected, rtol=1e-5, atol=1e-6)
    assert (np.sort(slid_cand, axis=1) == np.sort(full_cand, axis=1)).all(axis=1).mean() > 0.99
    same = slid_cand == full_cand
    assert np.allclose(slid_dist[same], full_dist[same], rtol=1e-5, atol=1e-6)


def exact_error(fused, reference, crop, alpha, sigma, trials=4):
    errors = []
    for seed in range(trials):
        fused.start_trajectory()
        x = noisy(crop, alpha, sigma, seed)
        errors.append((fused(x, alpha, sigma).double() - reference(x.double(), alpha, sigma)).abs().mean().item())
    return float(np.mean(errors))


def test_sampled_tail_brings_flat_steps_closer_to_exact(crop):
    """At an early step the softmax is flat and the k nearest hold little of it: the tail estimate
    must bring the result closer to exact Eq. 2 than the top-k alone."""
    reference = ImageDenoiser(crop.double(), 7, backend="reference")
    alpha, sigma = 0.15, 0.85
    top_k = exact_error(PatchMatchDenoiser(crop, 7, k=4, tail=0), reference, crop, alpha, sigma)
    with_tail = exact_error(PatchMatchDenoiser(crop, 7, k=4, tail=64), reference, crop, alpha, sigma)
    assert with_tail < 0.7 * top_k


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_tail_samples_weigh_the_rest_of_the_patches_exactly(crop, sparse, monkeypatch):
    """The tail's estimator: of a query's m uniform samples, the A not among its k candidates are uniform over
    the other M - k positions, so each stands for (M - k) / A of them (an unbiased estimate of their share of
    Eq. 2's sums); the k candidates count once. A 10 x 12 reference has M = 24 positions: with k = 4 and
    m = 16 most queries reject some samples (A < m), so a weight of (M - k) / m, M / A or any factor off fails,
    in the weights (to fp32 rounding) and in the output (against float64 Eq. 2 over candidates and samples)."""
    from sinfree.backends import patchmatch as pm

    monkeypatch.setattr(pm, "SPARSE_TAIL", 1.0 if sparse else -1.0)  # the kernel's packed samples, or the convolutions
    tiny = crop[:, :10, :12]
    alpha, sigma = 0.5, 0.5
    x = noisy(tiny, alpha, sigma)
    fused = PatchMatchDenoiser(tiny, 7, k=4, tail=16, project=8, min_weight=0.0, seed=1)
    drawn = []
    monkeypatch.setattr(fused, "_tail", lambda *args: drawn.append(PatchMatchDenoiser._tail(fused, *args)) or drawn[-1])
    out = fused(x, alpha, sigma).double()
    (tail,) = drawn  # the flat step's softmax reaches past the 4 candidates: the tail is drawn
    num_positions, k = fused.num_patches, fused.k
    cand = fused.field[0]  # the candidates the call weighed
    assert (num_positions, k, cand.shape, tail.samples.shape) == (24, 4, (24, 4), (16,))

    rejected = (tail.samples[None, :] == cand[:, :, None]).any(axis=1)  # (n, m): the sample is one of the query's k
    accepted = (~rejected).sum(axis=1)
    assert accepted.min() >= 1 and (accepted < 16).mean() > 0.9  # the share depends on A, not on m
    share = np.where(rejected, 0.0, (num_positions - k) / accepted[:, None])
    assert np.array_equal(np.isneginf(tail.log_share), rejected)
    assert np.allclose(np.exp(tail.log_share.astype(np.float64)), share, rtol=1e-6, atol=0)

    positions = np.concatenate([cand, np.broadcast_to(tail.samples, rejected.shape)], axis=1)
    log_share = np.where(rejected, -np.inf, np.log(np.where(rejected, 1.0, share)))  # -inf: left out

    def error(factor: float) -> float:
        """The largest difference to Eq. 2 with the samples' weights ``factor`` times the estimator's."""
        log_weights = np.concatenate([np.zeros(cand.shape), log_share + math.log(factor)], axis=1)
        expected = eq2_over_candidates(tiny, x, alpha, sigma, positions, 7, 0.2, log_weights)
        return (out - expected).abs().max().item()

    assert error(1.0) < TOLERANCE
    for factor in (0.5, 2.0, num_positions / (num_positions - k)):  # a halved or doubled weight, M / A
        assert error(factor) > 10 * TOLERANCE, factor


def test_lower_bounds_are_below_full_distances(crop):
    """The subspace distance plus the residual norms' gap (``_lower_bound``) never exceeds the full
    distance (float64 sums; fp32 slack 1e-4 relative), and on a noisy x_t it is much tighter than the
    subspace distance alone."""
    from sinfree.backends import patchmatch as pm

    alpha, sigma = 0.7, 0.3
    x = noisy(crop, alpha, sigma)
    fused = PatchMatchDenoiser(crop, 7, k=4, project=8)
    fused(x, alpha, sigma)
    samples = np.arange(fused.num_patches)
    cand = fused.field[0]
    bounds, log_share = pm._kernels().tail_lower_bounds(
        fused._queries,
        fused._residuals,
        fused.members,
        fused.member_residuals,
        np.float32(alpha),
        samples,
        cand,
        fused.num_patches,
    )
    # every position is a sample here: each query rejects its k candidates and shares the rest
    assert (np.isneginf(log_share) == (samples[None, :] == cand[:, :, None]).any(axis=1)).all()
    assert np.allclose(log_share[np.isfinite(log_share)], math.log((fused.num_patches - 4) / (fused.num_patches - 4)))
    queries, patches = all_patches(x.double(), 7), all_patches(crop.double(), 7)
    full = torch.cdist(queries, alpha * patches).square().numpy()
    assert (bounds <= full * (1 + 1e-4) + 1e-5).all()
    projected = torch.cdist(torch.from_numpy(fused._queries), alpha * torch.from_numpy(fused.members)).square().numpy()
    assert (bounds / full).mean() > 2 * (projected / full).mean()  # 0.53 against 0.25 of the full distance


@pytest.mark.parametrize("alpha, sigma", [(0.5, 0.5), (0.9, 0.1), (0.99, 0.01)])
def test_sparse_tail_equals_the_dense_one(crop, alpha, sigma, monkeypatch):
    """Tail samples computed by the kernel for the kept pairs only (``SPARSE_TAIL``) give the output of
    the two convolutions over every pair, to 1e-5."""
    from sinfree.backends import patchmatch as pm

    outputs = []
    for share in (1.0, -1.0):  # always sparse, always dense
        monkeypatch.setattr(pm, "SPARSE_TAIL", share)
        fused = PatchMatchDenoiser(crop, 7, k=4, tail=32, seed=3)
        x = noisy(crop, alpha, sigma)
        fused(x, alpha, sigma)
        outputs.append(fused(x, alpha, sigma))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)


def test_same_noise_same_result_at_any_thread_count(crop):
    x = noisy(crop, 0.5, 0.5)
    outputs = []
    threads = numba.get_num_threads()
    try:
        for count in (1, threads):
            numba.set_num_threads(count)
            fused = PatchMatchDenoiser(crop, 7, k=4)
            outputs.append([fused(x, 0.5, 0.5), fused(noisy(crop, 0.8, 0.2), 0.8, 0.2)])
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(*outputs):
        assert torch.allclose(a, b, atol=1e-6)
    other = PatchMatchDenoiser(crop, 7, k=4, seed=1)(x, 0.5, 0.5)
    assert not torch.allclose(other, outputs[0][0], atol=1e-6)


def test_early_stride_queries_every_other_patch_then_carries_the_field(crop):
    """Above ``early_stride_above`` the queries are every other patch; below, every patch, each starting
    from its nearest early query's candidates shifted by the offset between them: a shifted crop of the
    reference, found on the coarse grid, is still found on the fine one without any search."""
    shifted = crop[:, 3:27, 4:32]
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0, early_stride=2, early_stride_above=0.3)
    coarse_rows, coarse_cols = fused.query_grid((24, 28), sigma=0.5)
    assert list(coarse_rows) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 17] and len(coarse_cols) == 12
    for _ in range(3):
        fused(0.5 * shifted, 0.5, 0.5)
    assert fused.field[0].shape[0] == len(coarse_rows) * len(coarse_cols)
    fused.passes = 0  # no search: what the fine grid finds is what the field carried over
    fused(0.9 * shifted, 0.9, 0.1)
    rows, cols = fused.query_grid((24, 28), sigma=0.1)
    wp = fused.position_shape[1]
    expected = ((rows[:, None] + 3) * wp + (cols[None, :] + 4)).reshape(-1, 1)
    assert fused.field[0].shape[0] == len(rows) * len(cols) == 18 * 22
    assert (fused.field[0] == expected).any(axis=1).mean() > 0.95


def test_exact_image_denoiser_early_stride_is_the_coarser_grid_on_early_steps(crop):
    """ImageDenoiser(early_stride=2) is the stride-2 denoiser above ``early_stride_above`` and the stride-1
    one below (each exact Eq. 2 over its own query grid); auto keeps it off its exact (coarse) scales."""
    from sinfree.backends import resolve_backend

    early = ImageDenoiser(crop, 7, early_stride=2, early_stride_above=0.3)
    for (alpha, sigma), stride in (((0.5, 0.5), 2), ((0.9, 0.1), 1)):
        x = noisy(crop, alpha, sigma)
        assert torch.equal(early(x, alpha, sigma), ImageDenoiser(crop, 7, stride=stride)(x, alpha, sigma))
    assert resolve_backend("auto", {"early_stride": 2, "k": 4}, 10, 10, 49) == ("exact", {})
    with pytest.raises(ValueError, match="early_stride"):
        ImageDenoiser(crop, 7, early_stride=0)


def test_noisy_stride_is_a_coarser_grid_still_on_the_noisiest_steps(crop):
    """``noisy_stride`` above ``noisy_stride_above``, ``early_stride`` between that and ``early_stride_above``,
    stride 1 below: ImageDenoiser is the exact stride-s denoiser of each band, and patchmatch's field carries
    from the stride-3 grid to the stride-2 one and to the full one (a shifted crop found on the coarsest grid is
    still found on the full one without any search)."""
    options = {"early_stride": 2, "early_stride_above": 0.3, "noisy_stride": 3, "noisy_stride_above": 0.6}
    tiers = ImageDenoiser(crop, 7, **options)
    for (alpha, sigma), stride in (((0.2, 0.8), 3), ((0.5, 0.5), 2), ((0.9, 0.1), 1)):
        x = noisy(crop, alpha, sigma)
        assert torch.equal(tiers(x, alpha, sigma), ImageDenoiser(crop, 7, stride=stride)(x, alpha, sigma))
    shifted = crop[:, 3:27, 4:32]
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0, **options)
    assert list(fused.query_grid((24, 28), sigma=0.8)[0]) == [0, 3, 6, 9, 12, 15, 17]
    for _ in range(3):
        fused(0.2 * shifted, 0.2, 0.8)
    fused.passes = 0  # no search: what the finer grids find is what the field carried over
    fused(0.5 * shifted, 0.5, 0.5)
    fused(0.9 * shifted, 0.9, 0.1)
    rows, cols = fused.query_grid((24, 28), sigma=0.1)
    expected = ((rows[:, None] + 3) * fused.position_shape[1] + (cols[None, :] + 4)).reshape(-1, 1)
    assert (fused.field[0] == expected).any(axis=1).mean() > 0.95
    with pytest.raises(ValueError, match="noisy_stride"):
        PatchMatchDenoiser(crop, 7, noisy_stride=0)


def test_sharp_passes_and_shrink_keep_eq2_over_the_candidates(crop):
    """``sharp_passes=0`` (only the full-distance pass on the sharp steps) and ``shrink=4`` (a quarter as many
    random radii) change which candidates are found, not Eq. 2 over them: without the tail, the output is
    exact Eq. 2 over the returned candidates (float64), and a shifted crop is still found."""
    shifted = crop[:, 3:27, 4:32]
    x = noisy(shifted, 0.95, 0.05)
    fused = PatchMatchDenoiser(crop, 7, k=4, tail=0, sharp_passes=0, shrink=4, min_weight=0)
    for _ in range(3):
        out = fused(x, 0.95, 0.05)
    expected = eq2_over_candidates(crop, x, 0.95, 0.05, fused.field[0], 7, 0.2)
    assert (out.double() - expected).abs().max().item() < TOLERANCE
    rows, cols = fused.query_grid(tuple(x.shape[-2:]))
    truth = ((rows[:, None] + 3) * fused.position_shape[1] + (cols[None, :] + 4)).reshape(-1, 1)
    assert (fused.field[0] == truth).any(axis=1).mean() > 0.95
    with pytest.raises(ValueError, match="shrink"):
        PatchMatchDenoiser(crop, 7, shrink=1)


def test_regridded_field_has_distinct_valid_candidates():
    from sinfree.backends.patchmatch import _regrid_field

    generator = np.random.default_rng(0)
    hp, wp, k = 9, 11, 5
    old_rows, old_cols = np.array([0, 2, 4, 6, 8]), np.array([0, 2, 4, 6, 8, 10])
    cand = np.stack([generator.choice(hp * wp, k, replace=False) for _ in range(30)])
    cand[0] = [0, 1, 11, 12, 98]  # the corner: shifts leave the reference
    new = _regrid_field(cand, old_rows, old_cols, np.arange(9), np.arange(11), (hp, wp))
    assert new.shape == (99, k) and new.min() >= 0 and new.max() < hp * wp
    assert all(len(set(row)) == k for row in new)
    assert list(new[1 * 11 + 1]) == [12, 13, 23, 24, 98]  # query (1, 1) <- (0, 0) shifted by (1, 1); 98 + 12 leaves it


def test_new_trajectory_restarts_the_field(crop):
    fused = PatchMatchDenoiser(crop, 7, k=4)
    fused(noisy(crop, 0.5, 0.5), 0.5, 0.5)
    assert fused.field is not None
    fused.start_trajectory()
    assert fused.field is None


def test_options_are_checked(crop):
    with pytest.raises(ValueError, match="k >= 1"):
        PatchMatchDenoiser(crop, 7, k=0)
    with pytest.raises(ValueError, match="early_stride"):
        PatchMatchDenoiser(crop, 7, early_stride=0)
    with pytest.raises(ValueError, match="smaller than the patch size"):
        PatchMatchDenoiser(crop[:, :5], 7)
    with pytest.raises(ValueError, match="whole images"):
        from sinfree import make_backend

        make_backend("patchmatch", all_patches(crop, 7))


def test_make_image_denoiser_picks_the_fused_backend(crop):
    assert isinstance(make_image_denoiser(crop, 7, backend="patchmatch", k=3), PatchMatchDenoiser)
    assert isinstance(make_image_denoiser(crop, 7, backend="exact"), ImageDenoiser)


def test_generate_with_patchmatch_is_reproducible_per_seed():
    image = skimage.data.astronaut()[::8, ::8]  # 64 x 64
    first = generate(image, num_samples=2, seed=3, patch_size=7, num_scales=2, backend="patchmatch")
    again = generate(image, num_samples=1, seed=4, patch_size=7, num_scales=2, backend="patchmatch")
    assert first[0].shape == image.shape and first[0].dtype == np.uint8
    assert np.array_equal(first[1], again[0])  # sample i uses seed + i, whatever else is drawn
    assert not np.array_equal(first[0], first[1])
    for sample in first:  # measured: patch distance 0.31-0.32, copy distance 0.72-0.79, detail 0.72-0.76
        assert_new_image_of_input_patches(sample, image)


def test_fused_memory_is_the_images_and_the_field():
    """1024^2 in and out: about 1 KB per query, below the (N, D) patch matrix alone (2.7 GB) and
    far below issue 3's 8 GiB (bench_memory.py measures the peak)."""
    estimate = PatchMatchDenoiser.estimate_bytes(1010**2, 675, 1010**2)
    assert estimate < 0.6 * 4 * 1010**2 * 675
    assert math.isfinite(estimate)


@pytest.mark.parametrize("shape, stride", [((40, 33), 2), ((41, 36), 2), ((30, 30), 1), ((37, 52), 3), ((15, 20), 2)])
def test_grid_convolutions_equal_full_ones_at_the_query_grid(shape, stride):
    """The tail's strided (transposed) convolutions equal the stride-1 ones restricted to (spread from) the
    query grid: every s-th position plus the last, on or off the stride."""
    import torch.nn.functional as F

    from sinfree.backends.patchmatch import grid_correlation, grid_fold

    generator = torch.Generator().manual_seed(0)
    image, filters = torch.randn(3, *shape, generator=generator), torch.randn(5, 3, 7, 7, generator=generator)
    rows, cols = patch_positions(shape[0], 7, stride).numpy(), patch_positions(shape[1], 7, stride).numpy()
    expected = F.conv2d(image[None], filters)[0][:, rows][:, :, cols]
    assert torch.allclose(grid_correlation(image, filters, rows, cols), expected.permute(1, 2, 0), atol=1e-5)
    maps = torch.randn(5, len(rows), len(cols), generator=generator)
    full = torch.zeros(5, shape[0] - 6, shape[1] - 6)
    full[:, torch.from_numpy(rows)[:, None], torch.from_numpy(cols)[None, :]] = maps
    expected = F.conv_transpose2d(full[None], filters)[0]
    assert torch.allclose(grid_fold(maps, filters, rows, cols, shape), expected, atol=1e-4)


def test_first_compilation_is_announced(monkeypatch, caplog, tmp_path):
    """Kernels numba has not cached yet are announced on the sinfree logger (once); an empty cache folder says so."""
    import logging
    import subprocess
    import sys

    from sinfree.backends import patchmatch, patchmatch_kernels

    code = "from sinfree.backends import patchmatch_kernels as k; print(k.cached_on_disk())"
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert fresh.stdout.strip() == "False", fresh.stderr
    monkeypatch.setattr(patchmatch, "_ANNOUNCED", False)
    monkeypatch.setattr(patchmatch_kernels, "cached_on_disk", lambda: False)
    with caplog.at_level(logging.INFO, logger="sinfree"):
        patchmatch._kernels()
        patchmatch._kernels()
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "compiling the PatchMatch kernels" in caplog.records[0].getMessage()
