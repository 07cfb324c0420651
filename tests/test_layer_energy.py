"""Which layers a direction lives in: its energy per layer, and the few layers that hold most of it."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from test_stylegan2 import _tiny_generator

from sefa_core.errors import InputError
from sefa_core.factorize import factorize, layers_holding


@pytest.fixture(scope="module")
def generator():
    return _tiny_generator(2)


def _normalised(generator, index: int) -> np.ndarray:
    weight = generator.layer_weight(index).detach().double().numpy()
    return weight / np.linalg.norm(weight, axis=1, keepdims=True)


@pytest.mark.parametrize(("spec", "top"), [("all", None), ("all", 4), ("1,3-4", None), ("0-2", 2)])
def test_a_directions_layer_energies_sum_to_its_eigenvalue(generator, spec: str, top: int | None) -> None:
    semantics = factorize(generator, spec, top=top)
    assert semantics.layer_energy.shape == (len(semantics.directions), len(semantics.layers))
    totals = semantics.layer_energy.sum(axis=1)  # (K,)
    np.testing.assert_allclose(totals, semantics.eigenvalues, rtol=1e-10, atol=1e-12)


def test_layer_energy_is_how_far_the_direction_moves_each_normalised_layer(generator) -> None:
    semantics = factorize(generator, "0,2-4", top=3)
    for position, layer in enumerate(semantics.layers):
        moved = np.linalg.norm(semantics.directions @ _normalised(generator, layer).T, axis=1) ** 2  # (K,)
        np.testing.assert_allclose(semantics.layer_energy[:, position], moved, rtol=1e-10)


@pytest.mark.parametrize("share", [0.5, 0.9, 1.0])
def test_layers_holding_a_share_is_the_smallest_set_that_does(generator, share: float) -> None:
    semantics = factorize(generator, "all")
    for index in range(4):
        energy = dict(zip(semantics.layers, semantics.layer_energy[index], strict=True))
        chosen = layers_holding(semantics, index, share)
        total = sum(energy.values())
        assert sum(energy[layer] for layer in chosen) >= share * total * (1 - 1e-9)
        assert list(chosen) == sorted(chosen) and set(chosen) <= set(semantics.layers)
        smaller = combinations(semantics.layers, len(chosen) - 1)
        assert all(sum(energy[layer] for layer in subset) < share * total for subset in smaller)


def test_layers_holding_is_refused_for_a_missing_direction_or_a_share_out_of_range(generator) -> None:
    semantics = factorize(generator, "all", top=3)
    with pytest.raises(InputError, match="semantic 3 does not exist"):
        layers_holding(semantics, 3)
    with pytest.raises(InputError, match=r"share must be in \(0, 1\], got 1.5"):
        layers_holding(semantics, 0, 1.5)
