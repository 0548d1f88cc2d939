"""Medical and 16-bit scans in and out: DICOM, NIfTI and ordinary images (PNG, TIFF) in physical units.

``read_scan`` gives the pixels as float64 in the file's own units (DICOM after the Modality LUT's
RescaleSlope/Intercept, NIfTI after scl_slope/inter, images as stored). ``write_scan`` writes new
values in the same format, type and scaling, atomically, never onto the input, and never clips or
rescales silently: values the output cannot hold raise ``ScanWriteError`` unless ``clip=True``.

Array layout: (H, W) for one slice, (D, H, W) for a volume, (H, W, C) for colour ((D, H, W, C) for a
colour multi-frame DICOM). NIfTI voxel arrays (i, j, k) are returned as (k, j, i), so that a slice
k is an (H, W) = (j, i) image; ``write_scan`` undoes this.
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputImageError, MissingExtraError, SinfreeError
from ..extras import require
from .images import PNG_SIGNATURE, read_image_file, save_png, write_atomically

DERIVED_SUFFIX = "sinfree enhanced"
# A derived DICOM series per role: (SeriesNumber offset, SeriesDescription suffix). The original's SeriesNumber
# plus the offset keeps the link to the source visible (series 3 -> 1003 and 2003) and sorts the derived series
# after the acquired ones in viewers' series lists; the result and its uncertainty never share a number or a
# description, so that a viewer or PACS does not show them as one series.
SERIES_ROLES = {"result": (1000, DERIVED_SUFFIX), "uncertainty": (2000, "sinfree uncertainty")}
MAX_SERIES_NUMBER = 2**31 - 1  # DICOM IS: a signed 32-bit integer
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


class ScanError(InputImageError):
    """A scan cannot be read: unknown format, truncated, no pixel data, undecodable or unsupported."""


class ScanWriteError(SinfreeError):
    """A scan cannot be written as asked: values out of range, wrong shape, onto the input, wrong suffix."""


@dataclass
class Scan:
    """A scan's pixels in physical units and what is needed to write new pixels in the same format."""

    data: np.ndarray  # float64, physical units
    kind: str  # "dicom", "nifti" or "image"
    source: Path
    meta: Any  # pydicom Dataset, nibabel image, or {"format", "dtype", "mode", ...} for images
    value_range: tuple[float, float] = (-math.inf, math.inf)  # what the output format can hold
    units: str = ""  # "HU" for CT, "" when unknown


# ---------------------------------------------------------------------------------------------- reading


def read_scan(path: str | os.PathLike) -> Scan:
    """Read a DICOM, NIfTI (.nii, .nii.gz) or image file (PNG, TIFF, ...), dispatching on its content."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    if path.is_dir():
        raise ScanError(f"{path}: is a directory; give one DICOM, NIfTI or image file")
    head = _head(path)
    kind = _sniff(path, head)
    if kind == "dicom":
        return _read_dicom(path, force=head[128:132] != b"DICM")
    if kind == "nifti":
        return _read_nifti(path)
    if kind == "nifti-pair":
        raise ScanError(f"{path}: a NIfTI/Analyze header-image pair is not supported; convert it to one .nii or .nii.gz file")
    if kind == "tiff":
        return _read_tiff(path)
    return _read_image(path, kind)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(352)
    except OSError as error:
        raise ScanError(f"{path}: cannot open ({_first_line(error)})") from None


def _sniff(path: Path, head: bytes) -> str:
    name = path.name.lower()
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if name.endswith(NIFTI_SUFFIXES) or _nifti_magic(head) or _gzipped_nifti(path, head):
        return "nifti"
    if head.startswith(TIFF_SIGNATURES):
        return "tiff"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head[344:348] == b"ni1\x00" or name.endswith(".hdr"):
        return "nifti-pair"
    if name.endswith((".dcm", ".dicom", ".ima")) or _looks_like_bare_dicom(head):
        return "dicom"
    return "other"


def _nifti_magic(head: bytes) -> bool:
    return head[344:348] == b"n+1\x00" or head[4:8] == b"n+2\x00"


def _gzipped_nifti(path: Path, head: bytes) -> bool:
    if not head.startswith(b"\x1f\x8b"):
        return False
    try:
        with gzip.open(path, "rb") as handle:
            return _nifti_magic(handle.read(352))
    except (OSError, EOFError, zlib.error):
        return False


def _looks_like_bare_dicom(head: bytes) -> bool:
    """A DICOM file without the 128-byte preamble starts with a group 0002 or 0008 tag."""
    if len(head) < 8:
        return False
    group, _ = struct.unpack("<HH", head[:4])
    return group in (0x0002, 0x0008) and (head[4:6].isalpha() or struct.unpack("<I", head[4:8])[0] < 0x10000)


# ---- DICOM


def _read_dicom(path: Path, force: bool) -> Scan:
    pydicom = require("pydicom", "medical", "DICOM support")
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=force)
    except InvalidDicomError as error:
        raise ScanError(f"{path}: not a DICOM file that can be read ({_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds on truncated or corrupt files
        raise ScanError(f"{path}: cannot read the DICOM file ({_first_line(error)}); is it truncated or corrupt?") from None
    _fill_transfer_syntax(ds)
    _check_dicom_image(ds, path)
    stored = _decode_pixels(ds, path)
    slope, intercept, rescale_type = _dicom_rescale(ds, path)
    data = stored.astype(np.float64) * slope + intercept
    low, high = _stored_range(ds)
    value_range = tuple(sorted((low * slope + intercept, high * slope + intercept)))
    return Scan(data, "dicom", path, ds, value_range, _dicom_units(ds, rescale_type))


def _fill_transfer_syntax(ds) -> None:
    """Files without a meta header: take the transfer syntax from the encoding they were read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = ds.is_implicit_VR, ds.is_little_endian
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _check_dicom_image(ds, path: Path) -> None:
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise ScanError(f"{path}: DICOM float pixel data is not supported (only integer PixelData)")
        sop = ds.get("SOPClassUID")
        what = f" ({getattr(sop, 'name', sop)})" if sop else ""
        hint = "it describes an image (Rows, Columns): is the file truncated?" if "Rows" in ds else "there is no image to read"
        raise ScanError(f"{path}: a DICOM file without pixel data{what}; {hint}")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        raise ScanError(f"{path}: PALETTE COLOR DICOM images hold colour-table indices, not intensities; not supported")
    bits = int(ds.get("BitsAllocated", 0))
    if bits not in (8, 16, 32):
        raise ScanError(f"{path}: DICOM with BitsAllocated {bits} is not supported (8, 16 or 32)")
    if "ModalityLUTSequence" in ds:
        raise ScanError(f"{path}: a DICOM Modality LUT table (not a linear rescale) is not supported")


def _decode_pixels(ds, path: Path) -> np.ndarray:
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        return np.asarray(ds.pixel_array)
    except Exception as error:  # noqa: BLE001 - decoders raise RuntimeError, ValueError, OSError, ...
        if syntax.is_compressed:
            raise ScanError(
                f"{path}: the pixel data is compressed as {syntax.name} ({syntax}), which cannot be decoded here"
                f" ({_decoder_problem(syntax, error)})"
            ) from None
        raise ScanError(f"{path}: cannot read the DICOM pixel data ({_first_line(error)}); is it truncated or corrupt?") from None


def _decoder_problem(syntax, error: BaseException) -> str:
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(syntax)
    except (ImportError, NotImplementedError, ValueError):  # pydicom < 3, or no decoder at all for this syntax
        return _one_line(error)
    if decoder.is_available:
        return _one_line(error)
    return f"no decoder installed; one of: {'; '.join(decoder.missing_dependencies) or 'a decoder plugin'}"


def _dicom_rescale(ds, path: Path) -> tuple[float, float, str]:
    """Slope, intercept and RescaleType of the linear Modality LUT (top level or functional groups)."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0)), str(ds.get("RescaleType", ""))
    if ds.get("Modality") == "RTDOSE" and "DoseGridScaling" in ds:
        return float(ds.DoseGridScaling), 0.0, ""
    items = _functional_group_rescales(ds)
    if not items:
        return 1.0, 0.0, ""
    if len(set(items)) > 1:
        raise ScanError(f"{path}: the frames have different RescaleSlope/Intercept values; not supported")
    return items[0]


def _functional_group_rescales(ds) -> list[tuple[float, float, str]]:
    found = []
    for group_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(group_name, []) or []:
            for item in group.get("PixelValueTransformationSequence", []) or []:
                slope, intercept = float(item.get("RescaleSlope", 1.0)), float(item.get("RescaleIntercept", 0.0))
                found.append((slope, intercept, str(item.get("RescaleType", ""))))
        if found:
            return found
    return found


def _stored_range(ds) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.BitsAllocated))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _dicom_units(ds, rescale_type: str) -> str:
    rescale_type = rescale_type.strip().upper()
    if rescale_type and rescale_type != "US":  # "US": unspecified
        return rescale_type
    if ds.get("Modality") == "CT":
        return "HU"
    if ds.get("Modality") == "RTDOSE" and "DoseGridScaling" in ds:
        return str(ds.get("DoseUnits", "")).strip()
    return ""


# ---- NIfTI


def _read_nifti(path: Path) -> Scan:
    nibabel = require("nibabel", "medical", "NIfTI support")

    try:
        image = nibabel.load(path)
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds on bad files
        raise ScanError(f"{path}: cannot read as NIfTI ({_first_line(error)}); is it truncated or not a NIfTI file?") from None
    if not isinstance(image, (nibabel.Nifti1Image, nibabel.Nifti2Image)):
        raise ScanError(f"{path}: a {type(image).__name__}, not a NIfTI-1/NIfTI-2 image volume; not supported")
    dtype = image.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise ScanError(f"{path}: NIfTI data type {dtype} (complex or RGB) is not supported; give a scalar volume")
    _check_nifti_shape(image, path)
    try:
        voxels = image.get_fdata(caching="unchanged", dtype=np.float64)
    except Exception as error:  # noqa: BLE001 - truncated data: OSError, EOFError, ValueError, zlib.error...
        raise ScanError(f"{path}: cannot read the NIfTI voxels ({_first_line(error)}); is it truncated?") from None
    data = np.ascontiguousarray(_nifti_to_scan_axes(voxels))
    return Scan(data, "nifti", path, image, _nifti_value_range(image), "")


def _check_nifti_shape(image, path: Path) -> None:
    shape = image.shape
    if len(shape) < 2 or len(_spatial_shape(shape)) < 2:
        raise ScanError(f"{path}: NIfTI of shape {shape} is not an image (need 2 or 3 spatial dimensions)")
    volumes = math.prod(shape[3:])
    if volumes != 1:
        raise ScanError(
            f"{path}: a {len(shape)}-D NIfTI {shape} holds {volumes} volumes; give one 2-D or 3-D volume"
            " (extract it first, e.g. nibabel's image.slicer or fslroi)"
        )


def _spatial_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    spatial = tuple(shape[:3])
    return spatial[:2] if len(spatial) == 3 and spatial[2] == 1 else spatial


def _nifti_to_scan_axes(voxels: np.ndarray) -> np.ndarray:
    """(i, j[, k]) voxels -> (H, W) = (j, i) or (D, H, W) = (k, j, i)."""
    return voxels.reshape(_spatial_shape(voxels.shape)).T


def _nifti_value_range(image) -> tuple[float, float]:
    dtype = image.get_data_dtype()
    if dtype.kind == "f":
        return -math.inf, math.inf
    slope, inter = _nifti_slope_inter(image)
    info = np.iinfo(dtype)
    return tuple(sorted((info.min * slope + inter, info.max * slope + inter)))


def _nifti_slope_inter(image) -> tuple[float, float]:
    """The file's scl_slope/scl_inter (nibabel moves them from a loaded image's header to its data proxy)."""
    proxy = image.dataobj
    slope, inter = (proxy.slope, proxy.inter) if hasattr(proxy, "slope") else image.header.get_slope_inter()
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


# ---- ordinary images


def _read_image(path: Path, kind: str) -> Scan:
    try:
        array = read_image_file(path)
    except InputImageError as error:
        if kind == "other":
            raise ScanError(f"{path}: unknown format: not DICOM, NIfTI (.nii, .nii.gz) or a readable image file") from None
        raise ScanError(str(error)) from None
    mode, fmt = _pil_mode(path)
    if array.dtype == np.int64:  # 32-bit integer images
        array = array.astype(np.int32)
    meta = {"format": fmt, "dtype": array.dtype, "mode": mode}
    return Scan(array.astype(np.float64), "image", path, meta, _dtype_range(array.dtype), "")


def _pil_mode(path: Path) -> tuple[str, str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode, str(image.format or "")
    except Exception:  # noqa: BLE001 - only a label: read_image_file has read it (with pypng)
        return "", "PNG"


def _read_tiff(path: Path) -> Scan:
    try:
        tifffile = require("tifffile", "medical", "TIFF support")
    except MissingExtraError:  # Pillow reads the common TIFFs
        return _read_image(path, "tiff")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            photometric = tif.pages[0].photometric
            if photometric.name not in ("MINISBLACK", "MINISWHITE", "RGB"):
                return _read_image(path, "tiff")  # palette, YCbCr, CMYK...: through Pillow
            array, axes = series.asarray(), series.axes
    except ScanError:
        raise
    except Exception as error:  # noqa: BLE001 - tifffile raises many kinds on bad files
        raise ScanError(f"{path}: cannot read the TIFF ({_first_line(error)}); is it truncated or corrupt?") from None
    array = _tiff_layout(array, axes, path)
    if array.dtype.kind not in "iuf":
        raise ScanError(f"{path}: TIFF pixel type {array.dtype} is not supported")
    meta = {"format": "TIFF", "dtype": array.dtype, "mode": photometric.name.lower(), "axes": axes}
    return Scan(array.astype(np.float64), "image", path, meta, _dtype_range(array.dtype), "")


def _tiff_layout(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
    colour = "S" in axes
    if array.ndim - colour not in (2, 3):
        raise ScanError(f"{path}: TIFF of shape {array.shape} (axes {axes}) is not supported; give one image or one stack")
    return array


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -math.inf, math.inf


# ---------------------------------------------------------------------------------------------- writing


def write_scan(
    scan: Scan, data: np.ndarray, path: str | os.PathLike, *, description: str = "", clip: bool = False, series: str = "result"
) -> Path:
    """Write ``data`` (same shape as ``scan.data``, physical units) to ``path`` in the scan's format, atomically.

    DICOM: a new derived object in a new series (new SOP and series UIDs, DERIVED\\SECONDARY, ``description`` in
    DerivationDescription); ``series`` ("result" or "uncertainty", ``SERIES_ROLES``) sets its SeriesNumber (the
    original's + 1000 or + 2000) and SeriesDescription suffix ("sinfree enhanced" or "sinfree uncertainty").
    Values the output cannot hold raise ScanWriteError, unless ``clip`` (then they are clipped and, for
    DICOM, the count is recorded). The input file is never written.
    """
    path = Path(path)
    if series not in SERIES_ROLES:
        raise ScanWriteError(f"unknown series role {series!r}; choose one of {', '.join(SERIES_ROLES)}")
    data = _check_data(scan, data)
    _refuse_source(scan, path)
    if path.is_dir():
        raise ScanWriteError(f"{path}: is a directory; give an output file name")
    if scan.kind == "dicom":
        write_atomically(path, _dicom_bytes(scan, data, description, clip, series))
    elif scan.kind == "nifti":
        write_atomically(path, _nifti_bytes(scan, data, path, clip))
    elif scan.kind == "image":
        _write_image(scan, data, path, description, clip)
    else:
        raise ScanWriteError(f"unknown scan kind {scan.kind!r}")
    return path


def _check_data(scan: Scan, data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.shape != scan.data.shape:
        raise ScanWriteError(f"data of shape {data.shape} does not match the scan's shape {scan.data.shape}")
    if data.dtype.kind not in "biuf":
        raise ScanWriteError(f"data of type {data.dtype} cannot be written; give real numbers")
    data = data.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise ScanWriteError(f"{bad} of {data.size} values are NaN or infinite; nothing was written")
    return data


def _refuse_source(scan: Scan, path: Path) -> None:
    same = path.resolve() == scan.source.resolve()
    if not same and path.exists() and scan.source.exists():
        same = os.path.samefile(path, scan.source)
    if same:
        raise ScanWriteError(f"{path}: is the input scan; refusing to overwrite it, give another output path")


def _to_stored(
    data: np.ndarray,
    dtype: np.dtype,
    slope: float,
    intercept: float,
    stored_range: tuple[float, float] | None,
    clip: bool,
    scan: Scan,
) -> tuple[np.ndarray, int]:
    """Physical values -> stored values of ``dtype``; (array, how many were clipped)."""
    values = data if (slope, intercept) == (1.0, 0.0) else (data - intercept) / slope
    if not np.issubdtype(dtype, np.integer):
        stored = values.astype(dtype)
        if not np.isfinite(stored).all():
            raise ScanWriteError(f"values exceed the range of the output's {dtype} pixels; nothing was written")
        return stored, 0
    low, high = stored_range if stored_range is not None else _dtype_range(dtype)
    values = np.rint(values)
    outside = int(np.count_nonzero((values < low) | (values > high)))
    if outside and not clip:
        raise ScanWriteError(
            f"{outside} of {values.size} values fall outside the range {_range_text(scan)} that the output can hold"
            f" (data {data.min():g}..{data.max():g}); nothing was written (clip=True clips them)"
        )
    return np.clip(values, low, high).astype(dtype), outside


def _range_text(scan: Scan) -> str:
    low, high = scan.value_range
    return f"[{low:g}, {high:g}]{' ' + scan.units if scan.units else ''}"


# ---- DICOM


def _dicom_bytes(scan: Scan, data: np.ndarray, description: str, clip: bool, series: str = "result") -> bytes:
    ds = copy.deepcopy(scan.meta)
    slope, intercept, _ = _dicom_rescale(ds, scan.source)
    stored, clipped = _to_stored(data, _dicom_dtype(ds), slope, intercept, _stored_range(ds), clip, scan)
    _set_pixels(ds, stored)
    note = description.strip() or "enhanced"
    if clipped:
        note += f"; {clipped} of {stored.size} values clipped to {_range_text(scan)}"
    _mark_derived(ds, scan.meta, f"sinfree: {note}", series)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.save_as(buffer, write_like_original=False)
    return buffer.getvalue()


def _dicom_dtype(ds) -> np.dtype:
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    return np.dtype(f"{'i' if signed else 'u'}{int(ds.BitsAllocated) // 8}")


def _set_pixels(ds, stored: np.ndarray) -> None:
    """New uncompressed pixel data; compressed or deflated inputs become Explicit VR Little Endian."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed or syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax = ExplicitVRLittleEndian
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0
        if str(ds.PhotometricInterpretation).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"  # pydicom decodes YCbCr to RGB
    order = "<" if syntax.is_little_endian else ">"  # big-endian files stay big-endian (pydicom cannot convert them)
    raw = stored.astype(stored.dtype.newbyteorder(order), copy=False).tobytes()
    ds.PixelData = raw + b"\x00" if len(raw) % 2 else raw
    element = ds["PixelData"]
    element.VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
    element.is_undefined_length = False
    for keyword in (
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "SmallestPixelValueInSeries",
        "LargestPixelValueInSeries",
    ):
        if keyword in ds:
            del ds[keyword]


def _mark_derived(ds, original, derivation: str, series: str = "result") -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID  # the writer is pydicom, not the original's
    ds.file_meta.ImplementationVersionName = "SINFREE"
    if "SourceApplicationEntityTitle" in ds.file_meta:
        del ds.file_meta.SourceApplicationEntityTitle
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.ImageType = ["DERIVED", "SECONDARY", *list(_values(original.get("ImageType")))[2:]]
    offset, suffix = SERIES_ROLES[series]
    ds.SeriesNumber = _derived_series_number(original, offset)
    ds.SeriesDescription = _suffixed(str(original.get("SeriesDescription", "")), suffix, 64)
    ds.DerivationDescription = derivation[:1024]
    if "SOPClassUID" in original and "SOPInstanceUID" in original:
        source = Dataset()
        source.ReferencedSOPClassUID = original.SOPClassUID
        source.ReferencedSOPInstanceUID = original.SOPInstanceUID
        ds.SourceImageSequence = [source]


def _derived_series_number(original, offset: int) -> int:
    """The original's SeriesNumber + ``offset``; ``offset`` alone when it has none (or an unusable one)."""
    try:
        number = int(original.get("SeriesNumber"))
    except (TypeError, ValueError):
        return offset
    return number + offset if 0 <= number <= MAX_SERIES_NUMBER - offset else offset


def _values(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _suffixed(text: str, suffix: str, limit: int) -> str:
    text = text.strip()
    return f"{text[: limit - len(suffix) - 1]} {suffix}" if text else suffix


# ---- NIfTI


def _nifti_bytes(scan: Scan, data: np.ndarray, path: Path, clip: bool) -> bytes:
    name = path.name.lower()
    if not name.endswith(NIFTI_SUFFIXES):
        raise ScanWriteError(f"{path}: a NIfTI output needs the suffix .nii or .nii.gz")
    image = scan.meta
    slope, inter = _nifti_slope_inter(image)
    voxels = data.T.reshape(image.shape)
    stored, _ = _to_stored(voxels, image.get_data_dtype(), slope, inter, None, clip, scan)
    out = type(image)(stored, image.affine, image.header)
    out.set_data_dtype(image.get_data_dtype())
    if (slope, inter) != (1.0, 0.0):
        out.header.set_slope_inter(slope, inter)  # else nibabel would choose its own scaling
    raw = out.to_bytes()
    return gzip.compress(raw, mtime=0) if name.endswith(".gz") else raw


# ---- ordinary images


def _write_image(scan: Scan, data: np.ndarray, path: Path, description: str, clip: bool) -> None:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ScanWriteError(f"{path}: an image output needs the suffix .png, .tif or .tiff")
    dtype = np.dtype(scan.meta["dtype"])
    if suffix == ".png" and dtype not in (np.uint8, np.uint16):
        raise ScanWriteError(f"{path}: PNG holds 8- or 16-bit pixels, the input's are {dtype}; write a .tif instead")
    if suffix == ".png" and data.ndim == 3 and data.shape[2] > 4:
        raise ScanWriteError(f"{path}: a stack of {data.shape[0]} images cannot be a PNG; write a .tif instead")
    stored, clipped = _to_stored(data, dtype, 1.0, 0.0, None, clip, scan)
    settings = {"description": description} if description else {}
    if clipped:
        settings["clipped"] = f"{clipped} of {stored.size} values clipped to {_range_text(scan)}"
    if suffix == ".png":
        save_png(stored, path, settings or None)
    else:
        write_atomically(path, _tiff_bytes(stored, scan.meta, settings))


def _tiff_bytes(stored: np.ndarray, meta: dict, settings: dict) -> bytes:
    tifffile = require("tifffile", "medical", "writing TIFF")

    channels = stored.shape[-1] if _has_channels(stored, meta) else 1
    photometric = "rgb" if channels >= 3 else ("miniswhite" if meta.get("mode") == "miniswhite" else "minisblack")
    extrasamples = ("unassalpha",) if channels in (2, 4) else None
    description = "; ".join(f"{key}: {value}" for key, value in settings.items()) or None
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        stored,
        photometric=photometric,
        extrasamples=extrasamples,
        metadata=None,
        description=description,
        software="sinfree",
    )
    return buffer.getvalue()


def _has_channels(array: np.ndarray, meta: dict) -> bool:
    """Whether the last axis holds colour/alpha samples (TIFFs read by tifffile say so in their axes)."""
    return "S" in meta["axes"] if "axes" in meta else array.ndim == 3


# ---------------------------------------------------------------------------------------------- describing


def describe_scan(scan: Scan) -> str:
    """One line for the CLI: kind, shape, units, the data's values and what the format can hold."""
    kind = scan.kind
    if kind == "dicom":
        kind = f"DICOM {scan.meta.get('Modality', '')}".strip()
    elif kind == "nifti":
        kind = type(scan.meta).__name__.replace("Image", "").replace("Nifti", "NIfTI-")
    else:
        kind = f"{scan.meta.get('format') or 'image'} {np.dtype(scan.meta['dtype'])}"
    shape = "x".join(str(n) for n in scan.data.shape)
    layout = {2: "H x W", 3: "H x W x C" if _is_colour(scan) else "D x H x W", 4: "D x H x W x C"}.get(scan.data.ndim, "")
    units = f" {scan.units}" if scan.units else ""
    values = f"{scan.data.min():g}..{scan.data.max():g}{units}" if scan.data.size else "empty"
    return f"{kind}, {shape} ({layout}), values {values}, format holds {_range_text(scan)}"


def _is_colour(scan: Scan) -> bool:
    if scan.kind == "dicom":
        return int(scan.meta.get("SamplesPerPixel", 1)) > 1
    return scan.kind == "image" and _has_channels(scan.data, scan.meta)


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
