"""The editor's rules without a UI: sliders, which face Random shows next, rendering and recipes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from test_stylegan2 import _tiny_generator

from sefa_core import session
from sefa_core.config import SliderRange
from sefa_core.factorize import factorize
from sefa_core.recipe import apply_recipe, parse_recipe, recipe_to_yaml
from sefa_core.render import to_uint8
from sefa_core.session import CodeRows, CodeSource, Settings, Truncation

SLIDER = SliderRange(-5.0, 5.0, 0.1)


@pytest.fixture(scope="module")
def semantics(default_generator):
    return factorize(default_generator, "all")


@pytest.fixture(scope="module")
def rows(default_generator) -> CodeRows:
    return CodeRows(default_generator.sample(3, seed=11), "prepared")


def test_slider_label_shows_index_and_eigenvalue():
    assert session.slider_label(3, 12.1789) == "Semantic 003 · λ=12.18"
    assert session.slider_label(120, 0.5) == "Semantic 120 · λ=0.50"


def test_more_or_fewer_sliders_keep_the_values_that_stay():
    assert session.fit_alphas((1.0, -2.0, 3.0), 2) == (1.0, -2.0)
    assert session.fit_alphas((1.0,), 3) == (1.0, 0.0, 0.0)
    assert session.fit_alphas({2: 4.0}, 3) == (0.0, 0.0, 4.0)


@pytest.mark.parametrize(
    "sent",
    [
        [1.0, 2.0],  # wrong count
        [1.0, math.nan, 0.0],
        [1.0, math.inf, 0.0],
        [1.0, "2", 0.0],
        [True, 0.0, 0.0],
        "1,2,3",
        None,
    ],
)
def test_slider_values_from_a_browser_are_checked(sent):
    assert session.client_alphas(sent, 3, SLIDER) is None


def test_slider_values_from_a_browser_are_clamped_to_the_range():
    assert session.client_alphas([1, -99.0, 7.5], 3, SLIDER) == (1.0, -5.0, 5.0)


def test_random_steps_through_the_rows_then_draws_seeds(rows):
    rng = random.Random(0)
    shown = [session.first_source(rows)]
    for _ in range(4):
        shown.append(session.next_source(shown[-1], rows, rng))
    assert [s.kind for s in shown] == ["prepared", "prepared", "prepared", "seed", "seed"]
    assert [s.index for s in shown[:3]] == [0, 1, 2]
    assert shown[3].index != shown[4].index
    assert all(0 <= s.index <= session.MAX_SEED for s in shown[3:])


def test_random_from_a_prepared_code_continues_after_it(rows):
    assert session.next_source(CodeSource("prepared", 1), rows, random.Random(0)) == CodeSource("prepared", 2)


def test_random_without_rows_starts_on_seed_zero_then_draws_seeds():
    rows = CodeRows()
    assert session.first_source(rows) == CodeSource("seed", 0)
    assert session.next_source(CodeSource("seed", 0), rows, random.Random(1)).kind == "seed"


def test_random_from_an_upload_does_not_step_into_the_prepared_codes(rows):
    shown = CodeSource("upload", 0, "mine.npy")
    assert session.next_source(shown, rows, random.Random(0)).kind == "seed"


def test_a_seed_shows_the_same_face_as_sampling_it(default_generator, rows):
    code = session.source_code(default_generator, CodeSource("seed", 42), rows, Truncation())
    torch.testing.assert_close(code, default_generator.sample(1, 42), rtol=0, atol=0)


def test_a_prepared_code_is_that_row(default_generator, rows):
    code = session.source_code(default_generator, CodeSource("prepared", 2), rows, Truncation())
    assert torch.equal(code, rows.rows[2:3])


def test_sliders_at_zero_show_the_original(default_generator, semantics, rows):
    state = session.new_state(
        "default", default_generator, CodeSource("prepared", 1), rows, Settings("all", 5)
    )
    assert state.alphas == (0.0,) * 5
    np.testing.assert_array_equal(
        session.render_edit(default_generator, semantics, state),
        session.render_original(default_generator, state),
    )


def test_a_slider_moves_the_code_along_its_direction(default_generator, semantics, rows):
    state = session.new_state(
        "default", default_generator, CodeSource("prepared", 0), rows, Settings("all", 5)
    )
    moved = session.edited_code(default_generator, semantics, state.with_alphas((0, 0, 3.0, 0, 0)))
    expected = rows.rows[0:1] + torch.from_numpy((3.0 * semantics.directions[2]).astype(np.float32))
    torch.testing.assert_close(moved, expected)
    pixels = session.render_edit(default_generator, semantics, state.with_alphas((0, 0, 3.0, 0, 0)))
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - session.render_original(default_generator, state)).max() > 10


@pytest.mark.parametrize("source", [CodeSource("seed", 1234), CodeSource("prepared", 1)])
def test_the_recipe_replays_to_the_same_pixels(default_generator, semantics, rows, source):
    state = session.new_state("default", default_generator, source, rows, Settings("all", 5))
    state = state.with_alphas((2.5, 0.0, -1.7, 0.0, 4.1))
    recipe = parse_recipe(recipe_to_yaml(session.edit_recipe(state)))
    assert (recipe.seed is not None) == (source.kind == "seed")
    assert dict(recipe.edits) == {0: 2.5, 2: -1.7, 4: 4.1}
    replayed = to_uint8(apply_recipe(recipe, default_generator))[0]
    np.testing.assert_array_equal(replayed, session.render_edit(default_generator, semantics, state))


def test_a_spec_naming_the_same_layers_keeps_the_sliders(default_generator, rows):
    state = session.new_state("default", default_generator, CodeSource("seed", 3), rows, Settings("all", 4))
    state = state.with_alphas((1.0, 2.0, 3.0, 4.0))
    same, moved = session.apply_settings(state, default_generator, rows, Settings("all", 6))
    assert not moved and same.alphas == (1.0, 2.0, 3.0, 4.0, 0.0, 0.0)
    one_layer, moved = session.apply_settings(state, default_generator, rows, Settings("0", 4))  # DCGAN
    assert not moved and one_layer.alphas == (1.0, 2.0, 3.0, 4.0) and one_layer.layers == "0"


def test_other_layers_put_the_edits_aside_until_they_are_picked_again(rows):
    styled = _tiny_generator(1)
    styled.digest = "tiny"
    state = session.new_state("styled", styled, CodeSource("seed", 3), rows, Settings("all", 3))
    state = state.with_alphas((1.0, 0.0, -2.0)).with_names({2: "smile"})
    other, moved = session.apply_settings(state, styled, rows, Settings("0-1", 3))
    assert moved and other.alphas == (0.0,) * 3 and other.names == ("",) * 3
    other = other.with_alphas((0.5, 0.0, 0.0))
    back, moved = session.apply_settings(other, styled, rows, Settings("all", 3))
    assert moved and back.alphas == (1.0, 0.0, -2.0) and back.named == {2: "smile"}
    again, _ = session.apply_settings(back, styled, rows, Settings("0,1", 3))
    assert again.alphas == (0.5, 0.0, 0.0)


def test_a_new_truncation_samples_the_shown_seed_again(default_generator, rows, monkeypatch):
    state = session.new_state("default", default_generator, CodeSource("seed", 3), rows, Settings("all", 2))
    asked = []
    original_sample = default_generator.sample

    def sample(n, seed, trunc_psi=1.0, trunc_layers=None):
        asked.append((seed, trunc_psi, trunc_layers))
        return original_sample(n, seed, trunc_psi, trunc_layers)

    monkeypatch.setattr(default_generator, "sample", sample)
    updated, _ = session.apply_settings(
        state, default_generator, rows, Settings("all", 2, Truncation(0.7, 4))
    )
    assert asked == [(3, 0.7, 4)] and updated.truncation == Truncation(0.7, 4)
    session.apply_settings(updated.with_alphas((1.0, 0.0)), default_generator, rows, Settings("all", 2))
    assert asked[-1] == (3, 1.0, None)


def test_a_new_face_keeps_the_slider_values(default_generator, rows):
    state = session.new_state(
        "default", default_generator, CodeSource("prepared", 0), rows, Settings("all", 3)
    )
    state = state.with_alphas((1.0, 0.0, -2.0))
    shown = session.show_source(state, default_generator, CodeSource("seed", 9), rows)
    assert shown.alphas == (1.0, 0.0, -2.0) and shown.source == CodeSource("seed", 9)
    np.testing.assert_array_equal(shown.code, default_generator.sample(1, 9).numpy())


def test_the_gif_sweeps_one_slider_with_the_others_held(default_generator, semantics, rows):
    state = session.new_state(
        "default", default_generator, CodeSource("prepared", 0), rows, Settings("all", 3)
    )
    state = state.with_alphas((0.0, 1.5, 0.0))
    frames = session.traversal_frames(default_generator, semantics, state, 1, SliderRange(-4, 4, 0.1), 9)
    assert frames.shape == (9, 64, 64, 3)
    at_one = session.render_edit(default_generator, semantics, state.with_alphas((0.0, 1.0, 0.0)))
    assert np.abs(frames[5].astype(int) - at_one).max() <= 1  # distance 1 is the 6th of -4..4


def test_a_row_asked_for_under_another_model_is_not_shown(rows):
    """A code request still pending at a model switch must not reach a model without that row."""
    none = CodeRows()
    assert rows.holds(rows.source(0)) and rows.holds(CodeSource("seed", 7))
    assert not none.holds(rows.source(0))
    assert not rows.holds(rows.source(len(rows)))
    assert not rows.holds(CodeSource("upload", 0, "mine.npy"))
