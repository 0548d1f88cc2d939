"""CLIP text-guided style transfer (DESIGN.md §1) with a tiny randomly initialised CLIP saved to disk and loaded
back through ``load_clip``, the path users take (no weights can be downloaded here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
import torch
from helpers import run_cli
from PIL import Image

from sinfree.editing.style import (
    ClipGuidedDenoiser,
    ClipStyle,
    MissingModelError,
    clip_similarity,
    ddim_invert,
    guidance_step,
    load_clip,
    nearest_step,
    stylize,
    threshold_gradient,
)
from sinfree.errors import SinfreeError
from sinfree.io.images import load_image, read_png_settings
from sinfree.schedule import flow_schedule

PROMPT = "a starry night"


def byte_characters() -> list[str]:
    """CLIP's byte-level BPE alphabet: the 256 printable characters standing for the bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + n) for n in range(len(others))]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A folder holding a tiny random CLIP (32-wide, 2 layers, 32 px images, 8 px patches) and a tokenizer with
    single-byte tokens and no merges, written by ``save_pretrained`` like a downloaded model."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("clip")
    chars = byte_characters()
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(root)
    torch.manual_seed(0)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = layers | {
        "vocab_size": 514,
        "max_position_embeddings": 32,
        "bos_token_id": 512,
        "eos_token_id": 513,
        "pad_token_id": 513,
    }
    config = CLIPConfig(text_config=text, vision_config=layers | {"image_size": 32, "patch_size": 8}, projection_dim=16)
    folder = root / "tiny-clip"
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def guide(tiny_clip):
    return load_clip(tiny_clip)


@pytest.fixture(scope="module")
def content() -> np.ndarray:
    """A real 32 x 32 RGB image: scikit-image's astronaut, 64 x 64 crop subsampled by 2."""
    return np.ascontiguousarray(skimage.data.astronaut()[100:164:2, 100:164:2])


def test_one_guided_step_raises_the_clip_similarity(guide, content):
    """One call of the guided denoiser (first step: xbar = xhat0) raises cos(prompt, views) over held-out views,
    and moves xbar by exactly gamma * step_ratio of its norm."""
    image = load_image(content)[0]
    edit = ClipStyle(PROMPT, guide, views=16)
    before, after = [], []
    for seed in range(4):
        guided_denoiser = ClipGuidedDenoiser(lambda x, a, s: image, guide, edit.text, edit)
        guided_denoiser.generator = torch.Generator().manual_seed(seed)
        guided = guided_denoiser(torch.zeros_like(image), 0.7, 0.3)
        assert (guided - image).norm() / image.norm() == pytest.approx(edit.gamma * edit.step_ratio, rel=1e-4)
        for x, out in ((image, before), (guided, after)):
            with torch.no_grad():
                out.append(clip_similarity(guide, x, edit.text, 16, torch.Generator().manual_seed(1000 + seed)).item())
    print(f"CLIP similarity to {PROMPT!r}: xbar {np.mean(before):.4f} -> guided {np.mean(after):.4f}")
    assert np.mean(after) > np.mean(before) + 0.01, (before, after)


def test_moving_average_and_gamma_schedule(guide, content):
    """Second call: xbar = 0.9 xhat0'_prev + 0.1 xhat0; the step scales as gamma s_t / s_start."""
    image = load_image(content)[0]
    flat = torch.zeros_like(image)
    edit = ClipStyle(PROMPT, guide, views=2, gamma=0.0)
    denoiser = ClipGuidedDenoiser(lambda x, a, s: x, guide, edit.text, edit)
    denoiser.start_trajectory()
    assert torch.equal(denoiser(image, 0.7, 0.3), image)
    assert torch.allclose(denoiser(flat, 0.8, 0.2), 0.9 * image)
    edit.gamma = 1.0
    denoiser.start_trajectory()
    first = denoiser(image, 0.7, 0.3) - image
    xbar = image + 0.9 * first  # 0.9 (image + first step) + 0.1 image
    second = denoiser(image, 0.85, 0.15) - xbar  # s_t halved: gamma_t = 0.5
    assert second.norm() / xbar.norm() == pytest.approx(0.5 * edit.step_ratio, rel=1e-4)


def test_threshold_and_zero_gradient():
    gradient = torch.linspace(-1, 1, 1001).reshape(1, 7, 143)
    clipped = threshold_gradient(gradient, 0.9)
    assert clipped.abs().max() == pytest.approx(0.9, abs=0.01) and torch.equal(threshold_gradient(gradient, 1.0), gradient)
    assert torch.equal(guidance_step(torch.ones(1, 2, 2), torch.zeros(1, 2, 2), 1.0, 0.1, 0.98), torch.zeros(1, 2, 2))


def test_inversion_start_and_reconstruction(guide, content):
    """The start is the step nearest s = 0.3; with gamma = 0 the DDIM inversion and reconstruction give the content back."""
    schedule = flow_schedule(200)
    assert schedule[nearest_step(schedule, 0.3)][1] == pytest.approx(0.3, abs=0.003)
    assert nearest_step(flow_schedule(4), 0.3) == 2
    image = load_image(content)[0]
    assert torch.equal(ddim_invert(None, image, schedule, 1), schedule[1][0] * image)
    out = stylize(content, PROMPT, clip=guide, steps=100, views=2, gamma=0.0)[0]
    assert np.abs(out.astype(float) - content).mean() < 1.0


def test_deterministic_for_a_seed(guide, content):
    floats = content.astype(np.float32) / 255  # float out: no rounding hides a difference

    def run(seed):
        return stylize(floats, PROMPT, clip=guide, steps=8, views=2, seed=seed, num_samples=2)

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert np.array_equal(first[1], other[0])  # sample i uses seed + i
    assert np.abs(first[0] - first[1]).max() > 1e-4


def test_single_scale_and_empty_prompt(guide):
    with pytest.raises(ValueError, match="single-scale"):
        ClipStyle(PROMPT, guide).prepare(2)
    with pytest.raises(ValueError, match="prompt"):
        ClipStyle(" ", guide)


def test_missing_model_errors_say_what_to_download(tmp_path):
    with pytest.raises(MissingModelError, match="hf download openai/clip-vit-base-patch32 --local-dir") as caught:
        load_clip(tmp_path)  # a folder without the files
    assert isinstance(caught.value, SinfreeError) and "\n" not in str(caught.value)


def test_cli_missing_model_is_one_clean_line(tmp_path, content):
    source = tmp_path / "in.png"
    Image.fromarray(content).save(source)
    cache = tmp_path / "hf"  # an empty Hugging Face home: ViT-B/32 is not in its cache
    offline = {"HF_HOME": str(cache), "HF_HUB_OFFLINE": "1"}
    result = run_cli("style", str(source), "--prompt", PROMPT, "-q", "-o", str(tmp_path), env=offline)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert "hf download openai/clip-vit-base-patch32" in lines[0] and str(cache) in lines[0]


def test_cli_end_to_end_writes_the_prompt(tmp_path, tiny_clip, content):
    source = tmp_path / "in.png"
    Image.fromarray(content).save(source)
    result = run_cli(
        "style", str(source), "--prompt", PROMPT, "--clip", str(tiny_clip), "-T", "4", "--views", "2", "-q", "-o", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "in_style_seed0.png"
    settings = read_png_settings(out)
    assert Image.open(out).size == (32, 32) and settings["edit"]["prompt"] == PROMPT
    assert settings["num_scales"] == 1 and settings["patch_size"] == 7 and settings["steps"] == 4
    assert settings["edit"]["start_step"] == 2 and settings["edit"]["views"] == 2
