"""The device option (``sinfree.device``, ``--device``) and the GPU code paths, tested on the CPU: the plumbing
with a faked CUDA, the GPU-capable backends against the float64 Eq. 2, and the low-precision option's error."""

import sys

import numpy as np
import pytest
import skimage.data
import torch
from helpers import run_cli, to_tensor

import sinfree
from sinfree import GenerationSettings, denoise_patches, generate, generate_samples, make_backend
from sinfree.backends import AUTO_FAST, AUTO_GPU_FAST, choose_backend
from sinfree.backends.exact import PRECISIONS
from sinfree.device import DeviceError, OnDevice, check_device_spec, cpu_noise, resolve_device
from sinfree.image_denoiser import make_image_denoiser
from sinfree.patches import all_patches
from sinfree.planning import scale_backend

# Tolerance of the fp32 paths against float64 Eq. 2, as tests/test_denoiser_math.py holds the exact backend to.
EXACT_ATOL = 1e-4
NOISE_LEVELS = [(0.1, 0.9), (0.5, 0.5), (0.8, 0.2), (0.9, 0.1), (0.97, 0.03)]


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch believes this machine has two CUDA devices (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def noisy_queries(patches: torch.Tensor, alpha: float, sigma: float, n: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    picks = patches[torch.randint(0, len(patches), (n,), generator=g)].double()
    return alpha * picks + sigma * torch.randn(picks.shape, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def table1_patches() -> torch.Tensor:
    """All 15 x 15 patches (the Table-1 patch size, D = 675) of a real 60 x 60 RGB crop in [-1, 1]."""
    return all_patches(to_tensor(skimage.data.astronaut()[100:160, 100:160]), 15)


# -- resolve_device --------------------------------------------------------------------------------------------


def test_resolve_device_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for spec in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(DeviceError, match="no CUDA GPU") as error:
            resolve_device(spec)
        assert "\n" not in str(error.value)


def test_resolve_device_with_cuda(fake_cuda):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match=r"2 CUDA device\(s\): cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "", "mps", "cpu:0"])
def test_bad_device_strings_list_the_accepted_forms(spec):
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(spec)
    with pytest.raises(ValueError):  # a DeviceError is a ValueError too, as the settings' other refusals
        check_device_spec(spec)
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        GenerationSettings(device=spec).validate()


def test_noise_is_drawn_on_the_cpu_generator():
    """cpu_noise is the CPU generator's draw, whatever the device: seeds give the same noise everywhere."""
    expected = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(4))
    assert torch.equal(cpu_noise((3, 5, 7), torch.Generator().manual_seed(4), torch.device("cpu")), expected)


# -- the command line -------------------------------------------------------------------------------------------

COMMANDS = {
    "generate": ["{image}"],
    "retarget": ["{image}", "--size", "40x30"],
    "symmetric": ["{image}"],
    "tile": ["{image}"],
    "analogy": ["{image}", "{image}"],
    "inpaint": ["{image}", "--mask", "{image}"],
    "harmonize": ["{image}", "--mask", "{image}"],
    "style": ["{image}", "--prompt", "a watercolour"],
    "enhance": ["{image}"],
    "eval": ["{image}"],
}


@pytest.fixture(scope="module")
def image_file(tmp_path_factory, request) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("device") / "input.png"
    Image.fromarray(np.ascontiguousarray(skimage.data.astronaut()[180:276:2, 180:260:2])).save(path)
    return str(path)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_missing_gpu_on_one_line(command, image_file, tmp_path, monkeypatch, capsys, no_cuda):
    """``--device cuda`` on a machine without CUDA: one line on stderr, exit 1, nothing written."""
    from sinfree.cli import main

    args = [arg.format(image=image_file) for arg in COMMANDS[command]]
    outdir = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["sinfree", command, *args, "--device", "cuda", "-o", str(outdir)])
    with pytest.raises(SystemExit) as exit:
        main()
    assert exit.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device 'cuda'" in err and "no CUDA GPU" in err, err
    assert not outdir.exists()


@pytest.mark.parametrize("command", ["generate", "enhance", "eval"])
def test_a_bad_device_is_refused_with_the_accepted_forms(command, image_file, tmp_path, monkeypatch, capsys):
    from sinfree.cli import main

    args = [arg.format(image=image_file) for arg in COMMANDS[command]]
    monkeypatch.setattr(sys, "argv", ["sinfree", command, *args, "--device", "gpu", "-o", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit:
        main()
    assert exit.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "auto, cpu, cuda or cuda:N" in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_in_a_fresh_process_is_one_line(image_file, tmp_path):
    """The real path, without monkeypatching: ``sinfree generate --device cuda`` where torch has no CUDA."""
    result = run_cli("generate", image_file, "--device", "cuda", "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no CUDA GPU" in result.stderr
    assert not (tmp_path / "out").exists()


# -- the API ----------------------------------------------------------------------------------------------------


def test_explicit_cpu_equals_the_default_bit_for_bit(small_rgb):
    default = generate(small_rgb, num_samples=2, seed=3, steps=4)
    explicit = generate(small_rgb, num_samples=2, seed=3, steps=4, device="cpu")
    assert all(np.array_equal(a, b) for a, b in zip(default, explicit))


def test_the_device_used_is_recorded(small_rgb):
    result = generate_samples(small_rgb, GenerationSettings(steps=2))
    assert result.settings["device"] == "cpu"  # "auto" resolved on this CPU-only machine
    result = generate_samples(small_rgb, GenerationSettings(steps=2, device="cpu"))
    assert result.settings["device"] == "cpu"


def test_the_api_refuses_a_missing_gpu_before_any_work(small_rgb, no_cuda):
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        generate(small_rgb, device="cuda")
    with pytest.raises(sinfree.SinfreeError, match="no CUDA GPU"):
        from sinfree.enhance import denoise

        denoise(np.zeros((32, 32)), sigma=0.1, device="cuda:0")


def test_enhance_records_and_accepts_the_cpu_device():
    from sinfree.enhance import denoise

    image = skimage.data.camera()[200:248, 200:248].astype(np.float64)
    noisy = image + np.random.default_rng(0).normal(0, 10, image.shape)
    default, explicit = denoise(noisy, sigma=10.0), denoise(noisy, sigma=10.0, device="cpu")
    assert explicit.settings["device"] == "cpu" and np.array_equal(default.mean, explicit.mean)


# -- the auto policy ----------------------------------------------------------------------------------------------


def test_auto_picks_the_gpu_capable_backend_for_cuda():
    """The device's type is all choose_backend reads: no tensor is made on it."""
    cuda = torch.device("cuda")
    assert choose_backend("auto", {}, 1e12, device=cuda)[0] == AUTO_GPU_FAST == "ivf"
    assert choose_backend("auto", {}, 1e12, device=torch.device("cpu"))[0] == AUTO_FAST == "patchmatch"
    assert choose_backend("auto", {}, 1e12)[0] == AUTO_FAST
    assert choose_backend("auto", {}, 1e6, device=cuda) == ("exact", {})  # the cheap coarse scales stay exact
    assert choose_backend("exact", {"precision": "fp32"}, 1e12, device=cuda) == ("exact", {"precision": "fp32"})
    # patchmatch's own options are dropped for ivf; ivf's and the query grid's are kept
    name, options = choose_backend("auto", {"tail": 16, "k": 8, "noisy_stride": 2}, 1e12, device=cuda)
    assert name == "ivf" and options["k"] == 8 and options["noisy_stride"] == 2 and "tail" not in options


def test_generation_plans_the_gpu_backend_for_a_cuda_device(fake_cuda):
    settings = GenerationSettings(device="cuda")
    assert scale_backend(settings, 3, (512, 512), (512, 512))[0] == "ivf"
    assert scale_backend(GenerationSettings(device="cpu"), 3, (512, 512), (512, 512))[0] == "patchmatch"
    assert scale_backend(settings, 3, (40, 40), (40, 40))[0] == "exact"


def test_enhancement_plans_the_gpu_backend_for_a_cuda_device():
    from sinfree.enhance.problems import choose_prior

    settings = {"backend": "auto", "first_level": 1, "patch_size": 7, "scale": 1, "task": "deblur"}
    assert choose_prior(settings | {"device": "cuda"}, (2048, 2048), 1)[0] == "ivf"
    assert choose_prior(settings | {"device": "cpu"}, (2048, 2048), 1)[0] == "patchmatch"


# -- the GPU code paths, on the CPU, against float64 Eq. 2 ------------------------------------------------------


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
def test_exact_with_the_gpu_layout_matches_float64(real_patches, alpha, sigma):
    """K padded to a multiple of 8 (what the exact backend does on CUDA) changes no dot product."""
    x = noisy_queries(real_patches, alpha, sigma)
    reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
    padded = make_backend("exact", real_patches, align=8)
    assert padded.keys.shape[1] % 8 == 0 and padded.padding > 0
    assert (padded(x.float(), alpha, sigma).double() - reference).abs().max().item() < EXACT_ATOL
    assert torch.equal(padded(x.float(), alpha, sigma), make_backend("exact", real_patches)(x.float(), alpha, sigma))


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
def test_ivf_exhaustive_matches_float64(real_patches, alpha, sigma):
    """The GPU fast path's search and softmax, with every list probed and every patch kept, is exact Eq. 2."""
    x = noisy_queries(real_patches, alpha, sigma)
    reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
    m = len(real_patches)
    for options in ({}, {"project": 16}):
        ivf = make_backend("ivf", real_patches, nprobe=m, k=m, rescore=m, chunk_size=10**6, **options)  # a GPU-sized chunk
        assert (ivf(x.float(), alpha, sigma).double() - reference).abs().max().item() < EXACT_ATOL


# The GPU fast path with auto's options (ivf: nprobe = 2 lists, k = 5 candidates) is approximate: its error against
# float64 Eq. 2 on these patches, measured: max 0.12, mean under 0.05 at s = 0.9 (the weight spreads beyond 5
# patches), falling with s; at small s it finds the nearest patch. The bounds below are those figures rounded up.
IVF_MAX_ATOL, IVF_MEAN_ATOL, IVF_SHARP_ATOL = 0.15, 0.06, 1e-4


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS + [(0.99, 0.01)])
def test_ivf_with_auto_options_is_within_its_stated_tolerance(real_patches, alpha, sigma):
    x = noisy_queries(real_patches, alpha, sigma)
    reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
    error = (make_backend("ivf", real_patches)(x.float(), alpha, sigma).double() - reference).abs()
    assert error.max().item() < IVF_MAX_ATOL and error.mean().item() < IVF_MEAN_ATOL
    if sigma <= 0.01:
        assert error.max().item() < IVF_SHARP_ATOL


def test_self_prior_and_on_device_wrapper_are_unchanged_on_the_cpu(small_rgb):
    """OnDevice(cpu) is the identity; the fused patchmatch denoiser used through it (as on a GPU) gives the same."""
    image = to_tensor(small_rgb)
    x = 0.7 * image + 0.3 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    direct = make_image_denoiser(image, 7, backend="patchmatch")
    wrapped = OnDevice(make_image_denoiser(image, 7, backend="patchmatch"), torch.device("cpu"))
    assert torch.equal(direct(x, 0.7, 0.3), wrapped(x, 0.7, 0.3))
    assert wrapped.stats is wrapped.denoiser.stats


# -- low precision: measured on the CPU against the fp32 tolerance -----------------------------------------------

# The largest error against float64 Eq. 2 the low-precision inputs gave on these 15 x 15 patches (measured on the
# CPU: bf16 3.3e-2, fp16 2.9e-3), rounded up: far above EXACT_ATOL, which is why fp32 is the default everywhere.
LOW_PRECISION_MAX_ERROR = {"bf16": 5e-2, "fp16": 5e-3}


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
def test_low_precision_misses_the_fp32_tolerance(table1_patches, alpha, sigma):
    x = noisy_queries(table1_patches, alpha, sigma)
    reference = denoise_patches(x, table1_patches.double(), alpha, sigma, backend="reference")
    errors = {}
    for precision in PRECISIONS:
        out = make_backend("exact", table1_patches, precision=precision)(x.float(), alpha, sigma)
        errors[precision] = (out.double() - reference).abs().max().item()
    assert errors["fp32"] < EXACT_ATOL
    for precision in ("bf16", "fp16"):
        assert EXACT_ATOL < errors[precision] < LOW_PRECISION_MAX_ERROR[precision], errors


def test_fp32_is_the_default_precision(real_patches):
    assert make_backend("exact", real_patches).precision == torch.float32
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        make_backend("exact", real_patches, precision="fp8")


def test_an_edit_that_stays_on_the_cpu_runs_there_under_auto(small_rgb, fake_cuda):
    """Inpainting's masks are CPU tensors: with a (faked) GPU, auto runs it on the CPU and cuda is refused."""
    from sinfree.editing import inpaint

    mask = np.zeros(small_rgb.shape[:2], dtype=bool)
    mask[16:28, 20:32] = True
    settings = GenerationSettings(steps=2)
    assert inpaint(small_rgb, mask, settings).settings["device"] == "cpu"
    with pytest.raises(sinfree.SinfreeError, match="runs on the CPU only"):
        inpaint(small_rgb, mask, GenerationSettings(steps=2, device="cuda"))


def test_the_gpu_fast_path_generates_end_to_end_on_the_cpu(small_rgb):
    """What auto runs on a GPU's fine scales (ivf with the query grid's strides), through the whole sampler."""
    from sinfree.backends import AUTO_GPU_FAST_OPTIONS

    settings = GenerationSettings(steps=4, backend=AUTO_GPU_FAST, backend_options=dict(AUTO_GPU_FAST_OPTIONS))
    sample = generate_samples(small_rgb, settings, seed=1).samples[0]
    assert sample.shape == small_rgb.shape and sample.dtype == np.uint8 and sample.std() > 5


# -- on a CUDA GPU (skipped where there is none) ----------------------------------------------------------------

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# Target of issue 24 for a seed's sample on the GPU against the CPU's (exact backend on both, so only rounding
# differs), in 8-bit levels; not yet measured on a GPU.
SEED_AGREEMENT_LEVELS = 4


@cuda_only
@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
def test_cuda_backends_match_float64(real_patches, alpha, sigma):
    x = noisy_queries(real_patches, alpha, sigma)
    reference = denoise_patches(x, real_patches.double(), alpha, sigma, backend="reference")
    patches, queries, m = real_patches.cuda(), x.float().cuda(), len(real_patches)
    for backend, options in (("exact", {}), ("ivf", {"nprobe": m, "k": m})):
        out = make_backend(backend, patches, **options)(queries, alpha, sigma)
        assert out.device.type == "cuda"
        assert (out.double().cpu() - reference).abs().max().item() < EXACT_ATOL, backend


@cuda_only
def test_cuda_samples_follow_the_seed(small_rgb):
    settings = dict(num_samples=2, seed=5, steps=6, backend="exact")
    on_cpu, on_gpu = generate(small_rgb, device="cpu", **settings), generate(small_rgb, device="cuda", **settings)
    for a, b in zip(on_cpu, on_gpu):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= SEED_AGREEMENT_LEVELS


@cuda_only
def test_cuda_runs_every_path(small_rgb, astronaut64):
    from sinfree.editing import Symmetric, Tile
    from sinfree.enhance import denoise

    result = generate_samples(astronaut64, GenerationSettings(steps=4, device="cuda"))
    assert result.settings["device"] == "cuda:0" and result.samples[0].shape == astronaut64.shape
    for edit in (Symmetric(), Tile()):
        assert generate_samples(small_rgb, GenerationSettings(steps=3), edit=edit).samples[0].shape == small_rgb.shape
    assert generate_samples(astronaut64, GenerationSettings(steps=3, latent="pca:4", device="cuda")).samples
    assert generate_samples(astronaut64, GenerationSettings(steps=3, backend="patchmatch", device="cuda")).samples
    noisy = skimage.data.camera()[200:264, 200:264].astype(np.float64)
    assert denoise(noisy, sigma=10.0, device="cuda").settings["device"] == "cuda:0"
