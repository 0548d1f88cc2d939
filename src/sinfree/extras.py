"""Optional dependencies: every import of a package outside the core install goes through ``require``.

The core install (``pip install sinfree``) generates and edits images with the default backends; the rest
comes with extras (pyproject.toml): ``medical`` (scans, ``sinfree enhance``), ``style`` (CLIP), ``vae`` (the
VAE latent space), ``eval`` (``sinfree eval``, ``sinfree.metrics``), ``faiss`` (the ``faiss-ivf`` backend),
``web``, ``cluster`` and ``all``. A feature whose extra is missing raises ``MissingExtraError``, which the CLI
prints on one line, e.g. ``sinfree enhance needs scikit-image: pip install 'sinfree[medical]'``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "faiss": "faiss-cpu",
    "pywt": "PyWavelets",
    "skimage": "scikit-image",
}

_import = importlib.import_module  # tests replace it to simulate a missing package


def distribution(module: str) -> str:
    """The PyPI name of the distribution that provides the top-level package of ``module``."""
    top = module.split(".")[0]
    return DISTRIBUTIONS.get(top, top)


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or MissingExtraError: "<feature> needs <distribution>: pip install 'sinfree[<extra>]'".

    ``feature`` names what the user asked for ("sinfree enhance", "DICOM support"); a package that is installed
    but fails to import for want of one of its own dependencies adds that cause to the line.
    """
    try:
        return _import(module)
    except ImportError as error:
        missing = (getattr(error, "name", None) or "").split(".")[0]
        cause = "" if missing in ("", module.split(".")[0]) else f" ({error})"
        raise MissingExtraError(f"{feature} needs {distribution(module)}: pip install 'sinfree[{extra}]'{cause}") from None
