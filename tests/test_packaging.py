"""Packaging (issue 20): every imported package declared, a small core, optional features behind extras that
say in one line which extra to install when missing (``sinfree.extras.require``)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image

import sinfree
from sinfree import extras
from sinfree.errors import MissingExtraError, SinfreeError

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "sinfree"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# import name -> distribution name, where they differ (written here, not taken from sinfree.extras, to check it)
IMPORT_TO_DISTRIBUTION = {
    "PIL": "pillow",
    "png": "pypng",
    "skimage": "scikit-image",
    "pywt": "PyWavelets",
    "faiss": "faiss-cpu",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
}
CORE_MODULES = ("sinfree.generation", "sinfree.editing", "sinfree.edit", "sinfree.cli", "sinfree.backends")
# every package of an extra, by import name: none may be imported by `import sinfree.<anything>`
OPTIONAL_IMPORTS = (
    "pydicom",
    "nibabel",
    "tifffile",
    "scipy",
    "skimage",
    "pywt",
    "transformers",
    "huggingface_hub",
    "diffusers",
    "safetensors",
    "matplotlib",
    "threadpoolctl",
    "faiss",
    "gradio",
    "dask",
    "zarr",
)
EXTRA_LINE = re.compile(r"^.+ needs [\w.-]+: pip install 'sinfree\[\w+\]'$")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ("dask[distributed]>=2024.1" -> "dask")."""
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extra(name: str) -> set[str]:
    """The distribution names an extra brings, self-references (sinfree[a,b]) resolved."""
    names = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][name]:
        if _name(requirement) == "sinfree":
            for other in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                names |= _extra(other.strip())
        else:
            names.add(_name(requirement))
    return names


def _core() -> set[str]:
    return {_name(requirement) for requirement in PYPROJECT["project"]["dependencies"]}


def _distribution(module: str) -> str:
    top = module.split(".")[0]
    return IMPORT_TO_DISTRIBUTION.get(top, top).lower().replace("_", "-")


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("sinfree", "__future__")


def _module_name(node: ast.expr) -> str | None:
    """A literal module name: "scipy.linalg", or f"scipy.{module}" -> "scipy"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value.rstrip(".") or None
    return None


def _walk(node: ast.AST, eager: bool):
    """(node, runs at import time) for ``node``'s descendants; a function's body runs later."""
    for child in ast.iter_child_nodes(node):
        yield child, eager
        lazy = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, eager and not lazy)


def _imports() -> list[tuple[str, str, str | None, bool]]:
    """(file, module, extra, at import time) for every absolute import (extra None) and every
    ``require(module, extra, ...)`` in src/sinfree."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        file = str(path.relative_to(SOURCE))
        for node, eager in _walk(ast.parse(path.read_text(), filename=str(path)), True):
            if isinstance(node, ast.Import):
                found += [(file, alias.name, None, eager) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((file, node.module, None, eager))
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and len(node.args) >= 2:
                module, extra = _module_name(node.args[0]), node.args[1]
                if module is not None:  # else a loop over a list of modules: checked by name below
                    assert isinstance(extra, ast.Constant), f"{file}: require({module!r}) without a literal extra"
                    found.append((file, module, extra.value, eager))
    return found


def test_every_imported_package_is_declared():
    declared = _core() | {name for extra in PYPROJECT["project"]["optional-dependencies"] for name in _extra(extra)}
    imports = [(file, module) for file, module, _, _ in _imports() if _third_party(module)]
    assert {module.split(".")[0] for _, module in imports} >= {"torch", "numpy", "PIL", "png", "pydicom", "faiss"}
    undeclared = sorted({(_distribution(module), file) for file, module in imports if _distribution(module) not in declared})
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_only_core_packages_are_imported_at_module_level():
    core = _core()
    eager = sorted({(file, module) for file, module, _, top in _imports() if top and _third_party(module)})
    assert eager, "the scan found no module-level import at all"
    optional = [(file, module) for file, module in eager if _distribution(module) not in core]
    assert not optional, f"optional packages imported at module level (import them through sinfree.extras.require): {optional}"


def test_each_require_names_the_extra_that_brings_its_package():
    calls = [(file, module, extra) for file, module, extra, _ in _imports() if extra is not None]
    assert len(calls) >= 10
    extras_declared = PYPROJECT["project"]["optional-dependencies"]
    for file, module, extra in calls:
        assert extra in extras_declared, f"{file}: require({module!r}, {extra!r}): no such extra"
        assert _distribution(module) in _extra(extra), f"{file}: {module} is not in the {extra!r} extra"
    from sinfree.enhance.restore import ENHANCE_MODULES
    from sinfree.evaluation.evaluate import EVAL_MODULES

    for modules, extra in ((ENHANCE_MODULES, "medical"), (EVAL_MODULES, "eval")):  # the features' up-front checks
        assert {_distribution(module) for module in modules} <= _extra(extra)


def test_all_holds_every_runtime_extra_and_the_core_is_small():
    runtime = set(PYPROJECT["project"]["optional-dependencies"]) - {"all", "docs", "test", "bench"}
    assert {"medical", "style", "vae", "eval"} <= runtime
    assert _extra("all") == set().union(*(_extra(name) for name in runtime))
    assert _core() == {"torch", "numpy", "pillow", "pypng", "typer", "rich", "numba"}
    assert "torch>=2.4,<3" in PYPROJECT["project"]["dependencies"]
    assert "ruff>=0.17,<0.18" in PYPROJECT["project"]["optional-dependencies"]["test"]


def test_version_license_and_changelog():
    assert PYPROJECT["project"]["version"] == sinfree.__version__ == "0.2.0"
    assert "MIT License" in (ROOT / "LICENSE").read_text() and "the sinfree authors" in (ROOT / "LICENSE").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{sinfree.__version__}] - " in changelog and "## [0.1.0]" in changelog


def test_optional_features_import_none_of_their_packages():
    """The core modules, and even the optional features' own modules, import no optional package until used."""
    modules = [
        *CORE_MODULES,
        "sinfree.cli.enhance",
        "sinfree.cli.evaluate",
        "sinfree.cli.style",
        "sinfree.enhance",
        "sinfree.evaluation",
        "sinfree.metrics",
        "sinfree.io.scans",
        "sinfree.io.derived",
        "sinfree.latent",
        "sinfree.latent.vae",
        "sinfree.editing.style",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        f"print(sorted(name for name in {OPTIONAL_IMPORTS!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"imported: {result.stdout}"


# ---- a missing extra: one line naming the extra


@pytest.fixture()
def gone(monkeypatch):
    """``gone("scipy.ndimage")``: that module cannot be imported (None in sys.modules) for the test."""

    def block(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)

    return block


def _message(call) -> str:
    with pytest.raises(MissingExtraError) as caught:
        call()
    assert isinstance(caught.value, SinfreeError)
    message = str(caught.value)
    assert "\n" not in message and EXTRA_LINE.match(message), message
    return message


def test_require_returns_the_module_or_names_the_extra(gone):
    assert extras.require("json", "eval", "a test") is sys.modules["json"]
    gone("scipy.linalg")
    assert _message(lambda: extras.require("scipy.linalg", "eval", "sinfree eval")) == (
        "sinfree eval needs scipy: pip install 'sinfree[eval]'"
    )
    gone("skimage", "skimage.restoration")
    assert _message(lambda: extras.require("skimage.restoration", "medical", "sinfree enhance")) == (
        "sinfree enhance needs scikit-image: pip install 'sinfree[medical]'"
    )


def test_a_broken_dependency_of_an_installed_package_is_named(monkeypatch):
    def broken(module):
        raise ModuleNotFoundError("No module named 'tokenizers'", name="tokenizers")

    monkeypatch.setattr(extras, "_import", broken)
    with pytest.raises(MissingExtraError) as caught:
        extras.require("transformers", "style", "sinfree style")
    assert str(caught.value) == "sinfree style needs transformers: pip install 'sinfree[style]' (No module named 'tokenizers')"


def test_enhance_without_the_medical_extra(gone):
    from sinfree.enhance import deblur, denoise

    image = np.random.default_rng(0).normal(size=(24, 24))
    gone("skimage.restoration")
    assert _message(lambda: denoise(image)) == "sinfree enhance needs scikit-image: pip install 'sinfree[medical]'"
    gone("scipy.ndimage")
    assert "needs scipy: pip install 'sinfree[medical]'" in _message(lambda: deblur(image, blur=1.0, sigma=0.1))


def test_scans_without_the_medical_extra(gone, tmp_path):
    import nibabel

    from sinfree.io.scans import read_scan

    dicom = tmp_path / "scan.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x00\x00")
    nifti = tmp_path / "scan.nii"
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), nifti)
    tiff = tmp_path / "image.tif"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tiff)
    gone("pydicom", "nibabel", "tifffile")
    assert _message(lambda: read_scan(dicom)) == "DICOM support needs pydicom: pip install 'sinfree[medical]'"
    assert _message(lambda: read_scan(nifti)) == "NIfTI support needs nibabel: pip install 'sinfree[medical]'"
    assert read_scan(tiff).data.shape == (8, 8)  # without tifffile, Pillow reads the common TIFFs


def test_style_vae_and_faiss_without_their_extras(gone, tmp_path):
    from sinfree.backends import make_backend
    from sinfree.editing.style import load_clip
    from sinfree.latent.vae import load_autoencoder

    gone("transformers", "diffusers", "faiss")
    assert _message(load_clip).endswith("needs transformers: pip install 'sinfree[style]'")
    assert _message(lambda: load_autoencoder(tmp_path)).endswith("needs diffusers: pip install 'sinfree[vae]'")
    patches = torch.randn(64, 12)
    assert (
        _message(lambda: make_backend("faiss-ivf", patches))
        == "backend 'faiss-ivf' needs faiss-cpu: pip install 'sinfree[faiss]'"
    )


def test_metrics_without_the_eval_extra(gone, tmp_path):
    from sinfree.evaluation.evaluate import check_eval_extra
    from sinfree.metrics.layout import seam_ratio
    from sinfree.metrics.niqe import niqe
    from sinfree.metrics.sifid import frechet_distance

    gone("scipy.ndimage", "threadpoolctl", "faiss", "matplotlib")
    image = np.zeros((200, 200), np.uint8)
    assert _message(lambda: niqe(image)) == "NIQE (sinfree eval) needs scipy: pip install 'sinfree[eval]'"
    assert "needs threadpoolctl: pip install 'sinfree[eval]'" in _message(lambda: frechet_distance([0], [[1]], [0], [[1]]))
    sample = torch.zeros(3, 16, 16)
    assert "needs faiss-cpu: pip install 'sinfree[eval]'" in _message(lambda: seam_ratio(sample, sample))
    assert _message(check_eval_extra) == "sinfree eval needs scipy: pip install 'sinfree[eval]'"


# ---- the CLI with no extra installed at all: generation works, the optional commands fail in one line

NO_EXTRAS = """
import sys

class NoExtras:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NoExtras())
sys.argv = ["sinfree", *{args!r}]
from sinfree.cli import main
main()
"""


def _cli_without_extras(*args: str) -> subprocess.CompletedProcess:
    code = NO_EXTRAS.format(blocked=set(OPTIONAL_IMPORTS), args=list(args))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.fixture()
def input_png(tmp_path, small_rgb) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(small_rgb).save(path)
    return path


def test_generate_needs_no_extra(input_png, tmp_path):
    result = _cli_without_extras("generate", str(input_png), "-o", str(tmp_path / "out"), "-P", "7", "-S", "2", "-T", "3", "-q")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ("enhance", "sinfree: error: sinfree enhance needs scipy: pip install 'sinfree[medical]'"),
        ("eval", "sinfree: error: sinfree eval needs scipy: pip install 'sinfree[eval]'"),
    ],
)
def test_optional_commands_say_which_extra_to_install(input_png, tmp_path, command, line):
    result = _cli_without_extras(command, str(input_png), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip() == line
    assert not (tmp_path / "out").exists()
