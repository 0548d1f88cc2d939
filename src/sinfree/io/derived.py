"""Scans derived from a scan: the inpainting mask read against it, the names and metadata of restored outputs
(a super-resolved DICOM's Rows, Columns and PixelSpacing; a NIfTI's zooms and affine)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np

from ..errors import InputImageError, SinfreeError
from .scans import read_scan


def read_mask(path: Path | None, scan, colour: bool) -> np.ndarray:
    """The inpainting mask as (H, W) bool, True where pixels are missing (any nonzero channel), checked
    against the scan's plane; errors name the mask file."""
    if path is None:
        raise SinfreeError("--task inpaint needs --mask PATH (nonzero where pixels are missing)")
    data = read_scan(path).data
    missing = (data != 0).any(axis=2) if data.ndim == 3 else data != 0
    plane = scan.data.shape[:2] if colour or scan.data.ndim == 2 else scan.data.shape[1:3]
    if missing.shape != plane:
        raise InputImageError(f"{path}: the mask is {missing.shape[1]}x{missing.shape[0]} px, the input {plane[1]}x{plane[0]} px")
    if not missing.any():
        raise InputImageError(f"{path}: the mask marks no pixel (all black): nothing to fill")
    if missing.all():
        raise InputImageError(f"{path}: the mask marks every pixel (all white): nothing is known")
    return missing


def is_colour(scan) -> bool:
    """Whether a 3-D array is (H, W, C) colour rather than a (D, H, W) volume."""
    if scan.data.ndim != 3:
        return False
    if scan.kind == "dicom":
        return int(scan.meta.get("SamplesPerPixel", 1)) > 1
    if scan.kind == "image":
        return "S" in scan.meta["axes"] if "axes" in scan.meta else True
    return False


def split_suffix(path: Path) -> tuple[str, str]:
    """(stem, suffix) of a scan's file name, ``.nii.gz`` kept whole."""
    name = path.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else path.suffix
    return name[: len(name) - len(suffix)], suffix


def derived_path(folder: Path, source: Path, label: str) -> Path:
    """``FOLDER/<source stem>_<label><source suffix>``: an output in the input's format."""
    stem, suffix = split_suffix(source)
    return Path(folder) / f"{stem}_{label}{suffix}"


def uncertainty_path(output: Path) -> Path:
    """``<OUTPUT stem>_uncertainty<suffix>`` (``.nii.gz`` kept whole)."""
    name = output.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else output.suffix
    return output.with_name(f"{name[: len(name) - len(suffix)]}_uncertainty{suffix}")


def resized_scan(scan, shape: tuple[int, ...], factor: int):
    """A copy of ``scan`` that describes data of ``shape``, ``factor`` times finer in-plane: PNG/TIFF as they are,
    DICOM with new Rows, Columns and PixelSpacing, NIfTI with the in-plane voxel axes of its affine divided by
    ``factor`` and the origin moved to the new first voxel's centre."""
    meta = scan.meta
    if scan.kind == "dicom":
        meta = copy.deepcopy(meta)
        meta.Rows, meta.Columns = shape[:2] if is_colour(scan) else shape[-2:]
        if "PixelSpacing" in meta:
            meta.PixelSpacing = [float(v) / factor for v in meta.PixelSpacing]
    elif scan.kind == "nifti":
        meta = _finer_nifti(meta, shape, factor)
    return dataclasses.replace(scan, data=np.empty(shape), meta=meta)


def _finer_nifti(image, shape: tuple[int, ...], factor: int):
    """A NIfTI image object of the finer grid: scan data (k, j, i) are voxel axes (i, j, k) reversed."""
    affine = image.affine.copy()
    shift = (0.5 / factor - 0.5) * (affine[:3, 0] + affine[:3, 1])
    affine[:3, 0] /= factor
    affine[:3, 1] /= factor
    affine[:3, 3] += shift
    voxels = tuple(reversed(shape)) + tuple(image.shape[len(shape) :])
    header = image.header.copy()
    out = type(image)(np.zeros(voxels, dtype=image.get_data_dtype()), affine, header)
    zooms = list(header.get_zooms())
    zooms[0], zooms[1] = zooms[0] / factor, zooms[1] / factor
    out.header.set_zooms(zooms)
    return out
