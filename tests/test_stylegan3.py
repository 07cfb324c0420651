"""StyleGAN3 (NVlabs/stylegan3, configs t and r) through the common Generator interface."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir

from sefa_core.factorize import factorize
from sefa_core.formats.containers import read_checkpoint
from sefa_core.models.stylegan3 import StyleGAN3Generator, build_stylegan3, infer_architecture

FIXTURE = "nvidia_stylegan3t_32"
IMAGE_ATOL = 1e-3  # fixtures' README §3: float32 convolutions differ across CPUs, BLAS, thread counts
LATENT_ATOL = 1e-5
TRUNC_PSI = 0.7

# SynthesisNetwork / SynthesisLayer defaults, used to design the checkpoints built below.
FIRST_CUTOFF = 2.0
FIRST_STOPBAND = 2**2.1
LAST_STOPBAND_REL = 2**0.3
MARGIN_SIZE = 10
NUM_CRITICAL = 2
FILTER_SIZE = 6
LRELU_UPSAMPLING = 2
KAISER_BETA = 6.0
J1_QUADRATURE_POINTS = 512


# ---- checkpoints of the NVIDIA layout, built here ----------------------------------------
def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1 by Bessel's integral, (1/pi) * int_0^pi cos(t - x sin t) dt (numpy has no J1)."""
    t = np.linspace(0.0, np.pi, J1_QUADRATURE_POINTS)
    return np.trapezoid(np.cos(t - x[..., None] * np.sin(t)), t, axis=-1) / np.pi


def _lowpass(taps: int, cutoff: float, rate: float, radial: bool) -> torch.Tensor | None:
    """A Kaiser-windowed sinc (1-D) or jinc (2-D, radially symmetric) low-pass, unit DC gain."""
    if taps == 1:
        return None
    positions = (np.arange(taps) - (taps - 1) / 2) / rate  # even taps: never exactly 0
    window = np.kaiser(taps, KAISER_BETA)
    if radial:
        radius = np.hypot(*np.meshgrid(positions, positions))
        fir = _bessel_j1(2 * np.pi * cutoff * radius) / (np.pi * radius) * np.outer(window, window)
    else:
        fir = np.sinc(2 * cutoff * positions) * window
    return torch.as_tensor(fir / fir.sum(), dtype=torch.float32)


def make_stylegan3_state(
    config: str, resolution: int = 32, num_layers: int = 6, channel_max: int = 16, seed: int = 0
) -> OrderedDict[str, torch.Tensor]:
    """A random ``G_ema.state_dict()`` with NVIDIA's key order, shapes and designed filters.

    Config t: 3x3 convs, separable filters. Config r: 1x1 convs, radial down filters in the
    non-critically-sampled layers, doubled channels (as train.py sets them).
    """
    assert config in ("t", "r")
    radial = config == "r"
    conv_kernel = 1 if radial else 3
    channel_base = 128 * (2 if radial else 1)
    channel_max *= 2 if radial else 1
    z_dim = w_dim = 16
    mapping_layers = 2
    lr_multiplier = 0.01

    # SynthesisNetwork's geometric progression of cutoffs, stopbands and sampling rates.
    last_cutoff = resolution / 2
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - NUM_CRITICAL), 1)
    cutoffs = FIRST_CUTOFF * (last_cutoff / FIRST_CUTOFF) ** exponents
    stopbands = FIRST_STOPBAND * (last_cutoff * LAST_STOPBAND_REL / FIRST_STOPBAND) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    sizes = (rates + 2 * MARGIN_SIZE).astype(int)
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max)).astype(int)
    channels[-1] = 3

    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    c0 = int(channels[0])
    freqs = randn(c0, 2)
    radii = freqs.norm(dim=1, keepdim=True)
    state["synthesis.input.weight"] = randn(c0, c0)
    state["synthesis.input.transform"] = torch.eye(3)
    state["synthesis.input.freqs"] = freqs / (radii * radii.square().exp().pow(0.25)) * FIRST_CUTOFF
    state["synthesis.input.phases"] = torch.rand(c0, generator=gen) - 0.5
    state["synthesis.input.affine.weight"] = randn(4, w_dim, scale=0.1)
    state["synthesis.input.affine.bias"] = torch.tensor([1.0, 0.0, 0.0, 0.0]) + randn(4, scale=0.1)
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == num_layers
        critical = idx >= num_layers - NUM_CRITICAL
        tmp_rate = max(rates[prev], rates[idx]) * (1 if is_torgb else LRELU_UPSAMPLING)
        up, down = int(tmp_rate / rates[prev]), int(tmp_rate / rates[idx])
        up_taps = FILTER_SIZE * up if up > 1 and not is_torgb else 1
        down_taps = FILTER_SIZE * down if down > 1 and not is_torgb else 1
        kernel = 1 if is_torgb else conv_kernel
        name = f"synthesis.L{idx}_{sizes[idx]}_{channels[idx]}"
        c_in, c_out = int(channels[prev]), int(channels[idx])
        state[f"{name}.weight"] = randn(c_out, c_in, kernel, kernel)
        state[f"{name}.bias"] = randn(c_out, scale=0.1)
        state[f"{name}.magnitude_ema"] = torch.rand([], generator=gen) + 0.5
        for key, fir in (
            ("up_filter", _lowpass(up_taps, cutoffs[prev], tmp_rate, radial=False)),
            ("down_filter", _lowpass(down_taps, cutoffs[idx], tmp_rate, radial=radial and not critical)),
        ):
            if fir is not None:
                state[f"{name}.{key}"] = fir
        state[f"{name}.affine.weight"] = randn(c_in, w_dim)
        state[f"{name}.affine.bias"] = 1 + randn(c_in, scale=0.1)
    state["mapping.w_avg"] = randn(w_dim, scale=0.1)
    for idx, fan_in in enumerate([z_dim] + [w_dim] * (mapping_layers - 1)):
        state[f"mapping.fc{idx}.weight"] = randn(w_dim, fan_in, scale=1 / lr_multiplier)
        state[f"mapping.fc{idx}.bias"] = randn(w_dim, scale=0.1 / lr_multiplier)
    return state


def _saved_and_read(state: dict[str, torch.Tensor], tmp_path: Path) -> dict[str, torch.Tensor]:
    path = tmp_path / "nvidia_state.pt"
    torch.save(state, path)
    return read_checkpoint(path).content


def _images(generator: StyleGAN3Generator, n: int = 2, seed: int = 5) -> torch.Tensor:
    return generator.synthesize(generator.sample(n, seed))


# ---- parity with the NVIDIA reference outputs --------------------------------------------
@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    return read_checkpoint(fixture_dir(FIXTURE) / "nvidia_state.pt").content


@pytest.fixture(scope="module")
def reference_generator(reference_state: dict[str, torch.Tensor]) -> StyleGAN3Generator:
    return build_stylegan3(reference_state, None)


def _nvidia_kwargs() -> dict:
    return json.loads((fixture_dir(FIXTURE) / "nvidia_init_kwargs.json").read_text())


def test_stylegan3t_matches_reference_latents_and_images(reference_generator: StyleGAN3Generator) -> None:
    folder = fixture_dir(FIXTURE)
    z = np.load(folder / "z.npy")
    generator = reference_generator
    assert generator.num_layers == 16 and generator.resolution == 32 and generator.latent_dim == 64
    np.testing.assert_allclose(generator.w_avg.numpy(), np.load(folder / "w_avg.npy"), atol=LATENT_ATOL)
    for suffix, psi in (("", 1.0), ("_trunc07", TRUNC_PSI)):
        wp = generator.to_edit_space(torch.from_numpy(z), psi)  # every row truncated, as NVIDIA does
        np.testing.assert_allclose(wp.numpy(), np.load(folder / f"wp{suffix}.npy"), atol=LATENT_ATOL)
        image = generator.synthesize(wp).numpy()
        reference = np.load(folder / f"img{suffix}.npy")
        assert image.shape == reference.shape
        assert np.abs(image - reference).max() <= IMAGE_ATOL, f"img{suffix} differs from NVIDIA's"


def test_stylegan3t_geometry_matches_nvidias_resolved_layers(
    reference_state: dict[str, torch.Tensor],
) -> None:
    """Sizes, factors and paddings inferred from tensors alone equal what NVIDIA's constructor computed."""
    resolved = _nvidia_kwargs()["resolved"]
    arch = infer_architecture(reference_state, None)
    assert arch.num_ws == resolved["num_ws"]
    assert [layer.name for layer in arch.layers] == resolved["layer_names"]
    assert arch.input_size == resolved["input"]["size"][0]
    assert arch.input_channels == resolved["input"]["channels"]
    assert arch.input_sampling_rate == resolved["input"]["sampling_rate"]
    assert arch.output_scale == resolved["output_scale"]
    for layer in arch.layers:
        expected = resolved["layers"][layer.name]
        assert (layer.in_size, layer.out_size) == (expected["in_size"][0], expected["out_size"][0])
        assert (layer.in_channels, layer.out_channels) == (expected["in_channels"], expected["out_channels"])
        assert (layer.up_factor, layer.down_factor) == (expected["up_factor"], expected["down_factor"])
        assert list(layer.padding) == expected["padding"], layer.name
        assert (layer.conv_kernel, layer.is_torgb) == (expected["conv_kernel"], expected["is_torgb"])


def test_stylegan3t_init_kwargs_agree_with_what_the_tensors_say(
    reference_state: dict[str, torch.Tensor],
) -> None:
    from_pickle = infer_architecture(reference_state, _nvidia_kwargs()["init_kwargs"])
    assert from_pickle == infer_architecture(reference_state, None)


def test_stylegan3t_loads_through_load_checkpoint(reference_generator: StyleGAN3Generator) -> None:
    from sefa_core.formats import load_checkpoint

    folder = fixture_dir(FIXTURE)
    generator = load_checkpoint(folder / "nvidia_state.pt", device="cpu")
    assert isinstance(generator, StyleGAN3Generator) and generator.digest
    codes = torch.from_numpy(np.load(folder / "wp.npy")[:2])
    image = generator.synthesize(codes).numpy()
    assert np.abs(image - np.load(folder / "img.npy")[:2]).max() <= IMAGE_ATOL


def test_sefa_on_stylegan3_gives_unit_directions_sorted_by_eigenvalue(
    reference_generator: StyleGAN3Generator,
) -> None:
    semantics = factorize(reference_generator, "all")
    assert semantics.layers == tuple(range(16))
    assert semantics.directions.shape == (64, 64)
    np.testing.assert_allclose(np.linalg.norm(semantics.directions, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(semantics.directions @ semantics.directions.T, np.eye(64), atol=1e-6)
    assert np.all(np.diff(semantics.eigenvalues) <= 1e-9), "eigenvalues must be sorted, largest first"
    assert semantics.eigenvalues[0] > semantics.eigenvalues[-1] > 0


# ---- the W+ rows and their layers ---------------------------------------------------------
def test_stylegan3_factorizable_layers_are_the_affines_fed_by_each_wplus_row(tmp_path: Path) -> None:
    """Changing W+ row i changes the output of factorizable layer i's affine and of no other."""
    state = make_stylegan3_state("t", resolution=16, num_layers=4)
    generator = build_stylegan3(_saved_and_read(state, tmp_path), None)
    assert generator.layer_names[0] == "synthesis.input.affine"
    assert generator.layer_names[-1] == f"synthesis.{generator.arch.layers[-1].name}.affine"
    assert tuple(generator.layer_weight(0).shape) == (4, 16)

    affine_outputs: dict[int, torch.Tensor] = {}
    modules = [generator.get_submodule(name) for name in generator.layer_names]
    for index, module in enumerate(modules):
        assert module.weight is generator.layer_weight(index)
        module.register_forward_hook(lambda _m, _i, out, index=index: affine_outputs.__setitem__(index, out))
    codes = generator.sample(1, seed=3)
    generator.synthesize(codes)
    before = dict(affine_outputs)
    for row in range(generator.num_layers):
        edited = codes.clone()
        edited[:, row] += 1.0
        generator.synthesize(edited)
        changed = [i for i in before if not torch.equal(before[i], affine_outputs[i])]
        assert changed == [row]


def test_stylegan3_presets_cover_every_wplus_row_once() -> None:
    generator = build_stylegan3(make_stylegan3_state("t", resolution=16, num_layers=4), None)
    presets = generator.layer_presets()
    parts = [generator.resolve_layers(presets[key]) for key in presets if key not in ("all",)]
    assert parts[0] == (0,)
    assert sorted(i for part in parts[1:] for i in part) == list(range(1, generator.num_layers))


def test_stylegan3_truncation_cutoff_leaves_later_rows_alone() -> None:
    generator = build_stylegan3(make_stylegan3_state("t", resolution=16, num_layers=4), None)
    plain = generator.sample(2, seed=1)
    truncated = generator.sample(2, seed=1, trunc_psi=0.5, trunc_layers=2)
    w_avg = generator.w_avg
    torch.testing.assert_close(truncated[:, :2], w_avg + (plain[:, :2] - w_avg) * 0.5)
    torch.testing.assert_close(truncated[:, 2:], plain[:, 2:])


# ---- configs t and r from checkpoints built here ------------------------------------------
@pytest.mark.parametrize("config", ["t", "r"])
def test_stylegan3_checkpoint_infers_its_architecture_and_synthesizes(config: str, tmp_path: Path) -> None:
    state = make_stylegan3_state(config, resolution=32, num_layers=6)
    generator = build_stylegan3(_saved_and_read(state, tmp_path), None)
    arch = generator.arch
    assert generator.describe()["config"] == f"stylegan3-{config}"
    assert (generator.resolution, generator.num_layers, generator.latent_dim) == (32, 8, 16)
    assert arch.input_sampling_rate == 16 and arch.input_size == 36  # 16 + 2 * margin
    assert [layer.up_factor for layer in arch.layers] == [2, 2, 4, 2, 2, 2, 1]
    convs = arch.layers[:-1]
    assert all(layer.conv_kernel == (1 if config == "r" else 3) for layer in convs)
    # Config r designs 2-D radial down filters except in the critically sampled layers.
    assert [layer.radial_down for layer in convs] == [config == "r"] * 4 + [False] * 2
    for layer in convs:
        down_filter = getattr(generator.synthesis, layer.name).down_filter
        assert down_filter.ndim == (2 if layer.radial_down else 1)
    images = _images(generator)
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    assert images.std() > 0


def test_stylegan3r_output_depends_on_its_radial_down_filters() -> None:
    state = make_stylegan3_state("r")
    images = _images(build_stylegan3(state, None))
    key = next(key for key in state if key.endswith("down_filter") and state[key].ndim == 2)
    taps = state[key].shape[0]
    state[key] = _lowpass(taps, cutoff=1.0, rate=64.0, radial=True)  # a narrower radial low-pass
    changed = _images(build_stylegan3(state, None))
    assert (images - changed).abs().max() > 1e-3


def test_stylegan3_two_dimensional_filters_agree_with_separable_ones() -> None:
    """A 2-D down filter equal to outer(f, f) must give what the separable f gives."""
    state = make_stylegan3_state("t")
    images = _images(build_stylegan3(state, None))
    for key in [key for key in state if key.endswith("down_filter")]:
        state[key] = torch.outer(state[key], state[key])
    as_2d = build_stylegan3(state, None)
    assert any(layer.radial_down for layer in as_2d.arch.layers)
    torch.testing.assert_close(_images(as_2d), images, atol=1e-5, rtol=0)


# ---- files that are not what they claim ---------------------------------------------------
def test_stylegan3_without_w_avg_is_refused_with_the_key_named() -> None:
    state = make_stylegan3_state("t", resolution=16, num_layers=4)
    del state["mapping.w_avg"]
    with pytest.raises(ValueError, match="mapping.w_avg"):
        build_stylegan3(state, None)


def test_stylegan3_whose_init_kwargs_ask_for_classes_it_lacks_is_refused() -> None:
    """Conditional StyleGAN3s load (tests/test_tf_conditional.py); a c_dim without the embedding does not."""
    state = make_stylegan3_state("t", resolution=16, num_layers=4)
    with pytest.raises(ValueError, match="init_kwargs say c_dim=10 but there is no 'mapping.embed.weight'"):
        build_stylegan3(state, {"c_dim": 10})


def test_stylegan3_init_kwargs_that_contradict_the_tensors_are_refused() -> None:
    state = make_stylegan3_state("t", resolution=16, num_layers=4)
    with pytest.raises(ValueError, match="img_resolution=64"):
        build_stylegan3(state, {"img_resolution": 64})
