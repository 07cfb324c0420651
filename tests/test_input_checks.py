"""Input checks are the project's own errors, so they still check under ``python -O``."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sefa_core.editing import distances, edit_offset
from sefa_core.errors import CheckpointError, InputError, SefaError
from sefa_core.factorize import Semantics
from sefa_core.registry import load_generator


def test_a_code_of_the_wrong_size_is_refused_even_under_python_O() -> None:
    script = textwrap.dedent(
        """
        import sys
        import torch
        from sefa_core.errors import InputError
        from sefa_core.registry import load_generator

        assert False  # stripped by -O: the check below must stand on its own
        generator = load_generator("default", device="cpu")
        try:
            generator.synthesize(torch.zeros(1, generator.latent_dim + 1))
        except InputError as error:
            print("refused:", error)
            sys.exit(0)
        sys.exit(1)
        """
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "refused: codes must be (N, 100), got (1, 101)" in result.stdout


def test_a_wrong_code_shape_names_the_expected_shape() -> None:
    generator = load_generator("default", device="cpu")
    with pytest.raises(InputError, match=r"z must be \(N, 100\), got \(2, 3\)"):
        generator.to_edit_space(torch.zeros(2, 3))


def test_an_edit_of_a_missing_semantic_is_a_user_error() -> None:
    semantics = Semantics(np.eye(3), np.ones(3), (0,))
    with pytest.raises(SefaError, match="semantic 5 does not exist"):
        edit_offset(semantics, {5: 1.0})


def test_a_traversal_needs_at_least_one_step() -> None:
    with pytest.raises(InputError, match="at least one step"):
        distances(-3.0, 3.0, 0)


def test_a_checkpoint_error_survives_the_trip_back_from_a_worker() -> None:
    error = CheckpointError("checkpoints/x.pkl", "the file is truncated or corrupt")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, CheckpointError)
    assert (again.path, again.problem, str(again)) == (error.path, error.problem, str(error))
