"""BigGAN in the pytorch-pretrained-biggan layout: package parity, sampling, SeFa, loader errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir

from sefa_core.errors import CheckpointError
from sefa_core.factorize import factorize
from sefa_core.formats import load_checkpoint
from sefa_core.models.biggan import (
    IMAGENET_CLASSES_FILE,
    BigGANGenerator,
    SelfAttention,
    StandingBatchNorm,
    imagenet_class_names,
)

Z_ATOL = 1e-6  # truncated-normal draws through float64 ppf then float32; |z| <= 0.8
IMAGE_ATOL = 1e-3  # fixtures' README §3: float32 convolutions differ across CPUs, BLAS, thread counts
COS_TOLERANCE = 1e-4  # 1 - |cos| per direction: the fixtures' README bound (|<a,b>| > 1 - 1e-4)
EIGENVALUE_RTOL = 1e-6  # float64 eigh of a Gram built from float32 weights; LAPACK builds differ past 1e-9
FIXTURE = "biggan_32"

TINY_CONFIG = {
    "attention_layer_position": 2,
    "channel_width": 4,
    "class_embed_dim": 8,
    "eps": 1e-4,
    "layers": [[True, 16, 16], [True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1]],
    "n_stats": 11,
    "num_classes": 5,
    "output_dim": 32,
    "z_dim": 8,
}


# ---- a checkpoint in the package's exact key layout, built without the model under test --------------
def reference_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the keys and shapes ``BigGAN(config).state_dict()`` has (fixture KEYS.md)."""
    gen = torch.Generator().manual_seed(seed)
    z_dim, width, n_stats = config["z_dim"], config["channel_width"], config["n_stats"]
    cond_dim = 2 * z_dim
    state: dict[str, torch.Tensor] = {}

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.2

    def unit(size: int) -> torch.Tensor:
        vector = torch.randn(size, generator=gen)
        return vector / vector.norm()

    def spectral(prefix: str, shape: tuple[int, ...], bias: bool) -> None:
        if bias:
            state[f"{prefix}.bias"] = rand(shape[0])
        state[f"{prefix}.weight_orig"] = rand(*shape)
        state[f"{prefix}.weight_u"] = unit(shape[0])
        state[f"{prefix}.weight_v"] = unit(math.prod(shape[1:]))

    def statistics(prefix: str, channels: int) -> None:
        state[f"{prefix}.running_means"] = rand(n_stats, channels)
        state[f"{prefix}.running_vars"] = rand(n_stats, channels).abs() + 0.5

    state["embeddings.weight"] = rand(z_dim, config["num_classes"])
    spectral("generator.gen_z", (4 * 4 * 16 * width, cond_dim), bias=True)
    index = 0
    for number, (_, in_multiple, out_multiple) in enumerate(config["layers"]):
        c_in, c_out = in_multiple * width, out_multiple * width
        if number == config["attention_layer_position"]:
            prefix = f"generator.layers.{index}"
            state[f"{prefix}.gamma"] = rand(1)
            spectral(f"{prefix}.snconv1x1_theta", (c_in // 8, c_in, 1, 1), bias=False)
            spectral(f"{prefix}.snconv1x1_phi", (c_in // 8, c_in, 1, 1), bias=False)
            spectral(f"{prefix}.snconv1x1_g", (c_in // 2, c_in, 1, 1), bias=False)
            spectral(f"{prefix}.snconv1x1_o_conv", (c_in, c_in // 2, 1, 1), bias=False)
            index += 1
        prefix = f"generator.layers.{index}"
        mid = c_in // 4
        conv_shapes = [(mid, c_in, 1, 1), (mid, mid, 3, 3), (mid, mid, 3, 3), (c_out, mid, 1, 1)]
        for k, (bn_channels, conv_shape) in enumerate(zip([c_in, mid, mid, mid], conv_shapes, strict=True)):
            statistics(f"{prefix}.bn_{k}", bn_channels)
            spectral(f"{prefix}.bn_{k}.scale", (bn_channels, cond_dim), bias=False)
            spectral(f"{prefix}.bn_{k}.offset", (bn_channels, cond_dim), bias=False)
            spectral(f"{prefix}.conv_{k}", conv_shape, bias=True)
        index += 1
    state["generator.bn.weight"] = 1 + rand(width)
    state["generator.bn.bias"] = rand(width)
    statistics("generator.bn", width)
    spectral("generator.conv_to_rgb", (width, width, 3, 3), bias=True)
    return state


def write_checkpoint(folder: Path, config: dict | None, state: dict[str, torch.Tensor]) -> Path:
    """``folder/pytorch_model.bin`` and, unless None, ``config.json``: what from_pretrained reads."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "pytorch_model.bin")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return folder


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return write_checkpoint(tmp_path / "tiny", TINY_CONFIG, reference_state_dict(TINY_CONFIG))


@pytest.fixture(scope="module")
def reference_generator() -> BigGANGenerator:
    return load_checkpoint(fixture_dir(FIXTURE), device="cpu")


def load_reference(name: str) -> np.ndarray:
    return np.load(fixture_dir(FIXTURE) / f"{name}.npy")


def load_error(folder: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder, device="cpu")
    message = str(caught.value)
    assert "\n" not in message, "checkpoint errors are one line"
    return message


# ---- parity with the package -------------------------------------------------------------------------
@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("image", "truncation"), [("img", 0.4), ("img_trunc1", 1.0), ("img_trunc_interp", 0.655)]
)
def test_biggan_matches_reference_images(reference_generator, image: str, truncation: float) -> None:
    z = torch.from_numpy(load_reference("z"))
    classes = torch.from_numpy(load_reference("class"))
    images = reference_generator.synthesize(z, classes=classes, truncation=truncation).numpy()
    np.testing.assert_allclose(images, load_reference(image), rtol=0, atol=IMAGE_ATOL)


@pytest.mark.fixtures
def test_biggan_samples_the_packages_truncated_noise(reference_generator) -> None:
    z = reference_generator.sample(8, seed=123, trunc_psi=0.4).numpy()
    np.testing.assert_allclose(z, load_reference("z"), rtol=0, atol=Z_ATOL)
    assert np.abs(z).max() <= 2 * 0.4, "truncated normal draws stay within truncation * 2"


@pytest.mark.fixtures
@pytest.mark.parametrize(("spec", "reference"), [("0", "sefa_genz"), ("all", "sefa_all")])
def test_biggan_sefa_matches_reference_directions(reference_generator, spec: str, reference: str) -> None:
    semantics = factorize(reference_generator, spec)
    vectors = load_reference(f"{reference}_vectors")
    cos = np.abs(np.sum(semantics.directions * vectors, axis=1))
    assert 1 - cos.min() < COS_TOLERANCE
    np.testing.assert_allclose(
        semantics.eigenvalues, load_reference(f"{reference}_values"), rtol=EIGENVALUE_RTOL
    )


@pytest.mark.fixtures
def test_biggan_sefa_edit_of_z_matches_reference_image(reference_generator) -> None:
    direction = factorize(reference_generator, reference_generator.layer_presets()["gen_z"]).directions[0]
    reference_direction = load_reference("sefa_genz_vectors")[0]
    direction = direction * np.sign(direction @ reference_direction)  # the fixture keeps eigh's sign
    z_edit = (load_reference("z").astype(np.float64) + 3.0 * direction).astype(np.float32)
    np.testing.assert_allclose(z_edit, load_reference("z_edit"), rtol=0, atol=1e-6)
    images = reference_generator.synthesize(torch.from_numpy(z_edit), classes=torch.arange(8), truncation=0.4)
    np.testing.assert_allclose(images.numpy(), load_reference("img_edit"), rtol=0, atol=IMAGE_ATOL)


@pytest.mark.fixtures
def test_biggan_legacy_format_gives_the_same_images(reference_generator) -> None:
    legacy = load_checkpoint(fixture_dir(FIXTURE) / "legacy_format" / "pytorch_model.bin", device="cpu")
    z = torch.from_numpy(load_reference("z"))
    expected = reference_generator.synthesize(z, classes=torch.arange(8), truncation=0.4)
    assert torch.equal(legacy.synthesize(z, classes=torch.arange(8), truncation=0.4), expected)


@pytest.mark.fixtures
def test_biggan_images_do_not_change_in_train_mode(reference_generator) -> None:
    z = torch.from_numpy(load_reference("z"))
    expected = reference_generator.synthesize(z, classes=torch.arange(8), truncation=0.4)
    reference_generator.train()
    try:
        assert torch.equal(
            reference_generator.synthesize(z, classes=torch.arange(8), truncation=0.4), expected
        )
    finally:
        reference_generator.eval()


# ---- a self-built checkpoint ---------------------------------------------------------------------------
def test_tiny_biggan_checkpoint_loads_with_inferred_sizes(tiny_folder: Path) -> None:
    generator = load_checkpoint(tiny_folder, device="cpu")
    assert isinstance(generator, BigGANGenerator)
    assert (generator.latent_dim, generator.num_classes, generator.resolution) == (8, 5, 32)
    assert generator.source_format == "pytorch-pretrained-biggan"
    assert isinstance(generator.generator.layers[2], SelfAttention)
    assert len(generator.layer_names) == 1 + 8 * len(TINY_CONFIG["layers"])
    assert not any(name.startswith("generator.layers.2.") for name in generator.layer_names)
    assert generator.class_names == ()
    assert next(iter(generator.layer_presets())) == "all"
    images = generator.synthesize(generator.sample(3, seed=1), classes=[0, 4, 2], truncation=0.4)
    assert images.shape == (3, 3, 32, 32) and torch.isfinite(images).all()


def test_tiny_biggan_uses_spectral_norm_from_the_stored_vectors(tiny_folder: Path) -> None:
    generator = load_checkpoint(tiny_folder, device="cpu")
    state = torch.load(tiny_folder / "pytorch_model.bin", weights_only=True)
    for key in ("generator.gen_z", "generator.layers.3.conv_1"):
        orig = state[f"{key}.weight_orig"].double().numpy()
        u, v = state[f"{key}.weight_u"].double().numpy(), state[f"{key}.weight_v"].double().numpy()
        sigma = u @ orig.reshape(len(u), -1) @ v
        loaded = generator.get_submodule(key).weight.detach().double().numpy()
        np.testing.assert_allclose(loaded, orig / sigma, rtol=1e-5, atol=1e-7)


def test_biggan_class_indices_and_one_hot_rows_give_the_same_images(tiny_folder: Path) -> None:
    generator = load_checkpoint(tiny_folder, device="cpu")
    codes = generator.sample(3, seed=2)
    by_index = generator.synthesize(codes, classes=torch.tensor([1, 3, 0]))
    one_hot = torch.eye(generator.num_classes)[[1, 3, 0]]
    assert torch.allclose(generator.synthesize(codes, classes=one_hot), by_index, atol=1e-6)
    default = generator.synthesize(codes)
    assert torch.equal(default, generator.synthesize(codes, classes=[0, 0, 0], truncation=0.4))
    assert not torch.allclose(default, by_index)


def test_biggan_sample_defaults_to_the_truncation_synthesize_assumes(tiny_folder: Path) -> None:
    generator = load_checkpoint(tiny_folder, device="cpu")
    unit = generator.sample(4, seed=5, trunc_psi=1.0)
    assert torch.equal(generator.sample(4, seed=5), generator.sample(4, seed=5, trunc_psi=0.4))
    assert torch.allclose(generator.sample(4, seed=5), unit * 0.4)
    assert unit.abs().max() <= 2.0


def test_truncation_blends_bn_rows_with_the_packages_swapped_weights() -> None:
    norm = StandingBatchNorm(num_features=3, n_stats=51, eps=1e-4)
    norm.running_means.copy_(torch.arange(51, dtype=torch.float32)[:, None].expand(51, 3))
    row = {t: norm.statistics(t)[0][0].item() for t in (0.4, 1.0, 0.655, 0.14)}
    assert row[0.4] == 20 and row[1.0] == 50
    assert row[0.655] == pytest.approx(0.75 * 32 + 0.25 * 33)  # lower row weighted by coef = 0.75
    assert row[0.14] == pytest.approx(8)  # 0.14 / 0.02 = 7 + 8.9e-16: weight 1 - 8.9e-16 on row 8


def test_imagenet_class_names_are_1000_unique_lines() -> None:
    lines = (
        (Path(__file__).resolve().parents[1] / "sefa_core" / IMAGENET_CLASSES_FILE).read_text().splitlines()
    )
    assert (
        len(lines) == 1000 and len(set(lines)) == 1000 and all(line.strip() == line != "" for line in lines)
    )
    names = imagenet_class_names()
    assert (names[0], names[207], names[999]) == ("tench", "golden retriever", "toilet tissue")


def test_thousand_class_biggan_names_its_classes(tmp_path: Path) -> None:
    config = {**TINY_CONFIG, "num_classes": 1000}
    generator = load_checkpoint(
        write_checkpoint(tmp_path, config, reference_state_dict(config)), device="cpu"
    )
    assert generator.class_names == imagenet_class_names()


# ---- loader errors -----------------------------------------------------------------------------------------
def test_biggan_without_config_json_is_refused(tmp_path: Path) -> None:
    message = load_error(write_checkpoint(tmp_path, None, reference_state_dict(TINY_CONFIG)))
    assert "config.json" in message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"z_dim": 16}, "z_dim"),
        ({"num_classes": 7}, "num_classes"),
        ({"layers": [[True, 16, 8], [True, 8, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1]]}, "layers[0]"),
        ({"layers": TINY_CONFIG["layers"][:-1]}, "layers"),
        ({"attention_layer_position": 3}, "attention_layer_position"),
        ({"eps": "small"}, "eps"),
    ],
)
def test_biggan_config_that_disagrees_with_the_weights_is_refused(
    tmp_path: Path, change: dict, named: str
) -> None:
    config = {**TINY_CONFIG, **change}
    message = load_error(write_checkpoint(tmp_path, config, reference_state_dict(TINY_CONFIG)))
    assert named in message and "config.json" in message


def test_biggan_config_that_is_not_json_is_refused(tiny_folder: Path) -> None:
    (tiny_folder / "config.json").write_text("{ not json")
    assert "not valid JSON" in load_error(tiny_folder)


@pytest.mark.parametrize(
    "key",
    [
        "generator.layers.0.conv_1.bias",
        "generator.layers.4.bn_2.scale.weight_u",
        "generator.conv_to_rgb.weight_orig",
    ],
)
def test_biggan_checkpoint_missing_a_key_is_refused(tmp_path: Path, key: str) -> None:
    state = reference_state_dict(TINY_CONFIG)
    del state[key]
    assert f"missing key '{key}'" in load_error(write_checkpoint(tmp_path, TINY_CONFIG, state))


def test_biggan_checkpoint_with_an_extra_key_is_refused(tmp_path: Path) -> None:
    state = {**reference_state_dict(TINY_CONFIG), "generator.extra.weight": torch.zeros(1)}
    assert "unexpected key 'generator.extra.weight'" in load_error(
        write_checkpoint(tmp_path, TINY_CONFIG, state)
    )
