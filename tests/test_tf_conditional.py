"""Class-conditional TensorFlow StyleGAN / StyleGAN2 pickles (``label_size > 0``): they load with a class
picker, the class changes the codes exactly as TF's ``G_mapping`` does, and every path that samples
(editor, ``sefa render``, recipes, sweeps, PCA) samples with the class it draws with.

The pickles are written by ``tf_pickle_writer`` from random PyTorch state dicts; the expected w is
computed here with numpy from the raw TF variables, as networks_stylegan.py / networks_stylegan2.py
compute it: ``concat(z, one_hot @ LabelConcat)``, normalised, then the scaled dense layers.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from conftest import fixture_dir
from pickle_factory import load_fixture_generator, write_network_pickle
from streamlit.testing.v1 import AppTest
from test_app import REPO_ROOT, TIMEOUT_S, edit, no_errors, shown_pixels
from tf_pickle_writer import (
    LABEL_WEIGHT,
    Network,
    random_stylegan2_state,
    random_stylegan_state,
    stylegan2_network,
    stylegan_network,
    write_tf_pickle,
)

from sefa_core import pca, session
from sefa_core.cli import main
from sefa_core.config import load_config
from sefa_core.errors import CheckpointError
from sefa_core.factorize import factorize
from sefa_core.formats import cache, load_checkpoint
from sefa_core.formats.layouts import tensorflow
from sefa_core.formats.layouts.nvidia import build_network
from sefa_core.models.base import Generator
from sefa_core.models.stylegan import StyleGANGenerator
from sefa_core.recipe import read_recipe, recipe_codes, write_recipe
from sefa_core.registry import load_generator
from sefa_core.render import to_uint8
from sefa_core.sweep import SeedRange, prepare_model, shard_npz

NUM_CLASSES = 5
Z_DIM, W_DIM, HIDDEN, MAPPING_LAYERS = 24, 20, 40, 3  # non-default mapping widths
CHANNELS = [16, 16, 8, 8, 8]  # 4 to 64 px
EMBED_FEATURES = 12  # StyleGAN2-ADA's class embedding, narrower than w as a non-default width
VARIANTS = {  # what the test writes -> (architecture, class embedding width; 0: LabelConcat)
    "stylegan": ("stylegan", 0),
    "stylegan2": ("stylegan2", 0),
    "stylegan2-ada": ("stylegan2", EMBED_FEATURES),
}
TF_LRMUL = 0.01  # G_mapping's mapping_lrmul default
LRELU_SLOPE = 0.2
NORMALIZE_EPS = 1e-8
LATENT_ATOL = 1e-5  # float32 dense layers of width <= 48 against float64
IMAGE_ATOL = 1e-3  # the fixtures' README (§3)
EIGENVALUE_RTOL = 1e-4
SEED = 11
TRUNC_PSI = 0.7


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test converts into its own cache, never the project's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    return folder


def _trained_like(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """TF initialises mapping weights with std 1 / lrmul, so stored weights are ~100x the random ones;
    without that a random mapping's w would hardly depend on z or the class."""
    return {
        key: value / TF_LRMUL if key.startswith(prefix) and key != LABEL_WEIGHT else value
        for key, value in state.items()
    }


def conditional_state(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A conditional state dict in the layout the TF file is checked against (genforce / NVIDIA)."""
    kind, embed_features = VARIANTS[variant]
    sizes = (Z_DIM, W_DIM, HIDDEN, MAPPING_LAYERS, CHANNELS, seed, NUM_CLASSES)
    if kind == "stylegan":
        return _trained_like(random_stylegan_state(*sizes), "mapping.dense")
    return _trained_like(random_stylegan2_state(*sizes, embed_features=embed_features), "mapping.fc")


def gs_network(kind: str, state: dict[str, torch.Tensor]) -> Network:
    return stylegan_network(state) if kind == "stylegan" else stylegan2_network(state)


def reference_generator(kind: str, state: dict[str, torch.Tensor]) -> Generator:
    """The same weights in the PyTorch layout: genforce StyleGAN, or the NVIDIA-keyed StyleGAN2."""
    if kind == "stylegan2":
        return build_network(state, None)
    generator = StyleGANGenerator(Z_DIM, W_DIM, HIDDEN, MAPPING_LAYERS, CHANNELS, NUM_CLASSES)
    generator.load_weights(state)
    return generator.eval()


class Written(NamedTuple):
    kind: str  # the architecture
    state: dict[str, torch.Tensor]  # the same weights in the PyTorch layout
    gs: Network
    path: Path  # the TF pickle


@pytest.fixture(params=VARIANTS)
def written(request: pytest.FixtureRequest, tmp_path: Path) -> Written:
    kind, state = VARIANTS[request.param][0], conditional_state(request.param)
    gs = gs_network(kind, state)
    return Written(kind, state, gs, write_tf_pickle(tmp_path / f"conditional_{request.param}.pkl", gs))


def mapping_variables(gs: Network) -> dict[str, np.ndarray]:
    """The raw variables of ``Gs``'s mapping component, by TF name (``Dense0/weight`` [in, out], ...)."""
    return dict(gs.__getstate__()["components"]["mapping"].__getstate__()["variables"])


def tf_mapping(variables: dict[str, np.ndarray], kind: str, z: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """w (N, w_dim) from TF mapping variables, in float64, as TF's G_mapping computes it."""
    if "LabelEmbed/weight" in variables:  # StyleGAN2-ADA: dense_layer (gain 1, lrmul 1) + bias, linear
        embed = variables["LabelEmbed/weight"].astype(np.float64)  # [label_size, embed]
        y = np.eye(len(embed))[classes] @ (embed / np.sqrt(len(embed))) + variables["LabelEmbed/bias"]
        x = np.concatenate([_normalized(z), _normalized(y)], axis=1)  # each normalised on its own
    else:
        label_weight = variables["LabelConcat/weight"].astype(np.float64)  # [label_size, latent_size], plain
        x = _normalized(np.concatenate([z, np.eye(len(label_weight))[classes] @ label_weight], axis=1))
    for index in range(sum(name.startswith("Dense") and name.endswith("/weight") for name in variables)):
        weight = variables[f"Dense{index}/weight"].astype(np.float64)  # [in, out]
        bias = variables[f"Dense{index}/bias"].astype(np.float64)
        runtime = TF_LRMUL / np.sqrt(weight.shape[0])  # use_wscale: he_std * lrmul
        if kind == "stylegan":  # dense(gain=sqrt 2) -> apply_bias(lrmul) -> leaky_relu
            x = x @ (weight * np.sqrt(2) * runtime) + bias * TF_LRMUL
            x = np.where(x >= 0, x, LRELU_SLOPE * x)
        else:  # dense_layer(gain=1) -> fused_bias_act('lrelu'), whose gain sqrt 2 comes after
            x = x @ (weight * runtime) + bias * TF_LRMUL
            x = np.where(x >= 0, x, LRELU_SLOPE * x) * np.sqrt(2)
    return x


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + NORMALIZE_EPS)


def dlatent_avg(gs: Network) -> np.ndarray:
    return dict(gs.__getstate__()["variables"])["dlatent_avg"].astype(np.float64)


# ---- loading -------------------------------------------------------------------------------------
def test_conditional_tf_stylegan_loads_with_classes_named_0_to_n(written, tmp_path: Path) -> None:
    kind, path = written.kind, written.path
    generator = load_checkpoint(path, device="cpu")
    assert generator.architecture == kind and generator.resolution == 64
    assert generator.num_classes == NUM_CLASSES and generator.describe()["num_classes"] == NUM_CLASSES
    assert generator.class_names == ("0", "1", "2", "3", "4")
    assert generator.latent_dim == Z_DIM and generator.direction_dim == W_DIM  # z alone is sampled
    names = ("cat", "dog", "car", "bus", "sky")
    assert load_checkpoint(path, device="cpu", classes=names).class_names == names  # from the cache too
    with pytest.raises(CheckpointError, match="3 classes are listed, but the model has 5"):
        load_checkpoint(path, device="cpu", classes=names[:3])


def test_config_yaml_names_the_classes(written, tmp_path: Path, capsys) -> None:
    kind, gs = written.kind, written.gs
    (tmp_path / "checkpoints").mkdir()
    write_tf_pickle(tmp_path / "checkpoints" / "tf.pkl", gs)
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\nmodels:\n"
        "  - {name: named, source: checkpoints/tf.pkl, classes: [a, b, c, d, e]}\n"
        "  - {name: miscounted, source: checkpoints/tf.pkl, classes: [a, b]}\n"
    )
    generator = load_generator("named", "cpu", load_config(config))
    assert generator.class_names == ("a", "b", "c", "d", "e")
    assert main(["--config", str(config), "models", "-v", "--device", "cpu"]) == 0
    listing = capsys.readouterr().out
    assert f"format               TensorFlow {tensorflow.KIND_TITLES[kind]} pickle (Gs)" in listing
    assert "num_classes          5" in listing
    assert "2 classes are listed, but the model has 5" in listing


def test_label_size_without_label_variables_is_refused_naming_the_variable(tmp_path: Path) -> None:
    state = random_stylegan2_state(Z_DIM, W_DIM, HIDDEN, MAPPING_LAYERS, CHANNELS[:2])
    path = write_tf_pickle(tmp_path / "g.pkl", stylegan2_network(state, static_kwargs={"label_size": 10}))
    with pytest.raises(
        CheckpointError,
        match=r"Gs is class-conditional \(label_size 10\) but has no 'mapping/LabelConcat/weight'",
    ):
        load_checkpoint(path)


def test_label_size_that_disagrees_with_the_label_matrix_is_refused(tmp_path: Path) -> None:
    gs = stylegan_network(conditional_state("stylegan"), static_kwargs={"label_size": 7})
    with pytest.raises(
        CheckpointError, match=r"has 'mapping/LabelConcat/weight' for 5 classes; label_size is 7"
    ):
        load_checkpoint(write_tf_pickle(tmp_path / "g.pkl", gs))


def test_genforce_conditional_stylegan_pth_loads_with_its_classes(tmp_path: Path) -> None:
    state = conditional_state("stylegan")
    path = tmp_path / "conditional.pth"
    torch.save({"generator": state, "discriminator": {}, "generator_smooth": state}, path)
    generator = load_checkpoint(path, device="cpu")
    assert generator.num_classes == NUM_CLASSES and generator.source_format == "genforce .pth"
    z = generator.sample_latents(3, SEED)
    reference = reference_generator("stylegan", state)
    for k in (0, 4):
        torch.testing.assert_close(
            generator.to_edit_space(z, classes=k), reference.to_edit_space(z, classes=k)
        )


def tf_dense_layers(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A PyTorch state's mapping layers ``{prefix}{i}`` (out, in) under TF's names, ``Dense{i}`` [in, out]."""
    layers = sum(1 for key in state if key.startswith(prefix) and key.endswith(".weight"))
    names = {f"Dense{i}/weight": state[f"{prefix}{i}.weight"].T for i in range(layers)}
    return names | {f"Dense{i}/bias": state[f"{prefix}{i}.bias"] for i in range(layers)}


def assert_maps_as_tf_stylegan2(generator: Generator, variables: dict[str, torch.Tensor]) -> None:
    """The generator's w for two classes is what TF's StyleGAN2 G_mapping computes from ``variables``."""
    z = generator.sample_latents(4, SEED)
    arrays = {name: value.double().numpy() for name, value in variables.items()}
    for k in (1, NUM_CLASSES - 1):
        expected = tf_mapping(arrays, "stylegan2", z.double().numpy(), np.full(len(z), k))
        scale = max(1.0, float(np.abs(expected).max()))
        codes = generator.to_edit_space(z, classes=k)[:, 0].double().numpy()
        np.testing.assert_allclose(codes, expected, rtol=0, atol=LATENT_ATOL * scale)


def test_genforce_conditional_stylegan2_pth_maps_as_tf_does(tmp_path: Path) -> None:
    """genforce's conditional StyleGAN2 (``mapping.label_weight``) holds the same concat-then-normalise."""
    state = dict(torch.load(fixture_dir("genforce_stylegan2_32") / "checkpoint.pth")["generator_smooth"])
    hidden, z_dim = state["mapping.dense0.weight"].shape
    weights = torch.Generator().manual_seed(SEED)
    state["mapping.dense0.weight"] = torch.randn(hidden, 2 * z_dim, generator=weights) / TF_LRMUL
    state["mapping.label_weight"] = torch.randn(NUM_CLASSES, z_dim, generator=weights)
    path = tmp_path / "conditional.pth"
    torch.save({"generator_smooth": state}, path)
    generator = load_checkpoint(path, device="cpu")
    assert generator.architecture == "stylegan2" and generator.num_classes == NUM_CLASSES
    labels = {"LabelConcat/weight": state["mapping.label_weight"]}
    assert_maps_as_tf_stylegan2(generator, {**labels, **tf_dense_layers(state, "mapping.dense")})


@pytest.mark.parametrize("container", ["network pickle", "bare state dict"])
def test_nvidia_stylegan2_ada_with_c_dim_loads_and_draws_what_its_tf_release_draws(
    container: str, tmp_path: Path
) -> None:
    state = conditional_state("stylegan2-ada")
    path = tmp_path / "network-snapshot.pkl"
    if container == "network pickle":
        kwargs = {
            "z_dim": Z_DIM,
            "c_dim": NUM_CLASSES,
            "w_dim": W_DIM,
            "img_resolution": 64,
            "img_channels": 3,
            "mapping_kwargs": {"num_layers": MAPPING_LAYERS, "embed_features": EMBED_FEATURES},
            "synthesis_kwargs": {"architecture": "skip", "conv_clamp": None},
        }
        write_network_pickle(path, state, kwargs)
    else:
        torch.save(state, path.with_suffix(".pt"))
        path = path.with_suffix(".pt")
    generator = load_checkpoint(path, device="cpu")
    assert generator.num_classes == NUM_CLASSES and generator.class_names == ("0", "1", "2", "3", "4")
    tf_file = load_checkpoint(write_tf_pickle(tmp_path / "ada.pkl", stylegan2_network(state)), device="cpu")
    for k in (1, 3):
        codes = tf_file.sample(2, SEED, TRUNC_PSI, classes=k)
        torch.testing.assert_close(
            generator.sample(2, SEED, TRUNC_PSI, classes=k), codes, rtol=0, atol=LATENT_ATOL
        )
        images = generator.synthesize(codes).numpy()
        scale = max(1.0, float(np.abs(images).max()))
        np.testing.assert_allclose(tf_file.synthesize(codes).numpy(), images, rtol=0, atol=IMAGE_ATOL * scale)


@pytest.mark.parametrize("container", ["network pickle", "bare state dict"])
def test_conditional_nvidia_stylegan3_maps_as_stylegan2_ada_does(container: str, tmp_path: Path) -> None:
    """StyleGAN3 shares StyleGAN2-ADA's mapping network, class embedding included."""
    state, kwargs = load_fixture_generator(fixture_dir("nvidia_stylegan3t_32"))
    hidden, z_dim = state["mapping.fc0.weight"].shape
    weights = torch.Generator().manual_seed(SEED)
    state["mapping.fc0.weight"] = torch.randn(hidden, z_dim + EMBED_FEATURES, generator=weights) / TF_LRMUL
    state["mapping.embed.weight"] = torch.randn(EMBED_FEATURES, NUM_CLASSES, generator=weights)
    state["mapping.embed.bias"] = torch.randn(EMBED_FEATURES, generator=weights)
    path = tmp_path / "stylegan3.pkl"
    if container == "network pickle":
        mapping_kwargs = {**kwargs.get("mapping_kwargs", {}), "embed_features": EMBED_FEATURES}
        write_network_pickle(path, state, {**kwargs, "c_dim": NUM_CLASSES, "mapping_kwargs": mapping_kwargs})
    else:
        torch.save(state, path)
    generator = load_checkpoint(path, device="cpu")
    assert generator.architecture == "stylegan3" and generator.num_classes == NUM_CLASSES
    labels = {
        "LabelEmbed/weight": state["mapping.embed.weight"].T,
        "LabelEmbed/bias": state["mapping.embed.bias"],
    }
    assert_maps_as_tf_stylegan2(generator, {**labels, **tf_dense_layers(state, "mapping.fc")})


# ---- codes: the class enters the mapping network -------------------------------------------------
def test_codes_are_what_the_tf_mapping_computes_for_each_class(written) -> None:
    kind, gs, path = written.kind, written.gs, written.path
    generator = load_checkpoint(path, device="cpu")
    z = generator.sample_latents(6, SEED)
    z64 = z.double().numpy()
    for k in range(NUM_CLASSES):
        expected = tf_mapping(mapping_variables(gs), kind, z64, np.full(len(z), k))
        codes = generator.to_edit_space(z, classes=k).double().numpy()  # (N, num_layers, w_dim)
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(
            codes, np.repeat(expected[:, None], generator.num_layers, 1), atol=LATENT_ATOL * scale
        )
    mixed = np.array([0, 3, 1, 4, 2, 2])
    expected = tf_mapping(mapping_variables(gs), kind, z64, mixed)
    truncated = generator.to_edit_space(z, TRUNC_PSI, classes=torch.from_numpy(mixed)).double().numpy()
    average = dlatent_avg(gs)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        truncated[:, 0], average + (expected - average) * TRUNC_PSI, atol=LATENT_ATOL * scale
    )


def test_class_changes_the_code_and_a_seed_and_class_give_it_again(written) -> None:
    path = written.path
    generator = load_checkpoint(path, device="cpu")
    one, three = generator.sample(2, SEED, classes=1), generator.sample(2, SEED, classes=3)
    assert float((one - three).abs().max()) > 100 * LATENT_ATOL
    torch.testing.assert_close(generator.sample(2, SEED, classes=1), one, rtol=0, atol=0)
    torch.testing.assert_close(
        generator.sample(2, SEED), generator.sample(2, SEED, classes=0), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 5\)"):
        generator.sample(1, SEED, classes=NUM_CLASSES)


def test_tf_file_draws_and_factorizes_what_its_pytorch_layout_does(written) -> None:
    kind, path = written.kind, written.path
    generator = load_checkpoint(path, device="cpu")
    reference = reference_generator(kind, written.state)
    for k in (0, 2, 4):
        codes = generator.sample(3, SEED, TRUNC_PSI, classes=k)
        torch.testing.assert_close(
            codes, reference.sample(3, SEED, TRUNC_PSI, classes=k), rtol=0, atol=LATENT_ATOL
        )
        images = generator.synthesize(codes, classes=k).numpy()
        # synthesis reads the class from w alone: the same pixels with or without it
        np.testing.assert_array_equal(images, generator.synthesize(codes).numpy())
        scale = max(1.0, float(np.abs(images).max()))
        expected = reference.synthesize(codes).numpy()
        np.testing.assert_allclose(images, expected, rtol=0, atol=IMAGE_ATOL * scale)
    first = generator.synthesize(generator.sample(1, SEED, classes=0))
    last = generator.synthesize(generator.sample(1, SEED, classes=4))
    assert float((first - last).abs().max()) > 10 * IMAGE_ATOL
    ours, theirs = factorize(generator, "all"), factorize(reference, "all")
    np.testing.assert_allclose(ours.eigenvalues, theirs.eigenvalues, rtol=EIGENVALUE_RTOL)


# ---- the paths that sample ------------------------------------------------------------------------
def test_switching_class_in_the_editor_redraws_the_seed_for_that_class(written) -> None:
    path = written.path
    generator = load_checkpoint(path, device="cpu")
    rows = session.CodeRows()
    truncation = session.Truncation(TRUNC_PSI, 4)
    settings = session.Settings("all", 3, truncation, class_index=1)
    state = session.new_state("tf", generator, session.CodeSource("seed", SEED), rows, settings)
    np.testing.assert_array_equal(state.code, generator.sample(1, SEED, TRUNC_PSI, 4, classes=1).numpy())
    moved, _ = session.apply_settings(state, generator, rows, session.Settings("all", 3, truncation, 3))
    assert moved.class_index == 3
    np.testing.assert_array_equal(moved.code, generator.sample(1, SEED, TRUNC_PSI, 4, classes=3).numpy())
    assert np.abs(moved.code - state.code).max() > 100 * LATENT_ATOL
    back, _ = session.apply_settings(moved, generator, rows, settings)
    np.testing.assert_array_equal(back.code, state.code)


def test_recipe_of_a_conditional_seed_replays_its_class(written, tmp_path: Path) -> None:
    path = written.path
    generator = load_checkpoint(path, device="cpu")
    settings = session.Settings("all", 3, session.Truncation(), class_index=2)
    state = session.new_state("tf", generator, session.CodeSource("seed", SEED), session.CodeRows(), settings)
    state = state.with_alphas([1.5, 0.0, -2.0])
    recipe = read_recipe(write_recipe(tmp_path / "edit.yaml", session.edit_recipe(state)))
    assert recipe.seed == SEED and recipe.conditioning is not None and recipe.conditioning.class_index == 2
    semantics = factorize(generator, "all")
    torch.testing.assert_close(
        recipe_codes(recipe, generator), session.edited_code(generator, semantics, state)
    )


def _rendered(tmp_path: Path, path: Path, capsys, *extra: str) -> bytes:
    out = tmp_path / "_".join(extra or ("none",))
    argv = ["render", str(path), "-N", "1", "-K", "1", "--steps", "1", "--start", "0", "--end", "0"]
    assert main([*argv, "--out", str(out), "--device", "cpu", *extra]) == 0, capsys.readouterr().err
    (png,) = out.glob("*_sample_000.png")
    return png.read_bytes()


def test_sefa_render_draws_the_class_it_is_given(written, tmp_path: Path, capsys) -> None:
    path = written.path
    one = _rendered(tmp_path, path, capsys, "--class-index", "1")
    assert one != _rendered(tmp_path, path, capsys, "--class-index", "3")
    assert _rendered(tmp_path, path, capsys) == _rendered(tmp_path, path, capsys, "--class-index", "0")


def test_sweep_shards_sample_with_the_class_they_draw_with(written) -> None:
    path = written.path
    generator = load_checkpoint(path, device="cpu")
    model = prepare_model(generator, "tf", "all", 1, conditioning={"classes": 3, "truncation": 1.0})
    shard = np.load(io.BytesIO(shard_npz(model, SeedRange(SEED, SEED + 1), [0.0], batch_size=2)))["images"]
    expected = to_uint8(generator.synthesize(generator.sample(1, SEED + 1, classes=3)))[0]  # (H, W, 3)
    other = to_uint8(generator.synthesize(generator.sample(1, SEED + 1, classes=0)))[0]
    drawn = shard[1, 0, 0].astype(np.int64)  # seed SEED + 1, semantic 0, distance 0
    assert np.abs(drawn - expected).max() <= 1 < np.abs(drawn - other).max()


def test_pca_samples_draw_classes_uniformly(written) -> None:
    path = written.path
    generator = load_checkpoint(path, device="cpu")
    n = 40
    rows = pca.sample_rows(generator, n, SEED)  # (n, w_dim)
    np.testing.assert_array_equal(rows, pca.sample_rows(generator, n, SEED))
    z = generator.sample_latents(n, SEED)
    per_class = np.stack(
        [generator.to_edit_space(z, classes=k)[:, 0].double().numpy() for k in range(NUM_CLASSES)]
    )
    distances = np.abs(per_class - rows[None]).max(axis=2)  # (classes, n)
    assert distances.min(axis=0).max() < LATENT_ATOL
    assert len(set(distances.argmin(axis=0))) == NUM_CLASSES


def test_the_editor_class_picker_redraws_the_seed_for_the_class(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "checkpoints").mkdir()
    path = write_tf_pickle(
        tmp_path / "checkpoints" / "tf.pkl", gs_network("stylegan2", conditional_state("stylegan2"))
    )
    (tmp_path / "config.yaml").write_text(
        "version: 1\nmodels:\n  - {name: tf, source: checkpoints/tf.pkl, classes: [a, b, c, d, e]}\n"
    )
    monkeypatch.setenv("SEFA_CONFIG", str(tmp_path / "config.yaml"))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    no_errors(app)
    picker = app.sidebar.selectbox(key="keep.class.tf")
    assert picker.options == ["0 · a", "1 · b", "2 · c", "3 · d", "4 · e"] and picker.value == 0
    before, shown = edit(app), shown_pixels(app)
    assert before.source == session.CodeSource("seed", 0)
    picker.set_value(3).run()
    no_errors(app)
    after = edit(app)
    generator = load_checkpoint(path, device="cpu")
    truncation = after.truncation
    expected = generator.sample(1, 0, truncation.psi, truncation.layers, classes=3).numpy()
    assert after.class_index == 3 and after.source == before.source
    np.testing.assert_allclose(after.code, expected, rtol=0, atol=LATENT_ATOL)
    assert np.abs(after.code - before.code).max() > 100 * LATENT_ATOL
    assert np.abs(shown_pixels(app).astype(int) - shown.astype(int)).max() > 0


def test_sefa_convert_keeps_the_classes(written, tmp_path: Path, capsys) -> None:
    converted = tmp_path / "converted.safetensors"
    assert main(["convert", str(written.path), str(converted)]) == 0, capsys.readouterr().err
    tf_file, generator = load_checkpoint(written.path, device="cpu"), load_checkpoint(converted, device="cpu")
    assert generator.num_classes == NUM_CLASSES
    for k in (0, 3):
        torch.testing.assert_close(generator.sample(2, SEED, classes=k), tf_file.sample(2, SEED, classes=k))
