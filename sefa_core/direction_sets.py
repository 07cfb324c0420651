"""Direction sets: the directions a user liked, named, saved as JSON or NPZ and loaded back.

Never pickle: JSON is plain text, and NPZ holds two float arrays and the metadata as JSON text,
read with ``allow_pickle=False``. Both carry ``version``. A set belongs to one checkpoint (its
sha256) and each direction has its own W+ rows to move, GANSpace-style, so one set can turn the
head on the early layers and change the hair colour on the late ones:

    chosen = from_sliders(state, semantics, {0: "pose", 3: "smile"}, {0: "0-3", 3: "4-5"})
    save_direction_set("direction_sets/faces.json", chosen)
    codes = apply_direction_set(codes, load_direction_set("direction_sets/faces.json"), [2.0, -1.0])
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sefa_core.atomic import atomic_write_bytes
from sefa_core.editing import apply_offset
from sefa_core.errors import SefaError, require
from sefa_core.factorize import Semantics
from sefa_core.layers import MAX_SPEC_LENGTH, parse_layers
from sefa_core.models.base import Generator
from sefa_core.session import EditState
from sefa_core.shared_files import Stamp, locked, refuse_overwrite, stamp
from sefa_core.validation import read_small_file

DIRECTION_SET_VERSION = 1
KIND = "sefa-direction-set"
FORMATS = (".json", ".npz")
MAX_DIRECTION_SET_BYTES = 16 * 1024 * 1024
MAX_DIRECTIONS = 256
MAX_DIRECTION_DIM = 65536
MAX_NAME_LENGTH = 100
DIRECTION_SETS_DIR = "direction_sets"
ZIP_MAGIC = b"PK\x03\x04"
_SYNTAX_ONLY_LAYERS = 1_000_000  # specs are checked against a model when the set is applied
_FILE_NAME = re.compile(r"^[\w][\w .-]*$")
_DIRECTION_KEYS = {"name", "layers", "alpha", "semantic", "eigenvalue", "vector"}
_TOP_KEYS = {"version", "kind", "model", "digest", "layers", "directions", "saved_by", "saved_at"}
_NPZ_ARRAYS = {"vectors", "meta"}


@dataclass(frozen=True, eq=False)
class SavedDirection:
    """One named direction: a unit row of the edit space, and the W+ rows it moves."""

    name: str
    vector: np.ndarray  # (direction_dim,) float64
    layers: str = "all"  # W+ rows this direction moves (ignored by z-space models)
    alpha: float = 0.0  # the slider value when it was saved
    semantic: int | None = None  # the SeFa semantic it came from
    eigenvalue: float | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SavedDirection):
            return NotImplemented
        same_vector = self.vector.shape == other.vector.shape and bool(
            np.array_equal(self.vector, other.vector)
        )
        fields = (self.name, self.layers, self.alpha, self.semantic, self.eigenvalue)
        return same_vector and fields == (
            other.name,
            other.layers,
            other.alpha,
            other.semantic,
            other.eigenvalue,
        )


@dataclass(frozen=True)
class DirectionSet:
    """Directions for one checkpoint, in the order they were saved."""

    model: str
    digest: str  # sha256 of the checkpoint they were found in
    layers: str  # the layer spec SeFa factorized
    directions: tuple[SavedDirection, ...]
    version: int = DIRECTION_SET_VERSION
    saved_by: str = ""  # the session that saved it into the shared folder ("" for an export)
    saved_at: str = ""  # when, ISO 8601 UTC

    @property
    def saved(self) -> Stamp:
        return Stamp(self.saved_by, self.saved_at)

    @property
    def direction_dim(self) -> int:
        return int(self.directions[0].vector.shape[0]) if self.directions else 0

    def with_alphas(self, alphas: Sequence[float]) -> DirectionSet:
        """The set with each direction's saved slider value replaced."""
        require(len(alphas) == len(self.directions), "one alpha per direction")
        moved = (replace(d, alpha=float(a)) for d, a in zip(self.directions, alphas, strict=True))
        return replace(self, directions=tuple(moved))

    def with_layers(self, index: int, layers: str) -> DirectionSet:
        """The set with direction ``index`` moving the W+ rows ``layers`` (syntax checked)."""
        _check_spec(layers, f"directions[{index}].layers")
        directions = list(self.directions)
        directions[index] = replace(directions[index], layers=layers.strip())
        return replace(self, directions=tuple(directions))


def from_sliders(
    state: EditState, semantics: Semantics, names: Mapping[int, str], layers: Mapping[int, str] | None = None
) -> DirectionSet:
    """The semantics ``names`` picks (index -> name), at their slider values, as a set.

    ``layers`` gives a direction its own W+ rows (a layer spec); by default, the rows SeFa used.
    """
    layers = layers or {}
    directions = []
    for index, name in names.items():
        require(0 <= index < len(semantics.directions), f"semantic {index} does not exist")
        alpha = state.alphas[index] if index < len(state.alphas) else 0.0
        spec = layers.get(index) or semantics.layer_spec or "all"
        directions.append(
            SavedDirection(
                name=_name(name, f"semantic {index}"),
                vector=np.asarray(semantics.directions[index], dtype=np.float64),
                layers=_check_spec(spec, f"semantic {index}"),
                alpha=float(alpha),
                semantic=int(index),
                eigenvalue=float(semantics.eigenvalues[index]),
            )
        )
    if not directions:
        raise SefaError("a direction set needs at least one direction")
    return DirectionSet(state.model, state.digest, state.layers, tuple(directions))


# ---- applying ---------------------------------------------------------------------------------
def check_fits(direction_set: DirectionSet, generator: Generator) -> None:
    """Refuse a set made for another checkpoint, or whose layers this model does not have."""
    if direction_set.digest != generator.digest:
        raise SefaError(
            f"this direction set was saved for model '{direction_set.model}' "
            f"(sha256 {direction_set.digest[:12]}...), not for this checkpoint"
        )
    if direction_set.direction_dim != generator.direction_dim:
        raise SefaError(
            f"the directions have {direction_set.direction_dim} values; "
            f"this model's have {generator.direction_dim}"
        )
    for i, direction in enumerate(direction_set.directions):
        try:
            parse_layers(direction.layers, generator.num_layers)
        except SefaError as error:
            raise SefaError(f"direction '{direction.name}' (#{i}): {error}") from error


def apply_direction_set(
    codes: torch.Tensor, direction_set: DirectionSet, alphas: Sequence[float], num_layers: int
) -> torch.Tensor:
    """Codes (N, *code_shape) moved by ``alphas[i]`` along direction i, each on its own W+ rows."""
    require(len(alphas) == len(direction_set.directions), "one alpha per direction")
    for direction, alpha in zip(direction_set.directions, alphas, strict=True):
        if alpha == 0.0:
            continue
        offset = torch.from_numpy((float(alpha) * direction.vector).astype(np.float32))  # (direction_dim,)
        rows = parse_layers(direction.layers, num_layers) if codes.ndim == 3 else None
        codes = apply_offset(codes, offset, rows)
    return codes


# ---- writing ------------------------------------------------------------------------------------
def _metadata(direction_set: DirectionSet, with_vectors: bool) -> dict[str, Any]:
    directions = []
    for direction in direction_set.directions:
        item: dict[str, Any] = {
            "name": direction.name,
            "layers": direction.layers,
            "alpha": direction.alpha,
            "semantic": direction.semantic,
            "eigenvalue": direction.eigenvalue,
        }
        if with_vectors:
            item["vector"] = [float(v) for v in direction.vector]  # repr of float64: exact
        directions.append(item)
    meta = {
        "version": direction_set.version,
        "kind": KIND,
        "model": direction_set.model,
        "digest": direction_set.digest,
        "layers": direction_set.layers,
        "directions": directions,
    }
    if direction_set.saved_by or direction_set.saved_at:
        meta |= {"saved_by": direction_set.saved_by, "saved_at": direction_set.saved_at}
    return meta


def to_json(direction_set: DirectionSet) -> str:
    return json.dumps(_metadata(direction_set, with_vectors=True), indent=1) + "\n"


def to_npz_bytes(direction_set: DirectionSet) -> bytes:
    """``vectors`` (K, D) float64 and ``meta``, the JSON metadata as a unicode array (no pickle)."""
    buffer = io.BytesIO()
    vectors = np.stack([d.vector for d in direction_set.directions]).astype(np.float64)  # (K, D)
    meta = np.array(json.dumps(_metadata(direction_set, with_vectors=False)))
    np.savez(buffer, vectors=vectors, meta=meta)
    return buffer.getvalue()


def direction_set_bytes(direction_set: DirectionSet, suffix: str) -> bytes:
    """The set in the format ``suffix`` names (``.json`` or ``.npz``)."""
    if suffix == ".json":
        return to_json(direction_set).encode("utf-8")
    if suffix == ".npz":
        return to_npz_bytes(direction_set)
    raise SefaError(f"direction sets are saved as {' or '.join(FORMATS)}, not '{suffix}'")


def save_direction_set(path: str | Path, direction_set: DirectionSet) -> Path:
    """Write atomically; the suffix chooses the format."""
    path = Path(path)
    return atomic_write_bytes(path, direction_set_bytes(direction_set, path.suffix.lower()))


def share_direction_set(
    path: str | Path, direction_set: DirectionSet, saved_by: str, *, overwrite: bool = False
) -> DirectionSet:
    """Save into the folder every session shares, stamped with ``saved_by`` and now; returns it stamped.

    Under the folder's lock, so two sessions (or replicas) saving the same name cannot both win
    unseen: a name already saved raises ``AlreadySavedError`` saying who saved it and when,
    unless ``overwrite`` (the user was asked).
    """
    path = Path(path)
    with locked(path.parent):  # the folder's lock: one save into it at a time
        if path.exists() and not overwrite:
            try:
                existing = load_direction_set(path).saved
            except SefaError:  # an unreadable file is still somebody's
                existing = Stamp()
            refuse_overwrite(f"direction set '{path.name}'", existing)
        now = stamp(saved_by)
        stamped = replace(direction_set, saved_by=now.saved_by, saved_at=now.saved_at)
        save_direction_set(path, stamped)
    return stamped


def direction_set_path(folder: str | Path, name: str, suffix: str) -> Path:
    """``folder/name.suffix`` for a name typed by a user; names that could leave the folder are refused."""
    name = name.strip()
    if not _FILE_NAME.match(name) or len(name) > MAX_NAME_LENGTH or name.startswith("."):
        raise SefaError(
            f"'{name[:40]}' cannot be a file name: use letters, digits, spaces, '-', '_' or '.' "
            f"(at most {MAX_NAME_LENGTH})"
        )
    if suffix not in FORMATS:
        raise SefaError(f"direction sets are saved as {' or '.join(FORMATS)}, not '{suffix}'")
    return Path(folder) / f"{name}{suffix}"


def list_direction_sets(folder: str | Path) -> list[Path]:
    """The saved sets in ``folder``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() in FORMATS and p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


# ---- reading ------------------------------------------------------------------------------------
def load_direction_set(path: str | Path) -> DirectionSet:
    path = Path(path)
    return parse_direction_set(read_small_file(path, MAX_DIRECTION_SET_BYTES, "direction set"), str(path))


def parse_direction_set(data: bytes, label: str = "direction set") -> DirectionSet:
    """A set from JSON or NPZ bytes (sniffed, not trusted from the name); one line per problem."""
    if len(data) > MAX_DIRECTION_SET_BYTES:
        raise SefaError(f"{label}: larger than {MAX_DIRECTION_SET_BYTES} bytes")
    if data.startswith(ZIP_MAGIC):
        meta, vectors = _read_npz(data, label)
    else:
        try:
            meta = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise SefaError(f"{label}: neither a .npz archive nor JSON ({type(error).__name__})") from error
        vectors = None
    return _from_metadata(meta, vectors, label)


def _read_npz(data: bytes, label: str) -> tuple[Any, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = set(archive.files)
            if names != _NPZ_ARRAYS:
                raise SefaError(f"{label}: expected the arrays {sorted(_NPZ_ARRAYS)}, found {sorted(names)}")
            vectors = archive["vectors"]
            meta_text = archive["meta"]
    except SefaError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise SefaError(f"{label}: not a readable .npz without pickles ({type(error).__name__})") from error
    if meta_text.shape != () or meta_text.dtype.kind != "U":
        raise SefaError(f"{label}: meta must be one JSON string")
    try:
        meta = json.loads(str(meta_text))
    except (ValueError, RecursionError) as error:
        raise SefaError(f"{label}: meta is not JSON") from error
    if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
        raise SefaError(
            f"{label}: vectors must be a (K, D) array of numbers, got {vectors.dtype} {vectors.shape}"
        )
    return meta, vectors.astype(np.float64)


def _from_metadata(meta: Any, vectors: np.ndarray | None, label: str) -> DirectionSet:
    _object(meta, _TOP_KEYS, label)
    version = meta.get("version")
    if version != DIRECTION_SET_VERSION or isinstance(version, bool):
        raise SefaError(f"{label}: version: expected {DIRECTION_SET_VERSION}, got {str(version)[:20]}")
    if meta.get("kind") != KIND:
        raise SefaError(f"{label}: kind: expected '{KIND}'")
    model = _text(meta, "model", label)
    digest = _text(meta, "digest", label)
    layers = _check_spec(_text(meta, "layers", label), f"{label}: layers")
    items = meta.get("directions")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_DIRECTIONS:
        raise SefaError(f"{label}: directions: expected a list of 1 to {MAX_DIRECTIONS} directions")
    if vectors is not None and vectors.shape[0] != len(items):
        raise SefaError(f"{label}: {vectors.shape[0]} vectors for {len(items)} directions")
    directions = tuple(
        _direction(item, None if vectors is None else vectors[i], f"{label}: directions[{i}]")
        for i, item in enumerate(items)
    )
    if len({d.vector.shape for d in directions}) != 1:
        raise SefaError(f"{label}: the directions do not all have the same length")
    saved_by, saved_at = (_optional_text(meta, key, label) for key in ("saved_by", "saved_at"))
    return DirectionSet(model, digest, layers, directions, version, saved_by, saved_at)


def _direction(item: Any, vector: np.ndarray | None, where: str) -> SavedDirection:
    _object(item, _DIRECTION_KEYS, where)
    if vector is None:
        values = item.get("vector")
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_DIRECTION_DIM:
            raise SefaError(f"{where}.vector: expected a list of 1 to {MAX_DIRECTION_DIM} numbers")
        if not all(_finite(v) for v in values):
            raise SefaError(f"{where}.vector: expected finite numbers")
        vector = np.asarray(values, dtype=np.float64)
    elif "vector" in item:
        raise SefaError(f"{where}: in a .npz the vector belongs in the vectors array")
    if not np.all(np.isfinite(vector)) or not 1 <= vector.shape[0] <= MAX_DIRECTION_DIM:
        raise SefaError(f"{where}.vector: expected 1 to {MAX_DIRECTION_DIM} finite numbers")
    alpha = item.get("alpha", 0.0)
    if not _finite(alpha):
        raise SefaError(f"{where}.alpha: expected a finite number")
    semantic = item.get("semantic")
    if semantic is not None and (not isinstance(semantic, int) or isinstance(semantic, bool) or semantic < 0):
        raise SefaError(f"{where}.semantic: expected a whole number >= 0 or null")
    eigenvalue = item.get("eigenvalue")
    if eigenvalue is not None and not _finite(eigenvalue):
        raise SefaError(f"{where}.eigenvalue: expected a finite number or null")
    return SavedDirection(
        name=_name(item.get("name"), where),
        vector=vector,
        layers=_check_spec(item.get("layers", "all"), f"{where}.layers"),
        alpha=float(alpha),
        semantic=semantic,
        eigenvalue=None if eigenvalue is None else float(eigenvalue),
    )


def _object(value: Any, allowed: set[str], where: str) -> None:
    """A JSON object with no keys but ``allowed``."""
    if not isinstance(value, dict):
        raise SefaError(f"{where}: expected a JSON object, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise SefaError(f"{where}: unknown key '{unknown[0][:40]}'")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(meta: dict, key: str, label: str) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SPEC_LENGTH:
        raise SefaError(f"{label}: {key}: expected text")
    return value.strip()


def _optional_text(meta: dict, key: str, label: str) -> str:
    value = meta.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH or "\n" in value:
        raise SefaError(f"{label}: {key}: expected one line of text of at most {MAX_NAME_LENGTH} characters")
    return value.strip()


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH or "\n" in value:
        raise SefaError(f"{where}: a direction needs a name of 1 to {MAX_NAME_LENGTH} characters on one line")
    return value.strip()


def _check_spec(spec: Any, where: str) -> str:
    if not isinstance(spec, str):
        raise SefaError(f"{where}: expected a layer spec such as 'all' or '0-3'")
    try:
        parse_layers(spec, _SYNTAX_ONLY_LAYERS)
    except SefaError as error:
        raise SefaError(f"{where}: {error}") from error
    return spec.strip()
