"""Inpainting and harmonisation with the image's own patches.

A mask (nonzero = the region to fill) splits every pyramid level into known pixels, those whose whole
resampling footprint is unmasked, and unknown ones. At every scale:

- the patch set is the level's P x P patches that miss the unknown pixels (``MaskedImageDenoiser``), so
  the removed content cannot come back through the denoiser;
- data consistency replaces xhat0's known pixels by the known level after every denoiser call
  (``keep_known``). Under Eq. 5 with eta = 0 and x_T = z this keeps x_t's known pixels at exactly
  ``a_t x0 + s_t z`` (eps_hat = (x_t - a_t x0) / s_t = z there), the forward process of the known image
  with one consistent noise: the unknown pixels' query patches see neighbours at the right noise level
  (RePaint's rule without its resampling, and DDNM's range/null-space split with A = the known-pixel
  selection). With eta > 0 the known pixels stay a_t x0 plus Gaussian noise of variance s_t^2. Near the
  hole, a finer scale's TwoScaleBlend moves the known pixels of the xhat0 a step uses by what the coarse
  fill adds; the next call's replacement resets them. The last step returns xhat0 itself (no blend), so
  the output's known pixels equal the input's exactly. Replacing x_t's known pixels by a freshly noised
  input instead (RePaint) mixes two noises at the hole's border and needs resampling jumps to reconcile
  them; a soft or gradient-based rule (DPS) would not keep the known pixels exactly.

``Inpaint`` samples the unknown region coarse to fine, with S chosen for the region (``mask_num_scales``): on
the coarsest scale from pure noise, xhat0's low frequencies guided towards the region's harmonic fill (its
surroundings' tones, ``tone_guidance``); on finer scales from the upsampled coarser fill noised to
``refine_level``; each scale denoised on the region's box only (``RegionDenoiser``), with PatchMatch over the
patches that miss the region; the finished fill Poisson-blended into its surroundings (``blending``).
``Harmonize`` re-noises the whole image to the schedule step nearest a noise level and denoises from there, so
a pasted region keeps its coarse layout and takes on the image's textures.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..backends import AUTO, IMAGE_BACKENDS, QUERY_GRID_OPTIONS, PatchBackend, choose_backend
from ..denoiser_wrapper import DenoiserWrapper, WrappedDenoiser
from ..edit import Edit
from ..errors import InputImageError, SinfreeError
from ..generation import GenerationResult, generate_samples
from ..image_denoiser import ImageDenoiser, make_image_denoiser
from ..io.images import ImageLike, load_image, pil_to_array, read_image_file
from ..patches import extract_patches, patch_positions
from ..pyramid import level_shapes, resolve_num_scales
from ..resize import resize, resize_taps
from ..schedule import FlowSchedule
from ..settings import GenerationSettings
from .blending import poisson_blend
from .inversion import nearest_step

MaskLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


# --- the mask --------------------------------------------------------------------------------------


def load_mask(mask: MaskLike) -> torch.Tensor:
    """The region to fill as a bool tensor (H, W): a path, PIL image, numpy array or tensor of any mode.

    A pixel is to fill when any colour channel is nonzero and, if the image has an alpha channel (gray +
    alpha, RGBA), its alpha is nonzero too: a transparent pixel is never filled.
    """
    if isinstance(mask, torch.Tensor):
        array = mask.detach().cpu().numpy()
    elif isinstance(mask, (str, os.PathLike)):
        array = read_image_file(Path(mask))
    elif isinstance(mask, Image.Image):
        array = pil_to_array(mask)
    elif isinstance(mask, np.ndarray):
        array = mask
    else:
        raise InputImageError(f"expected a mask path, PIL image, numpy array or tensor, got {type(mask).__name__}")
    return torch.from_numpy(mask_from_array(np.asarray(array)))


def mask_from_array(array: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) pixels -> bool (H, W): colour nonzero, and alpha nonzero where C is 2 or 4."""
    if array.ndim == 2:
        return array != 0
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4:
        raise InputImageError(f"a mask must be an (H, W) or (H, W, C) image with 1-4 channels, got shape {array.shape}")
    if array.shape[2] in (2, 4):
        return (array[:, :, :-1] != 0).any(axis=2) & (array[:, :, -1] != 0)
    return (array != 0).any(axis=2)


def dilate_mask(mask, pixels: int) -> torch.Tensor:
    """The region (``load_mask``) grown by ``pixels`` px in every direction (a square structuring element)."""
    region = load_mask(mask)
    if pixels <= 0:
        return region
    return F.max_pool2d(region.float()[None, None], 2 * pixels + 1, stride=1, padding=pixels)[0, 0] > 0


def check_mask(mask: torch.Tensor, shape: tuple[int, int] | None = None) -> None:
    """One-line errors for a mask of another size than the image (``shape`` = (H, W)), an empty one or a full one."""
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise InputImageError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} px but the image is {shape[1]}x{shape[0]} px; "
            "they must be the same size"
        )
    if not mask.any():
        raise InputImageError("the mask is empty (no nonzero pixel): nothing to fill; nonzero (white) marks the region to fill")
    if mask.all():
        raise InputImageError("the mask covers the whole image: no pixel is left to take patches from")


def footprint_resize(mask: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The pixels of ``resize(image, shape)`` (``sinfree.resize``: antialiased bicubic, mirror boundaries)
    that read some pixel of ``mask`` with a nonzero tap: the mask dilated by the kernel's footprint and
    resampled. Separable and exact: an output pixel's taps are the product of its row and column taps."""
    for dim, out_len in ((0, shape[0]), (1, shape[1])):
        if mask.shape[dim] == out_len:  # resize leaves this axis untouched
            continue
        index, weights = resize_taps(mask.shape[dim], out_len)
        moved = mask.movedim(dim, -1)
        mask = (moved[..., index] & (weights != 0)).any(dim=-1).movedim(-1, dim)
    return mask


def mask_pyramid(mask: torch.Tensor, num_scales: int) -> list[torch.Tensor]:
    """Unknown pixels of levels 0..S-1, following ``build_pyramid``'s chain of halvings: a pixel is known at
    a scale only if its whole footprint in the finer level, and so in the input, is known."""
    levels = [mask.bool()]
    for shape in level_shapes(tuple(mask.shape), num_scales)[1:]:
        levels.append(footprint_resize(levels[-1], shape))
    return levels


def clean_patch_grid(unknown: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(H - P + 1, W - P + 1) bool: the P x P patches (by top-left corner) that hold no unknown pixel."""
    hit = F.max_pool2d(unknown.float()[None, None], patch_size, stride=1)[0, 0]
    return hit == 0


def harmonic_fill(image: torch.Tensor, unknown: torch.Tensor, tolerance: float = 1e-4) -> torch.Tensor:
    """``image`` (C, H, W) with its ``unknown`` pixels (H, W) replaced by the harmonic interpolation of the
    known ones (Laplace's equation, mirror boundaries): the smoothest fill that meets the hole's surroundings,
    solved coarse to fine (a halved problem's solution starts each level's Jacobi iterations)."""
    if not unknown.any():
        return image
    rows, cols = torch.nonzero(unknown.any(dim=1)).flatten(), torch.nonzero(unknown.any(dim=0)).flatten()
    top, bottom = max(0, int(rows[0]) - 1), min(unknown.shape[0], int(rows[-1]) + 2)
    left, right = max(0, int(cols[0]) - 1), min(unknown.shape[1], int(cols[-1]) + 2)
    if (bottom - top, right - left) != tuple(unknown.shape):  # the hole's box and its known ring only
        out = image.clone()
        out[:, top:bottom, left:right] = harmonic_fill(
            image[:, top:bottom, left:right], unknown[top:bottom, left:right], tolerance
        )
        return out
    height, width = unknown.shape
    if min(height, width) > 8:
        known = (~unknown).to(image.dtype)
        weight = F.avg_pool2d(known[None, None], 2, ceil_mode=True)[0, 0]
        coarse_image = F.avg_pool2d((image * known)[None], 2, ceil_mode=True)[0] / weight.clamp_min(1e-12)
        coarse = harmonic_fill(coarse_image, weight == 0, tolerance)
        start = F.interpolate(coarse[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    else:
        start = torch.where(unknown, image[:, ~unknown].mean(dim=1)[:, None, None], image)
    fill = torch.where(unknown, start, image)
    for _ in range(4 * max(height, width) if min(height, width) <= 8 else 64):  # the coarse solution starts close
        padded = F.pad(fill[None], (1, 1, 1, 1), mode="replicate")[0]
        average = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]) / 4
        updated = torch.where(unknown, average, image)
        change = (updated - fill).abs().max()
        fill = updated
        if change < tolerance:
            break
    return fill


def hole_radius(unknown: torch.Tensor) -> int:
    """The largest distance (chessboard, px) from a pixel of the region to the nearest known pixel."""
    radius, remaining = 0, unknown.float()[None, None]
    while remaining.any():
        remaining = -F.max_pool2d(-remaining, 3, stride=1, padding=1)  # erode by one pixel (the image's edge is no hole)
        radius += 1
    return radius


def mask_num_scales(mask: torch.Tensor, patch_size: int, settings: GenerationSettings) -> int:
    """S for an inpainting: the coarsest scale is where the region is about two patches across (its radius
    at least a patch): coarser, a patch would span the region and whole objects of its ring, and the fill
    would continue them (a face copied beside the face); there the start's harmonic fill sets the tones.
    Never more scales than generation's automatic rule allows the image, and fewer where some scale would
    have no patch clear of the region."""
    radius = hole_radius(mask.bool())
    wanted = 1 + max(0, math.floor(math.log2(max(radius / patch_size, 1.0))))
    shape = tuple(mask.shape)
    most = resolve_num_scales(shape, shape, patch_size, None, settings.min_coarsest_side)
    return clean_num_scales(mask, patch_size, min(wanted, most))


def clean_num_scales(mask: torch.Tensor, patch_size: int, most: int) -> int:
    """The largest S up to ``most`` at which every scale has a patch clear of ``mask`` (1 if none)."""
    for num_scales in range(most, 0, -1):
        try:
            check_clean_patches(mask, patch_size, num_scales)
            return num_scales
        except InputImageError:
            continue
    return 1


def low_pass(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``image`` (C, H, W) down- and up-sampled by ``factor`` (antialiased bicubic): its low frequencies."""
    shape = tuple(image.shape[-2:])
    small = (max(1, round(shape[0] / factor)), max(1, round(shape[1] / factor)))
    return resize(resize(image, small), shape)


def toned(xhat0: torch.Tensor, target: torch.Tensor, unknown: torch.Tensor, strength: float, factor: int) -> torch.Tensor:
    """``xhat0`` with its low frequencies (``low_pass``) moved by ``strength`` towards ``target``'s in ``unknown``."""
    shift = strength * (low_pass(target, factor) - low_pass(xhat0, factor))
    return torch.where(unknown, xhat0 + shift, xhat0)


def ring_around(region: torch.Tensor, ring: int = 8) -> torch.Tensor:
    """The pixels within ``ring`` px of ``region`` (H, W) and outside it."""
    grown = F.max_pool2d(region.float()[None, None], 2 * ring + 1, stride=1, padding=ring)[0, 0] > 0
    return grown & ~region


def local_contrast(image: torch.Tensor) -> torch.Tensor:
    """(H, W): each pixel's absolute difference to the mean of its 3 x 3 neighbourhood, on the channel mean
    of ``image`` (C, H, W) (the statistic of ``sinfree.metrics.fill.tone_and_contrast``)."""
    gray = image.mean(0)[None, None]
    return (gray - F.avg_pool2d(gray, 3, stride=1, padding=1, count_include_pad=False))[0, 0].abs()


def match_detail(image: torch.Tensor, region: torch.Tensor, ring: int = 8, most: float = 4.0) -> torch.Tensor:
    """``image`` (C, H, W) with the region's detail (the image minus its ``low_pass`` by 2) scaled so that its
    local contrast (``local_contrast``) matches a ``ring`` px ring around the region's, by a gain within
    [1 / ``most``, ``most``]: a re-synthesised region comes back smoother than its surroundings (as an output
    larger than its input does, ``sinfree.energy``) or, on a smooth sky, busier than it."""
    around = ring_around(region, ring)
    if not around.any():
        return image
    low = low_pass(image, 2)
    contrast = local_contrast(image)
    gain = float((contrast[around].mean() / contrast[region].mean().clamp_min(1e-6)).clamp(1.0 / most, most))
    return torch.where(region, low + gain * (image - low), image)


def match_tone(image: torch.Tensor, region: torch.Tensor, ring: int = 8, feather: int = 4) -> torch.Tensor:
    """``image`` (C, H, W) with one offset on every channel in ``region`` so that the region's mean intensity
    equals a ``ring`` px ring around it; the offset is feathered to zero over ``feather`` px at the region's
    edge so that no step appears there."""
    around = ring_around(region, ring)
    if not around.any():
        return image
    weight, inner = torch.zeros(region.shape, dtype=image.dtype), region.float()[None, None]
    for _ in range(feather):  # 0 on the region's edge pixels, 1 from ``feather`` px in (erosions survived)
        inner = -F.max_pool2d(-inner, 3, stride=1, padding=1)
        weight += inner[0, 0].to(image.dtype) / feather
    gray = image.mean(0)
    offset = (gray[around].mean() - gray[region].mean()) / weight[region].mean().clamp_min(1e-3)
    return image + offset * weight


def match_surroundings(image: torch.Tensor, region: torch.Tensor, rounds: int = 3) -> torch.Tensor:
    """The region's mean tone and local contrast brought to a ring's around it (``match_tone``, then
    ``match_detail``, alternated ``rounds`` times since each moves the other a little)."""
    for _ in range(rounds):
        image = match_detail(match_tone(image, region), region)
    return image


def check_clean_patches(mask: torch.Tensor, patch_size: int, num_scales: int) -> None:
    """A one-line error when some scale has no P x P patch clear of the (dilated) mask."""
    for scale, unknown in enumerate(mask_pyramid(mask, num_scales)):
        if min(unknown.shape) < patch_size or not clean_patch_grid(unknown, patch_size).any():
            height, width = unknown.shape
            raise InputImageError(
                f"the mask leaves no {patch_size}x{patch_size} patch clear of it at scale {scale} ({width}x{height} px); "
                "use a smaller mask, a smaller patch size (-P) or fewer scales (-S)"
            )


# The coarsest scale of an inpainting starts from the harmonic fill noised to this level (1: pure noise).
DEFAULT_START_LEVEL = 1.0
# The finer scales start from the upsampled coarser fill noised to this level (1: pure noise, as generation).
DEFAULT_REFINE_LEVEL = 0.5
# On the coarsest scale, xhat0's low frequencies (down- and up-sampled by TONE_LOW_PASS) in the region are moved
# this far towards the harmonic fill's after every denoiser call.
DEFAULT_TONE_GUIDANCE = 0.5
TONE_LOW_PASS = 4
# A harmonisation re-noises the pasted image to this level on the coarsest scale.
DEFAULT_HARMONIZE_LEVEL = 0.5


# --- the denoiser over the unmasked patches ---------------------------------------------------------


def masked_patches(reference: torch.Tensor, unknown: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Every P x P patch of ``reference`` (C, H, W) that misses ``unknown`` (H, W), flattened (M', C P^2)
    like ``all_patches``; extracted one patch row at a time, so only the kept set is ever held whole."""
    keep = clean_patch_grid(unknown, patch_size)
    rows = patch_positions(reference.shape[-2], patch_size)
    cols = patch_positions(reference.shape[-1], patch_size)
    reference = reference.to(torch.float32)
    chunks = [extract_patches(reference, rows[r : r + 1], cols, patch_size)[keep[r]] for r in range(len(rows)) if keep[r].any()]
    if not chunks:
        raise InputImageError(f"the mask leaves no {patch_size}x{patch_size} patch of the image clear of it")
    return torch.cat(chunks)


def masked_backend(name: str, options: dict, num_queries: int, num_patches: int, dim: int) -> tuple[str, dict]:
    """The backend of one masked scale (``choose_backend``): exact where a call is cheap, else the
    fast PatchMatch search restricted to the patches that miss the region."""
    try:
        chosen, chosen_options = choose_backend(name, options, PatchBackend.flops(num_queries, num_patches, dim))
    except ValueError as error:
        raise SinfreeError(str(error)) from None
    if name == AUTO:  # every query on every step: strided noisy steps left the fill a smooth blur (sky for stone)
        chosen_options = {key: value for key, value in chosen_options.items() if key not in QUERY_GRID_OPTIONS or key in options}
    return chosen, chosen_options


class MaskedImageDenoiser(ImageDenoiser):
    """ImgDenoise (Algorithm 1) whose patch set is the patches of ``reference`` that miss ``unknown``.

    The query side (unfold every ``stride`` px, Gaussian window ``rho``, fold, divide by the folded
    window) is ImageDenoiser's own, over the kept patches. Any patch backend works (exact, ivf, ...);
    ivf's ``propagate`` does not, as it shifts candidates on the full patch grid.
    """

    def __init__(
        self,
        reference: torch.Tensor,
        unknown: torch.Tensor,
        patch_size: int = 15,
        *,
        stride: int = 1,
        rho: float = 0.2,
        backend: str = "exact",
        **backend_options,
    ):
        patches = masked_patches(reference, unknown, patch_size)
        super().__init__(reference, patch_size, stride=stride, rho=rho, backend=backend, patches=patches, **backend_options)

    @property
    def num_patches(self) -> int:
        return self.backend.num_patches


def region_box(unknown: torch.Tensor, patch_size: int) -> tuple[slice, slice]:
    """The region's bounding box grown by P - 1 px (within the image): where every patch touching it lies."""
    rows, cols = torch.nonzero(unknown.any(dim=1)).flatten(), torch.nonzero(unknown.any(dim=0)).flatten()
    grow = patch_size - 1
    return (
        slice(max(0, int(rows[0]) - grow), min(unknown.shape[0], int(rows[-1]) + 1 + grow)),
        slice(max(0, int(cols[0]) - grow), min(unknown.shape[1], int(cols[-1]) + 1 + grow)),
    )


class RegionDenoiser(DenoiserWrapper):
    """A scale's denoiser run on the region's bounding box grown by P - 1 px only: every query patch that
    touches the region lies there, so the region's pixels come out exactly as from the whole canvas; the
    rest of the box (and of the canvas, where xhat0 is the known image anyway) is taken from ``known``."""

    def __init__(self, denoiser, known: torch.Tensor, unknown: torch.Tensor, patch_size: int):
        super().__init__(denoiser)
        self.box = region_box(unknown, patch_size)
        self.known, self.unknown = known, unknown

    @property
    def num_patches(self) -> int:
        return self.denoiser.num_patches

    def __call__(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        out = self.known.to(x_t.dtype).clone()
        rows, cols = self.box
        denoised = self.denoiser(x_t[:, rows, cols].contiguous(), alpha, sigma)
        out[:, rows, cols] = torch.where(self.unknown[rows, cols], denoised, out[:, rows, cols])
        return out


def keep_known(denoiser, known: torch.Tensor, unknown: torch.Tensor) -> WrappedDenoiser:
    """Data consistency: every xhat0 keeps ``known`` (C, h, w) exactly where ``unknown`` (h, w) is False."""
    return WrappedDenoiser(denoiser, lambda d, x, a, s: torch.where(unknown, d(x, a, s), known.to(x.dtype)))


# --- the edits --------------------------------------------------------------------------------------


class Inpaint(Edit):
    """Fill the masked region coarse to fine with patches of the unmasked region, keeping every known
    pixel exactly (see the module's docstring for the data-consistency rule).

    ``backend``: ``auto`` (exact where cheap, else patchmatch searching the unmasked patches only), or any
    backend by name, with ``backend_options``. Each scale's denoiser is built by the
    edit (``make_denoiser``) over the clean patches.
    """

    canvas_folds = None  # in memory only

    keeps_input_layout = False

    works_in_latent = False  # the mask and the kept pixels are in pixel space
    runs_on_gpu = False  # its masks and masked denoisers are CPU tensors (sinfree.device): auto runs it on the CPU

    def __init__(
        self,
        mask: MaskLike,
        *,
        start_level: float = DEFAULT_START_LEVEL,
        refine_level: float = DEFAULT_REFINE_LEVEL,
        tone_guidance: float = DEFAULT_TONE_GUIDANCE,
        blend: bool = True,
        backend: str = AUTO,
        backend_options: dict | None = None,
    ):
        self.tone_guidance = tone_guidance
        if not (0.0 < start_level <= 1.0 and 0.0 < refine_level <= 1.0):
            raise ValueError(f"start_level and refine_level must be in (0, 1], got {start_level}, {refine_level}")
        self.start_level, self.refine_level = start_level, refine_level
        self.blend = blend
        self.mask = load_mask(mask)
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        masked_backend(backend, self.backend_options, 1, 1, 1)  # unknown names fail here
        self.unknown: list[torch.Tensor] = []
        self.known: dict[int, torch.Tensor] = {}
        self.used: dict[int, dict] = {}

    def validate(self, shape: tuple[int, int], settings: GenerationSettings) -> int:
        """Check the mask against an image of ``shape`` (H, W) and the settings before any work; returns S."""
        check_mask(self.mask, shape)
        num_scales = resolve_num_scales(shape, shape, settings.patch_size, settings.num_scales, settings.min_coarsest_side)
        check_clean_patches(self.mask, settings.patch_size, num_scales)
        return num_scales

    def settings_for(self, shape: tuple[int, int], settings: GenerationSettings) -> GenerationSettings:
        """``settings`` with automatic S (``num_scales`` None) chosen by ``automatic_num_scales``, checked against
        an image of ``shape`` before any work."""
        check_mask(self.mask, shape)
        if settings.num_scales is None:
            settings = dataclasses.replace(settings, num_scales=self.automatic_num_scales(shape, settings))
        self.validate(shape, settings)
        return settings

    def automatic_num_scales(self, shape: tuple[int, int], settings: GenerationSettings) -> int:
        """S for the mask (``mask_num_scales``): the coarsest scale is where the region is two patches across."""
        return mask_num_scales(self.mask, settings.patch_size, settings)

    def prepare(self, num_scales: int) -> None:
        check_mask(self.mask)
        self.num_scales = num_scales
        self.unknown = mask_pyramid(self.mask, num_scales)
        self.known, self.used = {}, {}

    def patch_image(self, scale: int, level: torch.Tensor) -> torch.Tensor:
        if tuple(level.shape[-2:]) != tuple(self.unknown[scale].shape):
            full = self.unknown[0].shape
            raise InputImageError(f"the mask is {full[1]}x{full[0]} px but the image is not; they must be the same size")
        self.known[scale] = level
        return level

    def make_denoiser(self, scale: int, patch_image: torch.Tensor, settings: GenerationSettings, canvas_shape: tuple[int, int]):
        level, unknown = self.known[scale], self.unknown[scale]
        p, stride = settings.patch_size, settings.stride
        rows, cols = region_box(unknown, p)  # the queries a call denoises (RegionDenoiser)
        num_queries = len(patch_positions(rows.stop - rows.start, p, stride)) * len(
            patch_positions(cols.stop - cols.start, p, stride)
        )
        num_patches = int(clean_patch_grid(unknown, p).sum())
        name, options = masked_backend(self.backend, self.backend_options, num_queries, num_patches, level.shape[0] * p * p)
        if name in IMAGE_BACKENDS:  # the search itself leaves the masked patches out
            masked = make_image_denoiser(
                level, p, stride=stride, rho=settings.rho, backend=name, valid=clean_patch_grid(unknown, p), **options
            )
        else:
            masked = MaskedImageDenoiser(level, unknown, p, stride=stride, rho=settings.rho, backend=name, **options)
        masked = RegionDenoiser(masked, level, unknown, p)
        total = (level.shape[-2] - p + 1) * (level.shape[-1] - p + 1)
        self.used[scale] = {"backend": name, "patches": masked.num_patches, "of": total, "unknown_pixels": int(unknown.sum())}
        return masked

    def wrap(self, denoiser, scale: int):
        known = keep_known(denoiser, self.known[scale], self.unknown[scale])
        if scale != self.num_scales - 1 or self.tone_guidance <= 0:
            return known
        # on the coarsest scale, xhat0's low frequencies in the region are moved towards the harmonic fill's:
        # the fill takes its tones from the ring, its texture from the patches
        target = harmonic_fill(self.known[scale], self.unknown[scale])
        unknown, strength, factor = self.unknown[scale], self.tone_guidance, TONE_LOW_PASS
        return WrappedDenoiser(known, lambda d, x, a, s: toned(d(x, a, s), target, unknown, strength, factor))

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        if noise.shape != level.shape:
            raise ValueError("inpainting keeps the image's size: do not pass another output size")
        if coarse is None:
            if self.start_level >= 1.0:
                return noise, schedule.num_steps
            # the coarsest scale starts from the hole's harmonic fill (its low frequencies solved against the
            # known ring) noised to start_level: the fill takes the surroundings' tones instead of whatever pure
            # noise settles on
            guess, level_wanted = harmonic_fill(level, self.unknown[scale]), self.start_level
        else:
            if self.refine_level >= 1.0:
                return noise, schedule.num_steps
            # a finer scale refines the coarser fill (upsampled, the known pixels of this level) from
            # refine_level: it adds detail instead of redrawing the region, which could copy whole objects in
            guess = torch.where(self.unknown[scale], resize(coarse, tuple(level.shape[-2:])), level)
            level_wanted = self.refine_level
        step = nearest_step(schedule, level_wanted)
        alpha, sigma = schedule[step]
        return alpha * guess + sigma * noise, step

    def finish(self, image: torch.Tensor) -> torch.Tensor:
        """The fill blended into its surroundings (``blending.poisson_blend``), known pixels unchanged."""
        return poisson_blend(image, self.unknown[0]) if self.blend else image

    def describe(self) -> dict:
        scales = [{"scale": scale} | self.used[scale] for scale in sorted(self.used, reverse=True)]
        return {"name": type(self).__name__, "mask_pixels": int(self.mask.sum()), "backend": self.backend, "scales": scales}


class Harmonize(Inpaint):
    """Harmonise a pasted or painted region coarse to fine over generation's scales: on the coarsest the image
    is re-noised to the schedule step t nearest ``noise_level`` (x_t = a_t x0 + s_t z) and denoised with the
    unmasked region's patches; every finer scale refines the coarser result as inpainting does (from
    ``refine_level``), keeping the pixels outside the mask exactly. The region is made of the image's own
    patches, its coarse layout taken from the paste: lower levels keep more of it. The finished region is
    blended into its surroundings (Poisson) and its mean tone and local contrast matched to a ring around it."""

    def __init__(
        self,
        mask: MaskLike,
        noise_level: float = DEFAULT_HARMONIZE_LEVEL,
        *,
        refine_level: float = DEFAULT_REFINE_LEVEL,
        backend: str = AUTO,
        backend_options: dict | None = None,
    ):
        if not 0.0 < noise_level <= 1.0:
            raise ValueError(f"level must be in (0, 1], got {noise_level}")
        super().__init__(mask, refine_level=refine_level, tone_guidance=0.0, backend=backend, backend_options=backend_options)
        self.noise_level = noise_level
        self.start_step: int | None = None
        self.start_sigma: float | None = None

    def automatic_num_scales(self, shape: tuple[int, int], settings: GenerationSettings) -> int:
        """Generation's S for the image (the coarsest scale a few patches across it), fewer where some scale
        would have no patch clear of the region."""
        most = resolve_num_scales(shape, shape, settings.patch_size, None, settings.min_coarsest_side)
        return clean_num_scales(self.mask, settings.patch_size, most)

    def start(
        self, scale: int, level: torch.Tensor, noise: torch.Tensor, schedule: FlowSchedule, denoiser, coarse=None
    ) -> tuple[torch.Tensor, int]:
        if noise.shape != level.shape:
            raise ValueError("harmonisation keeps the image's size: do not pass another output size")
        if coarse is not None:
            return super().start(scale, level, noise, schedule, denoiser, coarse)
        step = nearest_step(schedule, self.noise_level)
        alpha, sigma = schedule[step]
        self.start_step, self.start_sigma = step, sigma
        return alpha * level + sigma * noise, step

    def finish(self, image: torch.Tensor) -> torch.Tensor:
        """The region blended into its surroundings (Poisson), then its mean tone and local contrast matched to
        a ring around it (``match_surroundings``)."""
        return match_surroundings(super().finish(image), self.unknown[0])

    def describe(self) -> dict:
        return super().describe() | {
            "level": self.noise_level,
            "start_step": self.start_step,
            "start_noise_level": self.start_sigma,
        }


# --- the Python API ---------------------------------------------------------------------------------


def inpaint(
    image: ImageLike,
    mask: MaskLike,
    settings: GenerationSettings | None = None,
    *,
    num_samples: int = 1,
    seed: int = 0,
    start_level: float = DEFAULT_START_LEVEL,
    refine_level: float = DEFAULT_REFINE_LEVEL,
    tone_guidance: float = DEFAULT_TONE_GUIDANCE,
    blend: bool = True,
    max_memory_bytes: int | None = None,
    progress=None,
) -> GenerationResult:
    """Fill the region of ``image`` where ``mask`` is nonzero with content made of the rest's patches.

    ``settings`` default to the default preset's, with S chosen for the mask (``mask_num_scales``). The coarsest
    scale starts from the region's harmonic fill noised to ``start_level`` and the finished fill is blended into
    its surroundings (``blend``, Poisson). The samples come back like
    ``generate_samples``'s (numpy, the input's type and layout); outside the mask they equal the input
    exactly (integer pixels bit for bit). Bad masks raise InputImageError with a one-line reason.
    """
    settings = settings if settings is not None else GenerationSettings()
    edit = Inpaint(
        mask,
        start_level=start_level,
        refine_level=refine_level,
        tone_guidance=tone_guidance,
        blend=blend,
        backend=settings.backend,
        backend_options=settings.backend_options,
    )
    return run_masked_edit(image, edit, settings, num_samples, seed, max_memory_bytes, progress)


def harmonize(
    image: ImageLike,
    mask: MaskLike,
    settings: GenerationSettings | None = None,
    *,
    level: float = DEFAULT_HARMONIZE_LEVEL,
    num_samples: int = 1,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    progress=None,
) -> GenerationResult:
    """Harmonise the region of ``image`` where ``mask`` is nonzero (a paste, a painted stroke) with the image:
    re-noised to ``level`` on the coarsest scale and denoised coarse to fine with the patches outside ``mask``
    (``Harmonize``), so that the region is made of the image's textures with its tone and local contrast; lower
    levels keep more of its layout. Pixels outside the mask are kept."""
    settings = settings if settings is not None else GenerationSettings()
    edit = Harmonize(mask, level, backend=settings.backend, backend_options=settings.backend_options)
    return run_masked_edit(image, edit, settings, num_samples, seed, max_memory_bytes, progress)


def run_masked_edit(
    image: ImageLike, edit: Inpaint, settings: GenerationSettings, num_samples: int, seed: int, max_memory_bytes, progress
) -> GenerationResult:
    """Validate the mask against the image and the settings, then sample with ``edit``."""
    settings.validate()
    reference, _ = load_image(image)
    settings = edit.settings_for(tuple(reference.shape[-2:]), settings)
    return generate_samples(
        image, settings, num_samples=num_samples, seed=seed, max_memory_bytes=max_memory_bytes, progress=progress, edit=edit
    )


__all__ = [
    "Harmonize",
    "Inpaint",
    "MaskedImageDenoiser",
    "check_clean_patches",
    "check_mask",
    "footprint_resize",
    "harmonize",
    "inpaint",
    "keep_known",
    "load_mask",
    "mask_pyramid",
    "masked_backend",
    "masked_patches",
    "nearest_step",
]
