"""The PCA baseline as GANSpace computes it, beside SeFa: same result type, same npz keys."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from test_app import REPO_ROOT, TIMEOUT_S, app, generator, studio  # noqa: F401 - the editor's fixtures
from test_stylegan2 import _tiny_generator

from sefa_core.cli import main
from sefa_core.errors import InputError
from sefa_core.factorize import direction_cosines, factorize
from sefa_core.pca import REGRESSION_SEED, SAMPLE_SEED

SAMPLES = 1000
Z_SPACE_SAMPLES = 400  # the brute force holds (N, 8192) first-layer outputs
SEPARATED = 1e-3  # variance gap (relative to the variance) beyond which a component's axis is well defined


def _well_separated(variances: np.ndarray) -> np.ndarray:
    """Which components differ from both neighbours by more than ``SEPARATED`` of their variance."""
    gaps = np.abs(np.diff(variances)) > SEPARATED * variances[1:]
    keep = np.ones(len(variances), bool)
    keep[:-1] &= gaps
    keep[1:] &= gaps
    return keep


def _assert_same_axes(ours: np.ndarray, expected: np.ndarray, variances: np.ndarray) -> None:
    keep = _well_separated(variances)
    assert keep.sum() >= len(variances) // 2
    cosines = np.abs(np.sum(ours * expected, axis=1))[keep]
    np.testing.assert_allclose(cosines, 1.0, atol=1e-8)


def test_stylegan_pca_is_the_pca_of_the_mapped_w() -> None:
    model = _tiny_generator(3)
    semantics = factorize(model, "all", method="pca", samples=SAMPLES)
    with torch.no_grad():  # the brute force: w of the seeded z, then an SVD of the centred samples
        w = model.mapping(model.sample_latents(SAMPLES, SAMPLE_SEED)).double().numpy()
    _, singular, components = np.linalg.svd(w - w.mean(axis=0), full_matrices=False)
    variances = singular**2 / (SAMPLES - 1)
    np.testing.assert_allclose(semantics.eigenvalues, variances, rtol=1e-8)
    _assert_same_axes(semantics.directions, components, variances)
    assert semantics.method == "pca" and semantics.layers == model.resolve_layers("all")


def test_z_space_pca_regresses_the_first_layers_principal_components_back_to_z(default_generator) -> None:
    samples = Z_SPACE_SAMPLES
    semantics = factorize(default_generator, "all", method="pca", samples=samples)
    weight = default_generator.layer_weight(0).detach().double().numpy()  # (8192, nz)
    fit = default_generator.sample_latents(samples, SAMPLE_SEED).double().numpy()
    regress = default_generator.sample_latents(samples, REGRESSION_SEED).double().numpy()
    # GANSpace, step by step, on the sampled first-layer outputs (N, 8192)
    outputs = fit @ weight.T
    mean = outputs.mean(axis=0)
    centred = outputs - mean
    squares, left = np.linalg.eigh(centred @ centred.T)  # (N, N): the SVD's left side, ascending
    squares, left = squares[::-1][: weight.shape[1]], left[:, ::-1][:, : weight.shape[1]]
    components = (centred.T @ left / np.sqrt(squares)).T  # (nz, 8192): unit principal axes
    variances = squares / (samples - 1)
    coords = (regress @ weight.T - mean) @ components.T / np.sqrt(variances)  # (N, K), unit variance
    mapping = np.linalg.lstsq(coords, regress, rcond=None)[0]  # (K, nz)
    expected = mapping / np.linalg.norm(mapping, axis=1, keepdims=True)
    np.testing.assert_allclose(semantics.eigenvalues, variances, rtol=1e-8)
    _assert_same_axes(semantics.directions, expected, variances)


def test_pca_directions_are_unit_rows_sorted_by_variance_and_seeded(default_generator) -> None:
    semantics = factorize(default_generator, "all", method="pca", samples=SAMPLES)
    np.testing.assert_allclose(np.linalg.norm(semantics.directions, axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(semantics.eigenvalues) <= 0)
    default_generator.factorization_cache.clear()
    again = factorize(default_generator, "all", method="pca", samples=SAMPLES)
    np.testing.assert_allclose(again.directions, semantics.directions, atol=1e-12)
    top = factorize(default_generator, "all", method="pca", samples=SAMPLES, top=5)
    np.testing.assert_allclose(top.directions, semantics.directions[:5], atol=1e-12)


def test_pca_needs_more_samples_than_code_dimensions(default_generator) -> None:
    with pytest.raises(InputError, match="PCA needs more samples than the 100 dimensions of a code, got 50"):
        factorize(default_generator, "all", method="pca", samples=50)


def test_cosines_between_methods_are_a_table_of_absolute_values(default_generator) -> None:
    sefa = factorize(default_generator, "all", top=6)
    baseline = factorize(default_generator, "all", method="pca", samples=SAMPLES, top=6)
    table = direction_cosines(sefa, baseline, 4)
    assert table.shape == (4, 4) and np.all((table >= 0) & (table <= 1 + 1e-12))
    np.testing.assert_allclose(direction_cosines(sefa, sefa, 6), np.eye(6), atol=1e-10)
    expected = np.abs(sefa.directions[:4] @ baseline.directions[:4].T)
    np.testing.assert_allclose(table, expected)


def test_sefa_factorize_pca_writes_the_same_keys_as_sefa(capsys, tmp_path) -> None:
    written = {}
    for method in ("sefa", "pca"):
        target = tmp_path / f"{method}.npz"
        argv = ["factorize", "default", "--method", method, "--samples", str(SAMPLES), "-o", str(target)]
        assert main(argv) == 0
        with np.load(target, allow_pickle=False) as saved:
            written[method] = {key: saved[key] for key in saved.files}
    assert set(written["pca"]) == set(written["sefa"])
    assert str(written["pca"]["method"]) == "pca" and str(written["sefa"]["method"]) == "sefa"
    pca = written["pca"]
    np.testing.assert_allclose(np.linalg.norm(pca["directions"], axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(pca["eigenvalues"]) <= 0)
    assert pca["layer_energy"].shape == (len(pca["directions"]), len(pca["layers"]))
    assert "pca, layers 0" in capsys.readouterr().out


def test_pca_with_too_few_samples_is_one_line_on_the_command_line(capsys, tmp_path) -> None:
    code = main(["factorize", "default", "--method", "pca", "--samples", "10", "-o", str(tmp_path / "p.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "PCA needs more samples" in err and len(err.strip().splitlines()) == 1


def test_compare_page_shows_both_methods_walking_the_same_face_with_the_cosine_table(app) -> None:  # noqa: F811
    page = AppTest.from_file(str(REPO_ROOT / "pages" / "4_Compare.py"), default_timeout=TIMEOUT_S)
    page.session_state["edit"] = app.session_state["edit"]  # what the editor has open
    page.run()
    assert not page.exception and not page.error
    next(button for button in page.button if button.label == "Compare").click().run()
    assert not page.exception and not page.error, [e.value for e in page.error]
    _, shown = page.session_state["compare.result"]
    assert set(shown.grids) == {"sefa", "pca"}
    assert all(grid.shape == (1, 5, 7, 64, 64, 3) for grid in shown.grids.values())  # K=5 x 7 distances
    table = page.dataframe[0].value
    assert table.shape == (5, 6) and list(table["SeFa"])[0].startswith("000 · λ=")
    np.testing.assert_allclose(table.iloc[:, 1:].to_numpy(dtype=float), np.round(shown.cosines, 3))
    assert len(page.get("image")) == 2  # the two grids, side by side


def test_a_layer_change_reuses_the_stylegan_pca_and_keeps_its_own_layers(monkeypatch) -> None:
    model = _tiny_generator(4)
    module = sys.modules["sefa_core.pca"]
    calls = []
    real = module.sample_rows
    monkeypatch.setattr(module, "sample_rows", lambda *args: calls.append(args[2]) or real(*args))
    first = factorize(model, "0-1", method="pca", samples=SAMPLES)
    second = factorize(model, "2-4", method="pca", samples=SAMPLES, top=3)
    assert calls == [SAMPLE_SEED]  # W is sampled once: it does not depend on the layers
    assert second.layers == (2, 3, 4) and first.layers == (0, 1)
    np.testing.assert_allclose(second.directions, first.directions[:3])
