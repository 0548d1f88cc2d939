"""sinfree: training-free single-image diffusion with a closed-form patch denoiser.

Qiu, Kutulakos, Lindell, "Efficient and Training-Free Single-Image Diffusion Models", CVPR 2026.
"""

import os

# OpenMP threads waiting for work sleep instead of spinning (libgomp spins first by default). On shared
# cores the spinning threads take the CPU from the working ones: with two other busy processes on the 2
# cores, a Table-1 sample ran 1.8x and a NIfTI volume's enhancement 1.65x faster sleeping; on idle cores
# the sample is unchanged and the volume (many small parallel regions) 1.85x slower, 1.3 s against 0.7 s
# (benchmarks/bench_threads.py, results_threads.txt). The shared case costs more and is the common one on a
# shared machine, so sleeping is the default. libgomp reads it when torch loads it: it acts when sinfree
# is imported before torch (the CLI, scripts that import sinfree first); the user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .backends import BACKENDS, denoise_patches, make_backend
from .errors import InputImageError, MemoryBudgetError, OutputError, SinfreeError
from .generate import PRESETS, GenerationResult, GenerationSettings, Progress, generate, generate_samples, preset_settings
from .image_denoiser import ImageDenoiser
from .io.images import load_image, save_png
from .sampler import ddim_eta_step, sample_scale, two_scale_blend
from .schedule import flow_schedule

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "PRESETS",
    "GenerationResult",
    "GenerationSettings",
    "ImageDenoiser",
    "InputImageError",
    "MemoryBudgetError",
    "OutputError",
    "Progress",
    "SinfreeError",
    "ddim_eta_step",
    "denoise_patches",
    "flow_schedule",
    "generate",
    "preset_settings",
    "generate_samples",
    "load_image",
    "make_backend",
    "sample_scale",
    "save_png",
    "two_scale_blend",
]
