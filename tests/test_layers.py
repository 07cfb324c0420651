"""Layer specs: what users type in the layer box or after ``-L``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sefa_core.errors import LayerSpecError
from sefa_core.layers import format_layers, parse_layers


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", tuple(range(8))),
        (" ALL ", tuple(range(8))),
        ("0-1", (0, 1)),
        ("2,4,6-7", (2, 4, 6, 7)),
        ("2, 4 , 6 - 7", (2, 4, 6, 7)),
        ("3", (3,)),
        ("5-5", (5,)),
        ("1,1,0-1", (0, 1)),
    ],
)
def test_layer_specs_resolve_to_sorted_indices(spec: str, expected: tuple[int, ...]) -> None:
    assert parse_layers(spec, 8) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("8", "out of range"),
        ("0-8", "out of range"),
        ("5-2", "reversed"),
        ("a-b", "cannot read"),
        ("1,,2", "cannot read"),
        ("-1", "cannot read"),
        ("1-2-3", "cannot read"),
        ("0.5", "cannot read"),
    ],
)
def test_bad_layer_specs_give_one_line_naming_the_valid_range(spec: str, problem: str) -> None:
    with pytest.raises(LayerSpecError) as caught:
        parse_layers(spec, 8)
    message = str(caught.value)
    assert problem in message
    assert "0-7" in message
    assert "\n" not in message


@given(st.text(max_size=40))
def test_any_text_either_resolves_or_raises_a_layer_spec_error(spec: str) -> None:
    try:
        layers = parse_layers(spec, 18)
    except LayerSpecError as error:
        assert "0-17" in str(error)
    else:
        assert layers == tuple(sorted(set(layers)))
        assert all(0 <= i < 18 for i in layers)


@given(st.sets(st.integers(min_value=0, max_value=17), min_size=1))
def test_formatted_layers_parse_back_to_the_same_set(layers: set[int]) -> None:
    chosen = tuple(sorted(layers))
    assert parse_layers(format_layers(chosen), 18) == chosen
