"""Structurally broken checkpoints, in every supported layout, are refused in one line that says why.

Each layout's file is built here (tiny random weights, the public key layout, its real container),
then broken one way: a key missing, an extra key, a shape or dtype that does not fit, NaN or Inf
weights, or a generator saved under another format's container keys. ``load_checkpoint`` must
refuse it with a one-line ``CheckpointError`` that starts with the file and names the problem.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from pickle_factory import write_network_pickle
from test_biggan import TINY_CONFIG, reference_state_dict, write_checkpoint
from test_genforce import genforce_pggan_state, genforce_stylegan_state, save_genforce
from test_stylegan2 import (
    NVIDIA_TINY_KWARGS,
    TINY_MAPPING,
    TINY_W,
    _genforce_state,
    _nvidia_state,
    _rosinality_state,
    _tiny_generator,
)
from test_stylegan3 import make_stylegan3_state

from sefa_core.default_model import default_checkpoint_path
from sefa_core.errors import CheckpointError, SefaError
from sefa_core.formats import load_checkpoint
from sefa_core.formats.containers import read_checkpoint
from sefa_core.formats.layouts import genforce_stylegan2, nvidia, rosinality
from sefa_core.models.base import Generator
from sefa_core.models.stylegan2 import StyleGAN2Generator
from sefa_core.models.stylegan3 import build_stylegan3, module_state, nvidia_key

State = dict[str, torch.Tensor]
EXTRA_KEY = "extra.weight"
DCGAN_NZ, DCGAN_NGF = 8, 2  # the tutorial's nz=100, ngf=64, scaled down
DCGAN_CONVS = 5  # 4 -> 8 -> 16 -> 32 -> 64 px, as in the tutorial and the default model
DCGAN_CONV_STRIDE = 3  # main.{3i} is a ConvTranspose2d, main.{3i+1} its BatchNorm2d, main.{3i+2} a ReLU
SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS = 16, 4, 8
SG3_KWARGS = {
    "z_dim": 16,  # make_stylegan3_state's z and w sizes
    "w_dim": 16,
    "c_dim": 0,
    "img_resolution": SG3_RESOLUTION,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
}


# ---- one tiny file per layout -----------------------------------------------------------------
def tutorial_dcgan_state(nz: int = DCGAN_NZ, ngf: int = DCGAN_NGF, seed: int = 0) -> State:
    """The PyTorch DCGAN tutorial's ``netG.state_dict()``: ConvTranspose2d + BatchNorm2d pairs."""
    gen = torch.Generator().manual_seed(seed)
    widths = [nz] + [ngf * 2**k for k in reversed(range(DCGAN_CONVS - 1))] + [3]
    state: State = {}
    for block, (c_in, c_out) in enumerate(pairwise(widths)):
        conv = DCGAN_CONV_STRIDE * block
        state[f"main.{conv}.weight"] = torch.randn(c_in, c_out, 4, 4, generator=gen) * 0.1
        if block < DCGAN_CONVS - 1:
            bn = f"main.{conv + 1}"
            state[f"{bn}.weight"] = 1 + 0.1 * torch.randn(c_out, generator=gen)
            state[f"{bn}.bias"] = 0.1 * torch.randn(c_out, generator=gen)
            state[f"{bn}.running_mean"] = 0.1 * torch.randn(c_out, generator=gen)
            state[f"{bn}.running_var"] = 1 + torch.rand(c_out, generator=gen)
            state[f"{bn}.num_batches_tracked"] = torch.tensor(1000)
    return state


def default_model_state() -> State:
    """The real default model's generator weights, or a skip where the package is absent."""
    try:
        path = default_checkpoint_path()
    except SefaError as error:
        pytest.skip(str(error))
    return dict(read_checkpoint(path).content["netG_state_dict"])


def save_torch(name: str, container: Callable[[State], dict] = lambda state: state) -> Callable:
    """A writer that ``torch.save``s ``container(state)`` as ``folder/name``."""

    def write(folder: Path, state: State) -> Path:
        torch.save(container(state), folder / name)
        return folder / name

    return write


def rosinality_train_container(state: State) -> dict:
    """rosinality train.py's checkpoint: both generators, a critic, optimisers, args, no latent_avg."""
    args = argparse.Namespace(size=16, latent=TINY_W, n_mlp=TINY_MAPPING, channel_multiplier=2)
    optimizer = {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": []}]}
    critic = {"convs.0.0.weight": torch.randn(8, 3, 1, 1)}
    return {
        "g": state,
        "d": critic,
        "g_ema": state,
        "g_optim": optimizer,
        "d_optim": optimizer,
        "args": args,
        "ada_aug_p": 0.0,
    }


def network_pickle(kwargs: dict) -> Callable:
    def write(folder: Path, state: State) -> Path:
        return write_network_pickle(folder / "network-snapshot.pkl", state, kwargs)

    return write


def biggan_folder(folder: Path, state: State) -> Path:
    return write_checkpoint(folder / "biggan-tiny", TINY_CONFIG, state)


@dataclass(frozen=True)
class FileKind:
    """A layout as found on disk, and the weight the breakages below hit."""

    name: str
    layout: str  # the loader that must take the unbroken file (``Generator.source_format``)
    make_state: Callable[[], State]  # the generator's tensors, under the file's own key names
    write: Callable[[Path, State], Path]  # -> the path a user gives ``load_checkpoint``
    key: str  # a float weight, as the file spells it
    model_key: str = ""  # the model's own name for ``key``, where the loader renames keys

    def __str__(self) -> str:
        return self.name


@cache
def sg2() -> StyleGAN2Generator:
    """One small random StyleGAN2, written in each layout (built on first use, not at collection)."""
    return _tiny_generator(1)


FILE_KINDS = [
    FileKind(
        "dcgan-tutorial",
        "PyTorch-tutorial DCGAN",
        tutorial_dcgan_state,
        save_torch("weights.tar", lambda state: {"netG_state_dict": state}),
        "main.6.weight",
    ),
    FileKind(
        "dcgan-default-model",
        "PyTorch-tutorial DCGAN",
        default_model_state,
        save_torch("weights.tar", lambda state: {"netG_state_dict": state}),
        "main.6.weight",
    ),
    FileKind(
        "genforce-pggan",
        "genforce .pth",
        lambda: genforce_pggan_state(8, [8, 4]),
        save_genforce,
        "layer3.weight",
    ),
    FileKind(
        "genforce-stylegan",
        "genforce .pth",
        lambda: genforce_stylegan_state(8, 8, 8, 2, [8, 4]),
        save_genforce,
        "synthesis.layer3.style.weight",
    ),
    FileKind(
        "genforce-stylegan2",
        "genforce .pth",
        lambda: _genforce_state(sg2()),
        save_genforce,
        "synthesis.layer3.style.weight",
        "synthesis.convs.3.conv.affine.weight",
    ),
    FileKind(
        "rosinality-convert-weight",
        "rosinality .pt",
        lambda: _rosinality_state(sg2()),
        save_torch("stylegan2-ffhq-config-f.pt", lambda state: {"g_ema": state, "latent_avg": sg2().w_avg}),
        "convs.2.conv.modulation.weight",
        "synthesis.convs.3.conv.affine.weight",
    ),
    FileKind(
        "rosinality-train",
        "rosinality .pt",
        lambda: _rosinality_state(sg2()),
        save_torch("550000.pt", rosinality_train_container),
        "convs.2.conv.modulation.weight",
        "synthesis.convs.3.conv.affine.weight",
    ),
    FileKind(
        "rosinality-bare-g_ema",
        "rosinality .pt",
        lambda: _rosinality_state(sg2()),
        save_torch("g_ema.pt"),
        "convs.2.conv.modulation.weight",
        "synthesis.convs.3.conv.affine.weight",
    ),
    FileKind(
        "nvidia-state-dict",
        "NVIDIA state dict",
        lambda: _nvidia_state(sg2()),
        save_torch("G_ema.pt"),
        "synthesis.b8.conv1.affine.weight",
        "synthesis.convs.2.conv.affine.weight",
    ),
    FileKind(
        "nvidia-pkl",
        "NVIDIA stylegan2-ada .pkl",
        lambda: _nvidia_state(sg2()),
        network_pickle(NVIDIA_TINY_KWARGS),
        "synthesis.b8.conv1.affine.weight",
        "synthesis.convs.2.conv.affine.weight",
    ),
    FileKind(
        "stylegan3-state-dict",
        "NVIDIA state dict",
        lambda: make_stylegan3_state("t", SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS),
        save_torch("stylegan3-t.pt"),
        "synthesis.L2_36_8.affine.weight",
    ),
    FileKind(
        "stylegan3-pkl",
        "NVIDIA stylegan2-ada .pkl",
        lambda: make_stylegan3_state("t", SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS),
        network_pickle(SG3_KWARGS),
        "synthesis.L2_36_8.affine.weight",
    ),
    FileKind(
        "biggan-folder",
        "pytorch-pretrained-biggan",
        lambda: reference_state_dict(TINY_CONFIG),
        biggan_folder,
        "generator.layers.0.conv_1.weight_orig",
    ),
]
RENAMING_KINDS = [kind for kind in FILE_KINDS if kind.model_key]


# ---- ways to break a file ----------------------------------------------------------------------
def _without(state: State, key: str) -> State:
    return {name: value for name, value in state.items() if name != key}


def _wider(tensor: torch.Tensor) -> torch.Tensor:
    return torch.zeros(*tensor.shape[:-1], tensor.shape[-1] + 1)


def _with_value(tensor: torch.Tensor, value: float) -> torch.Tensor:
    broken = tensor.clone()
    broken.view(-1)[broken.numel() // 2] = value
    return broken


@dataclass(frozen=True)
class Breakage:
    name: str
    apply: Callable[[State, str], State]  # (state, victim key) -> the broken state
    problem: str  # a regex the error line must match
    names_victim: bool = True  # the error names the victim key; else EXTRA_KEY

    def __str__(self) -> str:
        return self.name


BREAKAGES = [
    Breakage("missing-key", _without, r"missing key"),
    Breakage("extra-key", lambda s, k: {**s, EXTRA_KEY: torch.zeros(2)}, r"unexpected", names_victim=False),
    Breakage("shape-mismatch", lambda s, k: {**s, k: _wider(s[k])}, r"shape"),
    Breakage("int-dtype", lambda s, k: {**s, k: s[k].round().to(torch.int32)}, r"dtype torch\.int32"),
    Breakage("nan-weights", lambda s, k: {**s, k: _with_value(s[k], float("nan"))}, r"\bNaN\b"),
    Breakage("inf-weights", lambda s, k: {**s, k: _with_value(s[k], float("inf"))}, r"\binfinite\b"),
]
KEY_BREAKAGES = [breakage for breakage in BREAKAGES if breakage.names_victim]


def _matrix() -> list:
    return [
        pytest.param(kind, breakage, id=f"{kind}-{breakage}") for kind in FILE_KINDS for breakage in BREAKAGES
    ]


def refusal(path: Path) -> CheckpointError:
    """The error ``load_checkpoint`` raises for ``path``, checked to be one line about that file."""
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, device="cpu")
    message = str(caught.value)
    assert "\n" not in message, "checkpoint errors are one line"
    assert message.startswith(str(path)) and caught.value.path.startswith(str(path))
    return caught.value


# ---- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FILE_KINDS, ids=str)
def test_unbroken_file_of_each_layout_loads_through_its_own_loader(kind: FileKind, tmp_path: Path) -> None:
    """The baseline: without a breakage every file below loads, so each refusal is the breakage's doing."""
    state = kind.make_state()
    assert kind.key in state and state[kind.key].is_floating_point()
    generator = load_checkpoint(kind.write(tmp_path, state), device="cpu")
    assert isinstance(generator, Generator) and generator.source_format == kind.layout
    images = generator.synthesize(generator.sample(1, seed=0))
    assert torch.isfinite(images).all()


@pytest.mark.parametrize(("kind", "breakage"), _matrix())
def test_broken_file_is_refused_in_one_line_naming_the_problem(
    kind: FileKind, breakage: Breakage, tmp_path: Path
) -> None:
    path = kind.write(tmp_path, breakage.apply(kind.make_state(), kind.key))
    message = refusal(path).problem
    assert "unknown layout" not in message, "the file must still be recognised as its layout"
    assert re.search(breakage.problem, message), message
    named = [kind.key, kind.model_key] if breakage.names_victim else [EXTRA_KEY]
    assert any(f"'{key}'" in message for key in named if key), message


@pytest.mark.parametrize("kind", RENAMING_KINDS, ids=str)
def test_error_names_the_broken_key_as_the_file_spells_it(kind: FileKind, tmp_path: Path) -> None:
    """A user searches the file for the key the error names; the model's internal name is not there."""
    for breakage in KEY_BREAKAGES:
        folder = tmp_path / breakage.name
        folder.mkdir()
        path = kind.write(folder, breakage.apply(kind.make_state(), kind.key))
        assert f"'{kind.key}'" in refusal(path).problem, breakage.name


def test_tutorial_dcgan_builder_has_the_default_models_structure() -> None:
    """Same keys, ranks and dtypes as the real default file, so the DCGAN cases above are realistic."""
    real, tiny = default_model_state(), tutorial_dcgan_state()
    assert list(tiny) == list(real)
    for key, tensor in real.items():
        assert (tiny[key].ndim, tiny[key].dtype) == (tensor.ndim, tensor.dtype), key
    assert real["main.0.weight"].shape[0] == 100 and tiny["main.0.weight"].shape[0] == DCGAN_NZ


# A generator saved under container keys its format never uses: (id, file content, the
# wrapper key the error must name, what it must say is inside).
MISPLACED = [
    ("dcgan-under-g_ema", lambda: {"g_ema": tutorial_dcgan_state()}, "g_ema", "PyTorch-tutorial DCGAN"),
    ("dcgan-under-G_ema", lambda: {"G_ema": tutorial_dcgan_state()}, "G_ema", "PyTorch-tutorial DCGAN"),
    (
        "dcgan-under-model",
        lambda: {"model": tutorial_dcgan_state(), "optimizer": {"lr": torch.tensor(0.0002)}},
        "model",
        "PyTorch-tutorial DCGAN",
    ),
    (
        "nvidia-stylegan2-under-netG_state_dict",
        lambda: {"netG_state_dict": _nvidia_state(sg2())},
        "netG_state_dict",
        "NVIDIA state dict",
    ),
    (
        "genforce-stylegan2-under-netG_state_dict",
        lambda: {"netG_state_dict": _genforce_state(sg2())},
        "netG_state_dict",
        "genforce .pth",
    ),
    (
        "rosinality-stylegan2-under-netG_state_dict",
        lambda: {"netG_state_dict": _rosinality_state(sg2())},
        "netG_state_dict",
        "rosinality .pt",
    ),
    (
        "genforce-container-with-rosinality-keys",
        lambda: {
            "generator": _rosinality_state(sg2()),
            "discriminator": {"layer0.weight": torch.zeros(1)},
            "generator_smooth": _rosinality_state(sg2()),
        },
        "generator",
        "rosinality .pt",
    ),
    (
        "rosinality-container-with-genforce-keys",
        lambda: {"g_ema": _genforce_state(sg2()), "latent_avg": sg2().w_avg},
        "g_ema",
        "genforce .pth",
    ),
    (
        "rosinality-container-with-nvidia-keys",
        lambda: {"g_ema": _nvidia_state(sg2()), "latent_avg": sg2().w_avg},
        "g_ema",
        "NVIDIA state dict",
    ),
    (
        "nvidia-container-with-rosinality-keys",
        lambda: {"G_ema": _rosinality_state(sg2())},
        "G_ema",
        "rosinality .pt",
    ),
    (
        "stylegan3-under-g_ema",
        lambda: {"g_ema": make_stylegan3_state("t", SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS)},
        "g_ema",
        "NVIDIA state dict",
    ),
    (
        "biggan-under-netG_state_dict",
        lambda: {"netG_state_dict": reference_state_dict(TINY_CONFIG)},
        "netG_state_dict",
        "pytorch-pretrained-biggan",
    ),
]


@pytest.mark.parametrize(
    ("content", "wrapper", "inside"),
    [pytest.param(content, wrapper, inside, id=name) for name, content, wrapper, inside in MISPLACED],
)
def test_generator_under_another_formats_container_keys_is_refused_saying_what_is_inside(
    content: Callable[[], dict], wrapper: str, inside: str, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save(content(), path)
    message = refusal(path).problem
    assert message.startswith("unknown layout"), message
    assert f"'{wrapper}' holds" in message and inside in message, message


# A valid file under a name whose extension says another container: (id, kind, file name).
MISNAMED = [
    ("genforce-pth-named-pkl", "genforce-pggan", "model.pkl"),
    ("network-pickle-named-pth", "nvidia-pkl", "stylegan2-ffhq.pth"),
    ("torch-zip-named-png", "dcgan-tutorial", "weights.png"),
    ("rosinality-named-npy", "rosinality-convert-weight", "550000.npy"),
    ("stylegan3-without-extension", "stylegan3-state-dict", "stylegan3"),
]


@pytest.mark.parametrize(
    ("kind_name", "file_name"),
    [pytest.param(kind, file_name, id=name) for name, kind, file_name in MISNAMED],
)
def test_valid_file_with_the_wrong_extension_loads_by_its_content(
    kind_name: str, file_name: str, tmp_path: Path
) -> None:
    kind = next(kind for kind in FILE_KINDS if kind.name == kind_name)
    path = kind.write(tmp_path, kind.make_state())
    misnamed = path.rename(tmp_path / file_name)
    generator = load_checkpoint(misnamed, device="cpu")
    assert generator.source_format == kind.layout
    (tmp_path / "reference").mkdir()
    reference = load_checkpoint(kind.write(tmp_path / "reference", kind.make_state()), device="cpu")
    codes = reference.sample(2, seed=3)
    torch.testing.assert_close(generator.synthesize(codes), reference.synthesize(codes), atol=0, rtol=0)


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "torch-legacy"])
def test_legacy_and_zip_torch_files_under_a_zip_name_load_alike(zipped: bool, tmp_path: Path) -> None:
    """``.zip``/``.tar`` names say nothing: torch's own two containers are told apart by their bytes."""
    path = tmp_path / "checkpoint.zip"
    torch.save({"netG_state_dict": tutorial_dcgan_state()}, path, _use_new_zipfile_serialization=zipped)
    generator = load_checkpoint(path, device="cpu")
    assert generator.source_format == "PyTorch-tutorial DCGAN" and generator.resolution == 64


def test_int_tensor_the_loader_shifts_is_still_refused(tmp_path: Path) -> None:
    state = _genforce_state(sg2())
    key = "synthesis.layer3.style.bias"
    state[key] = state[key].round().to(torch.int32)
    assert "dtype torch.int32" in refusal(save_genforce(tmp_path, state)).problem


# ---- naming: errors name keys as the file spells them ------------------------------------------
def _tagged(state: State) -> State:
    """Every tensor filled with its own tag (10, 20, ...), so a converted tensor tells where it came from."""
    return {
        key: torch.full_like(value, 10.0 * tag) for tag, (key, value) in enumerate(state.items(), start=1)
    }


def _is_filter_copy(key: str) -> bool:
    """The per-layer FIR copies a StyleGAN2 loader merges into its one shared filter."""
    return key.endswith(("kernel", "resample_filter"))


RENAMINGS = [
    pytest.param(
        lambda: _genforce_state(sg2()),
        genforce_stylegan2.canonical_state,
        genforce_stylegan2.file_key,
        lambda state: sg2().state_dict(),
        id="genforce-stylegan2",
    ),
    pytest.param(
        lambda: _rosinality_state(sg2()),
        rosinality.canonical_state,
        rosinality.file_key,
        lambda state: {key: value for key, value in sg2().state_dict().items() if key != "w_avg"},
        id="rosinality",
    ),
    pytest.param(
        lambda: _nvidia_state(sg2()),
        nvidia.canonical_state,
        nvidia.file_key,
        lambda state: sg2().state_dict(),
        id="nvidia-stylegan2",
    ),
    pytest.param(
        lambda: make_stylegan3_state("t", SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS),
        module_state,
        nvidia_key,
        lambda state: build_stylegan3(state).state_dict(),
        id="nvidia-stylegan3",
    ),
]


@pytest.mark.parametrize(("make_state", "convert", "file_key", "model_state"), RENAMINGS)
def test_each_model_key_is_named_by_the_file_key_it_is_read_from(
    make_state: Callable[[], State],
    convert: Callable[[State], State],
    file_key: Callable[[str], str],
    model_state: Callable[[State], State],
) -> None:
    """A layout's inverse naming undoes its loader's renaming exactly, for every key the model has.

    It names the keys in errors, those a file lacks included, so it must agree with the conversion.
    """
    source = _tagged(make_state())
    converted = convert(source)
    model_keys = set(model_state(make_state()))
    assert set(converted) == model_keys
    for model_key, value in converted.items():
        named = file_key(model_key)
        assert named in source, f"{model_key} -> {named}, which the file does not hold"
        if _is_filter_copy(named):
            continue  # merged from every copy, normalised
        offset = float(value.flatten()[0] - source[named].flatten()[0])
        assert offset in (0.0, genforce_stylegan2.STYLE_BIAS_OFFSET), f"{model_key} is not read from {named}"
    unnamed = set(source) - {file_key(key) for key in converted}
    assert all(_is_filter_copy(key) for key in unnamed), unnamed


# (file kind, a key the loader renames, deleted from the file): the error names it as the file does.
MISSING_RENAMED_KEYS = [
    ("genforce-stylegan2", "synthesis.layer2.noise"),
    ("genforce-stylegan2", "synthesis.output1.style.bias"),
    ("rosinality-convert-weight", "noises.noise_3"),
    ("rosinality-train", "to_rgbs.0.bias"),
    ("rosinality-bare-g_ema", "conv1.activate.bias"),
    ("nvidia-state-dict", "synthesis.b16.conv0.noise_const"),
    ("nvidia-pkl", "mapping.fc1.bias"),
    ("stylegan3-state-dict", "mapping.fc1.bias"),
]


@pytest.mark.parametrize(("kind_name", "key"), MISSING_RENAMED_KEYS)
def test_missing_key_is_named_as_the_file_would_spell_it(kind_name: str, key: str, tmp_path: Path) -> None:
    kind = next(kind for kind in FILE_KINDS if kind.name == kind_name)
    state = kind.make_state()
    assert key in state
    message = refusal(kind.write(tmp_path, _without(state, key))).problem
    assert f"missing key '{key}'" in message, message


# ---- values are checked as the file stores them -------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "generator.layers.0.conv_1.weight_v",  # folded with weight_orig and weight_u into one weight
        "generator.gen_z.weight_u",
    ],
)
def test_nan_in_a_spectral_norm_vector_is_blamed_on_that_vector(key: str, tmp_path: Path) -> None:
    state = reference_state_dict(TINY_CONFIG)
    state[key] = _with_value(state[key], float("nan"))
    message = refusal(biggan_folder(tmp_path, state)).problem
    assert f"'{key}' holds 1 NaN" in message, message


def test_half_precision_biggan_weights_still_load(tmp_path: Path) -> None:
    """The raw check refuses integers, not the float16 some shared checkpoints are saved in."""
    state = {key: value.half() for key, value in reference_state_dict(TINY_CONFIG).items()}
    generator = load_checkpoint(biggan_folder(tmp_path, state), device="cpu")
    assert generator.layer_weight(0).dtype == torch.float32


@pytest.mark.parametrize(
    ("latent_avg", "problem"),
    [
        (torch.zeros(TINY_W, dtype=torch.int64), r"has dtype torch\.int64"),
        (torch.full((TINY_W,), torch.inf), r"holds \d+ infinite"),
        (torch.zeros(TINY_W + 1), rf"has shape \({TINY_W + 1},\)"),  # checked by the model as its w_avg
    ],
    ids=["int", "inf", "shape"],
)
def test_damaged_latent_avg_beside_g_ema_is_refused(
    latent_avg: torch.Tensor, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "stylegan2.pt"
    torch.save({"g_ema": _rosinality_state(sg2()), "latent_avg": latent_avg}, path)
    message = refusal(path).problem
    assert re.search(rf"'latent_avg' {problem}", message), message


def test_only_batchnorm_step_counters_may_be_integer(tmp_path: Path) -> None:
    state = tutorial_dcgan_state()
    state["main.1.running_mean"] = state["main.1.running_mean"].round().long()
    message = refusal(save_torch("weights.tar")(tmp_path, state)).problem
    assert "'main.1.running_mean' has dtype torch.int64" in message, message


# ---- gaps a hardening sweep found -----------------------------------------------------------------
def _stylegan3_layer(state: State, index: int) -> str:
    """The ``synthesis.L{index}_{size}_{channels}`` prefix of one StyleGAN3 layer."""
    return next(
        key.removesuffix(".weight")
        for key in state
        if re.fullmatch(rf"synthesis\.L{index}_\d+_\d+\.weight", key)
    )


@pytest.mark.parametrize("part", ["up_filter", "down_filter"])
@pytest.mark.parametrize("kind_name", ["stylegan3-state-dict", "stylegan3-pkl"])
def test_stylegan3_layer_without_its_resampling_filter_is_refused(
    kind_name: str, part: str, tmp_path: Path
) -> None:
    """Read as a layer that does not resample, it would load silently as a different network."""
    kind = next(kind for kind in FILE_KINDS if kind.name == kind_name)
    state = kind.make_state()
    key = f"{_stylegan3_layer(state, 1)}.{part}"
    message = refusal(kind.write(tmp_path, _without(state, key))).problem
    assert f"missing key '{key}'" in message, message


def test_stylegan3_torgb_with_a_resampling_filter_is_refused(tmp_path: Path) -> None:
    state = make_stylegan3_state("t", SG3_RESOLUTION, SG3_LAYERS, SG3_CHANNELS)
    key = f"{_stylegan3_layer(state, SG3_LAYERS)}.up_filter"  # the last layer is the ToRGB
    state[key] = state[f"{_stylegan3_layer(state, 1)}.up_filter"]
    message = refusal(save_torch("stylegan3-t.pt")(tmp_path, state)).problem
    assert f"unexpected key '{key}'" in message, message


@pytest.mark.parametrize(
    ("kind_name", "key"),
    [
        ("genforce-stylegan2", "truncation.w_avg"),
        ("nvidia-state-dict", "mapping.w_avg"),
        ("nvidia-pkl", "mapping.w_avg"),
    ],
)
def test_stylegan2_file_without_the_w_avg_its_format_always_stores_is_refused(
    kind_name: str, key: str, tmp_path: Path
) -> None:
    """Only rosinality's train.py files lack the truncation centre (and get the estimated mean)."""
    kind = next(kind for kind in FILE_KINDS if kind.name == kind_name)
    message = refusal(kind.write(tmp_path, _without(kind.make_state(), key))).problem
    assert f"missing key '{key}'" in message, message


def test_bare_rosinality_g_ema_state_dict_loads_like_a_train_py_file(tmp_path: Path) -> None:
    """Neither stores latent_avg: both get the same estimated truncation centre and draw the same images."""
    (tmp_path / "bare").mkdir()
    (tmp_path / "train").mkdir()
    bare = load_checkpoint(save_torch("g_ema.pt")(tmp_path / "bare", _rosinality_state(sg2())), device="cpu")
    train = load_checkpoint(
        save_torch("550000.pt", rosinality_train_container)(tmp_path / "train", _rosinality_state(sg2())),
        device="cpu",
    )
    assert bare.source_format == "rosinality .pt"
    torch.testing.assert_close(bare.w_avg, train.w_avg, atol=0, rtol=0)
    codes = train.sample(2, seed=1, trunc_psi=0.7)
    torch.testing.assert_close(bare.synthesize(codes), sg2().synthesize(codes), atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_generator", [True, False], ids=["both", "generator_smooth-only"])
def test_dcgan_in_genforces_container_loads_generator_smooth(with_generator: bool, tmp_path: Path) -> None:
    """sefa's order: the averaged ``generator_smooth`` when present, not the raw ``generator``."""
    smooth, raw = tutorial_dcgan_state(seed=1), tutorial_dcgan_state(seed=2)
    content = {"generator_smooth": smooth, "discriminator": {"layer0.weight": torch.zeros(1)}}
    if with_generator:
        content["generator"] = raw
    torch.save(content, tmp_path / "dcgan.pth")
    generator = load_checkpoint(tmp_path / "dcgan.pth", device="cpu")
    assert generator.source_format == "PyTorch-tutorial DCGAN"
    loaded = generator.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in smooth.items())
