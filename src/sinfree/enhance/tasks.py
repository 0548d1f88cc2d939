"""One function per task, in the style of ``skimage.restoration``: thin wrappers over ``enhance`` (``restore.py``),
each returning its ``EnhanceResult`` (``.mean`` the restored array in the input's units, ``.std`` the per-pixel
uncertainty with ``samples`` > 1, ``.settings`` everything used).

Every function takes the image ((H, W), (H, W, C) colour or (D, H, W) volume, physical units) and its task's
own keyword-only options; ``**options`` are ``enhance``'s shared ones (``EXPERT``: samples, seed, method,
backend, steps, patch_size, ...). Options of another task are refused with a TypeError, as Python refuses
an unknown keyword.
"""

from __future__ import annotations

import numpy as np

from .restore import EnhanceResult, enhance

# enhance()'s options shared by every task; the task-specific ones are each function's named keywords
EXPERT = frozenset(
    {
        "samples", "seed", "steps", "patch_size", "method", "backend", "eta", "lam", "start", "first_level",
        "num_levels", "window", "colour", "max_memory_bytes", "progress", "device",
    }
)  # fmt: skip


def denoise(
    image: np.ndarray, *, sigma: float | str = "auto", noise: str = "gaussian", gain: float = 1.0, **options
) -> EnhanceResult:
    """Remove noise: additive Gaussian (``sigma`` its std in the image's units, or "auto": wavelet MAD), Poisson
    (counts = image / ``gain``; Anscombe), Rician (MRI magnitude; squared-magnitude bias removal) or speckle
    (multiplicative; log domain), per ``noise``. Two-stage by default: the Eq. 2 self-prior pilot, then NL-Bayes
    passes over groups of similar patches (Lebrun, Buades and Morel 2013)."""
    return _run("denoise", denoise, image, {"sigma": sigma, "noise": noise, "gain": gain}, options)


def deblur(image: np.ndarray, *, blur: float | str = "auto", sigma: float | str = "auto", **options) -> EnhanceResult:
    """Undo a Gaussian blur of width ``blur`` px ("auto": fitted to the image's power spectrum) with noise of std
    ``sigma``: plug-and-play splitting (DPIR, Zhang et al. 2021) between the exact FFT data step and the patch
    prior."""
    return _run("deblur", deblur, image, {"blur": blur, "sigma": sigma}, options)


def super_resolve(image: np.ndarray, *, scale: int = 2, sigma: float | str = "auto", **options) -> EnhanceResult:
    """Upscale by the integer ``scale`` beyond bicubic: the image's patches recur across scales (Glasner, Bagon and
    Irani 2009), the data step back-projects onto the antialiased bicubic downsampling (Irani and Peleg 1991).
    ``sigma``: the noise std of the input (0 for clean inputs)."""
    return _run("superres", super_resolve, image, {"scale": scale, "sigma": sigma}, options)


def inpaint(image: np.ndarray, mask: np.ndarray, *, sigma: float | str = "auto", **options) -> EnhanceResult:
    """Fill the pixels where ``mask`` (H, W) is nonzero (True: missing) from the image's own patches, starting from
    the biharmonic fill; the known pixels are returned exactly. A mask marking no pixel or every pixel is refused."""
    return _run("inpaint", inpaint, image, {"mask": mask, "sigma": sigma}, options)


def correct_illumination(image: np.ndarray, *, field_degree: int = 2, sigma: float | str = "auto", **options) -> EnhanceResult:
    """Remove a smooth multiplicative field and an offset, ``y = f x + M`` (UniMIE's model; ``f`` a 2-D Legendre
    polynomial of degree ``field_degree`` in the log domain, started by a retinex fit, Land and McCann 1971)."""
    return _run("illumination", correct_illumination, image, {"field_degree": field_degree, "sigma": sigma}, options)


FUNCTIONS = {
    "denoise": denoise,
    "deblur": deblur,
    "superres": super_resolve,
    "inpaint": inpaint,
    "illumination": correct_illumination,
}  # one per enhance.TASKS


def _run(task: str, function, image: np.ndarray, own: dict, options: dict) -> EnhanceResult:
    unknown = sorted(set(options) - EXPERT)
    if unknown:
        raise TypeError(
            f"{function.__name__}() got unexpected keyword argument(s) {', '.join(unknown)};"
            f" its options: {', '.join(own)} and {', '.join(sorted(EXPERT))}"
        )
    return enhance(image, task, **own, **options)
