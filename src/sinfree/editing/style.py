"""CLIP text-guided style transfer (DESIGN.md §1, "Applications").

Single scale, P = 7, T = 200: the content image is DDIM-inverted (eta = 0) with its own denoiser to
the step whose noise level is nearest ``level`` (0.3), then sampled back while every denoiser
output xhat0_t is replaced by a CLIP-guided estimate (t counts down from the start step):

    xbar_t   = (1 - lambda) xhat0'_{t+1} + lambda xhat0_t          (first step: xbar = xhat0_t)
    g        = grad_xbar cos(E_text(prompt), mean_v unit(E_img(view_v(xbar))))
    g~       = clamp(g, -tau, tau),  tau = the ``quantile`` (0.98) quantile of |g| over all pixels
    gamma_t  = gamma * s_t / s_start                               (gamma at the first step, -> 0 at the last)
    xhat0'_t = xbar_t + gamma_t * r * (||xbar_t|| / ||g~||) * g~   (r = ``step_ratio``, 0.1)

so each step moves xbar by exactly gamma_t * r of its own norm, along the clipped CLIP gradient.
lambda = 0.1 and gamma = 1 are the paper's; tau, r and the gamma_t schedule are this module's
choices (the paper says only "thresholded" and "norm ratio"). The views are view 0 = the centre
square crop (CLIP's own preprocessing) and views 1.. = random square crops of 60-100 % of the short
side with a random horizontal flip, all resized to the model's image size and normalised with
CLIP's mean and std, in plain torch. CLIP is ``transformers.CLIPModel`` loaded from local files only.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..edit import Edit
from ..errors import MissingExtraError, MissingModelError
from ..extras import require
from ..schedule import FlowSchedule
from .inversion import ddim_invert, nearest_step

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIX = 0.1  # lambda of DESIGN.md
MIN_CROP = 0.6  # random views: square crops of MIN_CROP..1 of the short side


# --- loading CLIP -------------------------------------------------------------------------------------------------


@dataclass
class ClipGuide:
    """A frozen CLIP model and its tokenizer: text and image embeddings, image preprocessing in plain torch."""

    model: object  # transformers.CLIPModel
    tokenizer: object  # transformers.CLIPTokenizer
    source: str

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def encode_text(self, prompt: str) -> torch.Tensor:
        """Unit text embedding (E,) of ``prompt``, truncated to the model's context length."""
        length = int(self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer([prompt], padding=True, truncation=True, max_length=length, return_tensors="pt")
        with torch.no_grad():
            pooled = self.model.text_model(
                input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask")
            ).pooler_output
            return F.normalize(self.model.text_projection(pooled)[0], dim=-1)

    def encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings (N, E) of views (N, 3, S, S) in [0, 1] (differentiable)."""
        mean = torch.tensor(CLIP_MEAN, dtype=views.dtype).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=views.dtype).view(1, 3, 1, 1)
        pooled = self.model.vision_model(pixel_values=(views - mean) / std).pooler_output
        return F.normalize(self.model.visual_projection(pooled), dim=-1)


def missing_clip_message(path: str | os.PathLike | None, reason: str = "") -> str:
    """One line: what is missing, what to download and where to put it."""
    why = f" ({reason})" if reason else ""
    if path is not None:
        return (
            f"no CLIP model in {path}{why}: download it with `hf download {DEFAULT_CLIP} --local-dir {path}` "
            "on a machine with internet access, then pass that folder as the CLIP path (--clip DIR, or clip=DIR in Python)"
        )
    cache = hf_cache_dir()
    return (
        f"CLIP ViT-B/32 ({DEFAULT_CLIP}) is not in the Hugging Face cache ({cache}){why}: download it with "
        f"`hf download {DEFAULT_CLIP}` (into that cache), or with `--local-dir DIR` and pass that folder (--clip DIR)"
    )


def hf_cache_dir() -> str:
    try:
        return str(require("huggingface_hub.constants", "style", "sinfree style").HF_HUB_CACHE)
    except MissingExtraError:  # the hint still names the default cache
        return str(Path.home() / ".cache" / "huggingface" / "hub")


def load_clip(path: str | os.PathLike | None = None) -> ClipGuide:
    """CLIP from a local folder ``path``, or from the user's Hugging Face cache for ViT-B/32; never downloads.

    Raises MissingModelError (one line: what to download, where) when the files are not there, and
    MissingExtraError without the ``style`` extra (transformers).
    """
    transformers = require("transformers", "style", "CLIP guidance (sinfree style)")
    CLIPModel, CLIPTokenizer = transformers.CLIPModel, transformers.CLIPTokenizer
    if path is not None and not Path(path).is_dir():
        raise MissingModelError(missing_clip_message(path, "not a folder"))
    source = str(path) if path is not None else DEFAULT_CLIP
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the CLI's stderr
    try:
        model = CLIPModel.from_pretrained(source, local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        raise MissingModelError(missing_clip_message(path, _first_line(error) if path is not None else "")) from None
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()
    model.eval().requires_grad_(False)
    return ClipGuide(model=model.float(), tokenizer=tokenizer, source=source)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0][:200] if lines else type(error).__name__).rstrip(".")


# --- views and the guidance step -----------------------------------------------------------------------------------


def to_rgb01(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) in [-1, 1] -> (3, H, W) in [0, 1]: gray (and gray + alpha) repeated, alpha dropped."""
    rgb = image[:3] if image.shape[0] >= 3 else image[:1].expand(3, -1, -1)
    return (rgb + 1.0) / 2.0


def crop_resize(image: torch.Tensor, top: int, left: int, side: int, size: int, flip: bool = False) -> torch.Tensor:
    """The square ``side`` crop at (top, left) of (3, H, W), bilinearly resized (antialiased) to (3, size, size)."""
    crop = image[:, top : top + side, left : left + side]
    if flip:
        crop = crop.flip(-1)
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def centre_view(image: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's preprocessing: the centre square crop of the short side, resized to ``size``."""
    height, width = image.shape[-2:]
    side = min(height, width)
    return crop_resize(image, (height - side) // 2, (width - side) // 2, side, size)


def augmented_views(image: torch.Tensor, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, size, size): the centre view, then random square crops (MIN_CROP..1 of the short side,
    uniform position) with a random horizontal flip; ``image`` is (3, H, W) in [0, 1]."""
    height, width = image.shape[-2:]
    short = min(height, width)
    views = [centre_view(image, size)]
    for _ in range(count - 1):
        fraction, flip = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        side = max(1, round(short * (MIN_CROP + (1.0 - MIN_CROP) * fraction)))
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        views.append(crop_resize(image, top, left, side, size, flip=flip < 0.5))
    return torch.stack(views)


def clip_similarity(
    guide: ClipGuide, image: torch.Tensor, text: torch.Tensor, views: int, generator: torch.Generator
) -> torch.Tensor:
    """cos(text, mean over ``views`` augmented views of the unit image embeddings) of ``image`` (C, H, W) in [-1, 1]."""
    batch = augmented_views(to_rgb01(image), views, guide.image_size, generator)
    return F.cosine_similarity(guide.encode_views(batch).mean(0), text, dim=0)


def clip_gradient(
    guide: ClipGuide, image: torch.Tensor, text: torch.Tensor, views: int, generator: torch.Generator
) -> tuple[float, torch.Tensor]:
    """(similarity, its gradient with respect to ``image``), computed on the CLIP model's device."""
    device = next(guide.model.parameters()).device
    image = image.detach().to(device=device, dtype=torch.float32).requires_grad_(True)
    with torch.enable_grad():
        similarity = clip_similarity(guide, image, text, views, generator)
        (gradient,) = torch.autograd.grad(similarity, image)
    return similarity.item(), gradient


def threshold_gradient(gradient: torch.Tensor, quantile: float) -> torch.Tensor:
    """The gradient clipped elementwise at +-tau, tau = the ``quantile`` quantile of its magnitudes (1: no clipping)."""
    magnitude = gradient.abs().flatten()
    k = min(magnitude.numel(), max(1, math.ceil(quantile * magnitude.numel())))
    tau = magnitude.kthvalue(k).values
    return gradient.clamp(-tau, tau)


def guidance_step(xbar: torch.Tensor, gradient: torch.Tensor, gamma_t: float, step_ratio: float, quantile: float) -> torch.Tensor:
    """``gamma_t * r * (||xbar|| / ||g~||) * g~``: a step of exactly gamma_t * r times xbar's norm along g~."""
    clipped = threshold_gradient(gradient, quantile)
    norm = clipped.norm()
    if norm == 0:
        return torch.zeros_like(xbar)
    return gamma_t * step_ratio * (xbar.norm() / norm) * clipped


class ClipGuidedDenoiser:
    """The denoiser of DESIGN.md's style transfer: each xhat0 replaced by ``xbar + gamma_t (norm ratio) g~``.

    Carries the previous guided estimate along a trajectory (reset by ``start_trajectory``) and the
    generator of the random views (set per sample by ``ClipStyle.start``).
    """

    def __init__(self, denoiser, guide: ClipGuide, text: torch.Tensor, style: ClipStyle):
        self.denoiser = denoiser
        self.guide = guide
        self.text = text
        self.style = style
        self.generator = torch.Generator().manual_seed(0)
        self.previous: torch.Tensor | None = None
        self.sigma_start: float | None = None
        self.history: list[tuple[float, float]] = []  # (s_t, similarity of xbar) per call

    def start_trajectory(self) -> None:
        self.previous, self.sigma_start, self.history = None, None, []
        if hasattr(self.denoiser, "start_trajectory"):
            self.denoiser.start_trajectory()

    @property
    def stats(self):
        return self.denoiser.stats

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        xhat0 = self.denoiser(x_t, alpha, sigma)
        xbar = xhat0 if self.previous is None else (1.0 - self.style.mix) * self.previous + self.style.mix * xhat0
        if self.sigma_start is None:
            self.sigma_start = sigma
        gamma_t = self.style.gamma * sigma / self.sigma_start
        similarity, gradient = clip_gradient(self.guide, xbar, self.text, self.style.views, self.generator)
        gradient = gradient.to(xbar.device)  # CLIP's device -> the sampler's
        self.history.append((sigma, similarity))
        guided = xbar + guidance_step(xbar, gradient, gamma_t, self.style.step_ratio, self.style.quantile)
        self.previous = guided
        return guided


# --- the edit -----------------------------------------------------------------------------------------------------


class ClipStyle(Edit):
    """CLIP text-guided style transfer (DESIGN.md §1): invert the content to ``level``, sample back with
    every xhat0 replaced by the CLIP-guided estimate (module docstring). Single scale; the output has
    the content's size."""

    canvas_folds = None  # in memory only

    keeps_input_layout = False

    works_in_latent = False  # CLIP guides pixels

    def __init__(
        self,
        prompt: str,
        guide: ClipGuide,
        *,
        views: int = 16,
        gamma: float = 1.0,
        level: float = 0.3,
        mix: float = MIX,
        step_ratio: float = 0.1,
        quantile: float = 0.98,
    ):
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if not 0.0 < level <= 1.0:
            raise ValueError(f"level must be in (0, 1], got {level}")
        if not 0.0 < mix <= 1.0:
            raise ValueError(f"mix (lambda) must be in (0, 1], got {mix}")
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if gamma < 0 or step_ratio < 0:
            raise ValueError(f"gamma and step_ratio must be >= 0, got {gamma} and {step_ratio}")
        self.prompt, self.guide = prompt, guide
        self.views, self.gamma, self.level, self.mix, self.step_ratio, self.quantile = (
            views,
            gamma,
            level,
            mix,
            step_ratio,
            quantile,
        )
        self.text = guide.encode_text(prompt)
        self.start_step: int | None = None

    def prepare(self, num_scales: int) -> None:
        if num_scales != 1:
            raise ValueError(f"style transfer is single-scale: num_scales must be 1, got {num_scales}")

    def wrap(self, denoiser, scale: int):
        return ClipGuidedDenoiser(denoiser, self.guide, self.text, self)

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        """x_start = the content ``level`` DDIM-inverted to the step nearest ``self.level``; the views' generator
        is seeded from the sample's noise (so it follows the run's seed)."""
        if tuple(noise.shape) != tuple(level.shape):
            raise ValueError(f"style transfer keeps the content's size {level.shape[-1]}x{level.shape[-2]}")
        self.start_step = nearest_step(schedule, self.level)
        digest = hashlib.blake2b(noise.numpy().tobytes(), digest_size=8).digest()
        denoiser.generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        inner = denoiser.denoiser
        if hasattr(inner, "start_trajectory"):
            inner.start_trajectory()
        return ddim_invert(inner, level, schedule, self.start_step), self.start_step

    def describe(self) -> dict:
        return {
            "name": "ClipStyle",
            "prompt": self.prompt,
            "clip": self.guide.source,
            "views": self.views,
            "gamma": self.gamma,
            "gamma_schedule": "gamma * s_t / s_start",
            "level": self.level,
            "start_step": self.start_step,
            "lambda": self.mix,
            "step_ratio": self.step_ratio,
            "threshold_quantile": self.quantile,
        }


def stylize(
    image,
    prompt: str,
    *,
    clip: str | os.PathLike | ClipGuide | None = None,
    num_samples: int = 1,
    seed: int = 0,
    steps: int = 200,
    patch_size: int = 7,
    level: float = 0.3,
    views: int = 16,
    gamma: float = 1.0,
    backend: str = "auto",
    progress=None,
    device: str = "auto",
    **style_options,
) -> list[np.ndarray]:
    """Restyle ``image`` (path, PIL image or numpy array) towards the text ``prompt`` with CLIP guidance
    (DESIGN.md §1). ``clip`` is a local CLIP folder, a loaded ``ClipGuide``, or None for ViT-B/32 in the
    Hugging Face cache. Further keywords go to ``ClipStyle`` (mix, step_ratio, quantile). ``device``: where the
    sampler computes ("auto", "cpu", "cuda", "cuda:N"); CLIP runs where its model was loaded."""
    from ..generation import generate_samples
    from ..settings import GenerationSettings

    guide = clip if isinstance(clip, ClipGuide) else load_clip(clip)
    edit = ClipStyle(prompt, guide, views=views, gamma=gamma, level=level, **style_options)
    settings = GenerationSettings(patch_size=patch_size, num_scales=1, steps=steps, backend=backend, device=device)
    return generate_samples(image, settings, num_samples=num_samples, seed=seed, progress=progress, edit=edit).samples
