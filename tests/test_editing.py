"""Edits: z moves whole; W+ moves only the chosen rows."""

from __future__ import annotations

import numpy as np
import torch

from sefa_core.editing import apply_edits, apply_offset, distances, traversal
from sefa_core.factorize import Semantics


def _semantics(dim: int, layers: tuple[int, ...]) -> Semantics:
    directions = np.eye(dim)
    return Semantics(directions, np.arange(dim, 0, -1, dtype=float), layers)


def test_a_w_plus_edit_moves_only_the_chosen_layers() -> None:
    codes = torch.zeros(2, 6, 4)
    edited = apply_edits(codes, _semantics(4, (1, 3)), {0: 2.0, 2: -1.0})
    assert torch.equal(edited[:, [0, 2, 4, 5]], codes[:, [0, 2, 4, 5]])
    assert torch.equal(edited[:, 1], torch.tensor([[2.0, 0, -1.0, 0]] * 2))
    assert torch.equal(edited[:, 3], edited[:, 1])
    assert torch.equal(codes, torch.zeros(2, 6, 4)), "the input codes are not modified"


def test_a_z_edit_moves_the_whole_code() -> None:
    codes = torch.ones(3, 4)
    edited = apply_edits(codes, _semantics(4, (0,)), {1: 0.5})
    assert torch.equal(edited, codes + torch.tensor([0, 0.5, 0, 0]))


def test_zero_alphas_leave_the_code_unchanged() -> None:
    codes = torch.randn(1, 4)
    assert apply_edits(codes, _semantics(4, (0,)), {0: 0.0, 3: 0.0}) is codes


def test_a_traversal_walks_one_code_along_a_direction() -> None:
    code = torch.zeros(1, 3, 2)
    steps = traversal(code, np.array([1.0, 0.0]), distances(-3, 3, 7), layers=[2])
    assert steps.shape == (7, 3, 2)
    assert torch.allclose(steps[:, 2, 0], torch.linspace(-3, 3, 7))
    assert torch.equal(steps[:, :2], torch.zeros(7, 2, 2))


def test_an_offset_on_every_row_when_no_layers_are_given() -> None:
    edited = apply_offset(torch.zeros(1, 3, 2), torch.tensor([1.0, 2.0]))
    assert torch.equal(edited, torch.tensor([[[1.0, 2.0]] * 3]))
