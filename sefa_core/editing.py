"""Edits in the edit space: code' = code + Σ αₖ·nₖ.

For z-space models (DCGAN, PGGAN, BigGAN) the whole code moves. For W+ models (the StyleGAN
family) only the rows of the chosen layers move, as in the paper and the reference code. The
shape of the codes says which case applies, so nothing here knows the architecture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from sefa_core.errors import require
from sefa_core.factorize import Semantics


def edit_offset(semantics: Semantics, alphas: Mapping[int, float]) -> torch.Tensor:
    """Σ αₖ·nₖ over the chosen semantics: (direction_dim,), float32."""
    offset = np.zeros(semantics.directions.shape[1], dtype=np.float64)
    for index, alpha in alphas.items():
        require(0 <= index < len(semantics.directions), f"semantic {index} does not exist")
        offset += float(alpha) * semantics.directions[index]
    return torch.from_numpy(offset.astype(np.float32))


def apply_offset(
    codes: torch.Tensor, offset: torch.Tensor, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Add ``offset`` (direction_dim,) to z codes (N, D), or to W+ rows ``layers`` of (N, L, D)."""
    offset = offset.to(device=codes.device, dtype=codes.dtype)
    require(offset.shape == (codes.shape[-1],), "the offset must match one edit-space row")
    if codes.ndim == 2:  # z space: (N, D)
        return codes + offset
    require(codes.ndim == 3, "codes are (N, D) or (N, num_layers, D)")
    rows = list(range(codes.shape[1])) if layers is None else list(layers)
    edited = codes.clone()
    edited[:, rows] += offset  # (N, len(rows), D) + (D,)
    return edited


def apply_edits(codes: torch.Tensor, semantics: Semantics, alphas: Mapping[int, float]) -> torch.Tensor:
    """Move ``codes`` by ``alphas`` (semantic index -> distance) on the semantics' own layers."""
    if not any(alphas.values()):
        return codes
    return apply_offset(codes, edit_offset(semantics, alphas), semantics.layers)


def traversal(
    code: torch.Tensor,
    direction: np.ndarray,
    distances: Sequence[float],
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """One code (1, *code_shape) walked along ``direction``: (len(distances), *code_shape)."""
    require(code.shape[0] == 1, "a traversal starts from one code")
    unit = torch.from_numpy(np.asarray(direction, dtype=np.float32))
    steps = [apply_offset(code, unit * float(distance), layers) for distance in distances]
    return torch.cat(steps, dim=0)


def distances(start: float, end: float, steps: int) -> list[float]:
    """``steps`` evenly spaced distances from ``start`` to ``end``, as the reference uses."""
    require(steps >= 1, "at least one step")
    return [float(x) for x in np.linspace(start, end, steps)]
