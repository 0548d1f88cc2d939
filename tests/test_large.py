"""Out-of-core outputs (issue 23, sinfree.large): tiled steps against the in-memory sampler, resuming after
kill -9, Dask workers against one process, the pyramidal BigTIFF, large inputs read band by band. Small sizes:
tiling is forced with tiny tiles on outputs of about 96 x 96."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import run_cli
from PIL import Image

from sinfree.coarse_to_fine import sample_coarse_to_fine
from sinfree.image_denoiser import make_image_denoiser
from sinfree.io.images import load_image
from sinfree.pyramid import build_pyramid, level_shapes
from sinfree.sampler import sample_scale
from sinfree.schedule import flow_schedule
from sinfree.settings import preset_settings

pytest.importorskip("zarr")
pytest.importorskip("tifffile")
from sinfree.large import pyramid_tiff  # noqa: E402
from sinfree.large.driver import LargeOptions, generate_large  # noqa: E402
from sinfree.large.inputs import LargeImage, encode_streaming, fit_streaming  # noqa: E402
from sinfree.large.tiled import START, block_noise, noise_canvas  # noqa: E402

EXACT = preset_settings("paper", backend="exact", patch_size=7, num_scales=3, steps=4)


@pytest.fixture(scope="module")
def image64() -> np.ndarray:
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((64, 64), Image.BICUBIC))


@pytest.fixture(scope="module")
def image32(image64) -> np.ndarray:
    return np.asarray(Image.fromarray(image64).resize((32, 32), Image.BICUBIC))


def final_canvas(store) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(str(store / "s0_x0.zarr"), mode="r")[:])


def in_memory_reference(image, settings, size, seed, tiled_scales, edit=None, tiled_denoiser=None) -> torch.Tensor:
    """The same run in memory: the coarse scales by sample_coarse_to_fine (with ``edit``), the tiled ones by
    sample_scale on the whole canvas, from the same block noise, with ``tiled_denoiser(denoiser, scale)`` (default:
    the edit's wrap): what every tiled run must reproduce with a query-independent backend."""
    reference, _ = load_image(image)
    num_scales = settings.num_scales
    shapes, pyramid = level_shapes(size, num_scales), build_pyramid(reference, num_scales)
    first = max(tiled_scales) + 1
    canvas = sample_coarse_to_fine(reference, shapes[first], settings, num_scales - first, 1, seed, None, edit, pyramid[first:])[
        0
    ][0]
    schedule = flow_schedule(settings.steps, settings.s_min)
    wrap = tiled_denoiser or (edit.wrap if edit is not None else (lambda denoiser, scale: denoiser))
    for s in sorted(tiled_scales, reverse=True):
        denoiser = make_image_denoiser(pyramid[s], settings.patch_size, rho=settings.rho, backend=settings.backend)
        noise = noise_canvas(reference.shape[0], shapes[s], (seed, s, START))
        circular = edit is not None and edit.periodic
        canvas = sample_scale(wrap(denoiser, s), noise, schedule, coarse=canvas, circular=circular)
    return canvas


class PeriodicDenoiser:
    """Eq. 2 on the periodic canvas: the canvas padded circularly by P, denoised, cropped."""

    def __init__(self, denoiser, pad):
        self.denoiser, self.pad = denoiser, pad

    def __call__(self, x, alpha, sigma):
        p = self.pad
        padded = torch.nn.functional.pad(x[None], (p, p, p, p), mode="circular")[0]
        return self.denoiser(padded, alpha, sigma)[:, p:-p, p:-p]


def test_block_noise_does_not_depend_on_the_region():
    whole = block_noise(3, (0, 150), (0, 130), (1, 2, 3))
    part = block_noise(3, (37, 101), (64, 129), (1, 2, 3))
    assert torch.equal(whole[:, 37:101, 64:129], part)
    assert not torch.equal(whole, block_noise(3, (0, 150), (0, 130), (1, 2, 4)))


@pytest.mark.parametrize("tile", [24, 40])
def test_tiled_run_matches_the_in_memory_sampler(image32, tmp_path, tile):
    """Exact Eq. 2: every tile size gives the in-memory canvas to float rounding (measured: 0, bit for bit)."""
    options = LargeOptions(store=tmp_path / "store", tile=tile, keep_store=True)
    result = generate_large(image32, tmp_path / "out", EXACT, options, size=(72, 64), seed=3)
    assert result.tiled_scales == ([0, 1] if tile == 24 else [0]) and result.paths[0].exists()
    expected = in_memory_reference(image32, EXACT, (72, 64), 3, result.tiled_scales)
    assert np.abs(final_canvas(tmp_path / "store") - expected.numpy()).max() < 1e-5
    saved = np.asarray(Image.open(result.paths[0]))
    assert saved.shape == (72, 64, 3)


def test_tiled_symmetric_and_retarget_match_the_in_memory_sampler(image32, tmp_path):
    """Exact Eq. 2: a symmetric run (tiles in the mirrored half denoise the window they mirror) and a retarget
    (its coarsest scale in memory) give the in-memory canvas; the symmetric output is mirror-symmetric exactly."""
    from sinfree.editing import Retarget, Symmetric

    for edit, size in ((Symmetric("both"), (72, 64)), (Symmetric("vertical"), (60, 75)), (Retarget(), (48, 80))):
        store = tmp_path / f"store_{len(list(tmp_path.iterdir()))}"
        options = LargeOptions(store=store, tile=24, keep_store=True)
        result = generate_large(image32, store.with_suffix(".out"), EXACT, options, size=size, seed=4, edit=edit)
        assert result.tiled_scales and result.settings["edit"]["name"] == type(edit).__name__
        expected = in_memory_reference(image32, EXACT, size, 4, result.tiled_scales, edit)
        assert np.abs(final_canvas(store) - expected.numpy()).max() < 1e-5, edit.describe()
        saved = np.asarray(Image.open(result.paths[0]))
        assert saved.shape == (*size, 3)
        if isinstance(edit, Symmetric) and edit.axis == "both":
            assert np.array_equal(saved, saved[::-1]) and np.array_equal(saved, saved[:, ::-1])
        elif isinstance(edit, Symmetric):
            assert np.array_equal(saved, saved[:, ::-1]) and not np.array_equal(saved, saved[::-1])


def test_tiled_seamless_tile_is_eq2_on_the_periodic_canvas(image32, tmp_path):
    """A seamless tile out of core: windows and the blend read modulo the canvas, which is Eq. 2 on the periodic
    canvas (the in-memory edit approximates it with four half-shifted calls): equal to that, padded circularly, to
    float rounding; the output wraps around as smoothly as its interior, a plain run does not."""
    from sinfree.editing import Tile, seam_error

    options = LargeOptions(store=tmp_path / "store", tile=24, keep_store=True)
    result = generate_large(image32, tmp_path / "out", EXACT, options, size=(72, 64), seed=2, edit=Tile())
    assert result.tiled_scales == [0, 1]
    expected = in_memory_reference(
        image32, EXACT, (72, 64), 2, result.tiled_scales, Tile(), lambda denoiser, scale: PeriodicDenoiser(denoiser, 7)
    )
    assert np.abs(final_canvas(tmp_path / "store") - expected.numpy()).max() < 1e-5
    saved, _ = load_image(np.asarray(Image.open(result.paths[0])))
    assert abs(result.seam_error - seam_error(saved)) < 1e-6 and result.seam_error < 1.3
    plain = generate_large(
        image32, tmp_path / "plain", EXACT, LargeOptions(store=tmp_path / "s2", tile=24), size=(72, 64), seed=2
    )
    assert seam_error(load_image(np.asarray(Image.open(plain.paths[0])))[0]) > 1.5 * result.seam_error


def test_latent_tile_of_any_size_wraps_around(image64, tmp_path):
    """A latent canvas of 8 px blocks decoded to a size that is no multiple of 8: resized circularly, band by band."""
    from sinfree.editing import Tile, seam_error

    settings = preset_settings("paper", latent="pca:4", num_scales=2, steps=3)
    result = generate_large(
        image64, tmp_path / "out", settings, LargeOptions(store=tmp_path / "s", tile=16), size=(100, 90), seed=0, edit=Tile()
    )
    plain = generate_large(image64, tmp_path / "plain", settings, LargeOptions(store=tmp_path / "p", tile=16), size=(100, 90))
    assert result.tiled_scales == [0] and np.asarray(Image.open(result.paths[0])).shape == (100, 90, 3)
    # measured (3 seeds): 1.46-1.65, like the in-memory tile's 1.47-1.65 (8 px PCA blocks on a 13 x 12 canvas); plain 4.6-5.0
    assert result.seam_error < 0.5 * seam_error(load_image(np.asarray(Image.open(plain.paths[0])))[0])


def test_edits_out_of_core_refused_where_they_cannot_run(image32, tmp_path):
    from sinfree.editing import Inpaint, Retarget
    from sinfree.errors import SinfreeError

    with pytest.raises(SinfreeError, match="in memory only"):
        generate_large(image32, tmp_path / "o", EXACT, LargeOptions(store=tmp_path / "s"), edit=Inpaint(np.zeros((32, 32), bool)))
    with pytest.raises(SinfreeError, match="coarsest scale itself"):
        generate_large(
            image32, tmp_path / "o", EXACT, LargeOptions(store=tmp_path / "s", tile=16), size=(48, 80), edit=Retarget()
        )


def test_untiled_run_is_the_in_memory_generate(image64, tmp_path):
    """A tile larger than every canvas: the run is generate() itself, written through the store."""
    from sinfree import generate

    settings = preset_settings("default", latent="pca:4")
    result = generate_large(
        image64, tmp_path / "out", settings, LargeOptions(store=tmp_path / "store", tile=4096), size=(96, 96), seed=5
    )
    assert result.tiled_scales == []
    expected = generate(image64, size=(96, 96), seed=5, latent="pca:4")[0]
    assert np.array_equal(np.asarray(Image.open(result.paths[0])), expected)


def test_latent_patchmatch_tiles_keep_the_statistics(image64, tmp_path):
    """PatchMatch keeps its search per tile, so tiles match the one-tile run in distribution, not in value."""
    settings = preset_settings("paper", latent="pca:4", num_scales=2, steps=5)
    tiled = generate_large(
        image64, tmp_path / "a", settings, LargeOptions(store=tmp_path / "s1", tile=16), size=(128, 128), seed=1
    )
    whole = generate_large(
        image64, tmp_path / "b", settings, LargeOptions(store=tmp_path / "s2", tile=4096), size=(128, 128), seed=1
    )
    assert tiled.tiled_scales == [0] and whole.tiled_scales == []
    a = np.asarray(Image.open(tiled.paths[0])).astype(float)
    b = np.asarray(Image.open(whole.paths[0])).astype(float)
    assert abs(a.mean() - b.mean()) < 8 and abs(a.std() - b.std()) < 8


def test_two_dask_workers_give_the_one_process_result(image64, tmp_path):
    pytest.importorskip("dask.distributed")
    settings = preset_settings("paper", latent="pca:4", num_scales=2, steps=3)
    one = generate_large(
        image64, tmp_path / "a", settings, LargeOptions(store=tmp_path / "s1", tile=16, keep_store=True), size=(96, 96), seed=2
    )
    two = generate_large(
        image64,
        tmp_path / "b",
        settings,
        LargeOptions(store=tmp_path / "s2", tile=16, workers=2, keep_store=True),
        size=(96, 96),
        seed=2,
    )
    assert one.tiled_scales == [0]
    assert np.abs(final_canvas(tmp_path / "s1") - final_canvas(tmp_path / "s2")).max() < 1e-4  # measured: 0
    assert np.abs(np.asarray(Image.open(one.paths[0])).astype(int) - np.asarray(Image.open(two.paths[0]))).max() <= 1
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:  # an existing cluster
        options = LargeOptions(store=tmp_path / "s3", tile=16, scheduler=cluster.scheduler_address, keep_store=True)
        generate_large(image64, tmp_path / "c", settings, options, size=(96, 96), seed=2)
    assert np.abs(final_canvas(tmp_path / "s1") - final_canvas(tmp_path / "s3")).max() < 1e-4


def test_pyramidal_tiff_and_preview(image64, tmp_path):
    import tifffile

    options = LargeOptions(store=tmp_path / "store", tile=64, output_format="tiff")
    settings = preset_settings("paper", latent="pca:4", num_scales=2, steps=2)
    result = generate_large(image64, tmp_path / "out", settings, options, size=(300, 520), seed=0)
    tif, preview = result.paths
    assert tif.suffix == ".tif" and preview.name.endswith("_preview.jpg") and not (tmp_path / "store").exists()
    with tifffile.TiffFile(tif) as tiff:
        page = tiff.pages[0]
        assert tiff.is_bigtiff and page.is_tiled and page.shape == (300, 520, 3)
        levels = [level.asarray() for level in tiff.series[0].levels]
        assert json.loads(page.description)["sinfree"]["output_size"] == [520, 300]
    assert [level.shape[:2] for level in levels] == [(300, 520), (150, 260), (75, 130)]
    assert np.abs(levels[1].astype(int) - pyramid_tiff.halve_band(levels[0]).astype(int)).max() == 0
    assert Image.open(preview).size == (520, 300)


def test_large_input_is_read_and_encoded_band_by_band(image64, tmp_path, monkeypatch):
    """A PNG above Pillow's pixel limit: refused by the in-memory reader, read by the large-input one; the
    band-wise PCA equals the whole-image one (float64 sums: 1e-10)."""
    from sinfree.errors import InputImageError
    from sinfree.io.images import read_image_file
    from sinfree.latent.pca import PCACodec

    path = tmp_path / "big.png"
    Image.fromarray(image64[:60, :52]).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputImageError, match="too large"):
        read_image_file(path)
    large = LargeImage(path)
    assert large.shape == (60, 52, 3) and Image.MAX_IMAGE_PIXELS == 1000
    reference, _ = load_image(image64[:60, :52])
    codec = PCACodec(block=8).fit(reference)
    streamed = fit_streaming(PCACodec(block=8), large, band_blocks=8)
    assert torch.allclose(streamed.basis, codec.basis, atol=1e-10) and abs(streamed.scale - codec.scale) < 1e-10
    assert torch.allclose(encode_streaming(codec, large, band_blocks=8), codec.encode(reference), atol=1e-5)


def test_a_tiff_input_is_read_as_tiles(image64, tmp_path):
    import tifffile

    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image64, tile=(32, 32))
    large = LargeImage(path)
    assert large.shape == (64, 64, 3) and np.array_equal(large.band(10, 40), image64[10:40])


def cli_args(input_path, outdir, store, *extra):
    fixed = ["--preset", "paper", "--backend", "exact", "-P", "7", "-S", "3", "-T", "4", "--size", "72x64", "--tile-size", "24"]
    return ["generate", str(input_path), "-o", str(outdir), *fixed, "--store", str(store), "-q", *extra]


def test_resumes_after_kill_9(image32, tmp_path):
    """A run killed by SIGKILL after some tiled steps, started again with the same command, finishes with the
    output of an uninterrupted run."""
    source = tmp_path / "in.png"
    Image.fromarray(image32).save(source)
    whole = run_cli(*cli_args(source, tmp_path / "whole", tmp_path / "store_whole"))
    assert whole.returncode == 0, whole.stderr
    store = tmp_path / "store"
    command = [sys.executable, "-m", "sinfree.cli", *cli_args(source, tmp_path / "out", store)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    checkpoint = store / "checkpoint.json"
    killed_at = None
    while time.time() < deadline and process.poll() is None:
        try:
            state = json.loads(checkpoint.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("scale") == 0 and 0 < state.get("t", 0) < 4:  # inside the finest, tiled scale
            os.kill(process.pid, signal.SIGKILL)
            killed_at = state
            break
        time.sleep(0.02)
    process.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (tmp_path / "out" / "in_seed0.png").exists()
    resumed = run_cli(*cli_args(source, tmp_path / "out", store))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from scale 0" in resumed.stderr
    a = np.asarray(Image.open(tmp_path / "out" / "in_seed0.png"))
    b = np.asarray(Image.open(tmp_path / "whole" / "in_seed0.png"))
    assert np.array_equal(a, b)
    assert not store.exists()


def test_cli_refusals_before_any_work(image32, tmp_path):
    from sinfree.errors import OutputError, SinfreeError
    from sinfree.large.driver import output_format
    from sinfree.large.store import RunStore

    source = tmp_path / "in.png"
    Image.fromarray(image32).save(source)
    both = run_cli(*cli_args(source, tmp_path / "out", tmp_path / "store", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"))
    assert both.returncode == 1 and "give one of them" in both.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in_seed0.png").write_bytes(b"earlier")
    exists = run_cli(*cli_args(source, tmp_path / "out", tmp_path / "store"))
    assert exists.returncode == 1 and "--overwrite" in exists.stderr and not (tmp_path / "store").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="other content"):
        RunStore(foreign, "digest").open()
    assert (foreign / "notes.txt").exists()
    with pytest.raises(SinfreeError, match="auto, png or tiff"):
        output_format((10, 10), "gif")
    assert output_format((8192, 8192), "auto") == "png" and output_format((8192, 8193), "auto") == "tiff"


def test_geometry_commands_go_out_of_core(image32, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(image32).save(source)
    fixed = ["--preset", "paper", "-P", "7", "-S", "3", "-T", "3", "--tile-size", "24", "-q", "-o", str(tmp_path / "out")]
    tile = run_cli("tile", str(source), "--size", "72x64", *fixed)
    assert tile.returncode == 0, tile.stderr
    assert "in_tile_seed0.png: wrap-around seam error" in tile.stdout and "tiled scales [0, 1]" in tile.stdout
    mirrored = run_cli("symmetric", str(source), "--axis", "horizontal", "--size", "72x64", *fixed)
    assert mirrored.returncode == 0, mirrored.stderr
    image = np.asarray(Image.open(tmp_path / "out" / "in_symmetric_horizontal_seed0.png"))
    assert image.shape == (64, 72, 3) and np.array_equal(image, image[::-1])
    retarget = run_cli("retarget", str(source), "--size", "80x40", *fixed)
    assert retarget.returncode == 0, retarget.stderr
    assert Image.open(tmp_path / "out" / "in_retarget_seed0.png").size == (80, 40)
    preview = run_cli("tile", str(source), "--preview", "--overwrite", *fixed)
    assert preview.returncode == 1 and "--preview" in preview.stderr


def test_batch_writes_a_manifest_and_skips_done_jobs(image32, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(image32).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    args = ["batch", str(folder), "-o", str(tmp_path / "out"), "--seeds", "0", "--args", "-T 2 -S 1 -P 7"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (job,) = manifest["jobs"]
    assert job["status"] == "done" and job["outputs"] == [str(tmp_path / "out" / "generate" / "a_seed0.png")]
    again = run_cli(*args)
    assert again.returncode == 0 and "0 job(s) to run, 1 already done" in again.stdout
    bad = run_cli("batch", str(folder), "-o", str(tmp_path / "out"), "--seeds", "x")
    assert bad.returncode == 1 and "--seeds" in bad.stderr


def test_tile_side_counts_what_a_patchmatch_scale_holds():
    """A 4096^2 pixel reference under 4 GiB (bench_gigapixel.py): the baseline, the index, the reference's four
    copies (two layouts, a call's two scaled ones) and the tile's queries fit. Counting two copies and a 400 MiB
    baseline, the 704 px tile this gave peaked at 4.6-4.8 GiB; the 448 px tile the honest count gives, at 3.87 GiB."""
    from sinfree.backends import backend_class_for
    from sinfree.large.driver import BASELINE_BYTES, denoiser_fixed_bytes, tile_side
    from sinfree.planning import plan_run

    budget, side = 4 * 2**30, 4096
    plan = plan_run(3, (side, side), (side, side), preset_settings("paper", num_scales="auto"), 1, max_memory_bytes=1 << 62)
    settings = plan.settings
    tile = tile_side(settings, 3, (side, side), budget, 1)
    num_patches, dim = (side - settings.patch_size + 1) ** 2, 3 * settings.patch_size**2
    backend = backend_class_for(settings.backend)
    fixed = denoiser_fixed_bytes(backend, num_patches, dim, 3 * side * side)
    assert fixed > backend.estimate_bytes(num_patches, dim, 1) + 4 * 4 * 3 * side * side
    queries = backend.estimate_bytes(num_patches, dim, (tile + 2 * settings.patch_size) ** 2) - backend.estimate_bytes(
        num_patches, dim, 0
    )
    assert BASELINE_BYTES + fixed + queries <= budget
    assert 256 <= tile < 704


def test_patchmatch_keeps_no_copy_of_its_reference_and_one_scaled_per_step():
    """A tiled scale's denoiser holds the reference only in its two layouts (the tensor it was built from, 0.19 GiB
    at 4096^2, is let go), and the a_t-scaled copies are made once per step, not once per tile."""
    import weakref

    reference = torch.rand(3, 40, 40) * 2 - 1
    denoiser = make_image_denoiser(reference, 7, backend="patchmatch")
    gone = weakref.ref(reference)
    del reference
    assert gone() is None
    denoiser.start_trajectory()
    denoiser(torch.randn(3, 24, 24), 0.8, 0.6)
    scaled = denoiser._scaled_reference(0.8)
    denoiser(torch.randn(3, 30, 20), 0.8, 0.6)
    assert all(a is b for a, b in zip(scaled, denoiser._scaled_reference(0.8)))
    assert denoiser._scaled_reference(0.9)[0] is not scaled[0]


def test_a_tiled_coarsest_scale_turns_the_layout_levers_off_and_records_it(image32, tmp_path, caplog):
    """Guidance, variation and the position prior act on the whole coarsest canvas: tiled, they are off (said)."""
    settings = preset_settings("default", backend="exact", patch_size=7, num_scales=2, steps=2, position_prior=0.1)
    with caplog.at_level("WARNING"):
        result = generate_large(image32, tmp_path / "out", settings, LargeOptions(store=tmp_path / "s", tile=16), size=(48, 48))
    assert "coarsest scale is tiled" in caplog.text and "position prior" in caplog.text
    assert result.settings["position_prior"] == 0.0 and result.settings["layout_guidance"] == 0.0
