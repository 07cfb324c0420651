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


# ---- the partial solvers behind top=K: Lanczos when provably exact, else MRRR, else in full ------
_module = sys.modules["sefa_core.factorize"]  # the package's ``factorize`` attribute is the function


def _gram_with_spectrum(spectrum: np.ndarray, seed: int = 0) -> np.ndarray:
    """A symmetric Gram with exactly these eigenvalues, in a random orthonormal basis: (D, D)."""
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(spectrum), len(spectrum))))
    return (rotation * spectrum) @ rotation.T


def _wide_layers(seed: int, decaying: bool, dim: int = 256) -> list[np.ndarray]:
    """Layers wide enough for Lanczos: N(0, 1) weights (flat spectrum), or mixed to decay as trained ones."""
    rng = np.random.default_rng(seed)
    matrices = [rng.normal(size=(out, dim)) for out in (256, 128, 64)]
    if not decaying:
        return matrices
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    mix = (rotation * np.exp(-np.arange(dim) / 30.0)) @ rotation.T  # (dim, dim)
    return [m @ mix for m in matrices]


@pytest.mark.parametrize("decaying", [False, True], ids=["flat spectrum", "decaying spectrum"])
def test_top_k_of_a_wide_gram_is_the_first_rows_of_the_full_result(decaying: bool) -> None:
    matrices = _wide_layers(3, decaying)
    assert _module._lanczos_fits(matrices[0].shape[1], 11)
    values, directions = factorize_matrices(matrices)
    top_values, top_directions = factorize_matrices(matrices, top=10)
    np.testing.assert_allclose(top_values, values[:10], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:10], atol=1e-10)


def test_top_k_with_nearly_equal_eigenvalues_still_matches_the_full_result() -> None:
    # Leading eigenvalues 1e-4 apart (relative): distinct, but only just resolved by any solver.
    spectrum = np.r_[1.0 - 1e-4 * np.arange(12), np.linspace(0.5, 0.0, 244)]
    gram = _gram_with_spectrum(spectrum)
    values, directions = _module.eigen_directions(gram)
    top_values, top_directions = _module.eigen_directions(gram, top=10)
    np.testing.assert_allclose(top_values, values[:10], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:10], atol=1e-10)


@pytest.mark.parametrize("rows", [5, 12])
def test_top_k_of_a_layer_with_fewer_outputs_than_directions_matches_the_full_result(rows: int) -> None:
    # 5 rows: rank 5 < top, the trailing eigenvalues are all 0 (tied) and top=10 is the full solve's;
    # 12 rows: rank 12 > top, the partial solve's.
    matrices = [np.random.default_rng(rows).normal(size=(rows, 256))]
    values, directions = factorize_matrices(matrices)
    top_values, top_directions = factorize_matrices(matrices, top=10)
    np.testing.assert_allclose(top_values, values[:10], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:10], atol=1e-10)


def _count_full_solves(monkeypatch) -> list[int]:
    calls = []
    real = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda gram: calls.append(len(gram)) or real(gram))
    return calls


def test_clustered_leading_eigenvalues_fall_back_to_the_full_solver(monkeypatch) -> None:
    # Eigenvalues 3 and 4 are 1e-9 apart: no partial solver can pick the full solver's basis of
    # their plane, so top=10 must come from the full solve itself.
    spectrum = np.r_[np.linspace(2.0, 1.5, 12), np.linspace(1.0, 0.0, 244)]
    spectrum[3] = spectrum[2] - 1e-9
    gram = _gram_with_spectrum(spectrum, seed=1)
    values, directions = _module.eigen_directions(gram)
    full_solves = _count_full_solves(monkeypatch)
    top_values, top_directions = _module.eigen_directions(gram, top=10)
    assert full_solves == [256]
    np.testing.assert_allclose(top_values, values[:10], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:10], atol=1e-12)


def test_well_separated_leading_eigenvalues_need_no_full_solve(monkeypatch) -> None:
    gram = _gram_with_spectrum(np.r_[np.linspace(2.0, 1.5, 12), np.linspace(1.0, 0.0, 244)], seed=1)
    full_solves = _count_full_solves(monkeypatch)
    _module.eigen_directions(gram, top=10)
    assert full_solves == []


@pytest.mark.parametrize(
    "setting",
    [("DIRECTION_TOLERANCE", 0.0), ("LANCZOS_RESTARTS", 1)],
    ids=["not provably exact", "no convergence"],
)
def test_a_rejected_lanczos_solve_falls_back_to_mrrr_and_stays_exact(monkeypatch, setting) -> None:
    matrices = _wide_layers(5, decaying=False)
    values, directions = factorize_matrices(matrices)
    mrrr = []
    real = _module._mrrr_pairs
    monkeypatch.setattr(_module, "_mrrr_pairs", lambda *args: mrrr.append(args[1]) or real(*args))
    top_values, top_directions = factorize_matrices(matrices, top=10)
    assert mrrr == []  # Lanczos proved its pairs exact
    monkeypatch.setattr(_module, setting[0], setting[1])
    if setting[0] == "LANCZOS_RESTARTS":
        monkeypatch.setattr(_module, "LANCZOS_TOLERANCE", 1e-16)
    top_values, top_directions = factorize_matrices(matrices, top=10)
    assert mrrr == [11]
    np.testing.assert_allclose(top_values, values[:10], rtol=1e-12)
    np.testing.assert_allclose(top_directions, directions[:10], atol=1e-10)


def test_every_layer_sets_gram_is_the_sum_of_its_layers_whether_summed_or_the_total_less_the_rest() -> None:
    grams = _module.layer_grams(_random_layers(2, widths=(40, 24, 56, 8, 30, 12)))
    total = _module.sum_grams(grams)
    for size in range(1, len(grams) + 1):
        for chosen in (tuple(range(size)), tuple(range(len(grams) - size, len(grams)))):
            expected = sum(grams[i] for i in chosen)
            np.testing.assert_allclose(_module.subset_gram(grams, chosen, total), expected, atol=1e-12)
    assert _module.subset_gram(grams, (0,), total) is not grams[0]  # fresh: the caller may write to it
