"""StyleGAN2 in its three real layouts: genforce .pth, rosinality .pt, NVIDIA stylegan2-ada.

Parity with the reference fixtures (../shared/fixtures, README sections 4.1-4.3), and tiny
self-built checkpoints in each public key layout that load with correctly inferred sizes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fixture_dir

from sefa_core.errors import CheckpointError, InputError
from sefa_core.factorize import factorize, factorize_matrices
from sefa_core.formats import load_checkpoint
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts import nvidia
from sefa_core.models.base import truncate_wplus
from sefa_core.models.stylegan2 import (
    MEAN_W_SAMPLES,
    MEAN_W_SEED,
    StyleGAN2Generator,
    fir_kernel,
    shared_resample_filter,
    upsample_2x,
)

Array = torch.Tensor | np.ndarray
IMAGE_ATOL = 1e-3  # fixtures' README §3: float32 convolutions differ across CPUs, BLAS, thread counts
LATENT_ATOL = 1e-5
EIGEN_RTOL = 1e-4
MIN_ABS_COS = 0.9999
DEGENERATE_GAP = 1e-3  # eigenvalues closer than this (relative) have no well-defined direction
EDIT_DISTANCE = 3.0
GENFORCE_TRUNC_LAYERS = 8  # sefa.py's --trunc_layers default
TRUNC_PSI = 0.7

# fixture, checkpoint file, truncation cut-off the reference uses (None: every row)
REFERENCES = [
    ("genforce_stylegan2_32", "checkpoint.pth", GENFORCE_TRUNC_LAYERS),
    ("rosinality_stylegan2_32", "checkpoint.pt", None),
    ("nvidia_stylegan2ada_32", "nvidia_state.pt", None),
]


def _max_diff(actual: Array, expected: Array) -> float:
    return float(np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64)).max())


def _assert_close(actual: Array, expected: Array, atol: float) -> None:
    """Max abs difference within ``atol``, reported as one number rather than two arrays."""
    diff = _max_diff(actual, expected)
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol:g}"


def _load_reference(name: str, checkpoint: str) -> tuple[Path, StyleGAN2Generator, torch.Tensor]:
    folder = fixture_dir(name)
    generator = load_checkpoint(folder / checkpoint, device="cpu")
    assert isinstance(generator, StyleGAN2Generator)
    return folder, generator, torch.from_numpy(np.load(folder / "z.npy"))


def _sorted_reference(values: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference eigenpairs (vectors as rows) sorted by eigenvalue, largest first."""
    order = np.argsort(values)[::-1]
    return values[order], vectors[order]


def _assert_directions_match(directions: np.ndarray, reference: np.ndarray, values: np.ndarray) -> None:
    """Rows agree up to sign wherever the eigenvalue is separated from its neighbours."""
    gaps = np.abs(np.diff(values)) / values.max()
    separated = np.ones(len(values), dtype=bool)
    separated[:-1] &= gaps > DEGENERATE_GAP
    separated[1:] &= gaps > DEGENERATE_GAP
    assert separated.sum() >= len(values) // 2, "too few separated eigenvalues to compare"
    cosines = np.abs(np.sum(directions * reference, axis=1))
    assert cosines[separated].min() >= MIN_ABS_COS, f"worst |cos| {cosines[separated].min():.6f}"


def _edit_direction(ours: np.ndarray, reference: np.ndarray) -> torch.Tensor:
    """Our top direction, with the sign the reference happened to get, times the edit distance."""
    sign = np.sign(ours @ reference)
    return torch.from_numpy(EDIT_DISTANCE * sign * ours).float()


def _closed_form_factorization(generator: StyleGAN2Generator) -> tuple[np.ndarray, np.ndarray]:
    """rosinality's closed_form_factorization.py on our modules: the modulation weights of every
    styled conv and of to_rgb1 (not the other ToRGBs), in state-dict order, not normalised."""
    synthesis = generator.synthesis
    matrices = [synthesis.convs[0].conv.affine.weight, synthesis.to_rgbs[0].conv.affine.weight]
    matrices += [conv.conv.affine.weight for conv in synthesis.convs[1:]]
    return factorize_matrices([m.detach().double().numpy() for m in matrices], normalize_rows=False)


# ---- parity with the reference outputs ---------------------------------------------------------
@pytest.mark.fixtures
@pytest.mark.parametrize(("name", "checkpoint", "trunc_layers"), REFERENCES)
def test_stylegan2_matches_reference_latents_and_images(name, checkpoint, trunc_layers):
    folder, generator, z = _load_reference(name, checkpoint)
    config = json.loads((folder / "config.json").read_text())
    assert generator.num_layers == config.get("num_layers", config.get("num_ws", config.get("n_latent")))

    wp = generator.to_edit_space(z)
    _assert_close(wp[:, 0], np.load(folder / "w.npy"), LATENT_ATOL)  # w: the mapping output
    _assert_close(wp, np.load(folder / "wp.npy"), LATENT_ATOL)
    _assert_close(generator.w_avg, np.load(folder / "w_avg.npy"), LATENT_ATOL)
    _assert_close(generator.synthesize(wp), np.load(folder / "img.npy"), IMAGE_ATOL)

    wp_trunc = generator.to_edit_space(z, TRUNC_PSI, trunc_layers)
    _assert_close(wp_trunc, np.load(folder / "wp_trunc07.npy"), LATENT_ATOL)
    _assert_close(generator.synthesize(wp_trunc), np.load(folder / "img_trunc07.npy"), IMAGE_ATOL)


@pytest.mark.fixtures
@pytest.mark.parametrize("spec", ["all", "0-1"])
def test_stylegan2_genforce_sefa_matches_reference_directions(spec):
    folder, generator, _ = _load_reference("genforce_stylegan2_32", "checkpoint.pth")
    values, vectors = _sorted_reference(
        np.load(folder / f"sefa_{spec}_values.npy"), np.load(folder / f"sefa_{spec}_vectors.npy")
    )
    semantics = factorize(generator, spec)
    np.testing.assert_allclose(semantics.eigenvalues, values, rtol=EIGEN_RTOL)
    _assert_directions_match(semantics.directions, vectors, values)


@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("spec", "rows", "trunc_psi", "expected"),
    [
        ("all", slice(None), 1.0, "img_edit.npy"),
        ("0-1", slice(0, 2), 1.0, "img_edit_0-1.npy"),
        ("all", slice(None), TRUNC_PSI, "img_edit_trunc07.npy"),
    ],
)
def test_stylegan2_genforce_edit_matches_reference_images(spec, rows, trunc_psi, expected):
    folder, generator, z = _load_reference("genforce_stylegan2_32", "checkpoint.pth")
    reference_top = np.load(folder / f"sefa_{spec}_vectors.npy")[0]  # sefa.py edits with row 0
    codes = generator.to_edit_space(z, trunc_psi, GENFORCE_TRUNC_LAYERS).clone()
    codes[:, rows] += _edit_direction(factorize(generator, spec).directions[0], reference_top)
    _assert_close(generator.synthesize(codes), np.load(folder / expected), IMAGE_ATOL)


@pytest.mark.fixtures
def test_stylegan2_rosinality_closed_form_factorization_matches_reference():
    folder, generator, _ = _load_reference("rosinality_stylegan2_32", "checkpoint.pt")
    keys = json.loads((folder / "config.json").read_text())["sefa"]["modulation_keys_used_in_order"]
    assert keys[:2] == ["conv1.conv.modulation.weight", "to_rgb1.conv.modulation.weight"]
    assert len(keys) == generator.num_layers  # every conv's modulation, plus to_rgb1's
    eigenvalues, directions = _closed_form_factorization(generator)
    singular_values = np.load(folder / "sefa_rosinality_singular_values.npy")
    np.testing.assert_allclose(eigenvalues, singular_values.astype(np.float64) ** 2, rtol=EIGEN_RTOL)
    eigvec = np.load(folder / "sefa_rosinality_eigvec.npy")  # columns are directions
    _assert_directions_match(directions, eigvec.T, singular_values)


@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("trunc_psi", "expected"), [(1.0, "img_edit.npy"), (TRUNC_PSI, "img_edit_trunc07.npy")]
)
def test_stylegan2_rosinality_edit_matches_reference_images(trunc_psi, expected):
    folder, generator, z = _load_reference("rosinality_stylegan2_32", "checkpoint.pt")
    _, directions = _closed_form_factorization(generator)
    edited = generator.to_edit_space(z) + _edit_direction(
        directions[0], np.load(folder / "sefa_rosinality_eigvec.npy")[:, 0]
    )  # apply_factor.py adds the direction to w, i.e. to every row, and truncates after
    _assert_close(edited, np.load(folder / "wp_edit.npy"), LATENT_ATOL)
    codes = truncate_wplus(edited, generator.w_avg, trunc_psi, None)
    _assert_close(generator.synthesize(codes), np.load(folder / expected), IMAGE_ATOL)


@pytest.mark.fixtures
def test_nvidia_stylegan3_state_dict_is_handed_to_the_stylegan3_model():
    generator = load_checkpoint(fixture_dir("nvidia_stylegan3t_32") / "nvidia_state.pt", device="cpu")
    assert generator.architecture == "stylegan3"
    assert generator.resolution == 32 and generator.num_layers == 16


# ---- self-built checkpoints in each public layout ------------------------------------------------
TINY_CHANNELS = [32, 24, 16]  # 4x4, 8x8, 16x16
TINY_Z, TINY_W, TINY_MAPPING = 12, 10, 3


def _tiny_generator(seed: int, conv_clamp: float | None = None) -> StyleGAN2Generator:
    """A random 16 px StyleGAN2 whose biases, noise strengths and w_avg are not trivially zero."""
    torch.manual_seed(seed)
    widths = [TINY_Z] + [TINY_W] * TINY_MAPPING
    generator = StyleGAN2Generator(mapping_widths=widths, channels=TINY_CHANNELS, conv_clamp=conv_clamp)
    with torch.no_grad():
        for name, tensor in generator.state_dict(keep_vars=True).items():
            if name.endswith(("bias", "noise_strength")):
                tensor.add_(torch.randn_like(tensor) * 0.1 + (1.0 if "affine" in name else 0.0))
        generator.w_avg.normal_()
    return generator.eval()


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone().contiguous() for key, value in state.items()}


def _genforce_state(g: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """genforce's key names and conventions (TF-oriented up-conv kernels, style bias without its 1)."""
    s, out = g.synthesis, {}
    for i, layer in enumerate(g.mapping.layers):
        out[f"mapping.dense{i}.weight"], out[f"mapping.dense{i}.bias"] = layer.weight, layer.bias
    out["truncation.w_avg"] = g.w_avg
    out["synthesis.early_layer.const"] = s.const[None]
    for row, conv in enumerate(s.convs):
        name = f"synthesis.layer{row}"
        out[f"{name}.weight"] = conv.conv.weight.flip(2, 3) if conv.conv.up else conv.conv.weight
        out[f"{name}.bias"], out[f"{name}.noise_strength"] = conv.bias, conv.noise_strength
        out[f"{name}.noise"] = conv.noise_const[None, None]
        if conv.conv.up:
            out[f"{name}.filter.kernel"] = (s.resample_filter * 4)[None, None]
        out[f"{name}.style.weight"], out[f"{name}.style.bias"] = (
            conv.conv.affine.weight,
            conv.conv.affine.bias - 1,
        )
    for k, rgb in enumerate(s.to_rgbs):
        name = f"synthesis.output{k}"
        out[f"{name}.weight"], out[f"{name}.bias"] = rgb.conv.weight, rgb.bias
        out[f"{name}.style.weight"], out[f"{name}.style.bias"] = (
            rgb.conv.affine.weight,
            rgb.conv.affine.bias - 1,
        )
    out["synthesis.upsample.kernel"] = (s.resample_filter * 4)[None, None]
    return _clone(out)


def _rosinality_state(g: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """rosinality's key names and shapes (conv weights (1, O, I, k, k), noises.noise_{i})."""
    s, out = g.synthesis, {}
    for i, layer in enumerate(g.mapping.layers, start=1):
        out[f"style.{i}.weight"], out[f"style.{i}.bias"] = layer.weight, layer.bias
    out["input.input"] = s.const[None]
    for row, conv in enumerate(s.convs):
        name = "conv1" if row == 0 else f"convs.{row - 1}"
        out[f"{name}.conv.weight"] = conv.conv.weight[None]
        if conv.conv.up:
            out[f"{name}.conv.blur.kernel"] = s.resample_filter * 4
        out[f"{name}.conv.modulation.weight"] = conv.conv.affine.weight
        out[f"{name}.conv.modulation.bias"] = conv.conv.affine.bias
        out[f"{name}.noise.weight"] = conv.noise_strength.reshape(1)
        out[f"{name}.activate.bias"] = conv.bias
    for k, rgb in enumerate(s.to_rgbs):
        name = "to_rgb1" if k == 0 else f"to_rgbs.{k - 1}"
        out[f"{name}.bias"] = rgb.bias.reshape(1, 3, 1, 1)
        if k:
            out[f"{name}.upsample.kernel"] = s.resample_filter * 4
        out[f"{name}.conv.weight"] = rgb.conv.weight[None]
        out[f"{name}.conv.modulation.weight"] = rgb.conv.affine.weight
        out[f"{name}.conv.modulation.bias"] = rgb.conv.affine.bias
    for row, conv in enumerate(s.convs):
        out[f"noises.noise_{row}"] = conv.noise_const[None, None]
    return _clone(out)


def _nvidia_state(g: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """NVIDIA's ``G_ema.state_dict()`` key names (``synthesis.b{res}.conv0/conv1/torgb``)."""
    s, out = g.synthesis, {}
    for k, rgb in enumerate(s.to_rgbs):
        block = f"synthesis.b{4 * 2**k}"
        if k == 0:
            out[f"{block}.const"] = s.const
        out[f"{block}.resample_filter"] = s.resample_filter
        for layer, row in (("conv0", 2 * k - 1), ("conv1", 2 * k)):
            if row < 0:
                continue
            conv = s.convs[row]
            out[f"{block}.{layer}.weight"], out[f"{block}.{layer}.bias"] = conv.conv.weight, conv.bias
            out[f"{block}.{layer}.noise_strength"] = conv.noise_strength
            out[f"{block}.{layer}.resample_filter"] = s.resample_filter
            out[f"{block}.{layer}.noise_const"] = conv.noise_const
            out[f"{block}.{layer}.affine.weight"] = conv.conv.affine.weight
            out[f"{block}.{layer}.affine.bias"] = conv.conv.affine.bias
        out[f"{block}.torgb.weight"], out[f"{block}.torgb.bias"] = rgb.conv.weight, rgb.bias
        out[f"{block}.torgb.affine.weight"] = rgb.conv.affine.weight
        out[f"{block}.torgb.affine.bias"] = rgb.conv.affine.bias
    out["mapping.w_avg"] = g.w_avg
    for i, layer in enumerate(g.mapping.layers):
        out[f"mapping.fc{i}.weight"], out[f"mapping.fc{i}.bias"] = layer.weight, layer.bias
    return _clone(out)


def _assert_same_generator(loaded: StyleGAN2Generator, original: StyleGAN2Generator) -> None:
    """Inferred sizes and the images of a few seeded codes match the generator the file came from."""
    assert isinstance(loaded, StyleGAN2Generator)
    assert (loaded.resolution, loaded.latent_dim, loaded.direction_dim) == (16, TINY_Z, TINY_W)
    assert loaded.num_layers == 2 * len(TINY_CHANNELS) and len(loaded.layer_names) == loaded.num_layers
    assert len(loaded.mapping.layers) == TINY_MAPPING
    assert [rgb.conv.weight.shape[1] for rgb in loaded.synthesis.to_rgbs] == TINY_CHANNELS
    codes = original.sample(3, seed=7, trunc_psi=TRUNC_PSI)
    _assert_close(loaded.sample(3, seed=7, trunc_psi=TRUNC_PSI), codes, LATENT_ATOL)
    _assert_close(loaded.synthesize(codes), original.synthesize(codes), IMAGE_ATOL)


def test_genforce_stylegan2_pth_loads_generator_smooth_with_inferred_sizes(tmp_path):
    smooth, decoy = _tiny_generator(1), _tiny_generator(2)
    path = tmp_path / "stylegan2_tiny16.pth"
    torch.save({"generator": _genforce_state(decoy), "generator_smooth": _genforce_state(smooth)}, path)
    generator = load_checkpoint(path, device="cpu")
    _assert_same_generator(generator, smooth)
    assert generator.source_format == "genforce .pth"


def test_rosinality_convert_weight_checkpoint_uses_stored_latent_avg(tmp_path):
    original = _tiny_generator(3)
    path = tmp_path / "converted.pt"
    torch.save({"g_ema": _rosinality_state(original), "latent_avg": original.w_avg.clone()}, path)
    generator = load_checkpoint(path, device="cpu")
    _assert_same_generator(generator, original)
    assert torch.equal(generator.w_avg, original.w_avg)


def test_rosinality_train_checkpoint_loads_g_ema_and_estimates_w_avg(tmp_path):
    g_ema, g = _tiny_generator(4), _tiny_generator(5)
    optimizer = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    sum(p.sum() for p in g.parameters()).backward()
    optimizer.step()  # a real Adam state: step counters, exp_avg, exp_avg_sq, param_groups
    args = argparse.Namespace(size=16, latent=TINY_W, n_mlp=TINY_MAPPING, channel_multiplier=2, iter=800000)
    path = tmp_path / "010000.pt"
    torch.save(
        {
            "g": _rosinality_state(g),
            "d": {"convs.0.0.weight": torch.randn(8, 3, 1, 1)},
            "g_ema": _rosinality_state(g_ema),
            "g_optim": optimizer.state_dict(),
            "d_optim": optimizer.state_dict(),
            "args": args,
            "ada_aug_p": 0.0,
        },
        path,
    )
    generator = load_checkpoint(path, device="cpu")
    g_ema.w_avg.copy_(g_ema.mean_w(MEAN_W_SAMPLES, MEAN_W_SEED))  # train.py stores no latent_avg
    _assert_same_generator(generator, g_ema)
    _assert_close(generator.w_avg, g_ema.w_avg, LATENT_ATOL)


def test_nvidia_state_dict_loads_with_inferred_sizes(tmp_path):
    original = _tiny_generator(6, conv_clamp=nvidia.TRAIN_PY_CONV_CLAMP)
    path = tmp_path / "nvidia_state.pt"
    torch.save(_nvidia_state(original), path)
    generator = load_checkpoint(path, device="cpu")
    _assert_same_generator(generator, original)
    assert generator.synthesis.convs[0].conv_clamp == nvidia.TRAIN_PY_CONV_CLAMP


def _records(state: dict[str, torch.Tensor], init_kwargs: dict) -> object:
    """NVIDIA's pickle as ``nvidia_pickle`` returns it: nested module records from dotted names."""
    from sefa_core.formats.containers.pickles import PersistentObject

    tree: dict = {}
    for key, value in state.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def record(name: str, node: dict) -> PersistentObject:
        tensors = {k: v for k, v in node.items() if isinstance(v, torch.Tensor)}
        modules = {k: record(k, v) for k, v in node.items() if isinstance(v, dict)}
        return PersistentObject(
            name, "_imported_module_test", {"_parameters": tensors, "_buffers": {}, "_modules": modules}
        )

    root = record("Generator", tree)
    root.state["_init_kwargs"] = init_kwargs
    return root


# NVIDIA constructor kwargs of the tiny 16 px generators above, as a .pkl stores them.
NVIDIA_SYNTHESIS_KWARGS = {"channel_base": 512, "channel_max": 32, "num_fp16_res": 4, "conv_clamp": 256}
NVIDIA_TINY_KWARGS = {
    "z_dim": TINY_Z,
    "w_dim": TINY_W,
    "c_dim": 0,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": TINY_MAPPING},
    "synthesis_kwargs": NVIDIA_SYNTHESIS_KWARGS,
}


def test_nvidia_pickle_uses_g_ema_and_its_conv_clamp():
    clamp = 0.25  # small enough to change the images of this random model
    original = _tiny_generator(8, conv_clamp=clamp)
    kwargs = {**NVIDIA_TINY_KWARGS, "synthesis_kwargs": {**NVIDIA_SYNTHESIS_KWARGS, "conv_clamp": clamp}}
    content = {
        "G": _records(_nvidia_state(_tiny_generator(9)), kwargs),
        "G_ema": _records(_nvidia_state(original), kwargs),
        "D": None,
        "augment_pipe": None,
        "training_set_kwargs": {},
    }
    raw = RawCheckpoint(Path("network-snapshot.pkl"), "0" * 64, "pickle", content)
    assert nvidia.PICKLE_LAYOUT.matches(raw) and not nvidia.STATE_DICT_LAYOUT.matches(raw)
    layout = next(layout for layout in nvidia.LAYOUTS if layout.matches(raw))
    generator = layout.build(raw).eval()
    _assert_same_generator(generator, original)
    unclamped = _tiny_generator(8)
    codes = original.sample(3, seed=7)
    assert _max_diff(generator.synthesize(codes), unclamped.synthesize(codes)) > IMAGE_ATOL


def test_class_embedding_without_its_bias_is_refused_naming_it(tmp_path):
    """Conditional NVIDIA files load (tests/test_tf_conditional.py); a broken embedding is named."""
    state = _nvidia_state(_tiny_generator(10))
    state["mapping.embed.weight"] = torch.randn(TINY_W, 5)
    path = tmp_path / "conditional.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="NVIDIA state dict: missing key 'mapping.embed.bias'") as error:
        load_checkpoint(path, device="cpu")
    assert "\n" not in str(error.value)


def test_unexpected_rosinality_tensor_is_named_in_the_error(tmp_path):
    state = _rosinality_state(_tiny_generator(11))
    state["convs.0.skip.weight"] = torch.randn(4, 4)
    path = tmp_path / "odd.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError, match=r"convs\.0\.skip\.weight"):
        load_checkpoint(path, device="cpu")


# ---- the model itself ----------------------------------------------------------------------------
def _upfirdn_up2(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """upfirdn2d written out: zero-stuff by 2, pad (2, 1), convolve (flipped correlation), gain 4."""
    batch, channels, height, width = x.shape
    stuffed = torch.zeros(batch, channels, 2 * height, 2 * width)
    stuffed[:, :, ::2, ::2] = x
    padded = F.pad(stuffed, [2, 1, 2, 1])
    weight = (kernel.flip(0, 1) * 4).expand(channels, 1, 4, 4)
    return F.conv2d(padded, weight, groups=channels)


def test_fir_upsampling_equals_zero_stuffing_and_filtering():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    kernel = fir_kernel((1.0, 2.0, 5.0, 3.0))  # asymmetric, so a flip would show
    _assert_close(upsample_2x(x, kernel), _upfirdn_up2(x, kernel), 1e-5)


@pytest.mark.parametrize(
    ("kernels", "named"),
    [
        (
            {"a.kernel": fir_kernel((1, 3, 3, 1)), "b.kernel": fir_kernel((1, 1))},
            "'a.kernel' and 'b.kernel' differ",
        ),
        ({"a.kernel": torch.ones(3, 3)}, "'a.kernel' must be square and even-sized, got (3, 3)"),
    ],
)
def test_a_checkpoint_whose_fir_filters_cannot_be_shared_is_refused_naming_them(kernels, named):
    with pytest.raises(InputError, match=re.escape(named)):  # an InputError stays under python -O
        shared_resample_filter(kernels)


def test_stylegan2_rows_have_readable_names_and_coarse_middle_fine_presets():
    generator = _tiny_generator(12)
    assert generator.layer_names[0] == "row 0: 4x4 conv"
    assert generator.layer_names[3] == "row 3: 16x16 conv0 (up)"
    assert generator.layer_names[-1] == "row 5: 16x16 toRGB"
    assert generator.layer_presets() == {"all": "all", "coarse 0-1": "0-1", "middle 2-5": "2-5"}
    widths = [TINY_Z, TINY_W]
    larger = StyleGAN2Generator(mapping_widths=widths, channels=[8, 8, 8, 8, 8])  # 64 px, 10 rows
    assert larger.layer_presets()["fine 6-9"] == "6-9"
    assert larger.layer_weight(9) is larger.synthesis.to_rgbs[-1].conv.affine.weight


def test_stylegan2_truncation_moves_only_the_chosen_rows_toward_w_avg():
    generator = _tiny_generator(13)
    z = generator.sample_latents(4, seed=1)
    plain = generator.to_edit_space(z)
    partial = generator.to_edit_space(z, TRUNC_PSI, 2)
    assert torch.equal(partial[:, 2:], plain[:, 2:])
    expected = generator.w_avg + TRUNC_PSI * (plain[:, :2] - generator.w_avg)
    _assert_close(partial[:, :2], expected, LATENT_ATOL)
    everywhere = truncate_wplus(plain, generator.w_avg, TRUNC_PSI, None)
    assert torch.equal(generator.to_edit_space(z, TRUNC_PSI), everywhere)  # None: every row
