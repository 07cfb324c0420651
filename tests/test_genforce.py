"""genforce PGGAN and StyleGAN (v1): parity with the sefa reference, and the ``.pth`` loader."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir

from sefa_core.errors import CheckpointError
from sefa_core.factorize import factorize
from sefa_core.formats import load_checkpoint
from sefa_core.formats.containers import read_checkpoint
from sefa_core.formats.layouts.genforce import gan_type
from sefa_core.models.pggan import PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator

IMAGE_ATOL = 1e-3  # fixtures' README §3: float32 convolutions differ across CPUs, BLAS, thread counts
LATENT_ATOL = 1e-5
EIGENVALUE_RTOL = 1e-4
DIRECTION_MIN_COS = 0.9999
DEGENERATE_GAP = 1e-4  # eigenvalues closer than this (relative to the largest) share a subspace
EDIT_DISTANCE = 3.0  # sefa.py's edit: +3.0 along direction 0
TRUNC_PSI = 0.7  # sefa.py's CLI defaults, used by the *_trunc07 fixtures
TRUNC_LAYERS = 8
BLUR_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


# ---- parity with the reference fixtures ------------------------------------------------------
def load_fixture(name: str) -> tuple[Path, torch.nn.Module, torch.Tensor]:
    folder = fixture_dir(name)
    generator = load_checkpoint(folder / "checkpoint.pth", device="cpu")
    return folder, generator, torch.from_numpy(np.load(folder / "z.npy"))


def max_diff(actual: torch.Tensor, reference_file: Path) -> float:
    reference = np.load(reference_file)
    assert tuple(actual.shape) == reference.shape
    return float(np.abs(actual.cpu().numpy() - reference).max())


def reference_semantics(folder: Path, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference's (values, vectors), in LAPACK's order as saved (rows are directions)."""
    return np.load(folder / f"sefa_{spec}_values.npy"), np.load(folder / f"sefa_{spec}_vectors.npy")


def assert_semantics_match(generator, folder: Path, spec: str) -> None:
    values, vectors = reference_semantics(folder, spec)
    order = np.argsort(-values)
    values, vectors = values[order], vectors[order]
    ours = factorize(generator, spec)
    np.testing.assert_allclose(ours.eigenvalues, values, rtol=EIGENVALUE_RTOL)
    gaps = np.abs(values[:, None] - values[None, :]) + np.eye(len(values)) * values.max()
    distinct = gaps.min(axis=1) > DEGENERATE_GAP * values.max()
    assert distinct.sum() >= len(values) // 2, "too few distinct eigenvalues to test the directions"
    cosines = np.abs(np.sum(ours.directions * vectors, axis=1))
    assert cosines[distinct].min() >= DIRECTION_MIN_COS


def test_genforce_pggan_matches_reference_output():
    folder, generator, z = load_fixture("genforce_pggan_32")
    assert isinstance(generator, PGGANGenerator) and generator.source_format == "genforce .pth"
    assert (generator.resolution, generator.latent_dim, generator.num_layers) == (32, 64, 1)
    assert max_diff(generator.synthesize(generator.to_edit_space(z)), folder / "img.npy") <= IMAGE_ATOL


@pytest.mark.parametrize("spec", ["all", "0-1"])
def test_genforce_pggan_sefa_matches_reference_directions(spec):
    folder, generator, _ = load_fixture("genforce_pggan_32")
    assert generator.resolve_layers(spec) == (0,)
    assert_semantics_match(generator, folder, spec)


@pytest.mark.parametrize("spec", ["all", "0-1"])
def test_genforce_pggan_edit_matches_reference_images(spec):
    folder, generator, z = load_fixture("genforce_pggan_32")
    _, vectors = reference_semantics(folder, spec)
    codes = generator.to_edit_space(z) + EDIT_DISTANCE * torch.from_numpy(vectors[0])
    assert max_diff(codes, folder / "z_edit.npy") <= LATENT_ATOL
    suffix = "" if spec == "all" else f"_{spec}"
    assert max_diff(generator.synthesize(codes), folder / f"img_edit{suffix}.npy") <= IMAGE_ATOL


def test_genforce_stylegan_matches_reference_latents_and_output():
    folder, generator, z = load_fixture("genforce_stylegan_32")
    assert isinstance(generator, StyleGANGenerator)
    assert (generator.resolution, generator.latent_dim, generator.direction_dim) == (32, 64, 64)
    assert generator.num_layers == 8 and generator.mapping.num_layers == 8
    with torch.inference_mode():
        assert max_diff(generator.mapping(z), folder / "w.npy") <= LATENT_ATOL
    assert max_diff(generator.truncation.w_avg, folder / "w_avg.npy") == 0.0
    wp = generator.to_edit_space(z)
    assert max_diff(wp, folder / "wp.npy") <= LATENT_ATOL
    assert max_diff(generator.synthesize(wp), folder / "img.npy") <= IMAGE_ATOL


def test_genforce_stylegan_truncation_matches_reference():
    folder, generator, z = load_fixture("genforce_stylegan_32")
    wp = generator.to_edit_space(z, TRUNC_PSI, TRUNC_LAYERS)
    assert max_diff(wp, folder / "wp_trunc07.npy") <= LATENT_ATOL
    assert max_diff(generator.synthesize(wp), folder / "img_trunc07.npy") <= IMAGE_ATOL


@pytest.mark.parametrize("spec", ["all", "0-1"])
def test_genforce_stylegan_sefa_matches_reference_directions(spec):
    folder, generator, _ = load_fixture("genforce_stylegan_32")
    assert_semantics_match(generator, folder, spec)


@pytest.mark.parametrize(
    ("image_file", "spec", "trunc_psi"),
    [
        ("img_edit.npy", "all", 1.0),
        ("img_edit_0-1.npy", "0-1", 1.0),
        ("img_edit_trunc07.npy", "all", TRUNC_PSI),
    ],
)
def test_genforce_stylegan_edits_match_reference_images(image_file, spec, trunc_psi):
    folder, generator, z = load_fixture("genforce_stylegan_32")
    _, vectors = reference_semantics(folder, spec)
    wp = generator.to_edit_space(z, trunc_psi, TRUNC_LAYERS).clone()
    rows = list(generator.resolve_layers(spec))
    wp[:, rows] += EDIT_DISTANCE * torch.from_numpy(vectors[0])
    if image_file == "img_edit.npy":
        assert max_diff(wp, folder / "wp_edit.npy") <= LATENT_ATOL
    assert max_diff(generator.synthesize(wp), folder / image_file) <= IMAGE_ATOL


def test_genforce_stylegan2_fixture_is_recognised_as_stylegan2():
    folder = fixture_dir("genforce_stylegan2_32")
    content = read_checkpoint(folder / "checkpoint.pth").content
    assert gan_type(content["generator_smooth"]) == "stylegan2"


# ---- checkpoints in the genforce layout, built here ------------------------------------------
def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def genforce_pggan_state(z_dim: int, channels: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under genforce ``PGGANGenerator``'s key names and shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for block, width in enumerate(channels):
        first = (width, z_dim, 4, 4) if block == 0 else (width, channels[block - 1], 3, 3)
        shapes |= {f"layer{2 * block}.weight": first, f"layer{2 * block}.bias": (width,)}
        shapes |= {
            f"layer{2 * block + 1}.weight": (width, width, 3, 3),
            f"layer{2 * block + 1}.bias": (width,),
        }
        shapes |= {f"output{block}.weight": (3, width, 1, 1), f"output{block}.bias": (3,)}
    return {"lod": torch.zeros(())} | random_tensors(shapes, seed)


def genforce_stylegan_state(
    z_dim: int, w_dim: int, hidden: int, mapping_layers: int, channels: list[int], seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights under genforce ``StyleGANGenerator``'s key names and shapes."""
    widths = [z_dim] + [hidden] * (mapping_layers - 1) + [w_dim]
    shapes: dict[str, tuple[int, ...]] = {}
    for index in range(mapping_layers):
        shapes |= {f"mapping.dense{index}.weight": (widths[index + 1], widths[index])}
        shapes |= {f"mapping.dense{index}.bias": (widths[index + 1],)}
    shapes["truncation.w_avg"] = (w_dim,)
    buffers = {"synthesis.lod": torch.zeros(())}
    for block, width in enumerate(channels):
        size = 4 * 2**block
        for layer in (2 * block, 2 * block + 1):
            prefix = f"synthesis.layer{layer}"
            shapes |= {f"{prefix}.bias": (width,), f"{prefix}.apply_noise.weight": (width,)}
            shapes |= {f"{prefix}.apply_noise.noise": (1, 1, size, size)}
            shapes |= {f"{prefix}.style.weight": (2 * width, w_dim), f"{prefix}.style.bias": (2 * width,)}
        if block == 0:
            shapes["synthesis.layer0.const"] = (1, width, 4, 4)
        else:
            shapes[f"synthesis.layer{2 * block}.weight"] = (width, channels[block - 1], 3, 3)
            buffers[f"synthesis.layer{2 * block}.blur.kernel"] = BLUR_KERNEL.expand(width, 1, 3, 3).clone()
        shapes[f"synthesis.layer{2 * block + 1}.weight"] = (width, width, 3, 3)
        shapes |= {f"synthesis.output{block}.weight": (3, width, 1, 1), f"synthesis.output{block}.bias": (3,)}
    return buffers | random_tensors(shapes, seed)


def save_genforce(tmp_path: Path, smooth: dict, decoy: dict | None = None) -> Path:
    """genforce's three-key file; ``generator`` holds ``decoy`` (non-EMA weights), else ``smooth``."""
    path = tmp_path / "model.pth"
    generator = smooth if decoy is None else decoy
    torch.save({"generator": generator, "discriminator": {}, "generator_smooth": smooth}, path)
    return path


@pytest.mark.parametrize("wrapped", [True, False], ids=["three-key file", "bare state dict"])
def test_small_genforce_pggan_checkpoint_loads_with_inferred_sizes(tmp_path, wrapped):
    state = genforce_pggan_state(z_dim=12, channels=[16, 8, 8])
    path = save_genforce(tmp_path, state) if wrapped else tmp_path / "bare.pth"
    if not wrapped:
        torch.save(state, path)
    generator = load_checkpoint(path, device="cpu")
    assert isinstance(generator, PGGANGenerator) and generator.source_format == "genforce .pth"
    assert (generator.resolution, generator.latent_dim, generator.direction_dim) == (16, 12, 12)
    assert tuple(generator.layer_weight(0).shape) == (16 * 4 * 4, 12)
    images = generator.synthesize(generator.sample(2, seed=0))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_pggan_factorized_matrix_is_the_dense_map_from_code_to_4x4_features():
    state = genforce_pggan_state(z_dim=6, channels=[5, 4])
    generator = PGGANGenerator(6, [5, 4])
    generator.load_state_dict(state)
    code = torch.randn(1, 6)
    with torch.no_grad():
        features = torch.nn.functional.conv2d(code[:, :, None, None], generator.layer0.weight, padding=3)
        torch.testing.assert_close(generator.layer_weight(0) @ code[0], features.flatten(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("channels", "resolution"), [([16, 16, 8, 8], 32), ([8, 8, 8, 8, 4, 4], 128)], ids=["32px", "128px fused"]
)
def test_small_genforce_stylegan_checkpoint_loads_with_inferred_sizes(tmp_path, channels, resolution):
    state = genforce_stylegan_state(z_dim=16, w_dim=12, hidden=20, mapping_layers=3, channels=channels)
    generator = load_checkpoint(save_genforce(tmp_path, state), device="cpu")
    assert isinstance(generator, StyleGANGenerator)
    num_layers = 2 * len(channels)
    assert (generator.resolution, generator.latent_dim, generator.direction_dim) == (resolution, 16, 12)
    assert generator.num_layers == num_layers and len(generator.layer_names) == num_layers
    assert generator.mapping.num_layers == 3
    assert tuple(generator.layer_weight(num_layers - 1).shape) == (2 * channels[-1], 12)
    presets = generator.layer_presets()
    assert presets["all"] == "all" and presets["coarse 0-1"] == "0-1"
    assert presets[f"fine 6-{num_layers - 1}"] == f"6-{num_layers - 1}"
    codes = generator.sample(2, seed=0, trunc_psi=TRUNC_PSI, trunc_layers=TRUNC_LAYERS)
    images = generator.synthesize(codes)
    assert images.shape == (2, 3, resolution, resolution) and torch.isfinite(images).all()


def test_stylegan_presets_fit_a_small_model():
    generator = StyleGANGenerator(z_dim=4, w_dim=4, mapping_hidden=4, mapping_layers=1, channels=[4, 4])
    assert generator.layer_presets() == {"all": "all", "coarse 0-1": "0-1", "middle 2-3": "2-3"}


def test_stylegan_fused_upsampling_is_nearest_upsampling_then_flipped_conv():
    """genforce's fused transposed conv (128 px on) = nearest 2x, then the 3x3 conv with a flipped kernel."""
    channels = [4, 4, 4, 4, 4, 4]
    generator = StyleGANGenerator(z_dim=4, w_dim=4, mapping_hidden=4, mapping_layers=1, channels=channels)
    generator.load_state_dict(genforce_stylegan_state(4, 4, 4, 1, channels))
    fused = generator.synthesis.layer10  # the 64 -> 128 px layer
    assert fused.upsample == "fused" and generator.synthesis.layer8.upsample == "nearest"
    nearest = copy.deepcopy(fused)
    nearest.upsample = "nearest"
    nearest.weight.data = fused.weight.data.flip((2, 3))
    x, w = torch.randn(2, 4, 64, 64), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, w), nearest(x, w), atol=1e-4, rtol=0)


def test_genforce_loader_uses_generator_smooth_not_generator(tmp_path):
    smooth = genforce_pggan_state(z_dim=8, channels=[8, 4], seed=1)
    decoy = genforce_pggan_state(z_dim=8, channels=[8, 4], seed=2)
    generator = load_checkpoint(save_genforce(tmp_path, smooth, decoy), device="cpu")
    torch.testing.assert_close(generator.layer1.weight.detach(), smooth["layer1.weight"])


def test_genforce_stylegan2_file_goes_to_the_stylegan2_builder(tmp_path, monkeypatch):
    received = {}

    def fake_build(state_dict):
        received.update(state_dict)
        return PGGANGenerator(4, [4])

    module = types.ModuleType("sefa_core.formats.layouts.genforce_stylegan2")
    module.build_genforce_stylegan2 = fake_build
    monkeypatch.setitem(sys.modules, module.__name__, module)
    state = {"mapping.dense0.weight": torch.ones(4, 4), "synthesis.early_layer.const": torch.ones(1, 4, 4, 4)}
    generator = load_checkpoint(save_genforce(tmp_path, state, decoy={}), device="cpu")
    assert generator.source_format == "genforce .pth" and set(received) == set(state)


def one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


# A small file of each type and a key whose loss or corruption the loader must name.
BROKEN_FILE_CASES = pytest.mark.parametrize(
    ("make_state", "key"),
    [
        (lambda: genforce_pggan_state(8, [8, 4]), "layer3.weight"),
        (lambda: genforce_stylegan_state(8, 8, 8, 2, [8, 4]), "synthesis.layer3.style.weight"),
    ],
    ids=["pggan", "stylegan"],
)


@BROKEN_FILE_CASES
def test_genforce_file_with_a_missing_key_is_a_one_line_error(tmp_path, make_state, key):
    state = make_state()
    del state[key]
    assert f"missing key '{key}'" in one_line_error(save_genforce(tmp_path, state))


@BROKEN_FILE_CASES
def test_genforce_file_with_a_wrong_shape_is_a_one_line_error(tmp_path, make_state, key):
    state = make_state()
    state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    message = one_line_error(save_genforce(tmp_path, state))
    assert f"'{key}' has shape" in message and "expected" in message


def test_genforce_partly_grown_checkpoint_is_refused(tmp_path):
    state = genforce_pggan_state(8, [8, 4])
    state["lod"] = torch.tensor(0.5)
    assert "lod is 0.5" in one_line_error(save_genforce(tmp_path, state))
