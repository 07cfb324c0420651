"""Original TensorFlow pickles (PGGAN, StyleGAN, StyleGAN2): they load without TensorFlow, draw what the
same weights draw in the PyTorch layouts, convert once, and hostile ones stay refused.

The shared ``tf_*`` fixtures are checked against the reference outputs of the fixtures they were
written from; ``tf_pickle_writer`` writes other sizes (64 to 256 px, conditional, non-default
mapping widths, minimal ``static_kwargs``) from random PyTorch state dicts, which the existing
genforce and NVIDIA layouts load for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir
from pickle_factory import standin_modules
from test_genforce import assert_semantics_match
from tf_pickle_writer import (
    MARKER_SOURCE,
    Network,
    network_state,
    pggan_network,
    random_pggan_state,
    random_stylegan2_state,
    random_stylegan_state,
    stylegan2_network,
    stylegan_network,
    write_tf_pickle,
)

from sefa_core import cli, formats
from sefa_core.errors import CheckpointError
from sefa_core.factorize import factorize
from sefa_core.formats import cache, load_checkpoint
from sefa_core.formats.containers import RawCheckpoint, read_checkpoint
from sefa_core.formats.containers.pickles import TensorFlowNetwork
from sefa_core.formats.containers.safetensors import write_safetensors
from sefa_core.formats.layouts import build_conversion, converted, tensorflow
from sefa_core.formats.layouts.nvidia import build_network
from sefa_core.models.base import Generator
from sefa_core.models.pggan import PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator

IMAGE_ATOL = 1e-3  # the fixtures' README (§3): float32 convolutions differ across CPUs and threads
LATENT_ATOL = 1e-5
EIGENVALUE_RTOL = 1e-4
EDIT_DISTANCE = 3.0  # sefa.py's edit: +3.0 along direction 0
TRUNC_PSI = 0.7
GENFORCE_TRUNC_LAYERS = 8  # sefa.py's CLI default; the NVIDIA fixtures truncate every row
BATCH = 4
TF_FIXTURES = {"tf_pggan_32": "pggan", "tf_stylegan_32": "stylegan", "tf_stylegan2_32": "stylegan2"}
SOURCE_FIXTURES = {"tf_pggan_32": "genforce_pggan_32", "tf_stylegan_32": "genforce_stylegan_32"}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test converts into its own cache, never the project's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A file only executed code from a pickle would create."""
    return tmp_path / "payload-ran"


def _system(command: str) -> None:
    raise AssertionError("stand-in only: the pickle names os.system, nothing calls this")


# Pickled under a stand-in module name, which the bytes then rename to os (protocol 3's GLOBAL has no length).
_system.__module__, _system.__name__, _system.__qualname__ = "sefa_standin_os", "system", "system"
STANDIN_SYSTEM = b"csefa_standin_os\nsystem\n"


class SystemCall:
    """A value that unpickles as ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _system, (self.command,)


def images(generator: Generator, z: torch.Tensor, **conditioning: object) -> np.ndarray:
    return generator.synthesize(generator.to_edit_space(z), **conditioning).numpy()


def latents(generator: Generator, n: int = BATCH, seed: int = 7) -> torch.Tensor:
    return generator.sample_latents(n, seed)


# ---- the shared fixtures ------------------------------------------------------------------------
@pytest.mark.parametrize("name", TF_FIXTURES)
def test_tf_fixture_draws_the_images_of_the_fixture_it_was_written_from(name: str) -> None:
    folder = fixture_dir(name)
    generator = load_checkpoint(folder / "network.pkl", device="cpu")
    kind = TF_FIXTURES[name]
    assert generator.architecture == kind
    assert generator.source_format == f"TensorFlow {tensorflow.KIND_TITLES[kind]} pickle (Gs)"
    assert generator.resolution == 32
    z = torch.from_numpy(np.load(folder / "z.npy"))
    np.testing.assert_allclose(images(generator, z), np.load(folder / "img.npy"), rtol=0, atol=IMAGE_ATOL)
    if kind == "pggan":
        return
    codes = generator.to_edit_space(z)
    np.testing.assert_allclose(codes.numpy(), np.load(folder / "wp.npy"), rtol=0, atol=LATENT_ATOL)
    trunc_layers = GENFORCE_TRUNC_LAYERS if kind == "stylegan" else None
    truncated = generator.to_edit_space(z, TRUNC_PSI, trunc_layers)
    np.testing.assert_allclose(
        truncated.numpy(), np.load(folder / "wp_trunc07.npy"), rtol=0, atol=LATENT_ATOL
    )
    image = generator.synthesize(truncated).numpy()
    np.testing.assert_allclose(image, np.load(folder / "img_trunc07.npy"), rtol=0, atol=IMAGE_ATOL)


@pytest.mark.parametrize("name", SOURCE_FIXTURES)
@pytest.mark.parametrize("spec", ["all", "0-1"])
def test_tf_fixture_gives_the_reference_sefa_directions(name: str, spec: str) -> None:
    folder = fixture_dir(name)
    generator = load_checkpoint(folder / "network.pkl", device="cpu")
    assert_semantics_match(generator, folder, spec)


@pytest.mark.parametrize("name", SOURCE_FIXTURES)
def test_tf_fixture_edit_matches_the_reference_edit(name: str) -> None:
    folder = fixture_dir(name)
    generator = load_checkpoint(folder / "network.pkl", device="cpu")
    z = torch.from_numpy(np.load(folder / "z.npy"))
    direction = torch.from_numpy(np.load(folder / "sefa_all_vectors.npy")[0])
    codes = generator.to_edit_space(z)
    if generator.edit_space == "z":
        codes = codes + EDIT_DISTANCE * direction
    else:
        codes = codes + EDIT_DISTANCE * direction[None, None, :]
    edited = generator.synthesize(codes).numpy()
    np.testing.assert_allclose(edited, np.load(folder / "img_edit.npy"), rtol=0, atol=IMAGE_ATOL)


def test_tf_stylegan2_fixture_has_the_sefa_of_its_nvidia_source() -> None:
    tf_generator = load_checkpoint(fixture_dir("tf_stylegan2_32") / "network.pkl", device="cpu")
    source = load_checkpoint(fixture_dir("nvidia_stylegan2ada_32") / "nvidia_state.pt", device="cpu")
    ours, theirs = factorize(tf_generator, "all"), factorize(source, "all")
    np.testing.assert_allclose(ours.eigenvalues, theirs.eigenvalues, rtol=EIGENVALUE_RTOL)
    cosines = np.abs(np.sum(ours.directions * theirs.directions, axis=1))
    assert cosines[:8].min() > 1 - 1e-4


# ---- other sizes, written here --------------------------------------------------------------------
def _same_generators(tf_generator: Generator, reference: Generator, **conditioning: object) -> None:
    assert tf_generator.code_shape == reference.code_shape
    assert tf_generator.layer_names == reference.layer_names
    z = latents(reference)
    expected = images(reference, z, **conditioning)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        images(tf_generator, z, **conditioning), expected, rtol=0, atol=IMAGE_ATOL * scale
    )
    ours, theirs = factorize(tf_generator, "all"), factorize(reference, "all")
    np.testing.assert_allclose(ours.eigenvalues, theirs.eigenvalues, rtol=EIGENVALUE_RTOL)


PGGAN_SIZES = {64: [32, 32, 16, 16, 8], 128: [24, 24, 16, 16, 8, 8], 256: [16, 16, 16, 8, 8, 8, 4]}


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("resolution", PGGAN_SIZES)
def test_pggan_pickle_of_any_size_draws_what_its_weights_draw(
    resolution: int, protocol: int, tmp_path: Path
) -> None:
    channels = PGGAN_SIZES[resolution]
    state = random_pggan_state(z_dim=48, channels=channels, seed=resolution)
    path = write_tf_pickle(tmp_path / "karras2018iclr.pkl", pggan_network(state), protocol=protocol)
    generator = load_checkpoint(path, device="cpu")
    reference = PGGANGenerator(48, channels)
    reference.load_weights(state)
    assert generator.resolution == resolution and generator.num_classes == 0
    _same_generators(generator, reference)


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_stylegan_pickle_of_any_size_draws_what_its_weights_draw(resolution: int, tmp_path: Path) -> None:
    channels = PGGAN_SIZES[resolution]
    state = random_stylegan_state(z_dim=40, w_dim=24, mapping_hidden=56, mapping_layers=3, channels=channels)
    path = write_tf_pickle(tmp_path / "karras2019stylegan.pkl", stylegan_network(state), protocol=4)
    generator = load_checkpoint(path, device="cpu")
    reference = StyleGANGenerator(40, 24, 56, 3, channels)
    reference.load_weights(state)
    assert generator.resolution == resolution
    fused = [name for name in generator.layer_names if "fused" in name]
    assert len(fused) == sum(res >= 128 for res in (4 * 2**b for b in range(1, len(channels))))
    _same_generators(generator, reference)


def test_stylegan_pickle_with_its_own_mapping_learning_rate_draws_the_same(tmp_path: Path) -> None:
    channels = PGGAN_SIZES[64]
    state = random_stylegan_state(z_dim=32, w_dim=32, mapping_hidden=32, mapping_layers=2, channels=channels)
    network = stylegan_network(state, mapping_lr_multiplier=0.1)
    generator = load_checkpoint(write_tf_pickle(tmp_path / "g.pkl", network), device="cpu")
    reference = StyleGANGenerator(32, 32, 32, 2, channels)
    reference.load_weights(state)
    _same_generators(generator, reference)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_stylegan2_pickle_of_any_size_draws_what_its_weights_draw(
    resolution: int, version: int, tmp_path: Path
) -> None:
    channels = PGGAN_SIZES[resolution]
    state = random_stylegan2_state(z_dim=40, w_dim=24, mapping_hidden=56, mapping_layers=4, channels=channels)
    network = stylegan2_network(state, version=version)
    generator = load_checkpoint(write_tf_pickle(tmp_path / "stylegan2-config-f.pkl", network), device="cpu")
    reference = build_network(state, {"synthesis_kwargs": {"conv_clamp": None}})
    assert generator.resolution == resolution and generator.latent_dim == 40
    _same_generators(generator, reference)


def test_stylegan2_static_kwargs_give_what_shapes_cannot(tmp_path: Path) -> None:
    state = random_stylegan2_state(
        z_dim=32, w_dim=32, mapping_hidden=32, mapping_layers=2, channels=[16, 16, 8]
    )
    static = {"mapping_lrmul": 0.05, "conv_clamp": 0.5}  # a clamp that bites on these random weights
    generator = load_checkpoint(
        write_tf_pickle(tmp_path / "g.pkl", stylegan2_network(state, static_kwargs=static))
    )
    reference = build_network(
        state, {"mapping_kwargs": {"lr_multiplier": 0.05}, "synthesis_kwargs": {"conv_clamp": 0.5}}
    )
    default = build_network(state, {"synthesis_kwargs": {"conv_clamp": None}})
    _same_generators(generator, reference)
    z = latents(reference)
    assert np.abs(images(generator, z) - images(default, z)).max() > 0.1


def test_one_network_alone_loads_and_says_so(tmp_path: Path) -> None:
    state = random_pggan_state(z_dim=16, channels=[16, 8, 8])
    generator = load_checkpoint(write_tf_pickle(tmp_path / "gs.pkl", pggan_network(state), decoys=False))
    assert generator.source_format == "TensorFlow PGGAN pickle (one network)"


def test_conditional_pggan_loads_with_its_classes(tmp_path: Path) -> None:
    state = random_pggan_state(z_dim=32, channels=[32, 16, 16, 8], num_classes=5)
    path = write_tf_pickle(tmp_path / "conditional.pkl", pggan_network(state, num_classes=5))
    generator = load_checkpoint(path, device="cpu")
    assert generator.num_classes == 5 and generator.class_names == ("0", "1", "2", "3", "4")
    assert generator.latent_dim == 32  # the edit space is z alone
    reference = PGGANGenerator(32, [32, 16, 16, 8], num_classes=5)
    reference.load_weights(state)
    _same_generators(generator, reference, classes=[0, 1, 2, 4])
    z = latents(generator)
    assert np.abs(images(generator, z, classes=1) - images(generator, z, classes=3)).max() > 10 * IMAGE_ATOL
    named = load_checkpoint(path, device="cpu", classes=["cat", "dog", "car", "bus", "sky"])
    assert named.class_names == ("cat", "dog", "car", "bus", "sky")


# ---- refusals that say what the file is -----------------------------------------------------------
def _stylegan2_gs(tmp_path: Path, **overrides: object) -> Network:
    state = random_stylegan2_state(z_dim=16, w_dim=16, mapping_hidden=16, mapping_layers=2, channels=[8, 8])
    return stylegan2_network(state, **overrides)


def test_missing_variable_is_named_as_the_file_names_it(tmp_path: Path) -> None:
    gs = _stylegan2_gs(tmp_path)
    synthesis = gs.__getstate__()["components"]["synthesis"].__getstate__()
    synthesis["variables"] = [
        (name, value) for name, value in synthesis["variables"] if name != "4x4/Const/const"
    ]
    path = write_tf_pickle(tmp_path / "g.pkl", gs)
    with pytest.raises(CheckpointError) as refusal:
        load_checkpoint(path)
    assert str(refusal.value) == f"{path}: TensorFlow StyleGAN2 pickle: Gs has no 'synthesis/4x4/Const/const'"


def test_unsupported_architecture_is_refused_naming_the_kwarg(tmp_path: Path) -> None:
    path = write_tf_pickle(
        tmp_path / "g.pkl", _stylegan2_gs(tmp_path, static_kwargs={"architecture": "resnet"})
    )
    with pytest.raises(
        CheckpointError, match="Gs was built with architecture='resnet'; only 'skip' is supported"
    ):
        load_checkpoint(path)


def test_variable_holding_something_other_than_an_array_is_refused(tmp_path: Path) -> None:
    gs = _stylegan2_gs(tmp_path)
    gs.__getstate__()["variables"].append(("dlatent_extra", "not an array"))
    path = write_tf_pickle(tmp_path / "g.pkl", gs)
    with pytest.raises(
        CheckpointError, match="network 'Gs' has variable 'dlatent_extra' holding a str, not a"
    ):
        read_checkpoint(path)


def test_tf_pickle_asking_for_os_system_is_refused_naming_the_dialect(tmp_path: Path, marker: Path) -> None:
    gs = _stylegan2_gs(tmp_path)
    gs.__getstate__()["variables"].append(("dlatent_extra", SystemCall(f"touch {marker}")))
    path = tmp_path / "g.pkl"
    with standin_modules((_system,)):
        write_tf_pickle(path, gs, protocol=3)
    assert STANDIN_SYSTEM in path.read_bytes()
    path.write_bytes(path.read_bytes().replace(STANDIN_SYSTEM, b"cos\nsystem\n"))
    with pytest.raises(CheckpointError) as refusal:
        load_checkpoint(path)
    message = str(refusal.value)
    assert "the global 'os.system', which is not allowed in a TensorFlow network pickle" in message, message
    assert not marker.exists()


def test_build_module_source_is_never_run(tmp_path: Path, marker: Path) -> None:
    state = random_pggan_state(z_dim=16, channels=[16, 8])
    path = write_tf_pickle(tmp_path / "g.pkl", pggan_network(state, marker=marker))
    content = read_checkpoint(path).content
    assert all(isinstance(network, TensorFlowNetwork) for network in content)
    assert all("build_module_src" not in network.state for network in content)
    load_checkpoint(path)
    assert not marker.exists()
    exec(compile(MARKER_SOURCE.format(marker=str(marker)), "build_module_src", "exec"), {})  # noqa: S102
    assert marker.exists(), "the source does write the marker when run: the check above means something"


@pytest.mark.parametrize("kept", [0.01, 0.25, 0.5, 0.9, 0.999])
def test_truncated_tf_pickle_is_refused_in_one_line(kept: float, tmp_path: Path) -> None:
    path = write_tf_pickle(tmp_path / "g.pkl", _stylegan2_gs(tmp_path))
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * kept)])
    with pytest.raises(CheckpointError) as refusal:
        load_checkpoint(path)
    assert str(refusal.value) == f"{path}: the file is truncated or corrupt"


def test_component_that_is_not_a_network_is_refused(tmp_path: Path) -> None:
    gs = _stylegan2_gs(tmp_path)
    gs.__getstate__()["components"]["mapping"] = {"variables": []}
    path = write_tf_pickle(tmp_path / "g.pkl", gs)
    with pytest.raises(CheckpointError, match="component 'mapping' that is a dict, not a network"):
        read_checkpoint(path)


def test_discriminator_alone_is_refused_as_not_a_generator(tmp_path: Path) -> None:
    d = Network(
        network_state(
            version=4,
            name="D",
            build_func_name="D_stylegan2",
            static_kwargs={"resolution": 8},
            variables={"Output/weight": np.ones((4, 1), np.float32)},
        )
    )
    path = write_tf_pickle(tmp_path / "d.pkl", d, decoys=False)
    with pytest.raises(
        CheckpointError, match="D .built by 'D_stylegan2'. is not a PGGAN, StyleGAN or StyleGAN2"
    ):
        load_checkpoint(path)


# ---- convert once ----------------------------------------------------------------------------------
@pytest.fixture
def stylegan2_file(tmp_path: Path) -> Path:
    state = random_stylegan2_state(
        z_dim=16, w_dim=16, mapping_hidden=24, mapping_layers=2, channels=[16, 8, 8]
    )
    return write_tf_pickle(tmp_path / "stylegan2-test.pkl", stylegan2_network(state))


def _conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files ``load_checkpoint`` unpickles and converts (a cache hit reads neither)."""
    runs: list[Path] = []
    read = formats.read_checkpoint

    def spy(path: Path, digest: str | None = None) -> RawCheckpoint:
        runs.append(path)
        return read(path, digest)

    monkeypatch.setattr(formats, "read_checkpoint", spy)
    return runs


def test_second_load_comes_from_the_cache(
    stylegan2_file: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _conversions(monkeypatch)
    first = load_checkpoint(stylegan2_file, device="cpu")
    entry = cache.cache_entry(first.digest)
    assert entry.is_file() and entry.parent == cache_dir
    second = load_checkpoint(stylegan2_file, device="cpu")
    assert runs == [stylegan2_file]
    assert second.source_format == first.source_format == "TensorFlow StyleGAN2 pickle (Gs)"
    z = latents(first)
    np.testing.assert_array_equal(images(second, z), images(first, z))


def test_cache_entry_of_another_file_is_rebuilt(
    stylegan2_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _conversions(monkeypatch)
    generator = load_checkpoint(stylegan2_file, device="cpu")
    other_state = random_pggan_state(z_dim=16, channels=[16, 8], seed=5)
    other = load_checkpoint(write_tf_pickle(tmp_path / "other.pkl", pggan_network(other_state)), device="cpu")
    # The other file's conversion under this file's key: its digest inside does not match.
    cache.cache_entry(other.digest).replace(cache.cache_entry(generator.digest))
    again = load_checkpoint(stylegan2_file, device="cpu")
    assert again.architecture == "stylegan2" and len(runs) == 3
    _, metadata = cache.read_conversion(cache.cache_entry(generator.digest))
    assert metadata[converted.DIGEST_KEY] == generator.digest


def test_damaged_cache_entry_is_rebuilt(stylegan2_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _conversions(monkeypatch)
    generator = load_checkpoint(stylegan2_file, device="cpu")
    cache.cache_entry(generator.digest).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    load_checkpoint(stylegan2_file, device="cpu")
    assert len(runs) == 2


def test_unwritable_cache_only_costs_the_conversion(
    stylegan2_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(blocker / "cache"))
    assert load_checkpoint(stylegan2_file, device="cpu").architecture == "stylegan2"


def test_sefa_convert_writes_a_safetensors_that_builds_the_same_generator(
    stylegan2_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "stylegan2.safetensors"
    assert cli.main(["convert", str(stylegan2_file), str(output)]) == 0
    assert "TensorFlow StyleGAN2 pickle (Gs)" in capsys.readouterr().out
    conversion, metadata = cache.read_conversion(output)
    loaded = load_checkpoint(stylegan2_file, device="cpu")
    assert metadata[converted.DIGEST_KEY] == loaded.digest and metadata[converted.TARGET_KEY] == "nvidia"
    assert "synthesis.b4.const" in conversion.state and "mapping.w_avg" in conversion.state
    rebuilt = build_conversion(conversion, output)
    reloaded = load_checkpoint(output, device="cpu")  # the converted file is a checkpoint too
    assert reloaded.source_format == "converted safetensors (sefa convert)"
    z = latents(loaded)
    np.testing.assert_array_equal(images(rebuilt, z), images(loaded, z))
    np.testing.assert_array_equal(images(reloaded, z), images(loaded, z))


def test_safetensors_without_our_metadata_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"weight": torch.zeros(2, 2)}, {"format": "pt"})
    with pytest.raises(
        CheckpointError, match="a safetensors file without SeFa Studio's 'sefa.source_sha256'"
    ):
        load_checkpoint(path)


def test_sefa_convert_refuses_a_file_that_needs_no_conversion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"generator": random_pggan_state(z_dim=16, channels=[16, 8])}, path)
    assert cli.main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 2
    error = capsys.readouterr().err
    assert "genforce .pth loads as it is" in error and "\n" not in error.strip()
    assert not (tmp_path / "out.safetensors").exists()
