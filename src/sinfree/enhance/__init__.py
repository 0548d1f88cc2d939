"""Training-free enhancement (DESIGN.md §2): the image's own multi-scale patches as the prior (Eq. 2),
data consistency for the degradation as in DiffPIR / DDRM. ``enhance(data, task, **params)``."""

from __future__ import annotations

from .noise import NOISE_MODELS
from .restore import TASKS, EnhanceResult, enhance

__all__ = ["NOISE_MODELS", "TASKS", "EnhanceResult", "enhance"]
