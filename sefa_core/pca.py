"""The PCA baseline as GANSpace computes it (Härkönen et al., NeurIPS 2020), to set beside SeFa.

- W+ models (the StyleGAN family): PCA of w = mapping(z) over seeded samples. The edit space's
  rows without truncation are w, and the components are directions in w, as GANSpace uses them.
- z-space models (DCGAN, PGGAN, BigGAN): PCA of the chosen layers' outputs y = A·code (for DCGAN
  and PGGAN the first layer; BigGAN's ``gen_z`` preset is GANSpace's layer), then latent
  directions by least squares from the PCA coordinates back to the codes, over a second seeded
  sample. Since y is affine in the code, the outputs' sample covariance is A·C·Aᵀ, C the codes'
  covariance: PCA of the sampled outputs is solved exactly in D×D through AᵀA, without holding the
  (N, out) outputs (8192 floats a sample for DCGAN).

Components are sorted by variance, largest first; components with no variance are left out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg

from sefa_core.errors import require
from sefa_core.models.base import Generator

DEFAULT_SAMPLES = 10_000  # GANSpace's minimum
SAMPLE_SEED = 1  # GANSpace's SEED_SAMPLING: the samples the PCA is fitted on
REGRESSION_SEED = 3  # GANSpace's SEED_LINREG: the samples the regression back to z is fitted on
SAMPLE_BATCH = 1000  # codes mapped at a time
CLASS_STREAM = 1  # a conditional model's classes are drawn from RandomState([seed, CLASS_STREAM])
NO_VARIANCE = 1e-10  # a component with less variance than this (relative to the largest) is dropped
Progress = Callable[[int, int], None]


def pca_directions(
    generator: Generator,
    stacked_gram: Callable[[], np.ndarray],
    samples: int,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace's PCA for ``generator`` -> (variances (K,), unit directions (K, D)), largest first.

    ``stacked_gram()`` gives AᵀA (D, D) of the chosen layers' raw affines; only z-space models
    ask for it. ``progress(done, total)`` counts the codes sampled.
    """
    require(
        samples > generator.direction_dim,
        f"PCA needs more samples than the {generator.direction_dim} dimensions of a code, got {samples}",
    )
    total = 2 * samples if sees_layers(generator) else samples
    fit = sample_rows(generator, samples, SAMPLE_SEED, stage_progress(progress, 0, total))
    if not sees_layers(generator):
        return pca_of_rows(fit)
    regress = sample_rows(generator, samples, REGRESSION_SEED, stage_progress(progress, samples, total))
    return pca_through_affine(fit, regress, stacked_gram())


def sees_layers(generator: Generator) -> bool:
    """Whether the PCA depends on the chosen layers: for z-space models it does; W is upstream of them."""
    return generator.edit_space == "z"


def sample_rows(generator: Generator, n: int, seed: int, progress: Progress | None = None) -> np.ndarray:
    """``n`` seeded codes without truncation, one edit-space row each: (n, D) float64.

    For z-space models the code itself; for W+ models its first row, w (all rows are w at psi 1).
    A class-conditional model's codes are drawn for classes picked uniformly, seeded by ``seed``.
    """
    z = generator.sample_latents(n, seed)  # (n, latent_dim)
    classes = np.random.RandomState([seed, CLASS_STREAM]).randint(max(generator.num_classes, 1), size=n)
    rows = np.empty((n, generator.direction_dim))
    for start in range(0, n, SAMPLE_BATCH):
        batch = slice(start, start + SAMPLE_BATCH)
        conditioning = {"classes": classes[batch]} if generator.num_classes else {}
        codes = generator.to_edit_space(z[batch], 1.0, **conditioning)  # (B, *code_shape)
        batch = codes.reshape(len(codes), -1, generator.direction_dim)[:, 0]  # (B, D)
        rows[start : start + len(codes)] = batch.double().cpu().numpy()
        if progress is not None:
            progress(start + len(codes), n)
    return rows


def pca_of_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA of samples (N, D) -> (variances (K,), unit components (K, D)), with N-1 as scikit-learn."""
    centred = rows - rows.mean(axis=0)
    covariance = centred.T @ centred / (len(rows) - 1)  # (D, D)
    variances, vectors = np.linalg.eigh(covariance)  # ascending; columns are vectors
    return _kept(variances[::-1], vectors[:, ::-1].T)


def pca_through_affine(
    fit: np.ndarray, regress: np.ndarray, gram: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of y = A·code over ``fit`` codes (N, D), mapped back to codes by least squares over ``regress``.

    ``gram`` is AᵀA (D, D). With C = L·Lᵀ the codes' covariance, the outputs' covariance A·C·Aᵀ
    has the eigenvalues of Lᵀ·AᵀA·L (eigenvectors V), and the output PCs are U = A·L·V·S⁻¹. The
    PCA coordinates GANSpace regresses on, Uᵀ·(y - ȳ) scaled by 1/S, are then Vᵀ·L⁻¹·(code - c̄).
    The directions are the rows of M minimising ‖coords·M - codes‖, normalised.
    """
    mean = fit.mean(axis=0)
    centred = fit - mean
    factor = np.linalg.cholesky(centred.T @ centred / (len(fit) - 1))  # (D, D), lower
    variances, vectors = np.linalg.eigh(factor.T @ gram @ factor)  # ascending
    variances, basis = _kept(variances[::-1], vectors[:, ::-1].T)  # basis (K, D): rows are Vᵀ
    whitened = scipy.linalg.solve_triangular(factor, (regress - mean).T, lower=True)  # (D, N)
    coords = whitened.T @ basis.T  # (N, K), each column of unit variance
    mapping = scipy.linalg.lstsq(coords, regress, lapack_driver="gelsd")[0]  # (K, D)
    return variances, mapping / np.linalg.norm(mapping, axis=1, keepdims=True)


def _kept(variances: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the components without variance (a layer with fewer outputs than D, or too few samples)."""
    keep = variances > NO_VARIANCE * max(variances[0], np.finfo(float).tiny)
    return variances[keep], components[keep]


def stage_progress(progress: Progress | None, done: int, total: int) -> Progress | None:
    """A ``progress`` for one stage of a run, reporting ``done`` + the stage's count against ``total``."""
    if progress is None:
        return None
    return lambda stage_done, _: progress(done + stage_done, total)
