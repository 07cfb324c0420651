"""The Compare page's work: SeFa and GANSpace's PCA walked side by side from one code.

Both methods walk the same code by the same distances along their own top K unit directions;
the |cos| table (``sefa_core.factorize.direction_cosines``) says which axes the two share.
Nothing here keeps a model or its semantics: a session keeps only the pixels and figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sefa_core.factorize import Semantics, direction_cosines
from sefa_core.models.base import Generator
from sefa_core.pca import Progress, stage_progress
from sefa_core.render import downscale, render_traversals

METHOD_LABELS = {"sefa": "SeFa (closed form)", "pca": "PCA (GANSpace)"}


@dataclass(frozen=True)
class Comparison:
    """Two traversal grids from one code, and how their directions line up."""

    grids: dict[str, np.ndarray]  # method -> uint8 (1, K, S, H, W, 3)
    cosines: np.ndarray  # (K, K): |cos| between SeFa's direction i and PCA's direction j
    eigenvalues: np.ndarray  # (K,) SeFa's
    variances: np.ndarray  # (K,) PCA's

    def shrunk(self, size: int) -> Comparison:
        """The same comparison with grid cells of at most ``size`` px, for a session to keep."""
        return replace(self, grids={method: downscale(grid, size) for method, grid in self.grids.items()})


def compare(
    generator: Generator,
    code: torch.Tensor,
    methods: Sequence[Semantics],
    top: int,
    distances: Sequence[float],
    *,
    conditioning: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Walk ``code`` (1, *code_shape) along each result's top ``top`` directions; (SeFa, PCA) in that order.

    ``top`` is cut to the directions both have. ``progress(done, total)`` counts both grids' images.
    """
    sefa, pca = methods
    top = min(top, len(sefa.directions), len(pca.directions))  # PCA may find fewer axes than asked
    per_grid = top * len(distances)
    grids = {}
    for position, semantics in enumerate(methods):
        grids[semantics.method] = render_traversals(
            generator,
            code,
            semantics,
            range(top),
            distances,
            progress=stage_progress(progress, position * per_grid, len(methods) * per_grid),
            conditioning=conditioning,
        )
    cosines = direction_cosines(sefa, pca, top)
    return Comparison(grids, cosines, sefa.eigenvalues[:top].copy(), pca.eigenvalues[:top].copy())


def cosine_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """The |cos| table as data-frame rows: a row per SeFa direction, a column per PCA direction."""
    return [
        {
            "SeFa": f"{i:03d} · λ={comparison.eigenvalues[i]:.2f}",
            **{
                f"PCA {j:03d} · σ²={comparison.variances[j]:.2f}": round(float(value), 3)
                for j, value in enumerate(row)
            },
        }
        for i, row in enumerate(comparison.cosines)
    ]
