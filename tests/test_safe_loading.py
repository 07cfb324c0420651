"""Loading files from strangers: the hostile corpus is refused in one line, and runs nothing.

Every hostile kind is written here from scratch (pickle gadgets in each container torch and
NVIDIA use, globals outside the allowlist, corrupt files, zip bombs, nesting bombs) and must be
refused by ``read_checkpoint`` and ``load_checkpoint`` with a one-line ``CheckpointError`` naming the
file and the reason, while a marker file that any executed payload would create stays absent.
Real NVIDIA network pickles, written by ``pickle_factory``, must still load bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import random
import shlex
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fixture_dir
from pickle_factory import (
    StandInModule,
    dump_network_pickle,
    load_fixture_generator,
    module_tree,
    write_fixture_network_pickle,
    write_network_pickle,
)

from sefa_core.errors import CheckpointError
from sefa_core.formats import load_checkpoint
from sefa_core.formats.containers import pickles, read_checkpoint
from sefa_core.formats.containers.pickles import PersistentObject, load_network_pickle
from sefa_core.formats.layouts.nvidia import init_kwargs, module_state_dict

PROBE_MODULE = "sefa_hostile_probe"  # what the importlib gadget imports; importing it writes the marker
NESTING_BOMB_DEPTH = 10_000  # far past Python's recursion limit
LAUGHS_LEVELS = 60  # 2**60 paths through 61 lists
MODULE_TREE_DEPTH = 60  # persistent modules nested in each other, 4 containers per level
ZIP_BOMB_BYTES = 20_000_000
CLAIMED_ENTRY_BYTES = 0xFFFFFFF0
NVIDIA_FIXTURES = ("nvidia_stylegan2ada_32", "nvidia_stylegan3t_32")


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file only an executed payload would create; the probe module creates it on import."""
    marker = tmp_path / "payload-ran"
    (tmp_path / f"{PROBE_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PROBE_MODULE, raising=False)
    return marker


# ---- writing hostile bytes -------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """``module.name(*args)`` as pickle opcodes; args are plain values or Calls themselves."""

    module: str
    name: str
    args: tuple[object, ...] = ()


def _opcodes(value: object) -> bytes:
    if isinstance(value, Call):  # GLOBAL, MARK, args..., TUPLE, REDUCE
        return f"c{value.module}\n{value.name}\n(".encode() + b"".join(map(_opcodes, value.args)) + b"tR"
    return pickle.dumps(value, protocol=3)[2:-1]  # without PROTO and STOP (3: bytes as BINBYTES)


def call_pickle(module: str, name: str, *args: object, protocol: int = 2) -> bytes:
    """A pickle whose only act is ``module.name(*args)``: the classic code-execution gadget."""
    return bytes([0x80, protocol]) + _opcodes(Call(module, name, args)) + b"."


def legacy_torch_stream(payload: bytes) -> bytes:
    """torch's pre-zip ``torch.save`` layout (``_use_new_zipfile_serialization=False``) around a payload."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
    return b"".join(
        [
            pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2),
            pickle.dumps(torch.serialization.PROTOCOL_VERSION, protocol=2),
            pickle.dumps(sys_info, protocol=2),
            payload,
            pickle.dumps([], protocol=2),  # storage keys
        ]
    )


def torch_zip(data_pkl: bytes) -> bytes:
    """A torch zip checkpoint (``.pt``) whose ``data.pkl`` is the payload."""
    saved, rewritten = io.BytesIO(), io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, saved)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(rewritten, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else source.read(info))
    return rewritten.getvalue()


def legacy_tar(payload: bytes) -> bytes:
    """torch < 0.4's tar layout: ``sys_info``, ``pickle``, ``storages`` and ``tensors`` members."""
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        "pickle": payload,
        "storages": pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2),  # no storages, no views
        "tensors": pickle.dumps(0, protocol=2),
    }
    written = io.BytesIO()
    with tarfile.open(fileobj=written, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return written.getvalue()


def zip_claiming(entry_suffix: bytes, claimed: int) -> bytes:
    """A torch zip whose entry claims ``claimed`` bytes in its local and central headers."""
    saved = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, saved)
    data = bytearray(saved.getvalue())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if bytes(data[start + 46 : start + 46 + name_length]).endswith(entry_suffix):
            struct.pack_into("<I", data, start + 24, claimed)
            local_header = struct.unpack_from("<I", data, start + 42)[0]
            struct.pack_into("<I", data, local_header + 22, claimed)
        start += 4
    return bytes(data)


def deflate_bomb() -> bytes:
    """A valid torch zip whose compressed tensor inflates a thousandfold."""
    saved, bomb = io.BytesIO(), io.BytesIO()
    torch.save({"weight": torch.zeros(ZIP_BOMB_BYTES // 4)}, saved)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info))
    return bomb.getvalue()


def nested_lists(depth: int) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def billion_laughs() -> bytes:
    lists: list[list] = [[]]
    for _ in range(LAUGHS_LEVELS):
        lists.append([lists[-1], lists[-1]])
    return pickle.dumps(lists[-1], protocol=2)


def self_containing_list() -> bytes:
    cycle: list = []
    cycle.append(cycle)
    return pickle.dumps(cycle, protocol=2)


def write_nested_modules(path: Path) -> None:
    module = module_tree({"weight": torch.zeros(1)}, "FullyConnectedLayer")
    for _ in range(MODULE_TREE_DEPTH):
        module = StandInModule(
            "SynthesisBlock", {"_parameters": {}, "_buffers": {}, "_modules": {"b": module}}
        )
    dump_network_pickle(path, {"G_ema": module})


def storage_bytes() -> bytes:
    """The bytes a network pickle hands ``_load_from_bytes`` for one two-float storage."""
    opcodes = pickletools.genops(pickle.dumps(torch.zeros(2), protocol=4))
    return next(argument for opcode, argument, _ in opcodes if "BINBYTES" in opcode.name)


def tensor_record(storage: bytes, size: int) -> bytes:
    """``_rebuild_tensor_v2(_load_from_bytes(storage), 0, (size,), (1,), False, OrderedDict())``."""
    storage_call = Call("torch.storage", "_load_from_bytes", (storage,))
    hooks = Call("collections", "OrderedDict")
    return call_pickle("torch._utils", "_rebuild_tensor_v2", storage_call, 0, (size,), (1,), False, hooks)


# ---- the corpus -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Hostile:
    """One kind of hostile file: its name, suffix, how to write it, and what the refusal must say."""

    name: str
    suffix: str
    write: Callable[[Path, Path], None]  # (file, marker)
    reason: str


def _bytes(make: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    return lambda path, marker: path.write_bytes(make(marker))


# Code-execution gadgets: (module, name, marker -> args); each would create the marker if run.
GADGETS: dict[str, tuple[str, str, Callable[[Path], tuple[object, ...]]]] = {
    "os.system": ("os", "system", lambda m: (f"touch {shlex.quote(str(m))}",)),
    "posix.system": ("posix", "system", lambda m: (f"touch {shlex.quote(str(m))}",)),
    "builtins.eval": ("builtins", "eval", lambda m: (f"open({str(m)!r}, 'w').close()",)),
    "builtins.exec": ("builtins", "exec", lambda m: (f"open({str(m)!r}, 'w').close()",)),
    "subprocess.Popen": ("subprocess", "Popen", lambda m: (["touch", str(m)],)),
    "importlib.import_module": ("importlib", "import_module", lambda m: (PROBE_MODULE,)),
    # NVIDIA's storages are torch.load(bytes) calls: an unrestricted loader runs the inner pickle.
    "load_from_bytes": (
        "torch.storage",
        "_load_from_bytes",
        lambda m: (legacy_torch_stream(call_pickle("os", "system", f"touch {shlex.quote(str(m))}")),),
    ),
}
CONTAINERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "pkl": (".pkl", lambda payload: payload),
    "torch-zip": (".pt", torch_zip),
    "torch-legacy": (".pth", legacy_torch_stream),
    "legacy-tar": (".tar", legacy_tar),
}
# Globals real files never need; each must be named in the refusal.
NOT_ALLOWED = (
    "builtins.getattr",
    "builtins.__import__",
    "builtins.open",
    "builtins.compile",
    "operator.attrgetter",
    "functools.partial",
    "pickle.loads",
    "torch.load",
    "shutil.rmtree",
    "runpy.run_path",
    "webbrowser.open",
    "numpy.load",
    "torch_utils.persistence.persistent_class",
    "dnnlib.util.call_func_by_name",
    "torch._utils._rebuild_tensor",
)


def _gadget_reason(gadget: str, container: str) -> str:
    module, name, _ = GADGETS[gadget]
    if container == "legacy-tar":
        return "legacy torch .tar format"
    if gadget == "load_from_bytes" and container == "pkl":
        return "a tensor storage: refused to load: the file asks for the global 'os.system'"
    return f"refused to load: the file asks for the global '{module}.{name}'"


def _gadget_case(gadget: str, container: str) -> Hostile:
    module, name, args = GADGETS[gadget]
    suffix, wrap = CONTAINERS[container]
    write = _bytes(lambda m: wrap(call_pickle(module, name, *args(m))))
    return Hostile(f"{gadget}-in-{container}", suffix, write, _gadget_reason(gadget, container))


def _not_allowed_case(full_name: str) -> Hostile:
    module, name = full_name.rsplit(".", 1)
    write = _bytes(lambda m: call_pickle(module, name, "x", protocol=4))
    return Hostile(f"global-{full_name}", ".pkl", write, f"the global '{full_name}', which is not allowed")


def _truncated(write: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def write_half(path: Path, marker: Path) -> None:
        write(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write_half


def _network(path: Path) -> None:
    write_network_pickle(path, {"mapping.fc0.weight": torch.ones(4, 4)}, {"z_dim": 4})


def _linear_module(save: Callable[[torch.nn.Module, io.BytesIO], None]) -> bytes:
    buffer = io.BytesIO()
    save(torch.nn.Linear(2, 2), buffer)
    return buffer.getvalue()


HOSTILE: tuple[Hostile, ...] = (
    *(_gadget_case(gadget, container) for container in CONTAINERS for gadget in GADGETS),
    Hostile(
        "load_from_bytes-of-a-raw-pickle-gadget",
        ".pkl",
        _bytes(
            lambda m: call_pickle("torch.storage", "_load_from_bytes", call_pickle("os", "system", "true"))
        ),
        "a tensor storage is not in torch's storage format",
    ),
    *(_not_allowed_case(name) for name in NOT_ALLOWED),
    Hostile(
        "pickled-whole-torch-module",
        ".pkl",
        _bytes(lambda m: _linear_module(lambda module, buffer: pickle.dump(module, buffer, protocol=4))),
        "'torch.nn.modules.linear.Linear'",
    ),
    Hostile(
        "torch-saved-whole-module-zip",
        ".pt",
        _bytes(lambda m: _linear_module(torch.save)),
        "'torch.nn.modules.linear.Linear'",
    ),
    Hostile(
        "torch-saved-whole-module-legacy",
        ".pth",
        _bytes(
            lambda m: _linear_module(
                lambda module, buffer: torch.save(module, buffer, _use_new_zipfile_serialization=False)
            )
        ),
        "'torch.nn.modules.linear.Linear'",
    ),
    Hostile(
        "pt-that-is-a-pickle-gadget",
        ".pt",
        _bytes(lambda m: call_pickle("os", "system", "true", protocol=4)),
        "the global 'os.system'",
    ),
    Hostile(
        "persistent-id-in-pickle", ".pkl", _bytes(lambda m: b"\x80\x04\x8c\x03abc\x94Q."), "persistent ids"
    ),
    Hostile(
        "persistent-record-with-a-dotted-class-name",
        ".pkl",
        lambda path, marker: dump_network_pickle(path, {"G_ema": StandInModule("os.system", {})}),
        "no valid class name",
    ),
    Hostile(
        "tensor-record-without-a-storage",
        ".pkl",
        _bytes(lambda m: tensor_record(b"not a storage", 2)),
        "a tensor storage is not in torch's storage format",
    ),
    Hostile(
        "tensor-record-reaching-past-its-storage",
        ".pkl",
        _bytes(lambda m: tensor_record(storage_bytes(), 1_000_000)),
        "reaches past the end of its storage",
    ),
    Hostile(
        "numpy-ndarray-called-for-8GB",
        ".pkl",
        _bytes(lambda m: call_pickle("numpy", "ndarray", (2**30,))),
        "numpy.ndarray may only be rebuilt from its pickled state",
    ),
    Hostile(
        "numpy-array-of-python-objects",
        ".pkl",
        _bytes(lambda m: pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=4)),
        "numpy array of Python objects",
    ),
    Hostile("zero-length-pt", ".pt", _bytes(lambda m: b""), "the file is empty"),
    Hostile("zero-length-pkl", ".pkl", _bytes(lambda m: b""), "the file is empty"),
    Hostile("text-named-pt", ".pt", _bytes(lambda m: b"not a checkpoint\n"), "unrecognised first bytes"),
    Hostile(
        "random-bytes-pt",
        ".pt",
        _bytes(lambda m: random.Random(1).randbytes(4096)),
        "unrecognised first bytes",
    ),
    Hostile(
        "random-bytes-after-a-pickle-header",
        ".pkl",
        _bytes(lambda m: b"\x80\x04" + random.Random(2).randbytes(4096)),
        "corrupt",
    ),
    Hostile("truncated-network-pickle", ".pkl", _truncated(_network), "truncated or corrupt"),
    Hostile(
        "truncated-torch-zip",
        ".pt",
        _truncated(lambda path: torch.save({"weight": torch.zeros(64)}, path)),
        "truncated or corrupt",
    ),
    Hostile(
        "truncated-torch-legacy",
        ".pth",
        _truncated(
            lambda path: torch.save({"weight": torch.zeros(64)}, path, _use_new_zipfile_serialization=False)
        ),
        "truncated or corrupt",
    ),
    Hostile(
        "zip-entry-claiming-4GB-of-weights",
        ".pt",
        _bytes(lambda m: zip_claiming(b"data/0", CLAIMED_ENTRY_BYTES)),
        "zip bomb",
    ),
    Hostile(
        "zip-entry-claiming-4GB-of-pickle",
        ".pt",
        _bytes(lambda m: zip_claiming(b"data.pkl", CLAIMED_ENTRY_BYTES)),
        "zip bomb",
    ),
    Hostile("deflate-zip-bomb", ".pt", _bytes(lambda m: deflate_bomb()), "zip bomb"),
    Hostile(
        "deeply-nested-pickle", ".pkl", _bytes(lambda m: nested_lists(NESTING_BOMB_DEPTH)), "levels deep"
    ),
    Hostile(
        "deeply-nested-torch-zip",
        ".pt",
        _bytes(lambda m: torch_zip(nested_lists(NESTING_BOMB_DEPTH))),
        "levels deep",
    ),
    Hostile(
        "deeply-nested-torch-legacy",
        ".pth",
        _bytes(lambda m: legacy_torch_stream(nested_lists(NESTING_BOMB_DEPTH))),
        "levels deep",
    ),
    Hostile(
        "deeply-nested-network-modules",
        ".pkl",
        lambda path, marker: write_nested_modules(path),
        "levels deep",
    ),
    Hostile("billion-laughs-pickle", ".pkl", _bytes(lambda m: billion_laughs()), "shared references"),
    Hostile(
        "billion-laughs-torch-zip", ".pt", _bytes(lambda m: torch_zip(billion_laughs())), "shared references"
    ),
    Hostile("self-containing-pickle", ".pkl", _bytes(lambda m: self_containing_list()), "reference cycle"),
)
HOSTILE_IDS = [f"{number:02d}-{case.name}" for number, case in enumerate(HOSTILE, start=1)]
READERS = {"read_checkpoint": read_checkpoint, "load_checkpoint": load_checkpoint}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", HOSTILE, ids=HOSTILE_IDS)
def test_hostile_file_is_refused_in_one_line_and_runs_nothing(
    case: Hostile, reader: str, tmp_path: Path, marker: Path
) -> None:
    path = tmp_path / f"hostile{case.suffix}"
    case.write(path, marker)
    with pytest.raises(CheckpointError) as refusal:
        READERS[reader](path)
    message = str(refusal.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message, message
    assert case.reason in message, message
    assert not marker.exists(), f"the payload of {case.name} ran"


def test_corpus_covers_at_least_thirty_kinds() -> None:
    assert len(HOSTILE) >= 30
    assert len(set(HOSTILE_IDS)) == len(HOSTILE)


def _unsafe_load(path: Path) -> object:
    """What a careless loader does: plain pickle, or torch.load with weights_only=False."""
    if path.suffix == ".pkl":
        return pickle.loads(path.read_bytes())
    return torch.load(path, weights_only=False)


GADGET_CASES = [case for case in HOSTILE if case.name.endswith(tuple(f"-in-{c}" for c in CONTAINERS))]


@pytest.mark.parametrize("case", GADGET_CASES, ids=[case.name for case in GADGET_CASES])
def test_corpus_gadgets_do_run_when_loaded_unsafely(case: Hostile, tmp_path: Path, marker: Path) -> None:
    """The refusals above mean something: each gadget file is live under a careless loader."""
    path = tmp_path / f"hostile{case.suffix}"
    case.write(path, marker)
    result = None
    with contextlib.suppress(Exception):  # some loaders fail after the payload ran
        result = _unsafe_load(path)
    if isinstance(result, subprocess.Popen):
        result.wait()
    assert marker.exists(), f"{case.name} is inert: the refusal test proves nothing"


# ---- real network pickles still load ---------------------------------------------------------
def _globals_asked(path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The globals our unpickler is asked for while it loads ``path``."""
    asked: set[str] = set()
    find_class = pickles._NetworkUnpickler.find_class

    def spy(self: pickles._NetworkUnpickler, module: str, name: str) -> object:
        asked.add(f"{module}.{name}")
        return find_class(self, module, name)

    monkeypatch.setattr(pickles._NetworkUnpickler, "find_class", spy)
    load_network_pickle(path)
    return asked


def _assert_same_state(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)
    for key, tensor in expected.items():
        assert actual[key].dtype == tensor.dtype, key
        assert torch.equal(actual[key], tensor), key


@pytest.mark.fixtures
@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("name", NVIDIA_FIXTURES)
def test_network_pickle_gives_back_the_fixture_generator_bit_for_bit(
    name: str, protocol: int, tmp_path: Path
) -> None:
    folder = fixture_dir(name)
    path = write_fixture_network_pickle(tmp_path / "network-snapshot.pkl", folder, protocol=protocol)
    raw = read_checkpoint(path)
    expected_state, expected_kwargs = load_fixture_generator(folder)
    assert raw.container == "pickle"
    assert sorted(raw.content) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]
    _assert_same_state(module_state_dict(raw.content["G_ema"]), expected_state)
    assert init_kwargs(raw.content["G_ema"]) == expected_kwargs
    decoy = module_state_dict(raw.content["G"])
    assert not torch.equal(decoy["mapping.fc0.weight"], expected_state["mapping.fc0.weight"])


def tiny_stylegan3_state() -> dict[str, torch.Tensor]:
    """A few keys of each kind a stylegan3 G_ema has: parameters, buffers, a ToRGB without filters."""
    weights = torch.Generator().manual_seed(3)
    return {
        "synthesis.input.weight": torch.randn(4, 2, generator=weights),
        "synthesis.input.transform": torch.eye(3),
        "synthesis.L0_36_4.weight": torch.randn(4, 4, 3, 3, generator=weights),
        "synthesis.L0_36_4.magnitude_ema": torch.ones(()),
        "synthesis.L0_36_4.up_filter": torch.randn(12, generator=weights),
        "synthesis.L0_36_4.down_filter": torch.randn(12, generator=weights),
        "synthesis.L1_32_3.weight": torch.randn(3, 4, 1, 1, generator=weights).half(),
        "synthesis.L1_32_3.magnitude_ema": torch.ones(()),
        "mapping.w_avg": torch.randn(4, generator=weights),  # the mapping's own buffer: before its children
        "mapping.fc0.weight": torch.randn(4, 4, generator=weights),
        "mapping.fc0.bias": torch.zeros(4),
    }


TINY_KWARGS = {"z_dim": 4, "w_dim": 4, "mapping_kwargs": {"num_layers": 1}, "img_resolution": 32}
# protocol -> globals a real file of that era asks for
ERA_GLOBALS = {
    3: {"builtins.set", "numpy.core.multiarray.scalar", "numpy.core.multiarray._reconstruct"},
    4: {"numpy._core.multiarray.scalar", "numpy._core.multiarray._reconstruct"},
}


@pytest.mark.parametrize("protocol", [3, 4])
def test_network_pickle_round_trip_without_fixtures(
    protocol: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tiny_stylegan3_state()
    path = write_network_pickle(tmp_path / "network-snapshot.pkl", state, TINY_KWARGS, protocol=protocol)
    assert _globals_asked(path, monkeypatch) == ERA_GLOBALS[protocol] | {
        "torch_utils.persistence._reconstruct_persistent_obj",
        "torch.storage._load_from_bytes",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "dnnlib.util.EasyDict",
        "collections.OrderedDict",
        "numpy.dtype",
        "numpy.ndarray",
    }
    content = load_network_pickle(path)
    _assert_same_state(module_state_dict(content["G_ema"]), state)
    torgb = content["G_ema"].state["_modules"]["synthesis"].state["_modules"]["L1_32_3"]
    assert torgb.class_name == "SynthesisLayer"
    assert torgb.state["_buffers"]["up_filter"] is None  # skipped by module_state_dict
    kwargs = init_kwargs(content["G_ema"])
    assert kwargs == TINY_KWARGS
    assert type(kwargs["mapping_kwargs"]) is dict
    assert not {"torch_utils", "dnnlib"} & set(sys.modules)


def test_network_source_code_is_recorded_never_run(tmp_path: Path, marker: Path) -> None:
    source = f"open({str(marker)!r}, 'w').close()\nclass Generator:\n    pass\n"
    path = write_network_pickle(
        tmp_path / "network-snapshot.pkl", tiny_stylegan3_state(), TINY_KWARGS, module_src=source
    )
    for content in (load_network_pickle(path), read_checkpoint(path).content):
        record = content["G_ema"]
        assert isinstance(record, PersistentObject)
        assert record.class_name == "Generator"
        assert record.module_name == content["D"].module_name  # one source file, one module name
        assert marker.name not in repr(content)  # the source text is not kept anywhere
    assert not marker.exists()


def test_pt_file_holding_a_network_pickle_is_read_as_a_pickle(tmp_path: Path) -> None:
    state = tiny_stylegan3_state()
    path = write_network_pickle(tmp_path / "generator.pt", state, TINY_KWARGS)
    raw = read_checkpoint(path)
    assert raw.container == "pickle"
    _assert_same_state(module_state_dict(raw.content["G_ema"]), state)


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "torch-legacy"])
def test_ordinary_torch_checkpoints_still_load(zipped: bool, tmp_path: Path) -> None:
    state = tiny_stylegan3_state()
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {"g_ema": state, "latent_avg": state["mapping.w_avg"]}, path, _use_new_zipfile_serialization=zipped
    )
    raw = read_checkpoint(path)
    assert raw.container == ("torch-zip" if zipped else "torch-legacy")
    _assert_same_state(raw.content["g_ema"], state)


def test_network_pickle_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_network_pickle(tmp_path / "network-snapshot.pkl", tiny_stylegan3_state(), TINY_KWARGS)
    monkeypatch.setattr(pickles, "MAX_NETWORK_PICKLE_BYTES", path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match="larger than any network pickle"):
        read_checkpoint(path)


# ---- one list of allowed globals per dialect --------------------------------------------------------
TF_ERA_GLOBALS = {
    3: {"numpy.core.multiarray.scalar", "numpy.core.multiarray._reconstruct"},
    4: {"numpy._core.multiarray.scalar", "numpy._core.multiarray._reconstruct"},
}


@pytest.mark.parametrize("protocol", [3, 4])
def test_tensorflow_pickle_asks_only_for_its_dialects_globals(
    protocol: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tf_pickle_writer import pggan_network, random_pggan_state, write_tf_pickle

    state = random_pggan_state(z_dim=8, channels=[8, 4])
    path = write_tf_pickle(tmp_path / "karras2018iclr.pkl", pggan_network(state), protocol=protocol)
    asked = _globals_asked(path, monkeypatch)
    assert asked == TF_ERA_GLOBALS[protocol] | {"tfutil.Network", "numpy.dtype", "numpy.ndarray"}
    assert asked <= pickles.TENSORFLOW.allowed
    assert not {"tfutil", "dnnlib"} & set(sys.modules)


def test_every_allowed_global_is_rebuilt_by_the_unpickler_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "empty.pkl"
    path.write_bytes(pickle.dumps(None))
    with path.open("rb") as handle:
        handlers = set(pickles._NetworkUnpickler(handle, path, pickles.TENSORFLOW).handlers)
    assert handlers == set().union(*(dialect.allowed for dialect in pickles.DIALECTS))


def test_a_global_of_the_other_dialect_is_refused_naming_the_dialect_the_file_looks_like(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.pkl"
    path.write_bytes(
        call_pickle("tfutil", "Network")[:-1] + call_pickle("torch._utils", "_rebuild_parameter")[2:]
    )
    with pytest.raises(CheckpointError, match="mixes the globals of NVIDIA PyTorch network pickles and Tens"):
        read_checkpoint(path)
    path.write_bytes(call_pickle("tfutil", "Network", protocol=4)[:-1] + call_pickle("os", "system", "x")[2:])
    with pytest.raises(
        CheckpointError, match="'os.system', which is not allowed in a TensorFlow network pickle"
    ):
        read_checkpoint(path)
