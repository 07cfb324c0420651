"""SeFa: closed-form factorization of the latent semantics of a generator.

The first step from an edit-space row is affine, y = A·n + b. The unit directions n that move y
the most are the top eigenvectors of AᵀA. As in the reference code, the rows of every chosen
layer's A are stacked and each row (one output unit) is scaled to unit L2 norm first.

Unlike the public reference, which calls a general ``eig`` and keeps LAPACK's order, we use a
symmetric solver in float64 and sort by eigenvalue, largest first, and give each direction a
deterministic sign (its largest-magnitude component is positive).

Row normalisation is per row, so the Gram of a stack of layers is the sum of the layers' own
Grams Â_lᵀÂ_l. Each model's per-layer Grams (and their total) are computed once; a new layer set
is then a sum of D×D matrices (or the total less the layers left out, when that is fewer) and one
eigensolve. With ``top=K`` only the K leading eigenpairs are solved for, which is where a layer
change spends its time: by ARPACK's Lanczos, kept only when its residuals prove every direction
exact, else by LAPACK's MRRR driver on a subset, else (tied eigenvalues) in full.

``method="pca"`` gives the GANSpace baseline instead (see ``sefa_core.pca``), in the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.sparse.linalg

from sefa_core import pca
from sefa_core.errors import require
from sefa_core.layers import format_layers
from sefa_core.models.base import Generator
from sefa_core.pca import Progress

Method = Literal["sefa", "pca"]
METHODS: tuple[Method, ...] = ("sefa", "pca")
DEFAULT_PCA_SAMPLES = pca.DEFAULT_SAMPLES
DEFAULT_ENERGY_SHARE = 0.9  # "use the layers that hold 90 % of it"
# Two eigenvalues closer than this (relative to the largest) have no well-defined separate
# directions: solvers pick different bases of their shared plane. ``top=`` then solves in full, so
# that its rows stay the first rows of the full result.
WELL_SEPARATED = 1e-6
# ``top=`` tries ARPACK's Lanczos first on Grams at least this wide (below, LAPACK's dense partial
# solve is as fast), keeping its pairs only when each direction is provably within
# DIRECTION_TOLERANCE of the exact one; otherwise LAPACK's MRRR solve of the same pairs runs.
LANCZOS_MIN_WIDTH = 256
LANCZOS_VECTORS = 32  # ARPACK's ncv: the Krylov basis kept between restarts (at least 2(K+1)+1)
LANCZOS_TOLERANCE = 1e-13  # ARPACK's relative residual; measured ones land at 1e-15-1e-13 of λ1
LANCZOS_RESTARTS = 20  # then MRRR runs; 512-wide Grams of N(0, 1) weights (the worst case) need 8-10
LANCZOS_SEED = 0  # a fixed random start vector: the same Gram always gives the same pairs
DIRECTION_TOLERANCE = 1e-11  # ‖v − v_exact‖ bound for a Lanczos direction to be kept
SHARE_SLACK = 1e-12  # a cumulative float sum that should reach the whole may fall short by rounding


@dataclass(frozen=True)
class Semantics:
    """The result of SeFa (or the PCA baseline) on one model and one layer set."""

    directions: np.ndarray  # (K, direction_dim), unit rows, sorted by eigenvalue
    eigenvalues: np.ndarray  # (K,), largest first; for PCA the variances
    layers: tuple[int, ...]  # the factorizable layers that were stacked
    digest: str = ""  # sha256 of the model's checkpoint
    spec: str = field(default="")  # the layer spec as the user gave it
    method: Method = "sefa"
    # The chosen layers' Grams Â_lᵀÂ_l (rows normalised unless factorize(normalize_rows=False)),
    # (D, D) each, shared with the model's cache.
    layer_grams: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = tuple(self.directions.shape)
        require(self.directions.ndim == 2, f"directions must be (K, direction_dim), got shape {shape}")
        require(
            tuple(self.eigenvalues.shape) == (shape[0],),
            f"one eigenvalue a direction: {shape[0]} directions, eigenvalues of shape "
            f"{tuple(self.eigenvalues.shape)}",
        )
        require(self.method in METHODS, f"method {self.method!r}: expected one of {', '.join(METHODS)}")
        require(
            not self.layer_grams or len(self.layer_grams) == len(self.layers),
            f"{len(self.layer_grams)} layer Grams for {len(self.layers)} layers",
        )

    @property
    def layer_spec(self) -> str:
        """The layers as the shortest spec string, e.g. ``"0-1"``."""
        return format_layers(self.layers)

    @cached_property
    def layer_energy(self) -> np.ndarray:
        """e[k, i] = ‖Â_l nₖ‖² = nₖᵀ G_l nₖ for l = ``layers[i]``: (K, len(layers)).

        How much of direction k's effect each layer carries. For SeFa a row sums to its
        eigenvalue. Computed on first use (it costs K·|S|·D² multiply-adds), from the Grams
        that ``factorize`` attaches.
        """
        require(bool(self.layer_grams), "layer energy needs the per-layer Grams that factorize() attaches")
        energy = [np.einsum("kd,kd->k", self.directions @ gram, self.directions) for gram in self.layer_grams]
        return np.stack(energy, axis=1)  # (K, |S|)


def layer_grams(matrices: Sequence[np.ndarray], normalize_rows: bool = True) -> tuple[np.ndarray, ...]:
    """Each affine (out_l, D) -> its Gram Â_lᵀÂ_l (D, D) in float64; a stack's Gram is their sum."""
    require(len(matrices) > 0, "factorization needs at least one layer matrix")
    width = np.shape(matrices[0])[-1]
    grams = []
    for index, matrix in enumerate(matrices):
        weight = np.asarray(matrix, dtype=np.float64)
        require(
            weight.ndim == 2 and weight.shape[1] == width,
            f"layer matrix {index} has shape {weight.shape}; every layer must be (out, {width})",
        )
        if normalize_rows:
            norms = np.linalg.norm(weight, axis=1, keepdims=True)  # (out_l, 1)
            weight = weight / np.where(norms > 0, norms, 1.0)
        grams.append(weight.T @ weight)  # (D, D), symmetric positive semi-definite
    return tuple(grams)


def sum_grams(grams: Sequence[np.ndarray]) -> np.ndarray:
    """The Gram of the stacked layers, (D, D), in a fresh array."""
    total = np.array(grams[0], dtype=np.float64)
    for gram in grams[1:]:
        total += gram
    return total


def subset_gram(grams: Sequence[np.ndarray], chosen: Sequence[int], total: np.ndarray) -> np.ndarray:
    """The Gram of the layers ``chosen`` of ``grams`` (whose sum is ``total``), (D, D), in a fresh array.

    Each layer costs one D×D addition. Past half the layers, ``total`` less the Grams left out
    takes fewer; its rounding is that of ``total``, within a few ulps of the chosen layers' own.
    """
    picked = set(chosen)
    left_out = [gram for index, gram in enumerate(grams) if index not in picked]
    if len(left_out) >= len(picked) - 1:
        return sum_grams([grams[index] for index in sorted(picked)])
    result = np.array(total, dtype=np.float64)
    for gram in left_out:
        result -= gram
    return result


def signed_rows(directions: np.ndarray) -> np.ndarray:
    """Each row (a direction) with its largest-magnitude component made positive."""
    largest = np.argmax(np.abs(directions), axis=1)
    signs = np.sign(directions[np.arange(len(directions)), largest])
    return directions * np.where(signs == 0, 1.0, signs)[:, None]


def eigen_directions(gram: np.ndarray, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric PSD Gram (D, D) -> (eigenvalues (K,), unit directions (K, D)), largest first.

    ``top=None`` gives all D; ``top=K`` the K leading ones, equal to the first K rows of the
    full result. Those come from a partial solve of K+1 eigenpairs (Lanczos when its residuals
    prove it exact, else MRRR), unless two of them are closer than ``WELL_SEPARATED``: then the
    full solver runs, as it would without ``top``.
    """
    width = gram.shape[0]
    require(top is None or top >= 1, f"top must be at least 1, got {top}")
    if top is not None and top < width:
        pairs = _lanczos_pairs(gram, top + 1) if _lanczos_fits(width, top + 1) else None
        values, vectors = pairs if pairs is not None else _mrrr_pairs(gram, top + 1)
        if np.min(values[:-1] - values[1:]) > WELL_SEPARATED * max(values[0], np.finfo(float).tiny):
            return np.clip(values[:top], 0.0, None), signed_rows(vectors[:, :top].T)
    values, vectors = np.linalg.eigh(gram)  # ascending; columns are vectors
    order = np.argsort(values)[::-1][:top]
    return np.clip(values[order], 0.0, None), signed_rows(vectors[:, order].T)


def _lanczos_fits(width: int, count: int) -> bool:
    """Whether ARPACK's Lanczos is worth trying for ``count`` pairs of a (width, width) Gram."""
    return width >= LANCZOS_MIN_WIDTH and 2 * _lanczos_basis(count) <= width


def _lanczos_basis(count: int) -> int:
    """ARPACK's ncv for ``count`` pairs."""
    return max(LANCZOS_VECTORS, 2 * count + 1)


def _lanczos_pairs(gram: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``count`` largest eigenpairs by ARPACK, largest first, or None unless provably exact.

    Proof: a unit v with residual r = ‖G v − λ v‖ lies within r / gap of the exact eigenvector,
    gap being λ's distance to the rest of the spectrum (Davis–Kahan); for all but the last pair
    the computed neighbours bound that gap. That they are the leading pairs rests on the random
    start: only a start with no component along a leading eigenvector (probability 0) misses it.
    """
    width = gram.shape[0]
    start = np.random.default_rng(LANCZOS_SEED).standard_normal(width)
    # BLAS's symmetric product reads one triangle: a quarter faster than G @ x at D = 512.
    # gram is symmetric, so its transpose is itself in the column-major layout BLAS wants.
    column_major = np.asfortranarray(gram.T)
    symmetric = scipy.sparse.linalg.LinearOperator(
        gram.shape, matvec=lambda x: scipy.linalg.blas.dsymv(1.0, column_major, x), dtype=np.float64
    )
    try:
        values, vectors = scipy.sparse.linalg.eigsh(
            symmetric,
            k=count,
            ncv=_lanczos_basis(count),
            which="LA",
            tol=LANCZOS_TOLERANCE,
            v0=start,
            maxiter=LANCZOS_RESTARTS,
        )
    except scipy.sparse.linalg.ArpackError:  # no convergence within the restarts, or a breakdown
        return None
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]  # (count,), (D, count)
    residuals = np.linalg.norm(gram @ vectors - vectors * values, axis=0)  # (count,)
    gaps = values[:-1] - values[1:]  # (count - 1,)
    nearest = np.minimum(np.r_[np.inf, gaps[:-1]], gaps)  # (count - 1,): to the pair above or below
    exact = bool(np.all(residuals[:-1] <= DIRECTION_TOLERANCE * nearest))
    return (values, vectors) if exact else None


def _mrrr_pairs(gram: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenpairs by LAPACK's MRRR driver, largest first."""
    width = gram.shape[0]
    # gram is symmetric, so its transpose is itself laid out as LAPACK wants: no transposing copy.
    values, vectors = scipy.linalg.eigh(
        gram.T, subset_by_index=(width - count, width - 1), driver="evr", check_finite=False
    )  # ascending; columns are vectors
    return values[::-1], vectors[:, ::-1]


def factorize_matrices(
    matrices: Sequence[np.ndarray], normalize_rows: bool = True, top: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pure SeFa on stacked affine matrices, each (out_l, D) -> (eigenvalues (K,), directions (K, D)).

    K is D, or ``top``. ``normalize_rows=False`` gives the un-normalised variant (rosinality's
    script), for parity.
    """
    return eigen_directions(sum_grams(layer_grams(matrices, normalize_rows)), top)


def model_layer_grams(generator: Generator, normalize_rows: bool = True) -> tuple[np.ndarray, ...]:
    """Every factorizable layer's Gram, (D, D) each, computed once per model and kept in its cache."""
    key = ("layer grams", generator.digest, normalize_rows)
    cache = generator.factorization_cache
    if key not in cache:
        matrices = [
            generator.layer_weight(i).detach().cpu().double().numpy()
            for i in range(len(generator.layer_names))
        ]
        cache[key] = layer_grams(matrices, normalize_rows)
    return cache[key]


def model_total_gram(generator: Generator, normalize_rows: bool = True) -> np.ndarray:
    """The sum of every factorizable layer's Gram, (D, D), kept in the model's cache beside them."""
    key = ("total gram", generator.digest, normalize_rows)
    cache = generator.factorization_cache
    if key not in cache:
        cache[key] = sum_grams(model_layer_grams(generator, normalize_rows))
    return cache[key]


def factorize(
    generator: Generator,
    layers: str = "all",
    normalize_rows: bool = True,
    *,
    top: int | None = None,
    method: Method = "sefa",
    samples: int = DEFAULT_PCA_SAMPLES,
    progress: Progress | None = None,
) -> Semantics:
    """SeFa (or ``method="pca"``, GANSpace's baseline) on ``generator``'s chosen layers.

    ``top=K`` returns only the K leading directions (at most the D there are): the same rows as
    the full result, found faster. ``samples`` and ``progress(done, total)`` are PCA's. Results
    are cached per (checkpoint digest, layer set, method, top) in the model's cache, and the same
    object is handed out for the same spec.
    """
    require(method in METHODS, f"method {method!r}: expected one of {', '.join(METHODS)}")
    require(top is None or top >= 1, f"top must be at least 1, got {top}")
    chosen = generator.resolve_layers(layers)
    top = None if top is None or top >= generator.direction_dim else top
    cache = generator.factorization_cache
    result_key = (generator.digest, chosen, normalize_rows, method, samples if method == "pca" else None)
    if (*result_key, top) not in cache:
        cache[(*result_key, top)] = _solve(generator, chosen, normalize_rows, top, method, samples, progress)
    labelled = (*result_key, top, layers)
    if labelled not in cache:
        cache[labelled] = replace(cache[(*result_key, top)], spec=layers)
    return cache[labelled]


def _solve(
    generator: Generator,
    chosen: tuple[int, ...],
    normalize_rows: bool,
    top: int | None,
    method: Method,
    samples: int,
    progress: Progress | None,
) -> Semantics:
    """One uncached result; a cached full one is sliced rather than solved again for ``top``."""
    every = model_layer_grams(generator, normalize_rows)
    grams = tuple(every[i] for i in chosen)
    full = generator.factorization_cache.get(
        (generator.digest, chosen, normalize_rows, method, samples if method == "pca" else None, None)
    )
    if full is not None:
        eigenvalues, directions = full.eigenvalues[:top], full.directions[:top]
    elif method == "pca":
        eigenvalues, directions = _pca(generator, chosen, samples, progress)
        eigenvalues, directions = eigenvalues[:top], directions[:top]
    else:
        gram = subset_gram(every, chosen, model_total_gram(generator, normalize_rows))
        eigenvalues, directions = eigen_directions(gram, top)
    return Semantics(directions, eigenvalues, chosen, generator.digest, "", method, grams)


def _pca(
    generator: Generator, chosen: tuple[int, ...], samples: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace's PCA, cached per model; W's does not depend on the layers, so a layer change reuses it."""
    key = ("pca", generator.digest, samples, chosen if pca.sees_layers(generator) else ())
    cache = generator.factorization_cache
    if key not in cache:

        def stacked_gram() -> np.ndarray:  # the chosen layers' raw AᵀA: what their outputs vary by
            return sum_grams([model_layer_grams(generator, normalize_rows=False)[i] for i in chosen])

        variances, directions = pca.pca_directions(generator, stacked_gram, samples, progress)
        cache[key] = (variances, signed_rows(directions))
    return cache[key]


def layers_holding(semantics: Semantics, index: int, share: float = DEFAULT_ENERGY_SHARE) -> tuple[int, ...]:
    """The fewest of the semantics' layers that hold ``share`` of direction ``index``'s energy.

    For the editor's "use the layers that hold 90 % of it": the layers, largest energy first
    until their sum reaches ``share`` of the row's total, returned as sorted model layer indices
    (what ``Semantics.layers`` holds and a layer spec names).
    """
    require(0 <= index < len(semantics.directions), f"semantic {index} does not exist")
    require(0.0 < share <= 1.0, f"share must be in (0, 1], got {share}")
    energy = semantics.layer_energy[index]  # (|S|,)
    order = np.argsort(energy)[::-1]
    held = np.cumsum(energy[order])
    count = int(np.searchsorted(held, share * held[-1] * (1 - SHARE_SLACK))) + 1
    return tuple(sorted(semantics.layers[i] for i in order[: min(count, len(order))]))


def direction_cosines(first: Semantics, second: Semantics, top: int) -> np.ndarray:
    """|cos| between the top ``top`` directions of two results: (top, top), rows ``first``'s.

    Both hold unit rows, so this is |first · secondᵀ|; 1 means the same axis (up to sign).
    """
    require(top >= 1, f"top must be at least 1, got {top}")
    require(
        first.directions.shape[1] == second.directions.shape[1],
        f"directions of size {first.directions.shape[1]} and {second.directions.shape[1]} cannot be compared",
    )
    return np.abs(first.directions[:top] @ second.directions[:top].T)
