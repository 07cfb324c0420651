"""SeFa: closed-form factorization of the latent semantics of a generator.

The first step from an edit-space row is affine, y = A·n + b. The unit directions n that move y
the most are the top eigenvectors of AᵀA. As in the reference code, the rows of every chosen
layer's A are stacked and each row (one output unit) is scaled to unit L2 norm first.

Unlike the public reference, which calls a general ``eig`` and keeps LAPACK's order, we use a
symmetric solver in float64 and sort by eigenvalue, largest first, and give each direction a
deterministic sign (its largest-magnitude component is positive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from sefa_core.layers import format_layers
from sefa_core.models.base import Generator


@dataclass(frozen=True)
class Semantics:
    """The result of SeFa on one model and one layer set."""

    directions: np.ndarray  # (K, direction_dim), unit rows, sorted by eigenvalue
    eigenvalues: np.ndarray  # (K,), largest first
    layers: tuple[int, ...]  # the factorizable layers that were stacked
    digest: str = ""  # sha256 of the model's checkpoint
    spec: str = field(default="")  # the layer spec as the user gave it

    def __post_init__(self) -> None:
        assert self.directions.ndim == 2, "directions must be (K, direction_dim)"
        assert self.eigenvalues.shape == (self.directions.shape[0],), "one eigenvalue a direction"

    @property
    def layer_spec(self) -> str:
        """The layers as the shortest spec string, e.g. ``"0-1"``."""
        return format_layers(self.layers)


def factorize_matrices(
    matrices: Sequence[np.ndarray], normalize_rows: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Pure SeFa on stacked affine matrices, each (out_l, D) -> (eigenvalues (D,), directions (D, D)).

    ``normalize_rows=False`` gives the un-normalised variant (rosinality's script), for parity.
    """
    assert matrices, "at least one matrix is needed"
    width = matrices[0].shape[1]
    assert all(m.ndim == 2 and m.shape[1] == width for m in matrices), "all (out, D), same D"
    weight = np.concatenate([np.asarray(m, dtype=np.float64) for m in matrices], axis=0)
    if normalize_rows:
        norms = np.linalg.norm(weight, axis=1, keepdims=True)  # (sum_out, 1)
        weight = weight / np.where(norms > 0, norms, 1.0)
    gram = weight.T @ weight  # (D, D), symmetric positive semi-definite
    eigenvalues, eigenvectors = np.linalg.eigh(gram)  # ascending; columns are vectors
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    directions = eigenvectors[:, order].T  # (D, D), rows are directions
    largest = np.argmax(np.abs(directions), axis=1)
    signs = np.sign(directions[np.arange(len(directions)), largest])
    directions = directions * np.where(signs == 0, 1.0, signs)[:, None]
    return eigenvalues, directions


def factorize(generator: Generator, layers: str = "all", normalize_rows: bool = True) -> Semantics:
    """SeFa on ``generator``'s chosen layers; cached per (checkpoint digest, layer set)."""
    chosen = generator.resolve_layers(layers)
    key = (generator.digest, chosen, normalize_rows)
    cache = generator.factorization_cache
    if key not in cache:
        matrices = [generator.layer_weight(i).detach().cpu().double().numpy() for i in chosen]
        eigenvalues, directions = factorize_matrices(matrices, normalize_rows)
        cache[key] = Semantics(directions, eigenvalues, chosen, generator.digest, layers)
    return replace(cache[key], spec=layers)
