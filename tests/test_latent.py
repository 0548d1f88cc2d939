"""Latent spaces (sinfree.latent): the PCA and VAE codecs, generation in them, edits, and the memory refusal."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from helpers import run_cli
from PIL import Image

from sinfree import GenerationSettings, MemoryBudgetError, SinfreeError, generate, generate_samples, load_image
from sinfree.editing import Inpaint, Symmetric, Tile
from sinfree.errors import MissingModelError
from sinfree.image_denoiser import make_image_denoiser
from sinfree.io.images import read_png_settings
from sinfree.latent import PCACodec, VAECodec, make_codec
from sinfree.latent.pca import from_blocks
from sinfree.planning import estimate_peak_bytes

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "balloons_small.png"
FLUX_SHIFT, FLUX_SCALE = 0.1159, 0.3611


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """dB on the [0, 1] scale of [-1, 1] images."""
    mse = ((a.double() - b.double()) / 2).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """A real 96 x 128 RGB image (scikit-image's astronaut, every 4th pixel)."""
    return np.ascontiguousarray(skimage.data.astronaut()[::4, ::4][:96, :128])


# --- the PCA codec -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("block", "threshold"), [(4, 30.5), (8, 25.0)])
def test_pca_reconstructs_a_real_image(block, threshold):
    """balloons_small (124 x 93, not a multiple of 8): 31.9 dB at k = 4 and 26.3 dB at k = 8 (measured)."""
    image, _ = load_image(EXAMPLE)
    codec = PCACodec(block=block).fit(image)
    latent = codec.encode(image)
    assert latent.shape == (16, math.ceil(93 / block), math.ceil(124 / block)) and latent.dtype == torch.float32
    assert psnr(codec.decode_to(latent, (93, 124)), image) > threshold


def test_pca_is_exact_for_an_image_in_its_span():
    """Blocks that are a mean plus combinations of 5 patterns: 16 components hold them exactly."""
    generator = torch.Generator().manual_seed(0)
    patterns, mean = torch.randn(5, 3 * 8 * 8, generator=generator), torch.randn(3 * 8 * 8, generator=generator)
    blocks = torch.randn(6 * 7, 5, generator=generator) @ patterns * 0.1 + mean * 0.2
    image = from_blocks(blocks.double(), 6, 7, 8).float()  # (3, 48, 56)
    codec = PCACodec().fit(image)
    assert torch.allclose(codec.decode(codec.encode(image)), image, atol=1e-5)
    latent = codec.encode(load_image(EXAMPLE)[0][:, :48, :56])  # any latent decodes into the span: idempotent
    assert torch.allclose(codec.encode(codec.decode(latent)), latent, atol=1e-4)


def test_pca_in_bands_equals_one_band(monkeypatch):
    """Fit, encode and decode walk the blocks in bands (bounded float64 memory): bands of 5 blocks (a
    partial last band, bands narrower than a row) give what one band of all blocks gives."""
    import sinfree.latent.pca as pca

    image, _ = load_image(EXAMPLE)  # 124 x 93: padded to 128 x 96, a 12 x 16 grid of blocks
    monkeypatch.setattr(pca, "BAND_BLOCKS", 1 << 20)
    whole = PCACodec().fit(image)
    latent, decoded = whole.encode(image), whole.decode(whole.encode(image))
    monkeypatch.setattr(pca, "BAND_BLOCKS", 5)
    banded = PCACodec().fit(image)
    assert torch.allclose(banded.basis, whole.basis, atol=1e-9) and banded.scale == pytest.approx(whole.scale, rel=1e-12)
    assert torch.equal(banded.encode(image), latent) or torch.allclose(banded.encode(image), latent, atol=1e-6)
    assert torch.allclose(banded.decode(latent), decoded, atol=1e-6)


def test_pca_latent_has_the_pixels_spread_and_is_an_isometry_up_to_scale():
    """Eq. 2 in the latent space is Eq. 2 on projected pixel blocks: latent distances are the projected
    blocks' distances times the one scale, and the latent's RMS equals the centred pixels' RMS."""
    image, _ = load_image(EXAMPLE)
    image = image[:, :88, :120]  # a multiple of 8: no padding
    codec = PCACodec().fit(image)
    latent = codec.encode(image)
    blocks = image.double().reshape(3, 11, 8, 15, 8).permute(1, 3, 0, 2, 4).reshape(-1, 192)
    pixel_rms = (blocks - blocks.mean(dim=0)).square().mean().sqrt().item()
    assert latent.double().square().mean().sqrt().item() == pytest.approx(pixel_rms, rel=1e-4)
    assert torch.allclose(codec.basis.T @ codec.basis, torch.eye(16, dtype=torch.float64), atol=1e-10)
    a, b = latent[:, 2, 3].double(), latent[:, 7, 11].double()
    projected = codec.basis.T @ (blocks[2 * 15 + 3] - blocks[7 * 15 + 11])
    assert (a - b).norm().item() == pytest.approx(codec.scale * projected.norm().item(), rel=1e-5)


def test_pca_components_are_capped_and_settings_are_checked():
    gray = load_image(EXAMPLE)[0][:1]
    assert PCACodec(block=2).fit(gray).encode(gray).shape[0] == 4  # 2 x 2 x 1 < 16
    assert PCACodec(block=4).latent_channels(1) == 16
    for bad in ("pca:x", "pca:1", "pca:32", "foo", "vae:"):
        with pytest.raises(ValueError):
            make_codec(bad)
    with pytest.raises(ValueError, match="not fitted"):
        PCACodec().encode(gray)


# --- generation in a latent space ----------------------------------------------------------------------------------


def test_latent_generation_gives_the_output_size_and_records_the_codec(astronaut):
    result = generate_samples(astronaut, GenerationSettings(latent="pca:4", num_scales=2, steps=3), size=(72, 100), seed=1)
    sample = result.samples[0]
    assert sample.shape == (72, 100, 3) and sample.dtype == np.uint8
    assert result.settings["patch_size"] == 7  # the latent default
    assert result.settings["latent"]["name"] == "pca" and result.settings["latent"]["block"] == 4
    assert result.settings["latent_size"] == [25, 18]
    json.dumps(result.settings)  # JSON values only
    assert (
        np.abs(
            sample.astype(float) - generate(astronaut, latent="pca:4", num_scales=2, steps=3, size=(72, 100), seed=2)[0]
        ).mean()
        > 1
    )
    explicit = generate_samples(astronaut, GenerationSettings(latent="pca:4", patch_size=5, num_scales=2, steps=2))
    assert explicit.settings["patch_size"] == 5


@pytest.mark.parametrize(
    ("backend", "options"),
    [("exact", {}), ("chunked", {}), ("ivf", {"nprobe": 100, "k": 10_000}), ("patchmatch", {"k": 10_000, "tail": 0})],
)
def test_backends_take_latent_channels(backend, options):
    """16 channels: each backend at full search equals the float64 reference Eq. 2 (image denoiser, P = 5)."""
    generator = torch.Generator().manual_seed(0)
    reference, x = torch.randn(16, 12, 13, generator=generator), torch.randn(16, 10, 11, generator=generator)
    expected = make_image_denoiser(reference, 5, backend="reference", rho=math.inf)(x.double(), 0.6, 0.5)
    denoised = make_image_denoiser(reference, 5, backend=backend, rho=math.inf, **options)(x, 0.6, 0.5)
    assert denoised.shape == (16, 10, 11)
    assert torch.allclose(denoised.double(), expected, atol=2e-4)


def test_cli_generates_in_the_latent_space(tmp_path, astronaut):
    source = tmp_path / "in.png"
    Image.fromarray(astronaut).save(source)
    result = run_cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "out"),
        "--latent",
        "pca",
        "--scales",
        "1",
        "--size",
        "100x72",
        "-T",
        "3",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    assert "latent pca" in result.stderr and "P = 7" in result.stderr
    output = tmp_path / "out" / "in_seed0.png"
    assert Image.open(output).size == (100, 72)
    settings = read_png_settings(output)
    assert settings["latent"]["name"] == "pca" and settings["latent"]["factor"] == 8 and settings["patch_size"] == 7
    failed = run_cli("generate", str(source), "-o", str(tmp_path / "bad"), "--latent", "vae:" + str(tmp_path / "nothing"))
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
    assert "no VAE at" in failed.stderr and "hf download black-forest-labs/FLUX.1-dev" in failed.stderr


def test_import_does_not_need_diffusers():
    code = "import sys, sinfree, sinfree.latent, sinfree.cli; assert 'diffusers' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120).returncode == 0


# --- the VAE codec (a tiny randomly initialised AutoencoderKL) -------------------------------------------------------


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory) -> Path:
    """A FLUX-like checkpoint folder: ``root/vae`` holds a tiny AutoencoderKL (16 latent channels, 8x)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    model = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        scaling_factor=FLUX_SCALE,
        shift_factor=FLUX_SHIFT,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    root = tmp_path_factory.mktemp("flux")
    model.save_pretrained(root / "vae")
    return root


def test_vae_shapes_and_shift_scale(vae_folder):
    codec = VAECodec(vae_folder)  # the checkpoint folder: the VAE is found in vae/
    assert codec.path == vae_folder / "vae" and VAECodec(vae_folder / "vae").path == codec.path
    assert (codec.factor, codec.latent_channels(3)) == (8, 16)
    image = load_image(EXAMPLE)[0][:, :44, :60]
    latent = codec.encode(image)
    assert latent.shape == (16, 6, 8)  # sides rounded up: 44 -> 48, 60 -> 64
    padded = image[:, torch.tensor([1, 0, *range(44), 43, 42]), :][:, :, torch.tensor([1, 0, *range(60), 59, 58])]
    with torch.no_grad():
        mode = codec.model.encode(padded[None]).latent_dist.mode()[0]
        plain = codec.model.decode(latent[None] / FLUX_SCALE + FLUX_SHIFT).sample[0]
    assert torch.allclose(latent, (mode - FLUX_SHIFT) * FLUX_SCALE, atol=1e-5)
    assert torch.allclose(codec.decode(latent), plain, atol=1e-5)
    assert codec.decode(latent).shape == (3, 48, 64) and codec.decode_to(latent, (44, 60)).shape == (3, 44, 60)
    gray = codec.fit(image[:1])
    assert gray.decode(gray.encode(image[:1])).shape == (1, 48, 64)
    described = codec.describe()
    assert described["shift_factor"] == pytest.approx(FLUX_SHIFT) and described["scaling_factor"] == pytest.approx(FLUX_SCALE)


def test_vae_periodic_decoding_wraps_around(vae_folder):
    """With circular padding, shifting the latent by one column shifts the image by 8 columns, wrapping
    around exactly; with zero padding the columns that cross the border differ. The layers are restored."""
    codec = VAECodec(vae_folder)
    latent = torch.randn(16, 5, 6, generator=torch.Generator().manual_seed(1))
    periodic = codec.decode(latent, periodic=True)
    shifted = codec.decode(torch.roll(latent, 1, dims=-1), periodic=True)
    assert torch.allclose(shifted, torch.roll(periodic, 8, dims=-1), atol=1e-4)
    plain = codec.decode(latent)
    assert (codec.decode(torch.roll(latent, 1, dims=-1)) - torch.roll(plain, 8, dims=-1)).abs().max() > 1e-2
    convs = [layer for layer in codec.model.decoder.modules() if isinstance(layer, torch.nn.Conv2d)]
    assert {layer.padding_mode for layer in convs} == {"zeros"}
    tiled = torch.cat([periodic, periodic], dim=-1)  # the wrap-around seam is an ordinary interior column pair
    middle = codec.decode(torch.cat([latent, latent], dim=-1), periodic=True)
    assert torch.allclose(middle, tiled, atol=1e-4)


def test_vae_generation_end_to_end(vae_folder, astronaut):
    settings = GenerationSettings(latent=f"vae:{vae_folder}", num_scales=1, steps=2)
    result = generate_samples(astronaut, settings, size=(60, 100))
    assert result.samples[0].shape == (60, 100, 3)
    assert result.settings["latent"]["name"] == "vae" and result.settings["latent"]["path"] == str(vae_folder / "vae")
    gray = astronaut[:, :, 1]  # through the VAE as RGB, back as the mean of its RGB output
    assert generate_samples(gray, settings).samples[0].shape == gray.shape


def test_missing_or_invalid_vae_is_one_clear_error(tmp_path, vae_folder):
    with pytest.raises(MissingModelError, match=r"no VAE at .*hf download black-forest-labs/FLUX.1-dev"):
        VAECodec(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(MissingModelError, match="no config.json with diffusion_pytorch_model weights"):
        VAECodec(tmp_path / "empty")
    other = tmp_path / "unet"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (other / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(MissingModelError, match="not an AutoencoderKL"):
        VAECodec(other)
    with pytest.raises(ValueError, match="drop the alpha"):
        VAECodec(vae_folder).fit(torch.zeros(4, 16, 16))


# --- edits in a latent space ---------------------------------------------------------------------------------------


def block_seam_error(image: torch.Tensor, block: int) -> float:
    """Mean absolute difference across the wrap-around edges over that across interior block boundaries
    (a PCA decoding's every block boundary is a seam of two independent blocks: the fair comparison)."""
    image = image.double()
    rows, cols = range(block, image.shape[-2], block), range(block, image.shape[-1], block)
    across = torch.cat(
        [(image[..., 0, :] - image[..., -1, :]).abs().flatten(), (image[..., :, 0] - image[..., :, -1]).abs().flatten()]
    )
    inside = torch.cat(
        [(image[..., r, :] - image[..., r - 1, :]).abs().flatten() for r in rows]
        + [(image[..., :, c] - image[..., :, c - 1]).abs().flatten() for c in cols]
    )
    return (across.mean() / inside.mean()).item()


def test_tile_in_latent_space_is_seamless_when_decoded():
    """Gravel, pca:4: the tiles' wrap-around edges differ like interior block boundaries (mean ratio
    over 3 seeds at most 1.15), plain latent samples' far more (over 1.5x that)."""
    texture = np.ascontiguousarray(skimage.data.gravel()[:96, :128][:, :, None].repeat(3, axis=2))
    settings = GenerationSettings(latent="pca:4", num_scales=1, steps=5)
    tiled = generate_samples(texture, settings, num_samples=3, edit=Tile()).samples
    plain = generate_samples(texture, settings, num_samples=3).samples
    tiled_error = np.mean([block_seam_error(load_image(s)[0], 4) for s in tiled])
    plain_error = np.mean([block_seam_error(load_image(s)[0], 4) for s in plain])
    assert tiled_error <= 1.15 and plain_error > 1.5 * tiled_error, (tiled_error, plain_error)


@pytest.mark.parametrize("latent", ["pca:4", "vae"])
def test_symmetric_in_latent_space_is_exactly_symmetric_when_decoded(latent, astronaut, vae_folder):
    spec = f"vae:{vae_folder}" if latent == "vae" else latent
    image = astronaut.astype(np.float32) / 255.0  # float in, float out: no quantisation
    settings = GenerationSettings(latent=spec, num_scales=1, steps=3)
    for axis in ("vertical", "both"):
        sample = generate_samples(image, settings, size=(70, 98), edit=Symmetric(axis)).samples[0]
        assert sample.shape == (70, 98, 3) and np.array_equal(sample, sample[:, ::-1])
        if axis == "both":
            assert np.array_equal(sample, sample[::-1])


def test_pixel_only_edits_refuse_a_latent_space(astronaut):
    mask = np.zeros(astronaut.shape[:2], dtype=bool)
    mask[30:50, 40:70] = True
    with pytest.raises(SinfreeError, match="Inpaint works in pixel space only"):
        generate_samples(astronaut, GenerationSettings(latent="pca:4", num_scales=1, steps=2), edit=Inpaint(mask))


# --- memory --------------------------------------------------------------------------------------------------------


def parse_bytes(text: str) -> float:
    value, unit = text.split()
    return float(value) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(unit)


def test_memory_refusal_lists_the_alternatives_that_fit(astronaut):
    settings = {"patch_size": 15, "num_scales": 1, "steps": 2, "backend": "exact"}
    pixel = estimate_peak_bytes(3, (96, 128), (96, 128), GenerationSettings(**settings), 2)
    latent = estimate_peak_bytes(3, (96, 128), (96, 128), GenerationSettings(**settings | {"latent": "pca", "patch_size": 7}), 2)
    assert latent < pixel / 4
    limit = (pixel + 3 * latent) // 4
    with pytest.raises(MemoryBudgetError) as refused:
        generate(astronaut, num_samples=2, max_memory_bytes=limit, preset="paper", **settings)  # paper: no latent fallback
    message, advice = str(refused.value), refused.value.advice
    assert "needs about" in message and "settings that fit:" in message and "latent='pca'" in message
    assert advice and all(a.peak_bytes <= limit for a in advice)  # as data, cheapest first
    assert [a.peak_bytes for a in advice] == sorted(a.peak_bytes for a in advice)
    assert {"latent": "pca", "patch_size": 7} in [a.changes for a in advice]
    # the option it lists runs under the same limit
    assert generate(astronaut, num_samples=2, max_memory_bytes=limit, latent="pca", **settings | {"patch_size": 7})[0].shape == (
        96,
        128,
        3,
    )
    with pytest.raises(MemoryBudgetError, match="no larger stride, latent space, backend or smaller batch fits"):
        generate(astronaut, max_memory_bytes=1000, **settings)  # the default's fallback does not fit either: the pixel message


def test_the_default_moves_a_run_that_would_not_fit_to_the_latent_space(astronaut):
    settings = {"patch_size": 15, "num_scales": 1, "steps": 2, "backend": "exact"}
    pixel = estimate_peak_bytes(3, (96, 128), (96, 128), GenerationSettings(**settings), 2)
    latent = estimate_peak_bytes(3, (96, 128), (96, 128), GenerationSettings(**settings | {"latent": "pca", "patch_size": 7}), 2)
    limit = (pixel + 3 * latent) // 4
    result = generate_samples(astronaut, GenerationSettings(**settings), num_samples=2, max_memory_bytes=limit)
    assert result.settings["latent"]["name"] == "pca" and result.settings["patch_size"] == 7
    assert result.samples[0].shape == (96, 128, 3)
    pixels = generate_samples(astronaut, GenerationSettings(**settings), num_samples=2)  # fits: pixels
    assert pixels.settings["latent"] is None and pixels.settings["patch_size"] == 15


def test_latent_estimates_follow_the_codec(vae_folder):
    big = (2048, 2048)
    pixels = estimate_peak_bytes(3, big, big, GenerationSettings(), 1)
    pca = estimate_peak_bytes(3, big, big, GenerationSettings(latent="pca"), 1)
    assert pca < pixels / 4
    vae = VAECodec(vae_folder)
    small_out, large_out = vae.estimate_bytes(3, (64, 64), (64, 64)), vae.estimate_bytes(3, (64, 64), (512, 512))
    assert large_out > 30 * (small_out - vae.estimate_bytes(3, (8, 8), (8, 8)))  # activations grow with the output's area
    assert estimate_peak_bytes(3, big, big, GenerationSettings(latent=f"vae:{vae_folder}"), 1) > pca
