"""Edit recipes: everything needed to replay an edit, as a small YAML file.

    version: 1
    model: default                 # a config name or a checkpoint path
    digest: 0c3b90b1...            # sha256 of the checkpoint; replay refuses another file
    layers: all                    # the layer spec SeFa factorized
    edits: [{semantic: 0, alpha: 3.0, name: smile}, {semantic: 4, alpha: -1.5, layers: 0-3}]
                                   # name and layers (the W+ rows it moves, else the set's) optional
    base: {seed: 7, trunc_psi: 0.7, trunc_layers: 8}     # or: base: {code: [[...]]}
    conditioning: {class_index: 207, truncation: 0.4}    # class-conditional models only

Replaying is exact: codes are written as the shortest decimals that read back to the same
float32 values, and the edit is recomputed the way the editor computes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from sefa_core.atomic import atomic_write_text
from sefa_core.codes import codes_for_generator
from sefa_core.editing import apply_edits
from sefa_core.errors import SefaError, require
from sefa_core.factorize import Semantics, factorize
from sefa_core.layers import MAX_SPEC_LENGTH, parse_layers
from sefa_core.models.base import DEFAULT_TRUNC_PSI, Generator
from sefa_core.validation import expect_mapping, read_small_file, reject_unknown_keys

RECIPE_VERSION = 1
MAX_RECIPE_BYTES = 8 * 1024 * 1024  # a W+ code of 18x512 floats is about 100 KB
MAX_CODE_VALUES = 1_000_000
MAX_SEED = 2**32 - 1  # what numpy's RandomState accepts
MAX_NAME_LENGTH = 1000
_SYNTAX_ONLY_LAYERS = 1024  # more than any model has; the spec is checked against the model at replay
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

_TOP_KEYS = {"version", "model", "digest", "layers", "edits", "base", "conditioning"}
_EDIT_KEYS = {"semantic", "alpha", "name", "layers"}
_SEED_KEYS = {"seed", "trunc_psi", "trunc_layers"}
_CODE_KEYS = {"code"}
_CONDITIONING_KEYS = {"class_index", "truncation"}

Nested = float | tuple["Nested", ...]


@dataclass(frozen=True)
class Conditioning:
    """The class and truncation of a class-conditional model (BigGAN)."""

    class_index: int
    truncation: float = 1.0

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``Generator.synthesize`` reads."""
        return {"classes": self.class_index, "truncation": self.truncation}


@dataclass(frozen=True)
class Recipe:
    """One edit: the model, its layers, the (semantic, alpha) moves and the code they start from.

    The base is a ``seed`` (sampled with ``trunc_psi``/``trunc_layers``) or an explicit edit-space
    ``code``, one (*code_shape) or several (N, *code_shape); a tensor or array given as ``code`` is
    stored as nested tuples so that recipes compare by value.
    """

    model: str
    digest: str
    layers: str
    edits: tuple[tuple[int, float], ...]
    seed: int | None = None
    trunc_psi: float = DEFAULT_TRUNC_PSI
    trunc_layers: int | None = None
    code: Nested | None = field(default=None, repr=False)
    conditioning: Conditioning | None = None
    names: tuple[tuple[int, str], ...] = ()  # (semantic, the name a user gave it); only named ones
    rows: tuple[tuple[int, str], ...] = ()  # (semantic, the W+ rows it moves) where not ``layers``

    def __post_init__(self) -> None:
        require((self.seed is None) != (self.code is None), "a recipe starts from a seed or from a code")
        object.__setattr__(self, "edits", tuple((int(k), float(a)) for k, a in self.edits))
        object.__setattr__(self, "names", tuple((int(k), str(n)) for k, n in self.names if str(n).strip()))
        object.__setattr__(self, "rows", tuple((int(k), str(r)) for k, r in self.rows if str(r).strip()))
        if self.code is not None and not isinstance(self.code, tuple):
            array = torch.as_tensor(self.code).detach().cpu().numpy().astype(np.float32)
            object.__setattr__(self, "code", _nested(array))

    @property
    def alphas(self) -> dict[int, float]:
        return dict(self.edits)

    @property
    def synthesis_kwargs(self) -> dict[str, Any]:
        """What ``Generator.synthesize`` needs besides the codes: the conditioning, if any."""
        return self.conditioning.kwargs() if self.conditioning is not None else {}

    def code_array(self) -> np.ndarray:
        """The explicit base code as float32, exactly as written."""
        require(self.code is not None, "this recipe starts from a seed")
        return np.asarray(self.code, dtype=np.float32)


def _nested(array: np.ndarray) -> Nested:
    """float32 array -> nested tuples of Python floats that convert back to the same float32."""
    if array.ndim == 0:
        value = array.item()
        short = float(str(np.float32(value)))  # shortest decimal of the float32
        return short if np.float32(short) == np.float32(value) else value
    return tuple(_nested(row) for row in array)


# ---- writing --------------------------------------------------------------------------------
def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The plain YAML structure of ``recipe``."""
    base: dict[str, Any]
    if recipe.code is not None:
        base = {"code": _lists(recipe.code)}
    else:
        base = {"seed": recipe.seed, "trunc_psi": recipe.trunc_psi, "trunc_layers": recipe.trunc_layers}
    data: dict[str, Any] = {
        "version": RECIPE_VERSION,
        "model": recipe.model,
        "digest": recipe.digest,
        "layers": recipe.layers,
        "edits": [
            _edit_entry(k, a, dict(recipe.names).get(k, ""), dict(recipe.rows).get(k, ""))
            for k, a in recipe.edits
        ],
        "base": base,
    }
    if recipe.conditioning is not None:
        data["conditioning"] = {
            "class_index": recipe.conditioning.class_index,
            "truncation": recipe.conditioning.truncation,
        }
    return data


def _edit_entry(semantic: int, alpha: float, name: str, rows: str) -> dict[str, Any]:
    return (
        {"semantic": semantic, "alpha": alpha}
        | ({"name": name} if name else {})
        | ({"layers": rows} if rows else {})
    )


def _lists(value: Nested) -> Any:
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def recipe_to_yaml(recipe: Recipe) -> str:
    """``recipe`` as YAML text (code rows in flow style, one row a line)."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None, width=2**16)


def write_recipe(path: str | Path, recipe: Recipe) -> Path:
    return atomic_write_text(path, recipe_to_yaml(recipe))


# ---- reading --------------------------------------------------------------------------------
def read_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    path = Path(path)
    raw = read_small_file(path, MAX_RECIPE_BYTES, "recipe file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SefaError(f"{path}: not UTF-8 text") from error
    return parse_recipe(text, str(path))


def parse_recipe(text: str, label: str = "recipe") -> Recipe:
    """Validate recipe YAML; every problem is one ``SefaError`` line that names the key."""
    if len(text) > MAX_RECIPE_BYTES:
        raise SefaError(f"{label}: larger than {MAX_RECIPE_BYTES} characters")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise SefaError(f"{label}: not valid YAML{at}") from error
    except (RecursionError, ValueError, OverflowError) as error:  # pathological nesting or numbers
        raise SefaError(f"{label}: not a readable recipe ({type(error).__name__})") from error
    mapping = expect_mapping(data, label)
    reject_unknown_keys(mapping, _TOP_KEYS, label)
    version = mapping.get("version")
    if version != RECIPE_VERSION or isinstance(version, bool):
        raise SefaError(f"{label}: version: expected {RECIPE_VERSION}, got {_shown(version)}")
    model = _text(mapping, "model", label, MAX_NAME_LENGTH)
    digest = _text(mapping, "digest", label, 64).lower()
    if not _DIGEST.match(digest):
        raise SefaError(f"{label}: digest: expected 64 hexadecimal digits (sha256)")
    layers = _text(mapping, "layers", label, MAX_SPEC_LENGTH)
    try:
        parse_layers(layers, _SYNTAX_ONLY_LAYERS)
    except SefaError as error:
        raise SefaError(f"{label}: layers: {error}") from error
    edits, names, rows = _edits(mapping.get("edits"), f"{label}: edits")
    base = expect_mapping(mapping.get("base"), f"{label}: base")
    conditioning = None
    if mapping.get("conditioning") is not None:
        conditioning = _conditioning(mapping["conditioning"], f"{label}: conditioning")
    if "code" in base:
        reject_unknown_keys(base, _CODE_KEYS, f"{label}: base")
        code = _code(base["code"], f"{label}: base.code")
        return Recipe(
            model, digest, layers, edits, code=code, conditioning=conditioning, names=names, rows=rows
        )
    reject_unknown_keys(base, _SEED_KEYS, f"{label}: base")
    seed = base.get("seed")
    if not _whole(seed) or not 0 <= seed <= MAX_SEED:
        raise SefaError(f"{label}: base.seed: expected a whole number from 0 to {MAX_SEED} (or base.code)")
    trunc_psi = _number(base.get("trunc_psi", DEFAULT_TRUNC_PSI), f"{label}: base.trunc_psi")
    if not 0.0 <= trunc_psi <= 1.0:
        raise SefaError(f"{label}: base.trunc_psi: expected a number in [0, 1], got {trunc_psi}")
    trunc_layers = base.get("trunc_layers")
    if trunc_layers is not None and (not _whole(trunc_layers) or not 0 <= trunc_layers <= MAX_SEED):
        raise SefaError(f"{label}: base.trunc_layers: expected a whole number >= 0 or null")
    return Recipe(
        model,
        digest,
        layers,
        edits,
        seed,
        trunc_psi,
        trunc_layers,
        conditioning=conditioning,
        names=names,
        rows=rows,
    )


def _edits(
    value: Any, where: str
) -> tuple[tuple[tuple[int, float], ...], tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]:
    """The (semantic, alpha) edits, and the (semantic, name) and (semantic, W+ rows) where given."""
    if value is None:
        return (), (), ()
    if not isinstance(value, list):
        raise SefaError(f"{where}: expected a list of {{semantic, alpha}}, got {type(value).__name__}")
    edits: dict[int, float] = {}
    names: dict[int, str] = {}
    rows: dict[int, str] = {}
    for i, item in enumerate(value):
        entry = expect_mapping(item, f"{where}[{i}]")
        reject_unknown_keys(entry, _EDIT_KEYS, f"{where}[{i}]")
        semantic = entry.get("semantic")
        if not _whole(semantic) or not 0 <= semantic < MAX_CODE_VALUES:
            raise SefaError(f"{where}[{i}].semantic: expected a whole number >= 0, got {_shown(semantic)}")
        if semantic in edits:
            raise SefaError(f"{where}[{i}].semantic: semantic {semantic} is listed twice")
        edits[semantic] = _number(entry.get("alpha"), f"{where}[{i}].alpha")
        if "name" in entry:
            names[semantic] = _text(entry, "name", f"{where}[{i}]", MAX_NAME_LENGTH)
        if "layers" in entry:
            rows[semantic] = _text(entry, "layers", f"{where}[{i}]", MAX_SPEC_LENGTH)
            try:
                parse_layers(rows[semantic], _SYNTAX_ONLY_LAYERS)
            except SefaError as error:
                raise SefaError(f"{where}[{i}].layers: {error}") from error
    return tuple(edits.items()), tuple(names.items()), tuple(rows.items())


def _conditioning(value: Any, where: str) -> Conditioning:
    mapping = expect_mapping(value, where)
    reject_unknown_keys(mapping, _CONDITIONING_KEYS, where)
    class_index = mapping.get("class_index")
    if not _whole(class_index) or not 0 <= class_index < MAX_CODE_VALUES:
        raise SefaError(f"{where}.class_index: expected a whole number >= 0, got {_shown(class_index)}")
    truncation = _number(mapping.get("truncation", 1.0), f"{where}.truncation")
    if not 0.0 < truncation <= 1.0:
        raise SefaError(f"{where}.truncation: expected a number in (0, 1], got {truncation}")
    return Conditioning(class_index, truncation)


def _code(value: Any, where: str) -> Nested:
    """A rectangular nested list of finite numbers, 1 to 3 levels deep."""
    if not isinstance(value, list) or not value:
        raise SefaError(f"{where}: expected a non-empty (nested) list of numbers")
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        if not probe or len(shape) == 3:
            raise SefaError(f"{where}: expected 1 to 3 levels of non-empty lists")
        shape.append(len(probe))
        probe = probe[0]
    if math.prod(shape) > MAX_CODE_VALUES:
        raise SefaError(f"{where}: more than {MAX_CODE_VALUES} numbers")

    def check(item: Any, depth: int) -> Nested:
        if depth == len(shape):
            if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
                raise SefaError(f"{where}: expected finite numbers, found {_shown(item)}")
            return float(item)
        if not isinstance(item, list) or len(item) != shape[depth]:
            raise SefaError(f"{where}: rows must all have the same length (shape {tuple(shape)})")
        return tuple(check(sub, depth + 1) for sub in item)

    return check(value, 0)


def _text(mapping: dict, key: str, where: str, max_length: int) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SefaError(f"{where}: {key}: required text is missing")
    if len(value) > max_length or "\n" in value:
        raise SefaError(f"{where}: {key}: expected one line of at most {max_length} characters")
    return value.strip()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SefaError(f"{where}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError as error:
        raise SefaError(f"{where}: expected a finite number") from error
    if not math.isfinite(number):
        raise SefaError(f"{where}: expected a finite number, got {number}")
    return number


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A short, single-line rendering of a bad value for an error message."""
    return " ".join(repr(value).split())[:40]


# ---- replaying ------------------------------------------------------------------------------
def _check_model(recipe: Recipe, generator: Generator) -> None:
    if recipe.digest != generator.digest:
        raise SefaError(
            f"the recipe was made with model '{recipe.model}' (sha256 {recipe.digest[:12]}...), "
            f"but this model's file is sha256 {generator.digest[:12] or '(unknown)'}...; "
            "load the same checkpoint to replay it"
        )
    num_directions = generator.direction_dim
    for semantic, _ in recipe.edits:
        if semantic >= num_directions:
            raise SefaError(f"recipe: edits: semantic {semantic} does not exist (0-{num_directions - 1})")
    if recipe.conditioning is not None and not generator.num_classes:
        raise SefaError("recipe: conditioning: this model is not class-conditional")
    if recipe.conditioning is None and generator.num_classes:
        raise SefaError("recipe: conditioning: this model is class-conditional; give class_index")
    if recipe.conditioning is not None and recipe.conditioning.class_index >= generator.num_classes:
        raise SefaError(
            f"recipe: conditioning.class_index: {recipe.conditioning.class_index} is not one of the "
            f"model's {generator.num_classes} classes"
        )


def recipe_codes(recipe: Recipe, generator: Generator) -> torch.Tensor:
    """The recipe's base codes, edited: (N, *code_shape) on the generator's device."""
    _check_model(recipe, generator)
    if recipe.code is not None:
        array = recipe.code_array()
        if tuple(array.shape[-len(generator.code_shape) :]) != generator.code_shape:
            expected = ", ".join(map(str, generator.code_shape))
            raise SefaError(
                f"recipe: base.code: shape {array.shape} does not fit this model; expected (N, {expected})"
            )
        codes = codes_for_generator(array, generator, "recipe: base.code")
    else:
        assert recipe.seed is not None
        codes = generator.sample(
            1, recipe.seed, recipe.trunc_psi, recipe.trunc_layers, **recipe.synthesis_kwargs
        )
    semantics = factorize(generator, recipe.layers)
    rows = {k: parse_layers(spec, generator.num_layers) for k, spec in recipe.rows}
    return apply_row_edits(codes, semantics, recipe.alphas, rows)


def apply_row_edits(
    codes: torch.Tensor,
    semantics: Semantics,
    alphas: Mapping[int, float],
    rows: Mapping[int, tuple[int, ...]],
) -> torch.Tensor:
    """``apply_edits``, except that a semantic in ``rows`` moves those W+ rows, not the semantics' own
    (a direction set's per-direction layer range). Edits on the same rows are summed as one offset,
    so without ``rows`` this is exactly ``apply_edits``."""
    groups: dict[tuple[int, ...], dict[int, float]] = {}
    for index, alpha in alphas.items():
        groups.setdefault(tuple(rows.get(index, semantics.layers)), {})[index] = alpha
    for layers, group in groups.items():
        codes = apply_edits(codes, replace(semantics, layers=layers, layer_grams=()), group)
    return codes


def apply_recipe(recipe: Recipe, generator: Generator) -> torch.Tensor:
    """Replay ``recipe``: images (N, 3, H, W), the raw generator output."""
    return generator.synthesize(recipe_codes(recipe, generator), **recipe.synthesis_kwargs)
