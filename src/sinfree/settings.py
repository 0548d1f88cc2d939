"""The sampler's settings (``GenerationSettings``) and the named presets: ``default`` (keeps the input's
composition) and ``paper`` (Table 1 of Qiu et al. exactly)."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field

from .backends import AUTO, QUERY_GRID_OPTIONS, backend_class_for
from .device import check_device_spec
from .latent import LATENT_PATCH_SIZE, Codec, make_codec
from .schedule import S_MIN

PIXEL_PATCH_SIZE = 15  # Table 1


def default_patch_size(latent) -> int:
    """The patch size when none is given: Table 1's 15 px in pixel space, the paper's 7 in a latent space."""
    return PIXEL_PATCH_SIZE if latent is None else LATENT_PATCH_SIZE


# The default preset (benchmarks/bench_composition.py measures it against "paper", docs/quality.md):
# S chosen from the input and output sizes (coarsest short side >= 2 P) and, on the coarsest scale, xhat0's row and
# column mean colours moved 0.7 of the way to the input's after every denoiser call (layout guidance). On the 15
# images x 10 samples against the paper's setting: guidance 1 kept the layout closest (0.27x) but varied least (LPIPS
# diversity 0.36), 0.5 varied most (0.45) at 0.43x the layout; 0.7 is the one that keeps the layout (0.34x) and the
# diversity (0.41) both near their targets, with SIFID 0.50x, SWD 0.36x and a third of the copied crops. On the quick
# study (10 photos x 3 seeds), starting the coarsest scale from the input noised
# to 0.8 (variation) kept the layout like guidance 1 but copied more (0.30 against 0.17) and varied less (0.30);
# completeness and a low-passed start (start_blur) traded layout for diversity along one curve. They stay options.
# Most of the default's remaining layout distance comes from the finer scales, not the coarsest: its guided result is
# at 0.010 (6 images x 3 seeds), the sample at 0.025. The last step of each finer scale (xhat0 unblended, at s_min)
# snaps the coarse colours onto the input's patches and undoes the part of the guidance that left the patch manifold.
# Guidance fading from 1 at pure noise to 0 at the end (layout_guidance_end=0) keeps the coarsest result on it: no
# drift on the finer scales, SIFID 0.45x and LPIPS diversity 0.42 (15 x 10), but the layout only 0.44x. Pulling the
# finer scales' broad row and column profiles too (low-passed to a quarter of the coarsest) brought the layout to
# 0.26x at diversity 0.41, but SIFID rose to 0.51x and the seams to 1.08x: the pull paints smudges and stripes into
# smooth skies and faces. On 15 x 3 screens, separate strengths (rows 1, columns 0.5), eta 1, a dead zone in the profile
# match and guidance from 1 down to 0.4 or 0.7 stayed on or below the constant guidance's layout-diversity curve;
# guidance rising from 0 to 1 varied more (0.44) at the default's layout, but at SIFID 0.71x (blurred).
# Blending the finer scales' last xhat0 with the coarser result too (TwoScaleBlend on the last step) kept the layout
# at 0.14x with diversity 0.40 (15 x 3), but painted ghosts (faint balloons, stripes in skies): SIFID 0.68x, seams
# 1.09x; not kept. A prior on where patches go (position_prior, the log-weight -|c_i - c_j|^2 / (2 tau^2) in Eq. 2 on
# the coarsest scale) gives the cleanest samples of any lever but trades layout for diversity worse than the guidance
# (15 x 3: tau 0.05, 0.1, 0.2 alone: layout 0.36x, 0.56x, 0.88x at diversity 0.28, 0.39, 0.50; with the guidance
# 0.7, tau 0.15: 0.29x at 0.32; on rows only, with guidance 0.5: 0.39x at 0.39); it stays an option (docs/quality.md).
DEFAULT_LAYOUT_GUIDANCE = 0.7
DEFAULT_VARIATION = 1.0
DEFAULT_COMPLETENESS = 0.0
DEFAULT_RHO = 0.2
DEFAULT_ETA = 0.0
MIN_POSITION_PRIOR = 1e-3  # narrower widths overflow the prior's fp32 logits (and are a copy of the input anyway)
PRESETS: dict[str, dict] = {
    "default": {},  # GenerationSettings' own defaults
    "paper": {
        "num_scales": 4,
        "steps": 10,
        "eta": 0.0,
        "rho": 0.2,
        "min_coarsest_side": None,
        "variation": 1.0,
        "completeness": 0.0,
        "start_blur": 1.0,
        "layout_guidance": 0.0,
        "layout_guidance_end": None,
        "position_prior": 0.0,
        "latent_fallback": False,
        "small_input_patch": False,
    },
}


@dataclass(frozen=True)
class GenerationSettings:
    """Every knob of the sampler. The defaults are the ``default`` preset; ``preset_settings("paper")``
    is the paper's Table 1 (P = 15, S = 4, T = 10, eta = 0, rho = 0.2, every scale from pure noise).

    ``latent``: the space the sampler denoises in (``sinfree.latent``): None for pixels, "pca",
    "pca:K", "vae:PATH" or a Codec. ``patch_size=None`` becomes 15 in pixel space, 7 in a latent space.
    """

    patch_size: int | None = None
    num_scales: int | None = None  # None: automatic, the most whose coarsest short side is >= min_coarsest_side
    steps: int = 10
    eta: float = DEFAULT_ETA
    rho: float = DEFAULT_RHO
    stride: int = 1
    backend: str = AUTO  # exact where cheap (coarse scales), patchmatch elsewhere; "exact" for the paper's exact method
    min_coarsest_side: float | None = None  # automatic S only; default 2 * patch_size
    s_min: float = S_MIN
    backend_options: dict = field(default_factory=dict)  # e.g. {"nprobe": 2, "k": 5} for "ivf"
    latent: str | Codec | None = None
    rectify: float | None = None  # energy rectification (DESIGN.md §2, sinfree.energy): the sharper kernel's width factor gamma
    variation: float = (
        DEFAULT_VARIATION  # noise level the coarsest scale starts from: 1 = pure noise (the paper), < 1 = the input noised
    )
    layout_guidance: float = (
        DEFAULT_LAYOUT_GUIDANCE  # pull xhat0's row and column mean colours towards the input's on the coarsest scale; 0 = off
    )
    layout_guidance_end: float | None = (
        None  # the guidance's strength at the last step, linear in the noise level from layout_guidance; None = constant
    )
    position_prior: float = (
        0.0  # on the coarsest scale, each patch drawn from about this fraction of the input around its place; 0 = off
    )
    start_blur: float = 1.0  # the varied start's input level low-passed by this factor (down- and up-sampled); 1 = sharp
    small_input_patch: bool = True  # the default 15 px patch shrinks for inputs or outputs under 30 px a side (patch_size_for)
    latent_fallback: bool = True  # a pixel run that would not fit in memory runs in the PCA latent space instead
    completeness: float = (
        DEFAULT_COMPLETENESS  # Sinkhorn balancing of patch usage on the cheap (coarse) scales (backends/balanced.py); 0 = Eq. 2
    )
    device: str = "auto"  # auto (CUDA if available, else CPU), cpu, cuda or cuda:N (sinfree.device); outputs record the one used

    def __post_init__(self):
        if self.patch_size is None:
            object.__setattr__(self, "patch_size", default_patch_size(self.latent))

    @property
    def guides_layout(self) -> bool:
        """Whether the layout guidance acts at some step (its strength at pure noise or at the end is above 0)."""
        return max(self.layout_guidance, self.layout_guidance_end or 0.0) > 0

    def validate(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0 (or inf), got {self.rho}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        accepted = inspect.signature(backend_class_for(self.backend).__init__).parameters
        grid = {"self", "patches", "reference", "patch_size", "stride", "rho", *QUERY_GRID_OPTIONS}  # ImageDenoiser's
        unknown = sorted(set(self.backend_options) - set(accepted) - grid)
        if unknown:
            raise ValueError(f"backend {self.backend!r} takes no option {', '.join(unknown)}")
        if self.backend_options.get("prune_alpha") is not None and not self.backend_options.get("propagate"):
            raise ValueError("prune_alpha needs propagate=True: pruned queries take their neighbours' candidates")
        if not 0.0 <= self.completeness <= 1.0:
            raise ValueError(f"completeness must be in [0, 1], got {self.completeness}")
        if not 0.0 <= self.layout_guidance <= 1.0:
            raise ValueError(f"layout_guidance must be in [0, 1], got {self.layout_guidance}")
        if self.layout_guidance_end is not None and not 0.0 <= self.layout_guidance_end <= 1.0:
            raise ValueError(f"layout_guidance_end must be in [0, 1] (or None: constant), got {self.layout_guidance_end}")
        if not (self.position_prior == 0.0 or MIN_POSITION_PRIOR <= self.position_prior < math.inf):
            raise ValueError(
                f"position_prior (a width, in fractions of the image's sides) must be 0 (off) or finite and >= "
                f"{MIN_POSITION_PRIOR}, got {self.position_prior}"
            )
        if self.position_prior > 0 and self.completeness > 0:
            raise ValueError("position_prior and completeness each replace the coarsest scale's Eq. 2: choose one")
        if not self.start_blur >= 1.0:
            raise ValueError(f"start_blur (the varied start's low-pass factor) must be >= 1, got {self.start_blur}")
        if not self.s_min < self.variation <= 1.0:
            raise ValueError(
                f"variation (the coarsest scale's starting noise level) must be in ({self.s_min:g}, 1], got {self.variation}"
            )
        if self.rectify is not None and not 0.0 < self.rectify < 1.0:
            raise ValueError(f"rectify (the sharper kernel's width factor gamma) must be in (0, 1), got {self.rectify}")
        check_device_spec(str(self.device))  # a DeviceError, which is a ValueError too
        make_codec(self.latent)  # a bad spec or a missing VAE folder fails here

    def record(self, codec: Codec | None = None) -> dict:
        """The settings as JSON values for the output files; the latent as its (fitted) codec's description."""
        recorded = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"device": str(self.device)}
        codec = codec if codec is not None else make_codec(self.latent)
        return recorded | {"backend_options": dict(self.backend_options), "latent": None if codec is None else codec.describe()}


def preset_settings(preset: str = "default", **overrides) -> GenerationSettings:
    """The settings of a preset (``PRESETS``: "default" or "paper"), with ``overrides`` (None: the preset's).
    A ``patch_size`` given is kept as it is (no ``small_input_patch``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset] | {name: value for name, value in overrides.items() if value is not None}
    if overrides.get("patch_size") is not None:
        chosen["small_input_patch"] = False  # a patch size given is kept
    if chosen.get("num_scales") == "auto":
        chosen["num_scales"] = None
    return GenerationSettings(**chosen)
