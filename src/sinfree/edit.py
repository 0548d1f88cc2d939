"""The hooks through which the editing applications (``sinfree.editing``) change the coarse-to-fine sampler.

Each application is a small variation of the one coarse-to-fine sampler: which image's patches
the denoiser uses at a scale, where a scale starts (noise, a fixed image, an inverted one) and how
many steps it runs, and a wrapper around the denoiser (a constraint on xhat0, a blend over shifts).
``Edit`` itself is plain generation; each application overrides what it changes.
"""

from __future__ import annotations

import torch

from .schedule import FlowSchedule


class Edit:
    """Plain unconditional generation: every hook is the identity."""

    periodic = False  # True: the image wraps around (the sampler's blend resamples circularly; a latent decodes periodically)
    works_in_latent = True  # False: the edit needs pixels (masks, CLIP): refused with a latent space
    runs_on_gpu = True  # False: the edit's own tensors stay on the CPU; ``auto`` then runs it there, ``cuda`` is refused
    # True: the composition levers act on the coarsest scale (sinfree.composition: layout guidance towards the
    # input's row and column colours; with settings.variation < 1 the ``noise`` passed to ``start`` is the input's
    # coarsest level noised). False for edits that choose their own start (retargeting, inversion, inpainting)
    # or wrap around (tiles: the input is not periodic)
    keeps_input_layout = True
    # How the canvas's (rows, columns) fold for an out-of-core run (sinfree.large.tiled): "none", "wrap" (periodic)
    # or "mirror" (the second half is the first's mirror image); None: the edit does not run out of core
    canvas_folds: tuple[str, str] | None = ("none", "none")

    def prepare(self, num_scales: int) -> None:
        """Called once before sampling, with the run's number of scales."""

    def patch_image(self, scale: int, level: torch.Tensor) -> torch.Tensor:
        """The image (C, H, W) whose patches the denoiser of ``scale`` uses (default: the reference's level)."""
        return level

    def make_denoiser(self, scale: int, patch_image: torch.Tensor, settings, canvas_shape: tuple[int, int]):
        """The denoiser of ``scale`` when the edit builds its own (a masked patch set), else None: the
        sampler then builds the settings' backend over ``patch_image``."""
        return None

    def wrap(self, denoiser, scale: int):
        """The denoiser the sampler calls at ``scale`` (default: ``denoiser`` itself)."""
        return denoiser

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        """(x_start, start_step) of a scale whose reference level is ``level``: pure noise and all T
        steps by default; start_step 0 keeps x_start as the scale's result without denoising. ``coarse``
        is the sample's finished coarser scale (None on the coarsest)."""
        return noise, schedule.num_steps

    def finish(self, image: torch.Tensor) -> torch.Tensor:
        """A sample's finished canvas (C, H, W) after its finest scale, with the edit's last touch (default: as is).
        In a latent space this is the latent, before decoding (``decoded`` sees the pixels); edits that need
        pixels set ``works_in_latent = False``."""
        return image

    def decoded(self, image: torch.Tensor) -> torch.Tensor:
        """A sample (C, H, W) decoded from a latent space, with what decoding loses re-imposed (default: as is)."""
        return image

    def describe(self) -> dict:
        """What the edit did, recorded in the output file's settings."""
        return {"name": type(self).__name__}
