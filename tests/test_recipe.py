"""Edit recipes: exact round trips, exact replays, and one-line refusals of bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sefa_core.editing import apply_edits
from sefa_core.errors import SefaError
from sefa_core.factorize import factorize
from sefa_core.recipe import (
    Conditioning,
    Recipe,
    apply_recipe,
    parse_recipe,
    read_recipe,
    recipe_codes,
    recipe_to_yaml,
    write_recipe,
)

DIGEST = "ab" * 32


def _code_recipe(generator, codes: torch.Tensor, edits=((0, 3.0), (2, -1.25))) -> Recipe:
    return Recipe("default", generator.digest, "all", edits, code=codes)


def test_a_code_recipe_survives_yaml_exactly(default_generator) -> None:
    codes = default_generator.sample(2, seed=3) * 1.2345678  # values with long decimals
    recipe = _code_recipe(default_generator, codes)
    text = recipe_to_yaml(recipe)
    assert text.startswith("version: 1\n")
    again = parse_recipe(text, "r.yaml")
    assert again == recipe
    assert np.array_equal(again.code_array(), codes.numpy()), "float32 values come back bit for bit"


def test_a_seed_recipe_with_truncation_and_conditioning_survives_yaml() -> None:
    recipe = Recipe("ffhq", DIGEST, "0-1", [(4, 2.5)], seed=7, trunc_psi=0.7, trunc_layers=8)
    assert parse_recipe(recipe_to_yaml(recipe)) == recipe
    conditional = Recipe("biggan", DIGEST, "all", [], seed=1, conditioning=Conditioning(207, 0.4))
    again = parse_recipe(recipe_to_yaml(conditional))
    assert again == conditional and again.synthesis_kwargs == {"classes": 207, "truncation": 0.4}


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)),
        elements=st.floats(-1e6, 1e6, width=32),
    )
)
def test_any_float32_code_survives_yaml_bit_for_bit(array: np.ndarray) -> None:
    recipe = Recipe("m", DIGEST, "all", [(0, 0.1)], code=array)
    assert np.array_equal(parse_recipe(recipe_to_yaml(recipe)).code_array(), array)


def test_replaying_a_recipe_gives_the_editors_pixels(default_generator, tmp_path) -> None:
    codes = default_generator.sample(3, seed=11)
    recipe = _code_recipe(default_generator, codes)
    expected = default_generator.synthesize(
        apply_edits(codes, factorize(default_generator), {0: 3.0, 2: -1.25})
    )
    path = write_recipe(tmp_path / "edit.yaml", recipe)
    assert torch.equal(apply_recipe(read_recipe(path), default_generator), expected)


def test_a_seed_recipe_starts_from_the_seeded_sample(default_generator) -> None:
    recipe = Recipe("default", default_generator.digest, "all", [(1, -2.0)], seed=5)
    base = default_generator.sample(1, 5)
    expected = apply_edits(base, factorize(default_generator), {1: -2.0})
    assert torch.equal(recipe_codes(recipe, default_generator), expected)


def test_a_recipe_for_another_checkpoint_is_refused(default_generator) -> None:
    recipe = Recipe("default", DIGEST, "all", [(0, 1.0)], seed=0)
    with pytest.raises(SefaError, match="sha256 abababababab"):
        apply_recipe(recipe, default_generator)


def test_recipe_codes_that_do_not_fit_the_model_are_refused(default_generator) -> None:
    recipe = Recipe("default", default_generator.digest, "all", [], code=np.zeros((2, 7), np.float32))
    with pytest.raises(SefaError, match=r"base.code: shape \(2, 7\)"):
        recipe_codes(recipe, default_generator)
    missing = Recipe("default", default_generator.digest, "all", [(100, 1.0)], seed=0)
    with pytest.raises(SefaError, match="semantic 100 does not exist"):
        recipe_codes(missing, default_generator)
    conditioned = Recipe("default", default_generator.digest, "all", [], seed=0, conditioning=Conditioning(1))
    with pytest.raises(SefaError, match="not class-conditional"):
        recipe_codes(conditioned, default_generator)


def _yaml(**changes) -> str:
    data = {
        "version": 1,
        "model": "default",
        "digest": DIGEST,
        "layers": "all",
        "edits": [{"semantic": 0, "alpha": 1.0}],
        "base": {"seed": 0},
    }
    data.update(changes)
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_yaml(version=2), "version: expected 1, got 2"),
        (_yaml(version=True), "version: expected 1"),
        (_yaml(extra=1), "unknown key 'extra'"),
        (_yaml(digest="xyz"), "digest: expected 64 hexadecimal digits"),
        (_yaml(model=""), "model: required text is missing"),
        (_yaml(layers="3-1"), "layers: layer range '3-1' is reversed"),
        (
            _yaml(edits=[{"semantic": 0, "alpha": 1}, {"semantic": 0, "alpha": 2}]),
            r"edits\[1\].semantic: semantic 0",
        ),
        (_yaml(edits=[{"semantic": -1, "alpha": 1}]), r"edits\[0\].semantic: expected a whole number"),
        (_yaml(edits=[{"semantic": 0, "alpha": "big"}]), r"edits\[0\].alpha: expected a number"),
        (
            _yaml(edits=[{"semantic": 0, "alpha": float("nan")}]),
            r"edits\[0\].alpha: expected a finite number",
        ),
        (_yaml(base={"seed": -1}), "base.seed: expected a whole number"),
        (_yaml(base={"seed": 0, "trunc_psi": 2}), r"base.trunc_psi: expected a number in \[0, 1\]"),
        (_yaml(base={"seed": 0, "code": [1.0]}), "base: unknown key 'seed'"),
        (_yaml(base={"code": [[1.0, 2.0], [3.0]]}), "base.code: rows must all have the same length"),
        (_yaml(base={"code": [[1.0, "x"]]}), "base.code: expected finite numbers"),
        (_yaml(base={"code": [[[[1.0]]]]}), "base.code: expected 1 to 3 levels"),
        (
            _yaml(conditioning={"class_index": 1, "truncation": 0}),
            r"conditioning.truncation: expected a number in \(0, 1\]",
        ),
        ("- just\n- a list\n", "expected a mapping, got list"),
        ("version: [1\n", "not valid YAML at line"),
        ("version: 1\n", "model: required text is missing"),
    ],
)
def test_bad_recipes_are_refused_with_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(SefaError, match=message) as caught:
        parse_recipe(text, "edit.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("edit.yaml")


def test_yaml_tags_that_build_python_objects_are_not_executed() -> None:
    with pytest.raises(SefaError, match="not valid YAML"):
        parse_recipe("!!python/object/apply:os.system ['echo hacked']\n")


def test_a_missing_or_oversized_recipe_file_is_refused(tmp_path, monkeypatch) -> None:
    with pytest.raises(SefaError, match="no such recipe file"):
        read_recipe(tmp_path / "none.yaml")
    big = tmp_path / "big.yaml"
    big.write_text(_yaml())
    monkeypatch.setattr("sefa_core.recipe.MAX_RECIPE_BYTES", 10)
    with pytest.raises(SefaError, match="larger than 10 bytes"):
        read_recipe(big)


def _only_sefa_errors(text: str) -> None:
    try:
        parse_recipe(text, "fuzz")
    except SefaError as error:
        assert "\n" not in str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_parser(text: str) -> None:
    _only_sefa_errors(text)


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_KEYS = st.sampled_from(
    ["version", "model", "digest", "layers", "edits", "base", "conditioning", "seed", "code"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES | st.just(1) | st.just(DIGEST), max_size=7))
def test_random_recipe_shaped_yaml_never_crashes_the_parser(data: dict) -> None:
    _only_sefa_errors(yaml.safe_dump(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=_VALUES,
    psi=_VALUES,
    layers=_VALUES,
    edits=st.lists(st.fixed_dictionaries({"semantic": _VALUES, "alpha": _VALUES}), max_size=3),
    code=_VALUES,
)
def test_random_values_under_the_real_keys_never_crash_the_parser(seed, psi, layers, edits, code) -> None:
    _only_sefa_errors(_yaml(base={"seed": seed, "trunc_psi": psi, "trunc_layers": layers}, edits=edits))
    _only_sefa_errors(_yaml(base={"code": code}))
