"""``sinfree enhance`` through the command line, every task on every format it reads (PNG, TIFF, DICOM,
NIfTI): the output is written in the input's format, next to nothing else, with the metadata a task
must rewrite (super-resolution: DICOM Rows, Columns and PixelSpacing; NIfTI zooms and affine)."""

import os

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from sinfree.cli import app
from sinfree.io.scans import read_scan

TASKS = ("denoise", "deblur", "superres", "inpaint", "illumination")
FAST = ["-q"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One small real scan per format: 16-bit PNG and float TIFF crops of scikit-image's camera, pydicom's
    MR_small.dcm, and a 32 x 32 x 3 crop of nibabel's example4d volume."""
    import skimage.data
    from nibabel.testing import data_path

    from sinfree.io.images import save_png

    folder = tmp_path_factory.mktemp("scans")
    camera = skimage.data.camera()[100:164:2, 200:264:2].astype(np.uint16) * 257
    save_png(camera, folder / "camera.png")
    tifffile.imwrite(folder / "camera.tif", (camera / 65535.0).astype(np.float32))
    dicom = folder / "mr.dcm"
    dicom.write_bytes(open(get_testdata_file("MR_small.dcm"), "rb").read())
    volume = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    crop = np.asarray(volume.dataobj[40:72, 30:62, 10:13, 0])
    nib.save(nib.Nifti1Image(crop, volume.affine), folder / "brain.nii.gz")
    return {"png": folder / "camera.png", "tiff": folder / "camera.tif", "dicom": dicom, "nifti": folder / "brain.nii.gz"}


def mask_for(scan_path, folder):
    """A mask file of the scan's plane: a 6 x 8 px hole left of centre."""
    from sinfree.io.images import save_png

    data = read_scan(scan_path).data
    plane = data.shape[-2:] if data.ndim == 3 and scan_path.name.endswith(".nii.gz") else data.shape[:2]
    mask = np.zeros(plane, np.uint8)
    mask[plane[0] // 2 - 3 : plane[0] // 2 + 3, plane[1] // 3 : plane[1] // 3 + 8] = 255
    return save_png(mask, folder / f"{scan_path.name}_mask.png")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("kind", ["png", "tiff", "dicom", "nifti"])
def test_every_task_on_every_format(scans, tmp_path, kind, task):
    source = scans[kind]
    extra = {"inpaint": ["-m", str(mask_for(source, tmp_path))], "deblur": ["--blur", "1.0"]}.get(task, [])
    outdir = tmp_path / "out"
    steps = [] if task == "denoise" else ["-T", "2"]  # two-stage denoising runs its own plan of passes
    result = CliRunner().invoke(app, ["enhance", str(source), "--task", task, "-o", str(outdir), *extra, *steps, *FAST])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in outdir.iterdir())
    stem, suffix = (source.name[: -len(".nii.gz")], ".nii.gz") if kind == "nifti" else (source.stem, source.suffix)
    assert written == [f"{stem}_{task}{suffix}"]
    before, after = read_scan(source), read_scan(outdir / written[0])
    factor = 2 if task == "superres" else 1
    if kind == "nifti":  # scan data are (slices, rows, columns) with slices kept
        assert after.data.shape == (before.data.shape[0], *(factor * n for n in before.data.shape[1:]))
    else:
        assert after.data.shape[:2] == tuple(factor * n for n in before.data.shape[:2])
    assert np.isfinite(after.data).all() and not np.array_equal(after.data, before.data if factor == 1 else after.data + 1)
    if task == "superres" and kind == "dicom":
        original, derived = pydicom.dcmread(source), pydicom.dcmread(outdir / written[0])
        assert (derived.Rows, derived.Columns) == (2 * original.Rows, 2 * original.Columns)
        assert [float(v) for v in derived.PixelSpacing] == pytest.approx([float(v) / 2 for v in original.PixelSpacing])
        assert derived.SeriesInstanceUID != original.SeriesInstanceUID
    if task == "superres" and kind == "nifti":
        original, derived = nib.load(source), nib.load(outdir / written[0])
        assert derived.header.get_zooms()[:2] == pytest.approx(tuple(z / 2 for z in original.header.get_zooms()[:2]))
        assert derived.header.get_zooms()[2] == pytest.approx(original.header.get_zooms()[2])
        # the first voxel's centre moves by a quarter of an old voxel towards the origin of the old voxel
        corner_old = original.affine @ np.array([-0.5, -0.5, 0, 1])
        corner_new = derived.affine @ np.array([-0.5, -0.5, 0, 1])
        assert corner_new[:3] == pytest.approx(corner_old[:3], abs=1e-4)  # the grid covers the same field of view


def test_output_problems_are_refused_before_any_work(scans, tmp_path):
    """The output name follows the input (no suffix to get wrong); an existing output, a file in the way and
    a wrong mask are refused at once, with nothing written."""
    source = scans["png"]
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "camera_denoise.png").write_bytes(b"earlier")
    result = CliRunner().invoke(app, ["enhance", str(source), "-o", str(outdir), *FAST])
    assert result.exit_code != 0 and "exists" in str(result.exception)
    assert (outdir / "camera_denoise.png").read_bytes() == b"earlier"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["enhance", str(source), "-o", str(blocker / "sub"), *FAST])
    assert result.exit_code != 0 and "cannot write" in str(result.exception)
    black = tmp_path / "black.png"
    from sinfree.io.images import save_png

    save_png(np.zeros((32, 32), np.uint8), black)
    result = CliRunner().invoke(
        app, ["enhance", str(source), "--task", "inpaint", "-m", str(black), "-o", str(tmp_path / "o2"), *FAST]
    )
    assert result.exit_code != 0 and "nothing to fill" in str(result.exception)
    assert not (tmp_path / "o2").exists()
