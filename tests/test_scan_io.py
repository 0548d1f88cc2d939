"""Scans in and out (sinfree.io.scans): DICOM, NIfTI, 16-bit PNG/TIFF, with real files shipped by pydicom, nibabel, skimage."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import tifffile
from nibabel.testing import data_path as NIBABEL_DATA
from pydicom.data import get_testdata_file
from skimage import data as skdata

from sinfree.errors import InputImageError, SinfreeError
from sinfree.io.images import save_png
from sinfree.io.scans import Scan, ScanError, ScanWriteError, describe_scan, read_scan, write_scan

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on odd values in the test files


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _copy(name: str, folder: Path) -> Path:
    """A pydicom or nibabel test file copied into ``folder`` (so folder listings and hashes are ours)."""
    source = get_testdata_file(name) if name.endswith(".dcm") else os.path.join(NIBABEL_DATA, name)
    assert source is not None and os.path.exists(source), f"{name} is not shipped with the installed package"
    return Path(shutil.copy(source, folder / name))


def _decodes(path: Path) -> bool:
    try:
        pydicom.dcmread(path).pixel_array  # noqa: B018
    except Exception:  # noqa: BLE001
        return False
    return True


def _stray(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".") or name.endswith(".part")]


# ---------------------------------------------------------------------------------------------- DICOM


def test_ct_reads_in_hounsfield_units(tmp_path):
    path = _copy("CT_small.dcm", tmp_path)
    scan = read_scan(path)
    ds = pydicom.dcmread(path)
    assert scan.kind == "dicom" and scan.units == "HU" and scan.source == path
    assert scan.data.dtype == np.float64 and scan.data.shape == (128, 128)
    np.testing.assert_array_equal(scan.data, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert scan.value_range == (-32768 - 1024, 32767 - 1024)  # int16 stored, intercept -1024
    line = describe_scan(scan)
    assert "\n" not in line and "HU" in line and "128x128" in line and "CT" in line


def test_ct_round_trip_is_a_new_derived_object(tmp_path):
    path = _copy("CT_small.dcm", tmp_path)
    before = _sha(path)
    scan = read_scan(path)
    out = write_scan(scan, scan.data, tmp_path / "out.dcm", description="denoised, sigma 12 HU")
    again = read_scan(out)
    np.testing.assert_array_equal(again.data, scan.data)
    old, new = pydicom.dcmread(path), pydicom.dcmread(out)
    np.testing.assert_array_equal(new.pixel_array, old.pixel_array)  # stored values bit for bit
    assert new.pixel_array.dtype == old.pixel_array.dtype
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID"):
        assert new[keyword].value != old[keyword].value
    assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
    assert list(new.ImageType)[:2] == ["DERIVED", "SECONDARY"] and list(new.ImageType)[2:] == list(old.ImageType)[2:]
    assert new.SeriesDescription.endswith("sinfree enhanced")
    assert "denoised, sigma 12 HU" in new.DerivationDescription
    assert new.SourceImageSequence[0].ReferencedSOPInstanceUID == old.SOPInstanceUID
    for keyword in (
        "PatientID",
        "StudyInstanceUID",
        "PixelSpacing",
        "RescaleSlope",
        "RescaleIntercept",
        "BitsStored",
        "BitsAllocated",
        "PixelRepresentation",
        "Modality",
        "SOPClassUID",
    ):
        assert new[keyword].value == old[keyword].value, keyword
    assert again.units == "HU"
    assert scan.meta.SOPInstanceUID == old.SOPInstanceUID  # the Scan's dataset is not modified
    assert _sha(path) == before and _stray(tmp_path) == []


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_derived_series_are_new_and_distinct(tmp_path, name):
    """The result and the uncertainty are two new series: their own SeriesInstanceUID, SeriesNumber (the
    original's + 1000 / + 2000) and SeriesDescription, none of them the original's or each other's."""
    path = _copy(name, tmp_path)
    scan = read_scan(path)
    result = pydicom.dcmread(write_scan(scan, scan.data, tmp_path / "result.dcm", description="denoise"))
    std = np.full_like(scan.data, 2.0)
    written = write_scan(scan, std, tmp_path / "std.dcm", description="denoise; per-pixel std", series="uncertainty")
    uncertainty = pydicom.dcmread(written)
    old = pydicom.dcmread(path)
    assert int(old.SeriesNumber) == 1
    assert (int(result.SeriesNumber), int(uncertainty.SeriesNumber)) == (1001, 2001)
    uids = {old.SeriesInstanceUID, result.SeriesInstanceUID, uncertainty.SeriesInstanceUID}
    assert len(uids) == 3
    assert result.SeriesDescription == "sinfree enhanced" and uncertainty.SeriesDescription == "sinfree uncertainty"
    assert result.StudyInstanceUID == uncertainty.StudyInstanceUID == old.StudyInstanceUID  # same study
    np.testing.assert_array_equal(read_scan(tmp_path / "std.dcm").data, std)


def test_derived_series_description_and_number_follow_the_original(tmp_path):
    """An original description is kept and suffixed (within the 64 characters of LO); a missing SeriesNumber
    gives the bare offsets; an unknown role is refused before anything is written."""
    path = _copy("CT_small.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = "Chest " + "x" * 70
    del ds.SeriesNumber
    ds.save_as(path)
    scan = read_scan(path)
    result = pydicom.dcmread(write_scan(scan, scan.data, tmp_path / "result.dcm"))
    uncertainty = pydicom.dcmread(write_scan(scan, scan.data, tmp_path / "std.dcm", series="uncertainty"))
    assert (int(result.SeriesNumber), int(uncertainty.SeriesNumber)) == (1000, 2000)
    assert result.SeriesDescription.startswith("Chest x") and result.SeriesDescription.endswith(" sinfree enhanced")
    assert uncertainty.SeriesDescription.endswith(" sinfree uncertainty")
    assert max(len(result.SeriesDescription), len(uncertainty.SeriesDescription)) <= 64
    with pytest.raises(ScanWriteError, match="unknown series role"):
        write_scan(scan, scan.data, tmp_path / "other.dcm", series="residual")
    assert not (tmp_path / "other.dcm").exists()


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("MR_small.dcm", (64, 64)),
        ("MR_small_implicit.dcm", (64, 64)),
        ("MR_small_bigendian.dcm", (64, 64)),
        ("rtdose.dcm", (15, 10, 10)),  # multi-frame volume, uint32 scaled by DoseGridScaling
        ("SC_rgb_small_odd.dcm", (3, 3, 3)),  # colour, odd number of bytes
    ],
)
def test_dicom_round_trip(tmp_path, name, shape):
    path = _copy(name, tmp_path)
    before = _sha(path)
    scan = read_scan(path)
    assert scan.data.shape == shape and scan.units in ("", "RELATIVE", "GY")
    out = write_scan(scan, scan.data, tmp_path / "out.dcm")
    np.testing.assert_array_equal(read_scan(out).data, scan.data)
    np.testing.assert_array_equal(pydicom.dcmread(out).pixel_array, pydicom.dcmread(path).pixel_array)
    assert _sha(path) == before


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_compressed_dicom_round_trip_or_clear_error(tmp_path, name):
    path = _copy(name, tmp_path)
    if not _decodes(path):
        with pytest.raises(ScanError, match="cannot be decoded here"):
            read_scan(path)
        return
    scan = read_scan(path)
    out = write_scan(scan, scan.data, tmp_path / "out.dcm")
    written = pydicom.dcmread(out)
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert not written["PixelData"].is_undefined_length
    np.testing.assert_array_equal(read_scan(out).data, scan.data)


def test_undecodable_compression_names_the_transfer_syntax(tmp_path):
    path = _copy("MR_small_jpeg_ls_lossless.dcm", tmp_path)
    if _decodes(path):
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(ScanError) as caught:
        read_scan(path)
    message = str(caught.value)
    assert "JPEG-LS Lossless" in message and "1.2.840.10008.1.2.4.80" in message and "cannot be decoded here" in message
    assert "\n" not in message


def test_dicom_out_of_range_raises_and_clip_records_it(tmp_path):
    path = _copy("CT_small.dcm", tmp_path)
    scan = read_scan(path)
    data = scan.data.copy()
    data[:2, :5] = 40000.0  # beyond int16 + intercept (31743 HU)
    with pytest.raises(ScanWriteError, match=r"10 of 16384 values fall outside the range \[-33792, 31743\] HU"):
        write_scan(scan, data, tmp_path / "out.dcm")
    assert not (tmp_path / "out.dcm").exists() and _stray(tmp_path) == []
    out = write_scan(scan, data, tmp_path / "out.dcm", clip=True)
    again = read_scan(out)
    assert again.data.max() == 31743.0 and np.count_nonzero(again.data == 31743.0) == 10
    assert "10 of 16384 values clipped" in pydicom.dcmread(out).DerivationDescription


def test_dicom_rounds_to_stored_values(tmp_path):
    scan = read_scan(_copy("CT_small.dcm", tmp_path))
    out = write_scan(scan, scan.data + 0.3, tmp_path / "out.dcm")
    np.testing.assert_array_equal(read_scan(out).data, scan.data)


def test_dicom_without_pixel_data_fails_cleanly(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ScanError, match="without pixel data") as caught:
        read_scan(tmp_path / "nopixels.dcm")
    assert "\n" not in str(caught.value)
    with pytest.raises(ScanError, match=r"without pixel data \(RT Plan Storage\)"):
        read_scan(_copy("rtplan.dcm", tmp_path))


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_dicom_fails_cleanly(tmp_path, fraction):
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(ScanError, match="truncated") as caught:  # in the pixel data, or before it
        read_scan(path)
    assert isinstance(caught.value, InputImageError) and "\n" not in str(caught.value)


def test_dicom_without_preamble_is_recognised(tmp_path):
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "bare"
    path.write_bytes(raw[132:])  # no preamble, no "DICM", no suffix
    scan = read_scan(path)
    assert scan.kind == "dicom" and scan.units == "HU" and scan.data.shape == (128, 128)


def test_writing_onto_the_source_is_refused(tmp_path):
    path = _copy("CT_small.dcm", tmp_path)
    before = _sha(path)
    scan = read_scan(path)
    for target in (path, tmp_path / "." / "CT_small.dcm"):
        with pytest.raises(ScanWriteError, match="input scan"):
            write_scan(scan, scan.data, target)
    os.link(path, tmp_path / "hardlink.dcm")
    with pytest.raises(SinfreeError, match="input scan"):
        write_scan(scan, scan.data, tmp_path / "hardlink.dcm")
    assert _sha(path) == before and _stray(tmp_path) == []


def test_write_checks_shape_and_finite_values(tmp_path):
    scan = read_scan(_copy("MR_small.dcm", tmp_path))
    with pytest.raises(ScanWriteError, match="shape"):
        write_scan(scan, scan.data[:10], tmp_path / "out.dcm")
    data = scan.data.copy()
    data[0, 0] = np.nan
    with pytest.raises(ScanWriteError, match="1 of 4096 values are NaN"):
        write_scan(scan, data, tmp_path / "out.dcm")
    assert sorted(os.listdir(tmp_path)) == ["MR_small.dcm"]


# ---------------------------------------------------------------------------------------------- NIfTI


def test_nifti_round_trip_keeps_header_and_affine(tmp_path):
    path = _copy("anatomical.nii", tmp_path)
    before = _sha(path)
    scan = read_scan(path)
    image = nibabel.load(path)
    assert scan.kind == "nifti" and scan.units == "" and scan.data.shape == image.shape[::-1]
    np.testing.assert_array_equal(scan.data, image.get_fdata().T)  # (i, j, k) -> (D, H, W) = (k, j, i)
    assert scan.value_range == (-32768.0, 32767.0)
    for name in ("out.nii", "out.nii.gz"):
        out = write_scan(scan, scan.data, tmp_path / name)
        written = nibabel.load(out)
        np.testing.assert_array_equal(read_scan(out).data, scan.data)
        np.testing.assert_array_equal(written.affine, image.affine)
        assert written.get_data_dtype() == image.get_data_dtype()
        for field in ("pixdim", "qform_code", "sform_code", "xyzt_units", "descrip", "srow_x", "quatern_b"):
            np.testing.assert_array_equal(written.header[field], image.header[field])
    assert gzip.decompress((tmp_path / "out.nii.gz").read_bytes()) == (tmp_path / "out.nii").read_bytes()
    assert (tmp_path / "out.nii").read_bytes() == path.read_bytes()  # unchanged data: the same file
    assert _sha(path) == before


def test_scaled_integer_nifti_keeps_scaling_and_refuses_out_of_range(tmp_path):
    stored = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 3 - 20).astype(np.int16)
    image = nibabel.Nifti1Image(stored, np.diag([2.0, 3.0, 4.0, 1.0]))
    image.header.set_slope_inter(0.5, 10.0)
    nibabel.save(image, tmp_path / "scaled.nii.gz")
    scan = read_scan(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(scan.data, (stored * 0.5 + 10.0).T)
    assert scan.value_range == (-32768 * 0.5 + 10, 32767 * 0.5 + 10)
    out = write_scan(scan, scan.data, tmp_path / "out.nii.gz")
    written = nibabel.load(out)
    assert (written.dataobj.slope, written.dataobj.inter) == (0.5, 10.0)
    np.testing.assert_array_equal(np.asarray(written.dataobj.get_unscaled()), stored)
    with pytest.raises(ScanWriteError, match="120 of 120 values fall outside"):
        write_scan(scan, scan.data + 20000.0, tmp_path / "big.nii")
    assert not (tmp_path / "big.nii").exists() and _stray(tmp_path) == []
    clipped = read_scan(write_scan(scan, scan.data + 20000.0, tmp_path / "big.nii", clip=True))
    assert clipped.data.max() == 32767 * 0.5 + 10


def test_float_nifti_single_slice_and_4d_with_one_volume(tmp_path):
    voxels = np.random.default_rng(0).normal(size=(6, 7, 1, 1)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(voxels, np.eye(4)), tmp_path / "slice.nii")
    scan = read_scan(tmp_path / "slice.nii")
    assert scan.data.shape == (7, 6) and scan.value_range == (-np.inf, np.inf)
    out = write_scan(scan, scan.data * 1000.0, tmp_path / "out.nii")
    assert nibabel.load(out).shape == (6, 7, 1, 1) and nibabel.load(out).get_data_dtype() == np.float32
    np.testing.assert_allclose(read_scan(out).data, scan.data * 1000.0, rtol=1e-6)


def test_nifti2_volume_round_trip(tmp_path):
    first = nibabel.load(Path(NIBABEL_DATA, "example_nifti2.nii.gz")).slicer[..., 0]  # a 4-D file's first volume
    nibabel.save(first, tmp_path / "volume.nii.gz")
    scan = read_scan(tmp_path / "volume.nii.gz")
    assert scan.data.shape == (12, 20, 32) and "NIfTI-2" in describe_scan(scan)
    out = write_scan(scan, scan.data, tmp_path / "out.nii.gz")
    assert isinstance(nibabel.load(out), nibabel.Nifti2Image)
    np.testing.assert_array_equal(read_scan(out).data, scan.data)
    np.testing.assert_array_equal(nibabel.load(out).affine, first.affine)


@pytest.mark.parametrize(("name", "volumes"), [("example4d.nii.gz", 2), ("functional.nii", 20)])
def test_4d_nifti_with_several_volumes_fails_cleanly(tmp_path, name, volumes):
    with pytest.raises(ScanError, match=f"holds {volumes} volumes") as caught:
        read_scan(_copy(name, tmp_path))
    assert "\n" not in str(caught.value)


def test_non_image_and_bad_nifti_fail_cleanly(tmp_path):
    with pytest.raises(ScanError, match="not a NIfTI-1/NIfTI-2 image"):
        read_scan(_copy("row_major.dconn.nii", tmp_path))  # CIFTI-2 connectivity matrix
    (tmp_path / "fake.nii").write_bytes(b"not a nifti at all" * 40)
    with pytest.raises(ScanError, match="NIfTI"):
        read_scan(tmp_path / "fake.nii")
    raw = Path(NIBABEL_DATA, "anatomical.nii").read_bytes()
    (tmp_path / "short.nii").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ScanError, match="truncated"):
        read_scan(tmp_path / "short.nii")


def test_nifti_output_needs_a_nifti_suffix(tmp_path):
    scan = read_scan(_copy("anatomical.nii", tmp_path))
    with pytest.raises(ScanWriteError, match=r"\.nii or \.nii\.gz"):
        write_scan(scan, scan.data, tmp_path / "out.png")


# ---------------------------------------------------------------------------------------------- images


@pytest.fixture
def camera16() -> np.ndarray:
    return skdata.camera()[::4, ::4].astype(np.uint16) * 257 + 3


def test_16bit_png_round_trip_and_range(tmp_path, camera16):
    path = save_png(camera16, tmp_path / "camera16.png")
    before = _sha(path)
    scan = read_scan(path)
    assert scan.kind == "image" and scan.meta["dtype"] == np.uint16 and scan.value_range == (0.0, 65535.0)
    np.testing.assert_array_equal(scan.data, camera16)
    out = write_scan(scan, scan.data, tmp_path / "out.png", description="test")
    again = read_scan(out)
    assert again.meta["dtype"] == np.uint16 and again.meta["mode"] == scan.meta["mode"]
    np.testing.assert_array_equal(again.data, camera16)
    with pytest.raises(ScanWriteError, match=r"values fall outside the range \[0, 65535\]"):
        write_scan(scan, scan.data - 10.0, tmp_path / "low.png")
    assert not (tmp_path / "low.png").exists() and _stray(tmp_path) == []
    clipped = read_scan(write_scan(scan, scan.data - 10.0, tmp_path / "low.png", clip=True))
    assert clipped.data.min() == 0.0
    assert _sha(path) == before


@pytest.mark.parametrize("colour", [False, True])
def test_16bit_tiff_stays_16bit(tmp_path, camera16, colour):
    pixels = skdata.astronaut()[::4, ::4].astype(np.uint16) * 257 if colour else camera16
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, pixels, photometric="rgb" if colour else "minisblack")
    scan = read_scan(path)
    assert scan.data.shape == pixels.shape and describe_scan(scan).count("H x W") == 1
    out = write_scan(scan, scan.data, tmp_path / "out.tiff")
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].dtype == np.uint16 and tif.pages[0].photometric.name == ("RGB" if colour else "MINISBLACK")
    np.testing.assert_array_equal(read_scan(out).data, pixels)


def test_tiff_stack_and_float_tiff(tmp_path, camera16):
    stack = np.stack([camera16, camera16 // 2, camera16 // 3])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    scan = read_scan(tmp_path / "stack.tif")
    assert scan.data.shape == stack.shape and "D x H x W" in describe_scan(scan)
    np.testing.assert_array_equal(read_scan(write_scan(scan, scan.data, tmp_path / "out.tif")).data, stack)
    floats = camera16.astype(np.float32) / 7.0 - 100.0
    tifffile.imwrite(tmp_path / "float.tif", floats)
    scan = read_scan(tmp_path / "float.tif")
    out = write_scan(scan, scan.data, tmp_path / "float_out.tif")
    assert read_scan(out).meta["dtype"] == np.float32
    np.testing.assert_array_equal(read_scan(out).data, floats)
    with pytest.raises(ScanWriteError, match="PNG holds 8- or 16-bit"):
        write_scan(scan, scan.data, tmp_path / "float.png")


def test_8bit_png_round_trip(tmp_path):
    pixels = skdata.astronaut()[::4, ::4]
    scan = read_scan(save_png(pixels, tmp_path / "astronaut.png"))
    assert scan.meta["dtype"] == np.uint8 and scan.data.shape == pixels.shape
    np.testing.assert_array_equal(read_scan(write_scan(scan, scan.data, tmp_path / "out.png")).data, pixels)


# ---------------------------------------------------------------------------------------------- bad input


def test_unknown_missing_and_directory_inputs(tmp_path):
    (tmp_path / "notes.txt").write_text("hello " * 100)
    with pytest.raises(ScanError, match="unknown format"):
        read_scan(tmp_path / "notes.txt")
    with pytest.raises(ScanError, match="no such file"):
        read_scan(tmp_path / "missing.dcm")
    with pytest.raises(ScanError, match="directory"):
        read_scan(tmp_path)


def test_errors_are_input_image_errors():
    assert issubclass(ScanError, InputImageError) and issubclass(ScanWriteError, SinfreeError)
    assert {"data", "kind", "source", "meta", "value_range", "units"} <= set(Scan.__dataclass_fields__)
