"""Training-free enhancement (DESIGN.md §2): the image's own multi-scale patches as the prior (Eq. 2),
data consistency for the degradation as in DiffPIR / DDRM. ``enhance(data, task, **params)``, or one function
per task (``tasks.py``): ``denoise``, ``deblur``, ``super_resolve``, ``inpaint``, ``correct_illumination``.

Modules: ``operators.py`` the degradations (forward models and their data steps), ``prior.py`` (Eq. 2) and
``groups.py`` (NL-Bayes) the patch priors, ``diffpir.py`` and ``twostage.py`` the solvers, ``problems.py`` each
task as operator + start + patch set, ``noise.py`` the noise models, ``restore.py`` the ``enhance`` entry point."""

from __future__ import annotations

from .noise import NOISE_MODELS
from .restore import TASKS, EnhanceResult, enhance
from .tasks import correct_illumination, deblur, denoise, inpaint, super_resolve

__all__ = [
    "NOISE_MODELS",
    "TASKS",
    "EnhanceResult",
    "correct_illumination",
    "deblur",
    "denoise",
    "enhance",
    "inpaint",
    "super_resolve",
]
