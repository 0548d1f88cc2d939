"""The options every subcommand shares, with one meaning everywhere, and their parsers.

This module imports no subcommand and no part of the library that loads torch, so that ``sinfree --help``
and ``--version`` answer at once. Commands take the shared options through ``with_options``: each group
below is a list of parameters added to the command's signature (and to its ``--help`` panel) and handed
to the command as one ``Options`` object.
"""

import functools
import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Optional

import typer

from ..errors import SinfreeError

# Every name ``backend=`` accepts (sinfree.backends.backend_names(); tests/test_cli.py checks they agree).
BACKEND_NAMES = ("auto", "balanced", "chunked", "exact", "faiss-ivf", "ivf", "patchmatch", "reference")
LATENT_CHOICES = "pca, pca:K (K x K blocks, K in 2..16) or vae:PATH"
PRESET_NAMES = ("default", "paper")

OUTPUT_PANEL, SAMPLER_PANEL, LAYOUT_PANEL, EXPERT_PANEL = "Output", "Sampler", "Layout (generation)", "Expert: backend and memory"


@dataclass(frozen=True)
class Param:
    """One shared option: its parameter name, Annotated type and default."""

    name: str
    annotation: Any
    default: Any


def option(*names: str, panel: str, **kwargs) -> Any:
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


OUTPUT = [
    Param(
        "outdir",
        Annotated[
            Path, option("-o", "--outdir", panel=OUTPUT_PANEL, help="Folder for the outputs (created when the first is written).")
        ],
        Path("samples"),
    ),
    Param("num_samples", Annotated[int, option("-n", "--num-samples", min=1, panel=OUTPUT_PANEL, help="Number of outputs.")], 1),
    Param(
        "seed", Annotated[int, option("--seed", panel=OUTPUT_PANEL, help="Seed of the first output; output i uses seed + i.")], 0
    ),
    Param(
        "sheet",
        Annotated[bool, option("--sheet", panel=OUTPUT_PANEL, help="Also write a sheet of the input beside the outputs.")],
        False,
    ),
    Param(
        "overwrite",
        Annotated[
            bool,
            option("--overwrite", panel=OUTPUT_PANEL, help="Replace outputs that exist (otherwise refused before any work)."),
        ],
        False,
    ),
    Param("quiet", Annotated[bool, option("--quiet", "-q", panel=OUTPUT_PANEL, help="No progress bar.")], False),
]
SAMPLER = [
    Param(
        "preset",
        Annotated[
            str,
            option(
                "--preset",
                panel=SAMPLER_PANEL,
                help="default: keeps the input's composition (S from the sizes, layout guidance); paper: Table 1 of the paper exactly (S = 4, no guidance).",
            ),
        ],
        "default",
    ),
    Param(
        "steps",
        Annotated[
            Optional[int],
            option("--steps", "-T", min=1, panel=SAMPLER_PANEL, help="Denoiser calls per scale T (default: the preset's, 10)."),
        ],
        None,
    ),
    Param(
        "eta",
        Annotated[
            Optional[float],
            option(
                "--eta",
                min=0.0,
                max=1.0,
                panel=SAMPLER_PANEL,
                help="Stochasticity of Eq. 5: 0 = DDIM (default), 1 = full re-noising.",
            ),
        ],
        None,
    ),
    Param(
        "patch_size",
        Annotated[
            Optional[int],
            option(
                "--patch-size",
                "-P",
                min=1,
                panel=SAMPLER_PANEL,
                help="Patch size P (default 15 px, 7 latent px; smaller for inputs under 30 px).",
            ),
        ],
        None,
    ),
    Param(
        "scales",
        Annotated[
            Optional[str],
            option(
                "--scales",
                "-S",
                panel=SAMPLER_PANEL,
                help="Number of pyramid scales S, or 'auto': the most that keep the coarsest short side >= 2 P (default: the preset's).",
            ),
        ],
        None,
    ),
    Param(
        "rho",
        Annotated[
            Optional[str],
            option(
                "--rho",
                panel=SAMPLER_PANEL,
                help="Width of the Gaussian fold window on [-1, 1] patch coordinates, or 'inf' for plain averaging (default 0.2).",
            ),
        ],
        None,
    ),
    Param(
        "min_coarsest",
        Annotated[
            Optional[float],
            option(
                "--min-coarsest",
                min=1.0,
                panel=SAMPLER_PANEL,
                help="With automatic S: the coarsest short side in px (default 2 P).",
            ),
        ],
        None,
    ),
]
LATENT = [
    Param(
        "latent",
        Annotated[
            Optional[str],
            option(
                "--latent",
                panel=SAMPLER_PANEL,
                help=f"Denoise in a latent space and decode: {LATENT_CHOICES}. pca: a PCA of the input's 8 x 8 blocks (no weights); vae:PATH: a diffusers AutoencoderKL folder.",
            ),
        ],
        None,
    ),
]
LAYOUT = [
    Param(
        "layout_guidance",
        Annotated[
            Optional[float],
            option(
                "--layout-guidance",
                min=0.0,
                max=1.0,
                panel=LAYOUT_PANEL,
                help="On the coarsest scale, move xhat0's row and column mean colours this far towards the input's (default 0.7; 0 off).",
            ),
        ],
        None,
    ),
    Param(
        "layout_guidance_end",
        Annotated[
            Optional[float],
            option(
                "--layout-guidance-end",
                min=0.0,
                max=1.0,
                panel=LAYOUT_PANEL,
                help="The guidance's strength at the last step, linear in the noise level from --layout-guidance (default: "
                "constant). 0 fades it out: cleaner, more varied samples that keep the layout less.",
            ),
        ],
        None,
    ),
    Param(
        "position_prior",
        Annotated[
            Optional[float],
            option(
                "--position-prior",
                min=0.0,
                panel=LAYOUT_PANEL,
                help="On the coarsest scale, draw each patch from within about this fraction of the input around its "
                "place (e.g. 0.1; default 0, off): cleaner samples that keep the layout, with less variety.",
            ),
        ],
        None,
    ),
    Param(
        "variation",
        Annotated[
            Optional[float],
            option(
                "--variation",
                min=0.0,
                max=1.0,
                panel=LAYOUT_PANEL,
                help="Noise level in (0.0001, 1] the coarsest scale starts from: lower keeps the input's layout closer (default 1, pure noise).",
            ),
        ],
        None,
    ),
    Param(
        "start_blur",
        Annotated[
            Optional[float],
            option(
                "--start-blur",
                min=1.0,
                panel=LAYOUT_PANEL,
                help="With --variation < 1: low-pass the start by this factor (default 1, sharp).",
            ),
        ],
        None,
    ),
    Param(
        "completeness",
        Annotated[
            Optional[float],
            option(
                "--completeness",
                min=0.0,
                max=1.0,
                panel=LAYOUT_PANEL,
                help="Balance how often each input patch is used on the coarse scales (Sinkhorn; default 0, plain Eq. 2).",
            ),
        ],
        None,
    ),
]
# The device every command computes on (sinfree.device; the form is checked here, without torch, and the
# device itself by ``check_device`` before any work).
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE = [
    Param(
        "device",
        Annotated[
            str,
            option(
                "--device",
                panel=EXPERT_PANEL,
                help=f"Where to compute: {DEVICE_CHOICES}. auto: the first CUDA GPU when there is one, else the CPU.",
            ),
        ],
        "auto",
    )
]
EXPERT = [
    Param(
        "backend",
        Annotated[
            str,
            option(
                "--backend",
                panel=EXPERT_PANEL,
                help=f"Patch denoiser: {', '.join(BACKEND_NAMES)}. auto: exact where a call is cheap, the fast backend elsewhere.",
            ),
        ],
        "auto",
    ),
    Param(
        "backend_option",
        Annotated[
            Optional[list[str]],
            option(
                "--backend-option",
                panel=EXPERT_PANEL,
                help="NAME=VALUE for the backend, repeatable: e.g. k=8, nprobe=2, tail=16, passes=2, project=32, propagate=true.",
            ),
        ],
        None,
    ),
    Param(
        "stride", Annotated[int, option("--stride", min=1, panel=EXPERT_PANEL, help="Query patch stride (1: every patch).")], 1
    ),
    Param(
        "max_memory_gb",
        Annotated[
            Optional[float],
            option(
                "--max-memory-gb",
                min=0.0,
                panel=EXPERT_PANEL,
                help="Refuse runs estimated above this many GiB (default: the free memory).",
            ),
        ],
        None,
    ),
    *DEVICE,
]
GENERATION = SAMPLER + LATENT + EXPERT
# Out-of-core outputs (sinfree.large, docs/large-outputs.md): canvases on disk in tiles, resumable, on Dask workers.
LARGE_PANEL = "Large outputs (out of core)"
OUTPUT_FORMATS = ("auto", "png", "tiff")
LARGE = [
    Param(
        "out_of_core",
        Annotated[
            bool,
            option(
                "--out-of-core",
                panel=LARGE_PANEL,
                help="Tile the large scales on disk (memory bounded by --max-memory-gb). Automatic for outputs above 8192^2 px "
                "and with any option of this panel.",
            ),
        ],
        False,
    ),
    Param(
        "workers",
        Annotated[
            Optional[int],
            option(
                "--workers", min=1, panel=LARGE_PANEL, help="Run the tiles on an embedded Dask cluster of N one-thread workers."
            ),
        ],
        None,
    ),
    Param(
        "scheduler",
        Annotated[
            Optional[str],
            option(
                "--scheduler",
                panel=LARGE_PANEL,
                help="Run the tiles on an existing Dask cluster (tcp://HOST:PORT); its workers must see the --store folder.",
            ),
        ],
        None,
    ),
    Param(
        "store",
        Annotated[
            Optional[Path],
            option(
                "--store",
                panel=LARGE_PANEL,
                help="Folder of the run's on-disk state (default: a hidden folder beside the output). Rerunning the same "
                "command resumes an interrupted run from its last finished step.",
            ),
        ],
        None,
    ),
    Param(
        "tile_size",
        Annotated[
            Optional[int],
            option("--tile-size", min=16, panel=LARGE_PANEL, help="Tile side in canvas px (default: from --max-memory-gb)."),
        ],
        None,
    ),
    Param(
        "output_format",
        Annotated[
            str,
            option(
                "--format",
                panel=LARGE_PANEL,
                help="Output file: auto (PNG up to 8192^2 px, else a tiled pyramidal BigTIFF with a preview JPEG), png or tiff.",
            ),
        ],
        "auto",
    ),
]


def with_options(*groups: list[Param]):
    """Add the parameters of ``groups`` to a command's signature; the command receives them as
    ``options`` (a namespace). The command's own parameters come first in ``--help``."""
    params = [param for group in groups for param in group]

    def decorate(command):
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        added = [
            inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.annotation) for p in params
        ]

        @functools.wraps(command)
        def run(**kwargs):
            shared = SimpleNamespace(**{p.name: kwargs.pop(p.name) for p in params})
            return command(**kwargs, options=shared)

        run.__signature__ = signature.replace(parameters=own + added)
        run.__annotations__ = {p.name: p.annotation for p in own + added}
        return run

    return decorate


def parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise SinfreeError(f"--size must look like WIDTHxHEIGHT, e.g. 320x240; got {text!r}")
    return int(match[2]), int(match[1])


def parse_scales(text: Optional[str]):
    """--scales: a count, "auto" (from the sizes), or None (not given: the preset's)."""
    if text is None or text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise SinfreeError(f"--scales must be a positive integer or 'auto', got {text!r}")
    return int(text)


def parse_rho(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    try:
        rho = math.inf if text in ("inf", "infinity") else float(text)
    except ValueError:
        raise SinfreeError(f"--rho must be a positive number or 'inf', got {text!r}") from None
    if not rho > 0:
        raise SinfreeError(f"--rho must be a positive number or 'inf', got {text!r}")
    return rho


def check_device(spec: str) -> str:
    """--device: refused on one line before any work where its form is wrong or this machine lacks it
    (``sinfree.device.resolve_device``); the spec itself is returned (outputs record the device used)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec.strip()):
        raise SinfreeError(f"--device must be {DEVICE_CHOICES}, got {spec!r}")
    from ..device import resolve_device  # torch: only once a command runs

    resolve_device(spec)
    return spec.strip()


def parse_backend_options(items: Optional[list[str]]) -> dict:
    """['k=5', 'propagate=true'] -> {'k': 5, 'propagate': True}."""
    options = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise SinfreeError(f"--backend-option must look like NAME=VALUE, got {item!r}")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise SinfreeError(f"--backend-option {name}: {text!r} is not a number or true/false") from None
        options[name.strip()] = value
    return options


# The options' names, for turning the library's keywords back into flags (memory advice).
FLAGS = {
    "stride": "--stride",
    "latent": "--latent",
    "patch_size": "-P",
    "backend": "--backend",
    "num_samples": "-n",
    "num_scales": "--scales",
}


def as_flags(changes: dict) -> str:
    """Library keywords -> the flags that set them, e.g. {'stride': 2, 'num_scales': None} -> '--stride 2 --scales auto'."""
    words = []
    for name, value in changes.items():
        if name not in FLAGS:
            continue  # follows from another (backend_options with backend)
        words += [FLAGS[name], "auto" if value is None else str(value)]
    return " ".join(words)


# `sinfree style`: one scale of the full schedule with small patches (its own -T and -P defaults, no -S)
STYLE_SAMPLER = [param for param in SAMPLER if param.name not in ("steps", "patch_size", "scales")] + [
    Param(
        "steps", Annotated[int, option("--steps", "-T", min=1, panel=SAMPLER_PANEL, help="Steps of the full schedule T.")], 200
    ),
    Param("patch_size", Annotated[int, option("--patch-size", "-P", min=1, panel=SAMPLER_PANEL, help="Patch size P.")], 7),
]
