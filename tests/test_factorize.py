"""SeFa's math: sorted unit directions that maximise the change of the first affine layer."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from test_stylegan2 import _tiny_generator

from sefa_core.errors import InputError
from sefa_core.factorize import Semantics, factorize, factorize_matrices


def _random_layers(seed: int, widths=(40, 24, 56), dim=16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(out, dim)) * rng.uniform(0.1, 5, size=(out, 1)) for out in widths]


def _normalised_stack(matrices: list[np.ndarray]) -> np.ndarray:
    stacked = np.concatenate(matrices)
    return stacked / np.linalg.norm(stacked, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_directions_match_brute_force_eigen_decomposition(seed: int) -> None:
    matrices = _random_layers(seed)
    eigenvalues, directions = factorize_matrices(matrices)
    weight = _normalised_stack(matrices)
    # The reference: a general eig of the Gram matrix, sorted afterwards.
    ref_values, ref_vectors = np.linalg.eig(weight.T @ weight)
    order = np.argsort(-ref_values.real)
    np.testing.assert_allclose(eigenvalues, ref_values.real[order], rtol=1e-10)
    cosines = np.abs(np.sum(directions * ref_vectors.real[:, order].T, axis=1))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_top_direction_moves_the_layer_output_more_than_any_random_direction(seed: int) -> None:
    matrices = _random_layers(seed)
    eigenvalues, directions = factorize_matrices(matrices)
    weight = _normalised_stack(matrices)
    gain = np.linalg.norm(weight @ directions[0]) ** 2
    assert gain == pytest.approx(eigenvalues[0])
    probes = np.random.default_rng(seed).normal(size=(2000, weight.shape[1]))
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert np.max(np.linalg.norm(probes @ weight.T, axis=1) ** 2) <= gain + 1e-9


def test_eigenvalues_are_sorted_largest_first_and_directions_are_orthonormal() -> None:
    eigenvalues, directions = factorize_matrices(_random_layers(7))
    assert np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(directions @ directions.T, np.eye(len(directions)), atol=1e-10)


def test_direction_signs_are_deterministic_with_largest_component_positive() -> None:
    matrices = _random_layers(3)
    _, first = factorize_matrices(matrices)
    _, again = factorize_matrices([-m for m in matrices])
    np.testing.assert_allclose(first, again, atol=1e-10)
    largest = first[np.arange(len(first)), np.argmax(np.abs(first), axis=1)]
    assert np.all(largest > 0)


def test_row_normalisation_removes_per_unit_scale() -> None:
    matrices = _random_layers(4)
    scaled = [m * np.random.default_rng(9).uniform(0.01, 100, size=(len(m), 1)) for m in matrices]
    values_a, directions_a = factorize_matrices(matrices)
    values_b, directions_b = factorize_matrices(scaled)
    np.testing.assert_allclose(values_a, values_b, rtol=1e-9)
    np.testing.assert_allclose(directions_a, directions_b, atol=1e-8)
    values_raw, _ = factorize_matrices(scaled, normalize_rows=False)
    assert not np.allclose(values_raw, values_b)


def test_default_model_factorization_is_cached_per_layer_set(default_generator) -> None:
    first = factorize(default_generator, "all")
    again = factorize(default_generator, "0")
    assert again.directions is first.directions
    assert first.layers == (0,)
    assert first.digest == default_generator.digest and len(first.digest) == 64
    assert again.spec == "0"


# ---- top=K: the leading directions of a layer change, without the full solve ------------------
@pytest.mark.parametrize("top", [1, 3, 10, 15])
def test_top_k_directions_are_the_first_rows_of_the_full_result(top: int) -> None:
    matrices = _random_layers(11)
    values, directions = factorize_matrices(matrices)
    top_values, top_directions = factorize_matrices(matrices, top=top)
    assert top_directions.shape == (top, matrices[0].shape[1]) and top_values.shape == (top,)
    np.testing.assert_allclose(top_values, values[:top], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:top], atol=1e-10)  # same signs too


def test_top_k_with_tied_eigenvalues_still_matches_the_full_result() -> None:
    # Eigenvalues 9, 4, 4, 1, ...: directions 1 and 2 are any basis of one plane, so a partial
    # solver would pick another basis than the full one; top=3 must hand back the full one's.
    rotation, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(8, 8)))
    spectrum = np.array([9.0, 4.0, 4.0, 1.0, 0.5, 0.25, 0.1, 0.05])
    weight = np.sqrt(spectrum)[:, None] * rotation.T  # (8, 8): Gram = rotation · diag · rotationᵀ
    values, directions = factorize_matrices([weight], normalize_rows=False)
    top_values, top_directions = factorize_matrices([weight], normalize_rows=False, top=3)
    np.testing.assert_allclose(top_values, values[:3], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:3], atol=1e-12)


def test_factorize_top_gives_the_apps_sliders_from_the_full_result(default_generator) -> None:
    full = factorize(default_generator, "all")
    top = factorize(default_generator, "all", top=10)
    assert len(top.directions) == 10 and top.layers == full.layers and top.spec == "all"
    np.testing.assert_allclose(top.directions, full.directions[:10], atol=1e-12)
    assert factorize(default_generator, "all", top=10_000).directions.shape == full.directions.shape


def test_a_layer_change_sums_the_cached_per_layer_grams(monkeypatch) -> None:
    generator = _tiny_generator(0)
    specs = ("0-1", "2,4", "all", "1-3")
    expected = {}
    for spec in specs:
        chosen = generator.resolve_layers(spec)
        matrices = [generator.layer_weight(i).detach().double().numpy() for i in chosen]
        expected[spec] = factorize_matrices(matrices, top=3)[1]
    builds = []
    module = sys.modules["sefa_core.factorize"]  # the package's ``factorize`` attribute is the function
    real = module.layer_grams
    monkeypatch.setattr(module, "layer_grams", lambda *args: builds.append(args) or real(*args))
    for spec in specs:
        np.testing.assert_allclose(factorize(generator, spec, top=3).directions, expected[spec], atol=1e-10)
    assert len(builds) == 1  # the Grams of every layer, once for the model


def test_bad_factorization_inputs_are_one_line_user_errors(default_generator) -> None:
    with pytest.raises(InputError, match="at least one layer matrix"):
        factorize_matrices([])
    with pytest.raises(InputError, match=r"matrix 1 has shape \(3, 5\); every layer must be \(out, 4\)"):
        factorize_matrices([np.ones((2, 4)), np.ones((3, 5))])
    with pytest.raises(InputError, match="top must be at least 1, got 0"):
        factorize(default_generator, "all", top=0)
    with pytest.raises(InputError, match="method 'ica': expected one of sefa, pca"):
        factorize(default_generator, "all", method="ica")
    with pytest.raises(InputError, match=r"directions must be \(K, direction_dim\), got shape \(3,\)"):
        Semantics(np.ones(3), np.ones(3), (0,))
    with pytest.raises(InputError, match=r"3 directions, eigenvalues of shape \(2,\)"):
        Semantics(np.eye(3), np.ones(2), (0,))
