"""Structural analogy: DDIM inversion's mathematics, the output's defining properties, and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from helpers import run_cli
from PIL import Image

from sinfree import GenerationSettings, InputImageError, generate_samples, load_image, sample_scale
from sinfree.editing.analogy import StructuralAnalogy, ddim_invert, match_channels, nearest_step, structural_analogy
from sinfree.image_denoiser import make_image_denoiser
from sinfree.io.images import read_png_settings
from sinfree.metrics import nearest_patch_distance
from sinfree.resize import resize
from sinfree.schedule import flow_schedule

FAST = GenerationSettings(patch_size=7, num_scales=2, steps=10)


def shrink(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A real image, antialiased down to (width, height)."""
    return np.asarray(Image.fromarray(array).resize(size, Image.LANCZOS))


@pytest.fixture(scope="module")
def structure() -> np.ndarray:
    """Astronaut, 64 x 64: a figure in an orange suit before a flag and a dark background."""
    return shrink(skimage.data.astronaut(), (64, 64))


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    """Coffee, 72 x 48: another size and aspect, other content and colours (brown wood, red cup)."""
    return shrink(skimage.data.coffee(), (72, 48))


@pytest.fixture(scope="module")
def analogies(structure, style) -> dict:
    """Analogies at level 0.5 (seeds 0, 1), 0.2 and 1.0 (seed 0), a repeat of level 0.5 seed 1, and plain samples of the style."""
    runs = {level: structural_analogy(structure, style, FAST, level=level, num_samples=1, seed=0) for level in (0.2, 1.0)}
    runs[0.5] = structural_analogy(structure, style, FAST, level=0.5, num_samples=2, seed=0)
    runs["repeat"] = structural_analogy(structure, style, FAST, level=0.5, seed=1)
    runs["plain"] = generate_samples(style, FAST, size=structure.shape[:2], num_samples=2, seed=0)
    return runs


def layout_correlation(sample: np.ndarray, structure: np.ndarray, shape=(8, 8)) -> float:
    """Pearson correlation of the two images' gray levels, both low-passed to ``shape``."""
    a, b = (resize(load_image(x)[0], shape).mean(0).flatten() for x in (sample, structure))
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_nearest_step_picks_the_noise_level():
    schedule = flow_schedule(10)  # s_t = 1e-4 + (t - 1) / 9
    assert nearest_step(schedule, 0.5) == 5 and nearest_step(schedule, 0.34) == 4
    assert nearest_step(schedule, 1.0) == 10 and nearest_step(schedule, 1e-6) == 1
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="level"):
            nearest_step(schedule, bad)


def test_ddim_inversion_follows_the_flow_of_gaussian_data():
    """For data N(0, c^2 I) the denoiser is linear, and the flow maps x_0 to x_t = sqrt(a_t^2 c^2 + s_t^2) / c x_0:
    the inversion lands there, and sampling back from x_t (eta = 0) recovers x_0."""
    c = 0.5
    schedule = flow_schedule(400)

    def gaussian_denoiser(x, alpha, sigma):
        return alpha * c**2 / (alpha**2 * c**2 + sigma**2) * x

    x0 = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * c
    for step in (100, 200, 400):
        alpha, sigma = schedule[step]
        x_t = ddim_invert(gaussian_denoiser, x0, schedule, step)
        expected = (alpha**2 * c**2 + sigma**2) ** 0.5 / c * x0
        assert (x_t - expected).abs().max() < 0.01 * x0.abs().max()
        back = sample_scale(gaussian_denoiser, x_t, schedule, start_step=step)
        assert (back - x0).abs().max() < 0.02 * x0.abs().max()
    assert torch.equal(ddim_invert(gaussian_denoiser, x0, schedule, 0), x0)


def test_first_inversion_step_is_what_the_images_own_denoiser_says(structure):
    """x_1 = a_1 x_0 (eps = 0): at that point the image's own denoiser returns x_0, so its eps_hat is 0 there too."""
    x0 = resize(load_image(structure)[0], (32, 32))
    schedule = flow_schedule(10)
    denoiser = make_image_denoiser(x0, 7, backend="exact")
    alpha, sigma = schedule[1]
    x1 = ddim_invert(denoiser, x0, schedule, 1)
    assert torch.allclose(x1, alpha * x0)
    eps_hat = (x1 - alpha * denoiser(x1, alpha, sigma)) / sigma
    assert eps_hat.abs().max() < 0.05  # float32 rounding / s_1 = 1e-4
    with pytest.raises(ValueError, match="to_step"):
        ddim_invert(denoiser, x0, schedule, 11)


def test_output_has_the_structures_size_and_type(analogies, structure):
    for sample in analogies[0.5].samples:
        assert sample.shape == structure.shape and sample.dtype == np.uint8
    edit = analogies[0.5].settings["edit"]
    assert edit["name"] == "StructuralAnalogy" and edit["level"] == 0.5
    assert edit["inverted_sigma"] == pytest.approx(flow_schedule(10).sigmas[5].item())


def test_layout_follows_the_structure(analogies, structure):
    """Measured: analogy 0.89 (level 0.5) against 0.27 and 0.42 for plain samples of the style."""
    analogy = [layout_correlation(s, structure) for s in analogies[0.5].samples]
    plain = [layout_correlation(s, structure) for s in analogies["plain"].samples]
    assert min(analogy) > 0.8 and min(analogy) > max(plain) + 0.3, (analogy, plain)


def test_patches_come_from_the_style(analogies, structure, style):
    """Measured: nearest-patch distance 0.07 to the style against 0.21 to the structure (plain samples of the style: 0.06)."""
    structure_tensor, style_tensor = load_image(structure)[0], load_image(style)[0]
    for sample in analogies[0.5].samples:
        tensor = load_image(sample)[0]
        to_style, to_structure = nearest_patch_distance(tensor, style_tensor), nearest_patch_distance(tensor, structure_tensor)
        assert to_style < 0.5 * to_structure, (to_style, to_structure)


def test_deterministic_for_a_seed_and_varies_with_seed(analogies):
    first, second = analogies[0.5].samples
    assert np.array_equal(analogies["repeat"].samples[0], second)
    assert not np.array_equal(first, second)  # finer scales start from the seed's noise


def test_level_changes_the_result(analogies, structure):
    """Lower levels keep more of the layout (measured: correlation 0.91 at 0.2, 0.61 at 1.0, where the inverted
    coarsest scale has little left of the structure)."""
    low, high = analogies[0.2].samples[0], analogies[1.0].samples[0]
    assert np.abs(low.astype(float) - analogies[0.5].samples[0]).mean() > 0.5
    assert layout_correlation(low, structure) > layout_correlation(high, structure) + 0.1


def test_match_channels():
    rgb = torch.rand(3, 4, 5) * 2 - 1
    assert torch.equal(match_channels(rgb, 3), rgb)
    gray = match_channels(rgb, 1)
    assert gray.shape == (1, 4, 5) and torch.allclose(gray[0], rgb.mean(0))
    assert torch.equal(match_channels(gray, 3), gray.expand(3, -1, -1))
    rgba = match_channels(rgb, 4)
    assert torch.equal(rgba[:3], rgb) and torch.equal(rgba[3], torch.ones(4, 5))
    assert torch.equal(match_channels(rgba, 3), rgb)


def test_gray_style_for_a_colour_structure(structure, style):
    gray_style = np.asarray(Image.fromarray(style).convert("L"))
    sample = structural_analogy(structure, gray_style, GenerationSettings(patch_size=7, num_scales=1, steps=3)).samples[0]
    assert sample.shape == structure.shape
    assert np.abs(sample[..., 0].astype(int) - sample[..., 2]).max() <= 1  # gray patches: gray output


def test_api_errors(structure, style):
    with pytest.raises(ValueError, match="level"):
        StructuralAnalogy(style, level=0.0)
    with pytest.raises(InputImageError, match="style image .* smaller than the 7 px patch"):
        structural_analogy(structure, style[:6, :6], FAST)
    with pytest.raises(InputImageError, match="style image .* at 4 scales .* use at most 3 scales"):
        structural_analogy(structure, style, GenerationSettings(patch_size=7, num_scales=4))


def test_cli_writes_outputs_with_settings(tmp_path, structure, style):
    Image.fromarray(structure).save(tmp_path / "astronaut.png")
    Image.fromarray(style).save(tmp_path / "coffee.png")
    out = tmp_path / "out"
    args = ["--level", "0.4", "--seed", "3", "-n", "2", "-P", "7", "-S", "2", "-T", "4", "-q", "-o", str(out)]
    result = run_cli("analogy", str(tmp_path / "astronaut.png"), str(tmp_path / "coffee.png"), *args)
    assert result.returncode == 0, result.stderr
    for seed in (3, 4):
        path = out / f"astronaut_analogy_coffee_seed{seed}.png"
        assert Image.open(path).size == (64, 64) and str(path) in result.stdout
        settings = read_png_settings(path)
        assert settings["input"] == "astronaut.png" and settings["seed"] == seed and settings["patch_size"] == 7
        assert settings["edit"]["style"] == "coffee.png" and settings["edit"]["level"] == 0.4


@pytest.mark.parametrize(
    "args, needle",
    [
        (["STRUCTURE", "MISSING"], "MISSING: no such file"),
        (["STRUCTURE", "STYLE", "--level", "0"], "--level must be in (0, 1]"),
        (["STRUCTURE", "STYLE", "-P", "50"], "style image (72x48 px) is smaller than the 50 px patch"),
        (["STRUCTURE", "STYLE", "-P", "7", "-S", "5"], "structure image (64x64 px) at 5 scales"),
    ],
)
def test_cli_fails_cleanly(tmp_path, structure, style, args, needle):
    names = {"STRUCTURE": tmp_path / "structure.png", "STYLE": tmp_path / "style.png", "MISSING": tmp_path / "MISSING"}
    Image.fromarray(structure).save(names["STRUCTURE"])
    Image.fromarray(style).save(names["STYLE"])
    result = run_cli("analogy", *[str(names.get(a, a)) for a in args], "-q", "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert needle in result.stderr.strip().splitlines()[-1], result.stderr
    assert not (tmp_path / "out").exists()  # nothing written, no folder made
