"""Composition and seams of a sample against its reference.

``profile_distances``: does the sample keep the input's layout (how much sky, ground, water, and
where)? The mean colour of every row (and column) of the sample against the input's.

``seam_ratio``: are the boundaries between copied regions visible? Every sample pixel is traced to
the reference pixel at the centre of its nearest reference patch; connected pixels whose sources lie
at one offset form a coherently copied region. Between regions lie the seams (and the band of
patches straddling a seam, which match no copy). A copy continued across a pair of neighbours would
carry the reference's own gradient there; the figure is how much more gradient energy the sample
has than that between regions, relative to the same ratio inside them (about 1 or below: seams as
smooth as the copied content; above 1: visible seams).

Images are float tensors (C, H, W) in [-1, 1], as ``sinfree.load_image`` gives them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..extras import require
from ..patches import all_patches

SEAM_PATCH = 7
SEAM_DIMS = 24  # principal components the source search runs in
SEAM_PROBES = 8  # inverted lists probed per patch
SEAM_MIN_AREA = 64  # pixels of one copy offset that make a coherently copied region


def _profile(image: torch.Tensor, dim: int, length: int) -> torch.Tensor:
    """Mean colour (C, length) of each row (``dim=2``: averaged over columns) or column (``dim=1``),
    in [0, 1], linearly resampled to ``length`` entries."""
    profile = ((image.to(torch.float32) + 1) / 2).mean(dim=dim)
    if profile.shape[-1] != length:
        profile = F.interpolate(profile[None], size=length, mode="linear", align_corners=False)[0]
    return profile


def profile_distances(sample: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(rows, columns): mean absolute difference between the row-mean (column-mean) colours of the
    sample and of the reference, images in [0, 1]; the reference's profile is resampled to the
    sample's length when the sizes differ. 0 for the same composition."""
    height, width = sample.shape[-2:]
    rows = (_profile(sample, 2, height) - _profile(reference, 2, height)).abs().mean().item()
    cols = (_profile(sample, 1, width) - _profile(reference, 1, width)).abs().mean().item()
    return rows, cols


def layout_distance(sample: torch.Tensor, reference: torch.Tensor) -> float:
    """The mean of the row and column profile distances (``profile_distances``)."""
    rows, cols = profile_distances(sample, reference)
    return (rows + cols) / 2


def source_map(
    sample: torch.Tensor, reference: torch.Tensor, patch_size: int = SEAM_PATCH, dims: int = SEAM_DIMS
) -> torch.Tensor:
    """For each patch centre of ``sample`` (the (H - P + 1) x (W - P + 1) valid grid), the index of its
    nearest reference patch (flat, row-major), as (H', W') int64. The search runs in the reference
    patches' top ``dims`` principal components (all of them when ``dims`` >= C P^2), where a 7 x 7 patch
    keeps most of its energy, through an inverted file of sqrt(M) lists probing SEAM_PROBES: a copied
    patch lies in its own list, so every copy is found (the approximation only touches patches that
    match nothing exactly), at a fiftieth of an exact search's cost."""
    faiss = require("faiss", "eval", "the seam ratio (sinfree eval)")
    keys = all_patches(reference.to(torch.float32), patch_size)
    queries = all_patches(sample.to(torch.float32), patch_size)
    mean = keys.mean(dim=0)
    if dims < keys.shape[1]:
        basis = torch.linalg.svd(keys[:: max(1, len(keys) // 8192)] - mean, full_matrices=False).Vh[:dims].T
        keys, queries = (keys - mean) @ basis, (queries - mean) @ basis
    keys, queries = keys.contiguous().numpy(), queries.contiguous().numpy()
    num_lists = int(math.sqrt(len(keys)))
    if num_lists < 16:
        index = faiss.IndexFlatL2(keys.shape[1])  # exact
    else:  # an inverted file: a copied patch falls in its own list, found whatever the lists probed
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(keys.shape[1]), keys.shape[1], num_lists)
        index.train(keys)
        index.nprobe = SEAM_PROBES
    index.add(keys)
    best = torch.from_numpy(index.search(queries, 1)[1][:, 0].astype("int64"))
    return best.reshape(sample.shape[-2] - patch_size + 1, sample.shape[-1] - patch_size + 1)


def coherent_regions(sources: torch.Tensor, ref_width: int, min_area: int) -> torch.Tensor:
    """Labels (H', W') of the connected regions whose pixels share one copy offset (source - position),
    -1 where the region is smaller than ``min_area`` pixels (no coherent copy)."""
    label = require("skimage.measure", "eval", "the seam ratio (sinfree eval)").label

    rows, cols = sources.shape
    offset_y = sources // ref_width - torch.arange(rows)[:, None]
    offset_x = sources % ref_width - torch.arange(cols)[None, :]
    offsets = (offset_y + rows + ref_width) * (4 * (cols + ref_width)) + (offset_x + cols + ref_width)  # one id per offset
    labels = torch.from_numpy(label(offsets.numpy(), background=-1, connectivity=1).astype("int64"))
    areas = torch.bincount(labels.flatten())
    return torch.where(areas[labels] >= min_area, labels, torch.full_like(labels, -1))


def seam_ratio(
    sample: torch.Tensor, reference: torch.Tensor, patch_size: int = SEAM_PATCH, min_area: int = SEAM_MIN_AREA
) -> float:
    """Gradient energy between coherently copied regions against their interior (module docstring):
    (sum_b |grad s|^2 / sum_b |grad r at the sources|^2) over the neighbour pairs b not inside one
    region (the seams, and the bands of patches straddling them, which match no copy), divided by
    the same ratio over pairs inside one region; horizontal and vertical pairs of patch centres, a
    region coherent from ``min_area`` pixels on. NaN without such pairs (no coherent copy at all)."""
    sources = source_map(sample, reference, patch_size)
    ref_width = reference.shape[-1] - patch_size + 1
    regions = coherent_regions(sources, ref_width, min_area)
    src_y, src_x = sources // ref_width, sources % ref_width
    rows, cols = sources.shape
    half = patch_size // 2
    centre = sample[:, half : half + rows, half : half + cols].to(torch.float32)
    ref = reference.to(torch.float32)
    sums = torch.zeros(2, 2, dtype=torch.float64)  # [boundary, interior] x [sample, reference]
    for dy, dx in ((0, 1), (1, 0)):
        first, second = regions[: rows - dy, : cols - dx], regions[dy:, dx:]
        interior = (first >= 0) & (first == second)
        a_y, a_x = src_y[: rows - dy, : cols - dx], src_x[: rows - dy, : cols - dx]
        sample_step = (centre[:, dy:, dx:] - centre[:, : rows - dy, : cols - dx]).square().sum(dim=0)
        # the reference's step from the first pixel's source to its neighbour: what a continued copy carries
        next_y = (a_y + half + dy).clamp(max=ref.shape[-2] - 1)
        next_x = (a_x + half + dx).clamp(max=ref.shape[-1] - 1)
        reference_step = (ref[:, next_y, next_x] - ref[:, a_y + half, a_x + half]).square().sum(dim=0)
        for index, where in enumerate((~interior, interior)):
            sums[index, 0] += sample_step[where].sum().double()
            sums[index, 1] += reference_step[where].sum().double()
    if (sums == 0).any():
        return float("nan")
    boundary_ratio, interior_ratio = sums[0, 0] / sums[0, 1], sums[1, 0] / sums[1, 1]
    return float(boundary_ratio / interior_ratio)
