"""Seamless blending of a filled region into its surroundings (Pérez, Gangnet, Blake, "Poisson Image
Editing", SIGGRAPH 2003).

The fill keeps its own gradients inside the region, and across the region's border it is asked to meet
the known pixels with no step: the least-squares solution of

    minimise  sum over neighbour pairs (p, q) inside the region of ((f_p - f_q) - (r_p - r_q))^2
            + sum over pairs with p inside, q known of (f_p - known_q)^2

(``r`` the fill as sampled), that is the discrete Poisson equation ``deg_p f_p - sum_{q in region} f_q =
sum_{q in region} (r_p - r_q) + sum_{q known} known_q``, solved by conjugate gradients on the region's
bounding box. The correction f - r is harmonic inside the region: it removes a difference of tone between
the fill and its ring (the low frequencies), not the fill's texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _neighbour_sum(values: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Sum over each pixel's 4 neighbours within the image of ``values`` where ``inside`` (zero elsewhere)."""
    masked = F.pad((values * inside)[None], (1, 1, 1, 1))[0]
    return masked[:, :-2, 1:-1] + masked[:, 2:, 1:-1] + masked[:, 1:-1, :-2] + masked[:, 1:-1, 2:]


def poisson_blend(fill: torch.Tensor, unknown: torch.Tensor, iterations: int = 2000, tolerance: float = 1e-6) -> torch.Tensor:
    """``fill`` (C, H, W), whose pixels outside ``unknown`` (H, W) are the known image, with the region
    re-solved so that it meets its surroundings seamlessly (the module's equation). The known pixels are
    returned unchanged."""
    if not unknown.any() or unknown.all():
        return fill
    rows, cols = torch.nonzero(unknown.any(dim=1)).flatten(), torch.nonzero(unknown.any(dim=0)).flatten()
    top, bottom = max(0, int(rows[0]) - 1), min(unknown.shape[0], int(rows[-1]) + 2)
    left, right = max(0, int(cols[0]) - 1), min(unknown.shape[1], int(cols[-1]) + 2)
    box = fill[:, top:bottom, left:right].to(torch.float64)  # the region and its known ring (or the image's edge)
    inside = unknown[top:bottom, left:right].to(torch.float64)[None]
    ones = torch.ones_like(inside)
    degree = _neighbour_sum(ones, ones)  # a region pixel's neighbours all lie in the box
    # the fill's own differences to its region neighbours, plus the known neighbours' values
    rhs = inside * (_neighbour_sum(ones, inside) * box - _neighbour_sum(box, inside) + _neighbour_sum(box, 1 - inside))

    def apply(f: torch.Tensor) -> torch.Tensor:
        return inside * (degree * f - _neighbour_sum(f, inside))

    solution = box * inside
    residual = rhs - apply(solution)
    direction = residual.clone()
    energy = (residual * residual).sum()
    start = energy.sqrt()
    for _ in range(iterations):
        if energy.sqrt() <= tolerance * max(float(start), 1e-30):
            break
        applied = apply(direction)
        step = energy / (direction * applied).sum()
        solution = solution + step * direction
        residual = residual - step * applied
        new_energy = (residual * residual).sum()
        direction = residual + (new_energy / energy) * direction
        energy = new_energy
    out = fill.clone()
    region = unknown[top:bottom, left:right]
    out[:, top:bottom, left:right] = torch.where(region, solution.to(fill.dtype), fill[:, top:bottom, left:right])
    return out
