"""The whole DCGAN family loads: any size, with or without bias and BatchNorm, gaps in the Sequential,
any key prefix and wrapper, CUDA-saved tensors, conditional models; and what does not load says why.

Each variant is a small ``nn.Sequential`` built here, saved with ``torch.save`` as a training script
would, loaded through ``load_checkpoint`` / ``load_generator``, and compared with the module's own
output. Both run the same float32 ops on the same CPU, so images agree to about 1e-6; 1e-5 leaves room.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_biggan import TINY_CONFIG, reference_state_dict, write_checkpoint
from torch import nn

from sefa_core import factorize, load_generator
from sefa_core.config import load_config
from sefa_core.errors import CheckpointError, ConfigError
from sefa_core.formats import load_checkpoint
from sefa_core.models.base import Generator

IMAGE_ATOL = 1e-5  # same float32 ops on the same CPU, see the module docstring
EIGEN_RTOL = 1e-5  # float32 weights, Gram solved in float64: ~1e-6 relative
TOP_DIRECTIONS = 3  # compared one by one (random weights keep their eigenvalues apart)


# ---- variants, built as their authors build them ------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A DCGAN generator as a training script defines it."""

    name: str
    inputs: int  # the first layer's in_channels: nz, plus the class inputs of a conditional model
    widths: tuple[int, ...]  # out_channels of each transposed conv; the last is nc
    first_kernel: int = 4
    bias: bool = False
    batch_norm: bool = True
    norm_affine: bool = True
    gaps: bool = False  # Dropout / Identity / a second ReLU between the blocks: indices with gaps

    def __str__(self) -> str:
        return self.name


def make_sequential(variant: Variant, seed: int = 0) -> nn.Sequential:
    """The variant's ``nn.Sequential``, weights and BatchNorm statistics drawn from ``seed``, in eval mode."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    channels = (variant.inputs, *variant.widths)
    for index, (c_in, c_out) in enumerate(zip(channels, channels[1:], strict=False)):
        stride, padding = (1, 0) if index == 0 else (2, 1)
        kernel = variant.first_kernel if index == 0 else 4
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=variant.bias))
        if index == len(variant.widths) - 1:
            break
        if variant.batch_norm:
            norm = nn.BatchNorm2d(c_out, affine=variant.norm_affine)
            norm.running_mean.normal_(0, 0.1)
            norm.running_var.uniform_(0.5, 1.5)
            norm.num_batches_tracked.fill_(1000)
            if variant.norm_affine:
                norm.weight.data.uniform_(0.5, 1.5)
                norm.bias.data.normal_(0, 0.1)
            layers.append(norm)
        layers.append(nn.ReLU(True))
        if variant.gaps:
            layers += [nn.Dropout(0.3), nn.Identity(), nn.ReLU()] if index % 2 == 0 else [nn.Dropout2d(0.5)]
    layers.append(nn.Tanh())
    return nn.Sequential(*layers).eval()


class TutorialGenerator(nn.Module):
    """The PyTorch tutorial's ``Generator``: the Sequential is ``self.main``."""

    def __init__(self, main: nn.Sequential) -> None:
        super().__init__()
        self.main = main

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class ConditionalGenerator(nn.Module):
    """A conditional DCGAN: z concatenated with a one-hot class, or with a learnt label embedding."""

    def __init__(self, main: nn.Sequential, num_classes: int, embedding_dim: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        if embedding_dim:
            self.label_emb = nn.Embedding(num_classes, embedding_dim)
        self.main = main

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "label_emb"):
            c = self.label_emb(labels)
        else:
            c = nn.functional.one_hot(labels, self.num_classes).float()
        return self.main(torch.cat([z, c], 1)[:, :, None, None])


VARIANTS = [
    Variant("tutorial-64px", 16, (32, 16, 8, 4, 3)),
    Variant("32px-bias-no-batchnorm", 8, (16, 8, 4, 3), bias=True, batch_norm=False),
    Variant("128px-gray-with-dropout-gaps", 32, (16, 16, 8, 8, 4, 1), gaps=True),
    Variant("256px-batchnorm-without-affine", 64, (8, 8, 4, 4, 4, 2, 3), norm_affine=False),
    Variant("28px-mnist-first-kernel-7", 100, (16, 8, 1), first_kernel=7, bias=True, gaps=True),
]


def images_of(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The module's own images for z (N, nz), as RGB: a grayscale DCGAN is shown on three channels."""
    with torch.no_grad():
        images = module(z[:, :, None, None])  # (N, nc, H, W)
    return images.expand(-1, 3, -1, -1)


# ---- how scripts save them: key prefixes and checkpoint wrappers ----------------------------------
def bare_keys(module: nn.Sequential) -> dict[str, torch.Tensor]:
    return module.state_dict()  # "0.weight"


def main_keys(module: nn.Sequential) -> dict[str, torch.Tensor]:
    return TutorialGenerator(module).state_dict()  # "main.0.weight"


def data_parallel_keys(module: nn.Sequential) -> dict[str, torch.Tensor]:
    return nn.DataParallel(TutorialGenerator(module)).state_dict()  # "module.main.0.weight"


def data_parallel_bare_keys(module: nn.Sequential) -> dict[str, torch.Tensor]:
    return {f"module.{key}": value for key, value in module.state_dict().items()}  # "module.0.weight"


KEYINGS = [bare_keys, main_keys, data_parallel_keys, data_parallel_bare_keys]


def training_checkpoint(state: dict) -> dict:
    """What a training loop saves: both networks, an optimiser, the epoch."""
    critic = {"main.0.weight": torch.randn(4, 3, 4, 4)}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.0002, "betas": (0.5, 0.999), "params": [0]}]}
    return {
        "epoch": 25,
        "netG_state_dict": state,
        "netD_state_dict": critic,
        "optimizerG_state_dict": optimizer,
    }


WRAPPERS: list[Callable[[dict], dict]] = [
    lambda state: state,
    training_checkpoint,
    lambda state: {"state_dict": state, "epoch": 3},
    lambda state: {"generator": state, "discriminator": {"0.weight": torch.zeros(2, 2, 4, 4)}},
    lambda state: {"netG": state, "netD": {"0.weight": torch.zeros(2, 2, 4, 4)}},
    lambda state: {"G": state, "D": {"0.weight": torch.zeros(2, 2, 4, 4)}},
    lambda state: {"generator_state_dict": state, "discriminator_state_dict": {}, "epoch": 9},
    lambda state: {"model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}},
]
WRAPPER_IDS = [
    "bare",
    "netG_state_dict",
    "state_dict",
    "generator",
    "netG",
    "G",
    "generator_state_dict",
    "model_state_dict",
]


def save(content: object, path: Path, zipped: bool = True) -> Path:
    torch.save(content, path, _use_new_zipfile_serialization=zipped)
    return path


# ---- independent SeFa ---------------------------------------------------------------------------------
def reference_directions(first_weight: torch.Tensor, nz: int) -> tuple[np.ndarray, np.ndarray]:
    """SeFa on the z rows of a first transposed conv, (in, C, k, k), from the paper's formula alone."""
    a = first_weight[:nz].detach().double().numpy().reshape(nz, -1).T  # (C*k*k, nz): one row per unit
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    eigenvalues, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(eigenvalues)[::-1]
    return eigenvalues[order], vectors[:, order].T


def assert_same_directions(generator: Generator, first_weight: torch.Tensor, nz: int) -> None:
    semantics = factorize(generator)
    eigenvalues, directions = reference_directions(first_weight, nz)
    np.testing.assert_allclose(semantics.eigenvalues, eigenvalues, rtol=EIGEN_RTOL)
    for found, expected in zip(semantics.directions[:TOP_DIRECTIONS], directions, strict=False):
        assert abs(float(found @ expected)) == pytest.approx(1.0, abs=1e-6)


# ---- any variant loads and draws what the module draws -------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_each_dcgan_variant_draws_the_modules_own_images(variant: Variant, tmp_path: Path) -> None:
    module = make_sequential(variant)
    generator = load_checkpoint(save(main_keys(module), tmp_path / "netG.pth"), device="cpu")
    z = generator.sample(3, seed=7)
    expected = images_of(module, z)
    assert generator.resolution == expected.shape[-1] == expected.shape[-2]
    assert (generator.latent_dim, generator.num_classes) == (variant.inputs, 0)
    torch.testing.assert_close(generator.synthesize(z), expected, atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=str)
def test_dcgan_sefa_directions_are_those_of_its_first_layer(variant: Variant, tmp_path: Path) -> None:
    module = make_sequential(variant)
    generator = load_checkpoint(save(bare_keys(module), tmp_path / "g.pt"), device="cpu")
    assert_same_directions(generator, module[0].weight, variant.inputs)


@pytest.mark.parametrize("keying", KEYINGS, ids=lambda keying: keying.__name__)
@pytest.mark.parametrize("wrapper", WRAPPERS, ids=WRAPPER_IDS)
def test_dcgan_loads_under_every_key_prefix_and_wrapper(
    keying: Callable, wrapper: Callable, tmp_path: Path
) -> None:
    module = make_sequential(VARIANTS[2])  # gaps in its indices
    path = save(wrapper(keying(module)), tmp_path / "checkpoint.pth")
    generator = load_checkpoint(path, device="cpu")
    z = generator.sample(2, seed=1)
    torch.testing.assert_close(generator.synthesize(z), images_of(module, z), atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "torch-legacy"])
def test_dcgan_saved_from_cuda_loads_on_the_cpu(zipped: bool, tmp_path: Path) -> None:
    """The file's storages say ``cuda:0`` (as a GPU run writes them); they are read onto the CPU."""
    module = make_sequential(VARIANTS[0])
    path = tmp_path / "netG_cuda.pth"
    path.write_bytes(tagged_as_cuda(main_keys(module), zipped))
    if not torch.cuda.is_available():  # the tag is real: torch's own default refuses the file here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    generator = load_checkpoint(path, device="cpu")
    assert generator.device.type == "cpu"
    z = generator.sample(2, seed=0)
    torch.testing.assert_close(generator.synthesize(z), images_of(module, z), atol=IMAGE_ATOL, rtol=0)


CPU_TAG = b"X\x03\x00\x00\x00cpu"  # the storage location string in torch.save's protocol-2 pickle
CUDA_TAG = b"X\x06\x00\x00\x00cuda:0"


def tagged_as_cuda(state: dict, zipped: bool) -> bytes:
    """``torch.save(state)`` with every storage's location tag rewritten to ``cuda:0``.

    Tensors cannot be put on a GPU here, so the bytes a GPU run writes are made by hand: only the
    location string differs (it is pickled once and then referenced by memo).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=zipped)
    if not zipped:
        assert buffer.getvalue().count(CPU_TAG) == 1
        return buffer.getvalue().replace(CPU_TAG, CUDA_TAG)
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert body.count(CPU_TAG) == 1
                body = body.replace(CPU_TAG, CUDA_TAG)
            target.writestr(info.filename, body)
    return out.getvalue()


def test_default_sized_tutorial_file_keeps_its_key_names(tmp_path: Path) -> None:
    """The tutorial's own keys are the model's: nothing renamed, so the default model is untouched."""
    module = make_sequential(VARIANTS[0])
    generator = load_checkpoint(
        save({"netG_state_dict": main_keys(module)}, tmp_path / "w.tar"), device="cpu"
    )
    assert set(generator.state_dict()) == set(main_keys(module))


# ---- conditional DCGANs --------------------------------------------------------------------------------
NZ, NUM_CLASSES = 20, 10
CLASS_NAMES = [f"digit {k}" for k in range(NUM_CLASSES)]
CONDITIONAL = Variant("conditional", NZ + NUM_CLASSES, (16, 8, 4, 3))  # 30 inputs: not a z size


def conditional_file(tmp_path: Path, embedding_dim: int = 0) -> tuple[ConditionalGenerator, Path]:
    inputs = NZ + (embedding_dim or NUM_CLASSES)
    module = ConditionalGenerator(
        make_sequential(Variant("c", inputs, CONDITIONAL.widths)), NUM_CLASSES, embedding_dim
    )
    if embedding_dim:
        module.label_emb.weight.data.normal_()
    path = save({"netG_state_dict": module.state_dict(), "epoch": 5}, tmp_path / "cdcgan.pth")
    return module.eval(), path


@pytest.mark.parametrize(
    "how",
    [
        {"classes": CLASS_NAMES},
        {"num_classes": NUM_CLASSES},
        {"classes": CLASS_NAMES, "num_classes": NUM_CLASSES},
    ],
    ids=["classes", "num_classes", "both"],
)
def test_conditional_dcgan_draws_the_class_it_is_asked_for(how: dict, tmp_path: Path) -> None:
    module, path = conditional_file(tmp_path)
    generator = load_generator(path, device="cpu", **how)
    assert (generator.num_classes, generator.latent_dim, generator.code_shape) == (NUM_CLASSES, NZ, (NZ,))
    assert generator.class_names == tuple(how.get("classes", map(str, range(NUM_CLASSES))))
    z = generator.sample(4, seed=2)
    labels = torch.tensor([0, 3, 9, 3])
    with torch.no_grad():
        expected = module(z, labels)
    torch.testing.assert_close(generator.synthesize(z, classes=labels), expected, atol=IMAGE_ATOL, rtol=0)
    torch.testing.assert_close(
        generator.synthesize(z, classes=7, truncation=0.5),  # what the class picker passes
        module(z, torch.full((4,), 7)).detach(),
        atol=IMAGE_ATOL,
        rtol=0,
    )


def test_conditional_dcgan_sefa_uses_only_the_z_rows(tmp_path: Path) -> None:
    module, path = conditional_file(tmp_path)
    generator = load_generator(path, device="cpu", num_classes=NUM_CLASSES)
    assert generator.layer_weight(0).shape == (16 * 4 * 4, NZ)
    assert_same_directions(generator, module.main[0].weight, NZ)


def test_conditional_dcgan_with_a_label_embedding_needs_no_class_list(tmp_path: Path) -> None:
    module, path = conditional_file(tmp_path, embedding_dim=6)
    generator = load_checkpoint(path, device="cpu")
    assert (generator.num_classes, generator.latent_dim) == (NUM_CLASSES, NZ)
    z = generator.sample(3, seed=4)
    labels = torch.tensor([1, 5, 8])
    with torch.no_grad():
        expected = module(z, labels)
    torch.testing.assert_close(generator.synthesize(z, classes=labels), expected, atol=IMAGE_ATOL, rtol=0)
    assert_same_directions(generator, module.main[0].weight, NZ)
    named = load_checkpoint(path, device="cpu", classes=CLASS_NAMES)
    assert named.class_names == tuple(CLASS_NAMES)


def test_label_embedding_in_a_sequential_under_data_parallel_loads(tmp_path: Path) -> None:
    module, path = conditional_file(tmp_path, embedding_dim=6)
    state = {
        f"module.{key}".replace("label_emb.", "label_emb.0."): value
        for key, value in module.state_dict().items()
    }
    generator = load_checkpoint(save(state, tmp_path / "dp.pth"), device="cpu")
    z = generator.sample(2, seed=5)
    with torch.no_grad():
        expected = module(z, torch.tensor([2, 2]))
    torch.testing.assert_close(generator.synthesize(z, classes=2), expected, atol=IMAGE_ATOL, rtol=0)


def write_config(tmp_path: Path, source: str, **extra: object) -> Path:
    config = tmp_path / "config.yaml"
    models = [{"name": "mnist", "source": source, **extra}]
    config.write_text(yaml.safe_dump({"version": 1, "models": models}), encoding="utf-8")
    return config


def test_conditional_dcgan_takes_its_classes_from_config_yaml(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    module, _ = conditional_file(tmp_path / "checkpoints")
    config = load_config(write_config(tmp_path, "checkpoints/cdcgan.pth", classes=CLASS_NAMES))
    assert config.entry("mnist").classes == tuple(CLASS_NAMES)
    generator = load_generator("mnist", device="cpu", config=config)
    assert generator.class_names == tuple(CLASS_NAMES) and generator.latent_dim == NZ
    z = generator.sample(2, seed=0)
    with torch.no_grad():
        expected = module(z, torch.tensor([4, 4]))
    torch.testing.assert_close(generator.synthesize(z, classes=4), expected, atol=IMAGE_ATOL, rtol=0)


def test_empty_class_list_in_config_loads_an_unusual_z_size_as_unconditional(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    module = make_sequential(CONDITIONAL)
    save(main_keys(module), tmp_path / "checkpoints" / "odd.pth")
    generator = load_generator(
        "mnist", "cpu", load_config(write_config(tmp_path, "checkpoints/odd.pth", classes=[]))
    )
    assert (generator.latent_dim, generator.num_classes) == (CONDITIONAL.inputs, 0)
    z = generator.sample(2, seed=0)
    torch.testing.assert_close(generator.synthesize(z), images_of(module, z), atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("classes", ["cats", [["a"]], ["a", "a"], [""], [True]], ids=repr)
def test_config_refuses_a_class_list_that_is_not_one(classes: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\] \('mnist'\)\.classes"):
        load_config(write_config(tmp_path, "default", classes=classes))


# ---- refusals that say what the file is ----------------------------------------------------------------
def refusal(path: Path, **how: object) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_generator(path, device="cpu", **how)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return caught.value.problem


def test_conditional_dcgan_without_its_classes_is_refused_saying_so(tmp_path: Path) -> None:
    path = save(main_keys(make_sequential(Variant("108", 108, (8, 4, 3)))), tmp_path / "cdcgan.pth")
    assert refusal(path) == (
        "DCGAN-like state dict: the first layer takes 108 inputs; if the model is class-conditional, "
        "list its classes in config.yaml (classes: [] if it is not)"
    )


def test_more_classes_than_inputs_are_refused(tmp_path: Path) -> None:
    path = save(main_keys(make_sequential(Variant("c", 12, (8, 4, 3)))), tmp_path / "c.pth")
    assert "takes 12 inputs, too few for z and the 12 classes listed" in refusal(path, num_classes=12)


def test_class_list_that_does_not_fit_the_label_embedding_is_refused(tmp_path: Path) -> None:
    _, path = conditional_file(tmp_path, embedding_dim=6)
    assert "label embedding has 10 classes, but 3 are listed" in refusal(path, classes=["a", "b", "c"])


def test_class_names_name_a_conditional_model_of_another_architecture(tmp_path: Path) -> None:
    """The list is checked against any model's own class count, then names its classes."""
    folder = write_checkpoint(tmp_path / "biggan", TINY_CONFIG, reference_state_dict(TINY_CONFIG))
    names = [f"class {k}" for k in range(TINY_CONFIG["num_classes"])]
    assert load_generator(folder, device="cpu", classes=names).class_names == tuple(names)
    assert "3 classes are listed, but the model has 5" in refusal(
        folder / "pytorch_model.bin", classes=names[:3]
    )


def _without(state: dict, key: str) -> dict:
    return {name: value for name, value in state.items() if name != key}


BROKEN = [
    (
        "missing-conv",
        lambda s: _without(s, "module.main.3.weight"),
        "missing key 'module.main.3.weight': a BatchNorm follows no conv",
    ),
    (
        "conv-bias-without-its-weight",
        lambda s: {**_without(s, "module.main.3.weight"), "module.main.3.bias": torch.zeros(16)},
        "missing key 'module.main.3.weight' beside its bias",
    ),
    (
        "missing-batchnorm-weight",
        lambda s: _without(s, "module.main.4.weight"),
        "missing key 'module.main.4.weight' of a BatchNorm layer",
    ),
    (
        "odd-key-in-a-batchnorm",
        lambda s: {**s, "module.main.1.scale": torch.ones(32)},
        "'module.main.1.scale'",
    ),
    (
        "missing-running-var",
        lambda s: _without(s, "module.main.1.running_var"),
        "missing key 'module.main.1.running_var' of a BatchNorm layer",
    ),
    (
        "5x5-kernel",
        lambda s: {**s, "module.main.3.weight": torch.zeros(32, 16, 5, 5)},
        "'module.main.3.weight' has shape (32, 16, 5, 5): a 5x5 kernel, expected a 4x4 kernel",
    ),
    (
        "broken-channel-chain",
        lambda s: {**s, "module.main.3.weight": torch.zeros(24, 16, 4, 4)},
        "it takes 24 channels, but the layer before gives 32",
    ),
    ("a-linear-layer", lambda s: {**s, "module.main.2.weight": torch.zeros(4, 4)}, "'module.main.2.weight'"),
    (
        "stray-key",
        lambda s: {**s, "module.mapping.weight": torch.zeros(4)},
        "unexpected key 'module.mapping.weight'",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), [(b, e) for _, b, e in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_broken_dcgan_is_refused_naming_the_key_as_the_file_spells_it(
    breakage: Callable, expected: str, tmp_path: Path
) -> None:
    state = data_parallel_keys(
        make_sequential(VARIANTS[0])
    )  # module.main.{0,1,3,4,...}: conv, BatchNorm, ReLU
    problem = refusal(save(breakage(state), tmp_path / "netG.pth"))
    assert problem.startswith("DCGAN-like state dict: ") and expected in problem, problem


def test_dcgan_that_draws_two_channels_is_refused(tmp_path: Path) -> None:
    path = save(main_keys(make_sequential(Variant("2ch", 16, (8, 4, 2)))), tmp_path / "g.pth")
    assert "the last layer draws 2 channels; an image has 1 (gray) or 3 (RGB)" in refusal(path)


WHOLE_MODEL = "refused to load: the file is a whole pickled model"
STATE_DICT_HINT = 'torch.save(netG.state_dict(), "netG.pth")'


@pytest.mark.parametrize(
    ("make", "zipped", "asks_for"),
    [
        (
            lambda: TutorialGenerator(make_sequential(VARIANTS[0])),
            True,
            "test_dcgan_family.TutorialGenerator",
        ),
        (
            lambda: TutorialGenerator(make_sequential(VARIANTS[0])),
            False,
            "test_dcgan_family.TutorialGenerator",
        ),
        (lambda: make_sequential(VARIANTS[0]), False, "torch.nn.modules.container.Sequential"),
    ],
    ids=["package-class-torch-zip", "package-class-torch-legacy", "sequential-torch-legacy"],
)
def test_whole_pickled_model_is_refused_with_how_to_save_its_weights(
    make: Callable, zipped: bool, asks_for: str, tmp_path: Path
) -> None:
    path = save(make(), tmp_path / "netG.pth", zipped=zipped)
    message = refusal(path)
    assert message.startswith(WHOLE_MODEL) and f"'{asks_for}'" in message and STATE_DICT_HINT in message
