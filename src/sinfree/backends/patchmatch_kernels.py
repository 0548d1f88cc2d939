"""Numba kernels of the fused PatchMatch denoiser: Eq. 2 over a few candidates per query, read
straight from the two images (no patch matrix is ever built).

Images are float32 arrays of shape (rows, width * C) (HWC flattened per row), so one patch row
is P * C contiguous numbers. A candidate is a reference patch position ``pr * Wp + pc`` (Wp =
W - P + 1); each query keeps ``k`` of them, sorted by distance ``||x - a y||^2``, in ``cand`` and
``dist`` (n, k). Written with numba because the work per (query, candidate) is one 675-long
dot product on data in cache: batched GEMMs would first gather every candidate patch (gigabytes
per call), which is what made the torch IVF path memory-bound.

Random numbers come from a counter-based hash (splitmix64) of (seed, query, draw), so a result
depends on the seed only, not on the number of threads or the order of the work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# fast-math without "no infs / no nans": the kernels use inf as "no candidate yet" and as s_t = 0
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _random_below(seed, query, draw, n):
    """A uniform integer in [0, n) from the hash of (seed, query, draw)."""
    key = _mix(np.uint64(seed) + _GOLDEN * np.uint64(query + 1))
    return np.int64(_mix(key + _GOLDEN * np.uint64(draw + 1)) % np.uint64(n))


@njit(inline="always")
def _distance_below(x, qr, qc0, scaled, pr, pc0, patch_size, row_length, limit):
    """``||x_q - a y_p||^2`` between the patch of ``x`` at row qr, column offset qc0 and the patch of
    ``scaled`` (= a * reference) at (pr, pc0), eight independent partial sums per patch row (a single
    running sum is latency-bound: 2.5x slower); inf as soon as the sum over the rows so far exceeds
    ``limit`` (it only grows: such a candidate cannot come under ``limit``; PatchMatch's early termination)."""
    total = np.float32(0.0)
    body = row_length - row_length % 8
    for i in range(patch_size):
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
        x_row = x[qr + i, qc0 : qc0 + row_length]
        y_row = scaled[pr + i, pc0 : pc0 + row_length]
        for t in range(0, body, 8):
            d0 = x_row[t] - y_row[t]
            d1 = x_row[t + 1] - y_row[t + 1]
            d2 = x_row[t + 2] - y_row[t + 2]
            d3 = x_row[t + 3] - y_row[t + 3]
            d4 = x_row[t + 4] - y_row[t + 4]
            d5 = x_row[t + 5] - y_row[t + 5]
            d6 = x_row[t + 6] - y_row[t + 6]
            d7 = x_row[t + 7] - y_row[t + 7]
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            s4 += d4 * d4
            s5 += d5 * d5
            s6 += d6 * d6
            s7 += d7 * d7
        for t in range(body, row_length):
            d0 = x_row[t] - y_row[t]
            s0 += d0 * d0
        total += ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
        if total > limit:
            return np.float32(np.inf)
    return total


@njit(inline="always")
def _projected_distance(query, members, position, alpha):
    """``||P x_q - a P y_p||^2`` in the principal subspace (a lower bound of the full distance)."""
    total = np.float32(0.0)
    member = members[position]
    for u in range(query.shape[0]):
        d = query[u] - alpha * member[u]
        total += d * d
    return total


@njit(inline="always")
def _lower_bound(query, residual, members, member_residuals, position, alpha):
    """``||P(x_q - a y_p)||^2 + (||R x_q|| - a ||R y_p||)^2``, with P the orthonormal projection on the
    subspace and R = I - P: a lower bound of the full distance (the second term by the triangle
    inequality in the complement), far tighter than the first alone when x_t is noisy (the noise's
    energy is nearly all in the complement)."""
    gap = residual - alpha * member_residuals[position]
    return _projected_distance(query, members, position, alpha) + gap * gap


@njit(inline="always")
def _contains(cand_row, position):
    for j in range(cand_row.shape[0]):
        if cand_row[j] == position:
            return True
    return False


@njit(inline="always")
def _insert(cand_row, dist_row, position, distance):
    """Insert into the ascending list, dropping its worst entry (the caller checked distance < worst)."""
    j = cand_row.shape[0] - 1
    while j > 0 and dist_row[j - 1] > distance:
        cand_row[j] = cand_row[j - 1]
        dist_row[j] = dist_row[j - 1]
        j -= 1
    cand_row[j] = position
    dist_row[j] = distance


@njit(inline="always")
def _insert_linked(cand_row, dist_row, link_row, position, distance, links):
    """``_insert`` that also keeps each entry's slide count (``links``: 0 for a full sum) in ``link_row``."""
    j = cand_row.shape[0] - 1
    while j > 0 and dist_row[j - 1] > distance:
        cand_row[j] = cand_row[j - 1]
        dist_row[j] = dist_row[j - 1]
        link_row[j] = link_row[j - 1]
        j -= 1
    cand_row[j] = position
    dist_row[j] = distance
    link_row[j] = links


@njit(inline="always")
def _try(query, members, alpha, position, cand_row, dist_row):
    """Score a candidate position in the subspace and keep it if it beats the worst of the k."""
    if _contains(cand_row, position):
        return
    d = _projected_distance(query, members, position, alpha)
    if d < dist_row[dist_row.shape[0] - 1]:
        _insert(cand_row, dist_row, position, d)


@njit(inline="always")
def _try_full(
    query, residual, members, member_residuals, alpha, x, qr, qc0, scaled, wp, channels, patch_size, position, cand_row, dist_row,
    link_row,
):  # fmt: skip
    """Score a candidate position by its full distance and keep it if it beats the worst of the k. A
    lower bound (``_lower_bound``) rejects most candidates first, and the full sum stops once it
    exceeds the worst (neither changes which candidates are kept)."""
    if _contains(cand_row, position):
        return
    worst = dist_row[dist_row.shape[0] - 1]
    if _lower_bound(query, residual, members, member_residuals, position, alpha) >= worst:
        return
    pr = position // wp
    d = _distance_below(x, qr, qc0, scaled, pr, (position - pr * wp) * channels, patch_size, patch_size * channels, worst)
    if d < worst:
        _insert_linked(cand_row, dist_row, link_row, position, d, 0)


@njit(inline="always")
def _try_slid(position, distance, links, cand_row, dist_row, link_row):
    """Keep a candidate (not in the list: the caller checked) whose full distance was slid from a
    neighbour's if it beats the worst of the k."""
    if distance < dist_row[dist_row.shape[0] - 1]:
        _insert_linked(cand_row, dist_row, link_row, position, distance, links)


@njit(inline="always")
def _score(
    full, query, residual, members, member_residuals, alpha, x, qr, qc0, scaled, wp, channels, patch_size, position, cand_row,
    dist_row, link_row,
):  # fmt: skip
    if full:
        _try_full(
            query, residual, members, member_residuals, alpha, x, qr, qc0, scaled, wp, channels, patch_size, position, cand_row,
            dist_row, link_row,
        )  # fmt: skip
    else:
        _try(query, members, alpha, position, cand_row, dist_row)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def random_field(num_queries, k, valid_positions, seed):
    """k distinct random candidate positions per query, drawn from ``valid_positions`` (all of them, in
    order, when k >= their number)."""
    num_positions = valid_positions.shape[0]
    cand = np.empty((num_queries, k), dtype=np.int64)
    for q in prange(num_queries):
        if k >= num_positions:
            for j in range(k):
                cand[q, j] = valid_positions[j] if j < num_positions else -1
            continue
        j = 0
        draw = 0
        while j < k:
            position = valid_positions[_random_below(seed, q, draw, num_positions)]
            draw += 1
            if not _contains(cand[q, :j], position):
                cand[q, j] = position
                j += 1
    return cand


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def rescore_projected(queries, members, alpha, cand, dist):
    """Subspace distances of every query's candidates at the current x_t and a_t, sorted ascending."""
    k = cand.shape[1]
    for q in prange(cand.shape[0]):
        for j in range(k):
            position = cand[q, j]
            dist[q, j] = np.inf if position < 0 else _projected_distance(queries[q], members, position, alpha)
        _sort_row(cand[q], dist[q])


@njit(inline="always")
def _sort_row(cand_row, dist_row):
    """Insertion sort of a query's k candidates by distance (stable; k is small)."""
    for j in range(1, cand_row.shape[0]):
        _insert(cand_row[: j + 1], dist_row[: j + 1], cand_row[j], dist_row[j])


@njit(parallel=True, cache=True)
def sort_by_distance(cand, dist):
    """Every query's candidates sorted by ascending distance, in place."""
    for q in prange(cand.shape[0]):
        _sort_row(cand[q], dist[q])


@njit(parallel=True, cache=True)
def regrid_field(cand, old_num_cols, near_rows, near_cols, row_shift, col_shift, hp, wp, seed, valid, valid_positions):
    """The candidates (n_old, k) of a field carried to a new query grid: new query (r, c) takes those of
    old query (near_rows[r], near_cols[c]) shifted by (row_shift[r], col_shift[c]) pixels (unshifted
    where the shift leaves the reference or lands on a position not ``valid``); a duplicate within a
    query's list is replaced by a random valid position. Positions are ``row * wp + col``."""
    k = cand.shape[1]
    num_cols = near_cols.shape[0]
    new = np.empty((near_rows.shape[0] * num_cols, k), dtype=np.int64)
    for r in prange(near_rows.shape[0]):
        for c in range(num_cols):
            q = r * num_cols + c
            old = near_rows[r] * old_num_cols + near_cols[c]
            draw = 0
            for j in range(k):
                p = cand[old, j]
                if p >= 0:
                    pr, pc = p // wp + row_shift[r], p % wp + col_shift[c]
                    if 0 <= pr < hp and 0 <= pc < wp and valid[pr * wp + pc]:
                        p = pr * wp + pc
                    while _contains(new[q, :j], p):  # rare: a shift clipped onto another candidate
                        p = valid_positions[_random_below(seed, q, draw, valid_positions.shape[0])]
                        draw += 1
                new[q, j] = p
    return new


@njit(inline="always")
def _column_distance(xt, qc, qr0, scaled_t, pc, pr0, column_length):
    """``||.||^2`` over one column (P pixels, C channels) of the query and reference patches, read
    from the transposed images (W, H * C), where a patch column is contiguous."""
    s0 = s1 = s2 = np.float32(0.0)
    x_col = xt[qc, qr0 : qr0 + column_length]
    y_col = scaled_t[pc, pr0 : pr0 + column_length]
    body = column_length - column_length % 3
    for t in range(0, body, 3):
        d0 = x_col[t] - y_col[t]
        d1 = x_col[t + 1] - y_col[t + 1]
        d2 = x_col[t + 2] - y_col[t + 2]
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
    for t in range(body, column_length):
        d0 = x_col[t] - y_col[t]
        s0 += d0 * d0
    return s0 + s1 + s2


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def exact_distances(
    x, scaled, xt, scaled_t, rows, cols, cand, projected, residuals, member_residuals, alpha, cutoff, patch_size, channels, wp,
    refresh,
):  # fmt: skip
    """Full fp32 distances ``||x_q - a y_p||^2`` of every query's candidates (inf for none).

    ``projected`` (n, k): each candidate's subspace distance; with the queries' and the reference
    patches' residual norms (``residuals``, ``member_residuals``: outside the subspace) it gives a
    lower bound of the distance (``_lower_bound``). A candidate that cannot slide (below) and whose
    bound exceeds the query's best distance so far by more than ``cutoff`` is not computed (inf): its
    softmax weight relative to the best is below exp(-cutoff / 2 s^2), which the caller sets to what
    it would drop anyway. ``xt``, ``scaled_t``: the two images transposed,
    (W, H * C).

    Coherence (issue 3 (a)): when the query ``s`` grid columns to the left (s pixels, s < P / 2: the
    query stride) holds the candidate s columns to the left, the two patch pairs share all but s
    columns, so the distance is the neighbour's minus its first s columns plus the s new last ones
    (2 s P C numbers instead of P^2 C). Such a chain is restarted with a full sum every ``refresh``
    slides, which bounds fp32 drift (tested to 1e-5 relative against full sums).
    """
    num_cols = cols.shape[0]
    num_rows = rows.shape[0]
    k = cand.shape[1]
    row_length = patch_size * channels
    dist = np.empty(cand.shape, dtype=np.float32)
    chain = np.zeros(cand.shape, dtype=np.int32)
    for r in prange(num_rows):
        qr = rows[r]
        for c in range(num_cols):
            q = r * num_cols + c
            qc0 = cols[c] * channels
            shift = cols[c] - cols[c - 1] if c > 0 else 0
            slides = 0 < shift and 2 * shift < patch_size
            best = np.float32(np.inf)
            for j in range(k):
                p = cand[q, j]
                if p < 0:
                    dist[q, j] = np.inf
                    continue
                pr = p // wp
                pc = p - pr * wp
                found = -1
                if slides and pc >= shift:
                    for i in range(k):
                        if cand[q - 1, i] == p - shift and dist[q - 1, i] < np.inf and chain[q - 1, i] < refresh:
                            found = i
                            break
                if found >= 0:
                    d = dist[q - 1, found]
                    for u in range(cols[c - 1], cols[c]):  # columns out, then in
                        d -= _column_distance(
                            xt, u, qr * channels, scaled_t, pc - shift + u - cols[c - 1], pr * channels, row_length
                        )
                    for u in range(cols[c - 1] + patch_size, cols[c] + patch_size):
                        d += _column_distance(
                            xt, u, qr * channels, scaled_t, pc - shift + u - cols[c - 1], pr * channels, row_length
                        )
                    d = max(d, np.float32(0.0))
                    chain[q, j] = chain[q - 1, found] + 1
                else:
                    gap = residuals[q] - alpha * member_residuals[p]
                    if projected[q, j] + gap * gap - best > cutoff:  # dropped either way
                        dist[q, j] = np.inf
                        chain[q, j] = 0
                        continue
                    # the whole sum (no early stop): the next query's candidate slides from it
                    d = _distance_below(x, qr, qc0, scaled, pr, pc * channels, patch_size, row_length, np.inf)
                    chain[q, j] = 0
                dist[q, j] = d
                best = min(best, d)
    return dist


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def propagate_and_search(
    queries, residuals, members, member_residuals, alpha, num_cols, cand, dist, row_step, col_step, hp, wp, band_rows, forward,
    seed, full, x, scaled, xt, scaled_t, rows, cols, channels, patch_size, refresh, shrink, valid,
):  # fmt: skip
    """One PatchMatch pass (Barnes et al. 2009) over the query grid in the principal subspace, in
    bands of ``band_rows`` grid rows run in parallel: each query tries its two already-visited
    neighbours' candidates shifted by the offset between the queries (left and above on a forward
    pass, right and below on a backward one), then random candidates around its best at radii
    divided by ``shrink`` (2: halving) from the whole image down to one pixel. A neighbour in another band is read from the
    candidates as they were before the pass, so the result does not depend on the order the bands
    run in. ``row_step`` / ``col_step`` (grid rows - 1, grid cols - 1): pixel offsets between
    consecutive grid rows / columns.

    ``full``: candidates are scored by their full distance ``||x_q - a y_p||^2`` (``x``, ``scaled`` =
    a * reference, (rows, width * C) layout; ``xt``, ``scaled_t`` the same transposed, (W, H * C)) instead
    of the subspace one, after a lower bound (``_lower_bound``, from the residual norms ``residuals`` and
    ``member_residuals``) rejected those that cannot be kept, and ``dist`` holds full distances (sorted ascending): the classic PatchMatch,
    exact nearest neighbours where it converges. A neighbour's candidate one pixel away is then slid
    from the neighbour's distance (the two patch pairs share all but one column or row: 2 P C numbers
    instead of P^2 C, as ``exact_distances`` does), a chain restarted with a full sum after ``refresh``
    slides to bound fp32 drift.

    Only positions whose ``valid`` flag (uint8, one per reference position) is set are ever tried: the
    patch set of an inpainting scale leaves out the patches that touch the region to fill."""
    num_rows = cand.shape[0] // num_cols
    k = cand.shape[1]
    before = cand.copy()
    links = np.zeros((cand.shape[0] if full else 1, k), dtype=np.int32)  # slides behind each full distance
    row_length = patch_size * channels
    num_bands = (num_rows + band_rows - 1) // band_rows
    step = 1 if forward else -1
    for band in prange(num_bands):
        first_row = band * band_rows
        last_row = min(num_rows, first_row + band_rows) - 1
        for n_r in range(last_row - first_row + 1):
            r = first_row + n_r if forward else last_row - n_r
            for n_c in range(num_cols):
                c = n_c if forward else num_cols - 1 - n_c
                q = r * num_cols + c
                query, cand_row, dist_row = queries[q], cand[q], dist[q]
                link_row = links[q] if full else links[0]
                qr, qc0 = rows[r], cols[c] * channels
                # the neighbour visited just before along the row, and the one in the previous row
                c_prev = c - step
                if 0 <= c_prev < num_cols:
                    dc = col_step[min(c, c_prev)] * step
                    qn = cols[c_prev]
                    for j in range(k):
                        p = cand[q - step, j]
                        if p < 0 or not 0 <= p % wp + dc < wp or not valid[p + dc]:
                            continue
                        if _contains(cand_row, p + dc):  # coherent fields: mostly there already
                            continue
                        if full and (dc == 1 or dc == -1) and dist[q - step, j] < np.inf and links[q - step, j] < refresh:
                            pr, pn = p // wp, p % wp
                            first, last = (0, patch_size) if dc == 1 else (patch_size - 1, -1)  # column out, column in
                            d = (
                                dist[q - step, j]
                                - _column_distance(xt, qn + first, qr * channels, scaled_t, pn + first, pr * channels, row_length)
                                + _column_distance(xt, qn + last, qr * channels, scaled_t, pn + last, pr * channels, row_length)
                            )
                            _try_slid(p + dc, max(d, np.float32(0.0)), links[q - step, j] + 1, cand_row, dist_row, link_row)
                        else:
                            _score(
                                full,
                                query,
                                residuals[q],
                                members,
                                member_residuals,
                                alpha,
                                x,
                                qr,
                                qc0,
                                scaled,
                                wp,
                                channels,
                                patch_size,
                                p + dc,
                                cand_row,
                                dist_row,
                                link_row,
                            )
                r_prev = r - step
                if 0 <= r_prev < num_rows:
                    dr = row_step[min(r, r_prev)] * step
                    in_band = first_row <= r_prev <= last_row
                    neighbour = r_prev * num_cols + c
                    qn = rows[r_prev]
                    for j in range(k):
                        p = cand[neighbour, j] if in_band else before[neighbour, j]
                        if p < 0 or not 0 <= p // wp + dr < hp or not valid[p + dr * wp]:
                            continue
                        if _contains(cand_row, p + dr * wp):
                            continue
                        if (
                            full
                            and in_band
                            and (dr == 1 or dr == -1)
                            and dist[neighbour, j] < np.inf
                            and links[neighbour, j] < refresh
                        ):
                            pr, pc0 = p // wp, (p % wp) * channels
                            first, last = (0, patch_size) if dr == 1 else (patch_size - 1, -1)  # row out, row in
                            d = (
                                dist[neighbour, j]
                                - _distance_below(x, qn + first, qc0, scaled, pr + first, pc0, 1, row_length, np.inf)
                                + _distance_below(x, qn + last, qc0, scaled, pr + last, pc0, 1, row_length, np.inf)
                            )
                            _try_slid(p + dr * wp, max(d, np.float32(0.0)), links[neighbour, j] + 1, cand_row, dist_row, link_row)
                        else:
                            _score(
                                full,
                                query,
                                residuals[q],
                                members,
                                member_residuals,
                                alpha,
                                x,
                                qr,
                                qc0,
                                scaled,
                                wp,
                                channels,
                                patch_size,
                                p + dr * wp,
                                cand_row,
                                dist_row,
                                link_row,
                            )
                # random search around the best candidate
                best = cand_row[0]
                br, bc = best // wp, best % wp
                radius = max(hp, wp)
                draw = 0
                while radius >= 1:
                    lo_r, hi_r = max(0, br - radius), min(hp - 1, br + radius)
                    lo_c, hi_c = max(0, bc - radius), min(wp - 1, bc + radius)
                    pr = lo_r + _random_below(seed, q, draw, hi_r - lo_r + 1)
                    pc = lo_c + _random_below(seed, q, draw + 1, hi_c - lo_c + 1)
                    draw += 2
                    radius //= shrink
                    if not valid[pr * wp + pc]:
                        continue
                    _score(
                        full,
                        query,
                        residuals[q],
                        members,
                        member_residuals,
                        alpha,
                        x,
                        qr,
                        qc0,
                        scaled,
                        wp,
                        channels,
                        patch_size,
                        pr * wp + pc,
                        cand_row,
                        dist_row,
                        link_row,
                    )


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def tail_lower_bounds(queries, residuals, members, member_residuals, alpha, samples, cand, num_positions):
    """For the m tail samples shared by the n queries: lower bounds (``_lower_bound``) of their distances
    (n, m), and the log importance weight of each (query, sample), log((M - k) / accepted), -inf where
    the sample is one of the query's k candidates (rejected: the accepted ones are uniform over the
    rest of the M positions)."""
    n, k = cand.shape
    m = samples.shape[0]
    bounds = np.empty((n, m), dtype=np.float32)
    log_share = np.empty((n, m), dtype=np.float32)
    for q in prange(n):
        accepted = 0
        for i in range(m):
            bounds[q, i] = _lower_bound(queries[q], residuals[q], members, member_residuals, samples[i], alpha)
            rejected = _contains(cand[q], samples[i])
            log_share[q, i] = -np.inf if rejected else 0.0
            accepted += 0 if rejected else 1
        share = np.float32(np.log((num_positions - k) / max(accepted, 1)))
        for i in range(m):
            log_share[q, i] += share
    return bounds, log_share


@njit(parallel=True, cache=True)
def residual_norms(squared_norms, projected):
    """||(I - P) v|| of vectors with squared norms ``squared_norms`` (n,) (float64) and projections
    ``projected`` (n, dims) on the orthonormal subspace P: float32 (n,)."""
    out = np.empty(projected.shape[0], dtype=np.float32)
    for q in prange(projected.shape[0]):
        inside = 0.0
        for u in range(projected.shape[1]):
            inside += np.float64(projected[q, u]) ** 2
        out[q] = np.sqrt(max(squared_norms[q] - inside, 0.0))
    return out


@njit(parallel=True, cache=True)
def best_and_spread(dist):
    """Each query's best distance (n,), and the smallest gap over the queries between a query's worst
    finite distance and its best."""
    best = np.empty(dist.shape[0], dtype=np.float32)
    gaps = np.empty(dist.shape[0], dtype=np.float32)
    for q in prange(dist.shape[0]):
        low, high = np.float32(np.inf), np.float32(-np.inf)
        for j in range(dist.shape[1]):
            d = dist[q, j]
            low = min(low, d)
            if d < np.inf:
                high = max(high, d)
        best[q] = low
        gaps[q] = high - low
    return best, gaps.min()


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def tail_distances(x, scaled, rows, cols, samples, bounds, limits, patch_size, channels, wp):
    """Full distances ``||x_q - a y_s||^2`` (n, m) of the queries to the tail samples where the lower bound
    ``bounds`` is under the query's ``limits`` (and the distance too); inf elsewhere."""
    num_cols = cols.shape[0]
    row_length = patch_size * channels
    dist = np.empty(bounds.shape, dtype=np.float32)
    for r in prange(rows.shape[0]):
        for c in range(num_cols):
            q = r * num_cols + c
            for i in range(samples.shape[0]):
                dist[q, i] = np.inf
                if bounds[q, i] < limits[q]:
                    pr = samples[i] // wp
                    pc0 = (samples[i] - pr * wp) * channels
                    dist[q, i] = _distance_below(
                        x, rows[r], cols[c] * channels, scaled, pr, pc0, patch_size, row_length, limits[q]
                    )
    return dist


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def softmax_weights(cand, dist, samples, tail_dist, tail_log_share, inverse_two_var, min_weight, pack_tail, tail_weights):
    """Eq. 2's weights per query: the softmax of ``-dist / 2 s^2`` over its k candidates (``cand``,
    ``dist`` (n, k)) and the m tail samples (``samples`` (m,), ``tail_dist`` (n, m), with their log
    importance weights ``tail_log_share``; m = 0 for none); weights under ``min_weight`` dropped and
    the rest renormalised. Returns the kept (position, weight) pairs packed at the start of each row,
    (n, slots) each, and their number per query (n,). ``pack_tail``: the kept tail samples are packed
    with the candidates (slots = k + m); otherwise slots = k and the tail's weights go to
    ``tail_weights`` (n, m), for the transposed convolutions."""
    n, k = dist.shape
    m = samples.shape[0]
    slots = k + m if pack_tail else k
    positions = np.empty((n, slots), dtype=np.int64)
    weights = np.empty((n, slots), dtype=np.float32)
    counts = np.empty(n, dtype=np.int64)
    block = 256  # queries per task: one scratch row each
    for b in prange((n + block - 1) // block):
        values = np.empty(k + m, dtype=np.float32)
        for q in range(b * block, min(n, (b + 1) * block)):
            top = np.float32(-np.inf)
            for j in range(k):
                values[j] = -dist[q, j] * inverse_two_var
                top = max(top, values[j])
            for i in range(m):
                values[k + i] = -tail_dist[q, i] * inverse_two_var + tail_log_share[q, i]
                top = max(top, values[k + i])
            total = np.float32(0.0)
            for j in range(k + m):  # a weight under e^-40 of the best's is dropped either way (min_weight > 1e-17)
                values[j] = np.exp(values[j] - top) if values[j] - top > -40.0 else 0.0
                total += values[j]
            kept = np.float32(0.0)
            for j in range(k + m):
                values[j] /= total
                if values[j] < min_weight:
                    values[j] = 0.0
                kept += values[j]
            count = 0
            for j in range(k + m):
                w = values[j] / kept
                if j >= k and not pack_tail:
                    tail_weights[q, j - k] = w
                elif w > 0.0:
                    positions[q, count] = cand[q, j] if j < k else samples[j - k]
                    weights[q, count] = w
                    count += 1
            counts[q] = count
    return positions, weights, counts


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def fold_weighted(source, source_wp, positions, weights, counts, rows, cols, row_start, row_stop, window, window_row, out):
    """Algorithm 1's numerator, gathered per output row (no write conflicts between threads):
    ``out[y, x] += g(y - r) g(x - c) sum_j w_qj source_{p_qj}[y - r, x - c]`` over the query patches
    (r, c) covering the pixel and the first ``counts[q]`` (position, weight) pairs of each. ``window``
    is the 1-D Gaussian window g (P,), ``window_row`` g repeated per channel (P * C,); grid rows
    row_start[y] .. row_stop[y] - 1 cover image row y."""
    patch_size = window.shape[0]
    channels = window_row.shape[0] // patch_size
    row_length = window_row.shape[0]
    num_cols = cols.shape[0]
    for y in prange(out.shape[0]):
        # local accumulators: 4x faster than adding into ``out`` (which the compiler cannot prove
        # distinct from ``source``)
        row_sum = np.zeros(out.shape[1], dtype=np.float32)
        patch_row = np.empty(row_length, dtype=np.float32)
        for r in range(row_start[y], row_stop[y]):
            i = y - rows[r]
            g = window[i]
            for c in range(num_cols):
                q = r * num_cols + c
                qc0 = cols[c] * channels
                if counts[q] == 1:  # one patch (the sharp steps): straight into the row
                    p = positions[q, 0]
                    pr = p // source_wp
                    pc0 = (p - pr * source_wp) * channels
                    src = source[pr + i, pc0 : pc0 + row_length]
                    gw = g * weights[q, 0]
                    for t in range(row_length):
                        row_sum[qc0 + t] += gw * window_row[t] * src[t]
                    continue
                patch_row[:] = 0.0
                for j in range(counts[q]):
                    w = weights[q, j]
                    p = positions[q, j]
                    pr = p // source_wp
                    pc0 = (p - pr * source_wp) * channels
                    src = source[pr + i, pc0 : pc0 + row_length]
                    for t in range(row_length):
                        patch_row[t] += w * src[t]
                for t in range(row_length):
                    row_sum[qc0 + t] += g * window_row[t] * patch_row[t]
        out[y] += row_sum


def cached_on_disk() -> bool:
    """Whether numba has every cached (``cache=True``) kernel of this module on disk, for this Python and
    numba: its index files exist (numba's FunctionCache; True where that cannot be told)."""
    caches = [getattr(value, "_cache", None) for value in globals().values() if hasattr(value, "py_func")]
    try:
        return all(Path(cache._cache_file._index_path).exists() for cache in caches if hasattr(cache, "_cache_file"))
    except AttributeError:
        return True
