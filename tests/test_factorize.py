"""SeFa's math: sorted unit directions that maximise the change of the first affine layer."""

from __future__ import annotations

import numpy as np
import pytest

from sefa_core.factorize import factorize, factorize_matrices


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
