"""Energy of xhat0 and its rectification (sinfree.energy, DESIGN.md §2 after RectifiedHR)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import to_tensor
from PIL import Image

from sinfree import generate
from sinfree.coarse_to_fine import reference_levels
from sinfree.energy import EnergyRectifier, EnergyTrace, energy_ratio, high_frequency_energy, mean_square
from sinfree.generation import generate_samples
from sinfree.io.images import load_image, read_png_settings
from sinfree.resize import resize
from sinfree.schedule import flow_schedule
from sinfree.settings import GenerationSettings

# rho = inf (a flat window) and stride 3 average many overlapping patches: a soft output.
BLURRY = {"patch_size": 5, "num_scales": 2, "steps": 6, "rho": float("inf"), "stride": 3, "backend": "exact"}


def test_energy_measures_on_known_images(small_rgb):
    image = to_tensor(small_rgb)
    blurred = resize(resize(image, (24, 20)), (48, 40))
    assert (high_frequency_energy(blurred) < 0.5 * high_frequency_energy(image)).all()
    assert energy_ratio(image, image) == pytest.approx(1.0)
    flat = torch.full((3, 16, 16), 0.5)
    assert torch.allclose(mean_square(flat), torch.full((3,), 0.25, dtype=torch.float64))
    assert high_frequency_energy(flat).max() < 1e-10  # a constant image has no detail
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0
    assert high_frequency_energy(checker[None]).item() == pytest.approx(1.0, abs=0.05)  # all detail is HF


def test_trace_records_every_step_of_every_scale(small_rgb):
    settings = GenerationSettings(**BLURRY)
    levels = reference_levels(small_rgb, settings, size=(56, 48))
    trace = EnergyTrace(levels, flow_schedule(settings.steps).sigmas.tolist())
    generate_samples(small_rgb, settings, num_samples=2, size=(56, 48), progress=trace)
    keys = [(r.sample, r.scale, r.t) for r in trace.records]
    assert sorted(keys) == sorted((i, s, t) for i in range(2) for s in range(2) for t in range(1, 7))
    # each record is its step's (s_t) and is measured against its own scale's reference level
    sigmas, reference_hf = (
        flow_schedule(settings.steps).sigmas.tolist(),
        [high_frequency_energy(level).tolist() for level in levels],
    )
    assert reference_hf[0] != pytest.approx(reference_hf[1])  # the levels differ: a record on the wrong scale shows
    assert all(
        len(r.hf) == 3 and r.sigma == sigmas[r.t] and r.reference_hf == pytest.approx(reference_hf[r.scale])
        for r in trace.records
    )
    steps, ratios = trace.curve(0)
    assert steps == [6, 5, 4, 3, 2, 1] and ratios[-1] > ratios[0]  # detail grows as the noise falls
    assert trace.final_ratio() == ratios[-1] and "HF ratio" in trace.table()


def test_rectification_raises_a_low_final_energy(small_rgb):
    reference, _ = load_image(small_rgb)
    ratios = {}
    for rectify in (None, 0.5):
        result = generate_samples(small_rgb, GenerationSettings(**BLURRY, rectify=rectify), size=(72, 64), seed=3)
        ratios[rectify] = energy_ratio(to_tensor(result.samples[0]), reference)
    assert ratios[None] < 0.9  # the case is soft
    assert ratios[0.5] > 1.1 * ratios[None]


def test_rectifier_weight_solves_for_the_target():
    torch.manual_seed(0)
    level = torch.randn(1, 32, 32)
    sharp, soft = torch.randn(1, 32, 32), torch.zeros(1, 32, 32)

    def denoiser(x, alpha, sigma):  # a soft output at s, a sharp one at gamma s
        return soft if sigma > 0.3 else sharp

    rectifier = EnergyRectifier(denoiser, level, {0.5: 0.5 / 1.5}, gamma=0.5)  # target ratio 0.5 after OVERSHOOT
    out = rectifier(torch.zeros(1, 32, 32), 0.5, 0.5)
    assert high_frequency_energy(out).item() == pytest.approx(0.5 * high_frequency_energy(level).item(), rel=1e-4)
    assert 0 < rectifier.weights[-1] < 1
    with pytest.raises(ValueError, match="gamma"):
        EnergyRectifier(denoiser, level, {}, gamma=1.0)


def test_rectify_off_and_at_the_input_size_change_nothing(small_rgb):
    plain = generate(small_rgb, size=(56, 48), seed=1, **BLURRY)[0]
    off = generate(small_rgb, size=(56, 48), seed=1, rectify=None, **BLURRY)[0]
    assert np.array_equal(plain, off)
    native = generate(small_rgb, seed=1, **BLURRY)[0]
    assert np.array_equal(native, generate(small_rgb, seed=1, rectify=0.5, **BLURRY)[0])  # nothing to rectify
    with pytest.raises(ValueError, match="rectify"):
        generate(small_rgb, rectify=1.5, **BLURRY)


def test_rectify_from_the_cli(tmp_path, small_rgb):
    path = tmp_path / "in.png"
    Image.fromarray(small_rgb).save(path)
    outdir = tmp_path / "out"
    args = [sys.executable, "-m", "sinfree.cli", "generate", str(path), "-o", str(outdir), "-P", "5", "-S", "2", "-T", "3"]
    result = subprocess.run(
        [*args, "-q", "--size", "60x52", "--rectify", "0.5"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    (written,) = outdir.glob("*.png")
    assert read_png_settings(written)["rectify"] == 0.5 and Image.open(written).size == (60, 52)
    result = subprocess.run([*args, "-q", "--rectify", "1.0"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0 and "rectify" in result.stderr and "Traceback" not in result.stderr
