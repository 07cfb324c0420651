"""Shared test plumbing: where the reference fixtures are, and the default model."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures"


def fixture_dir(name: str) -> Path:
    """``../shared/fixtures/<name>``, or skip the test with the reason printed (pytest -rs)."""
    folder = FIXTURES_DIR / name
    if not folder.is_dir():
        pytest.skip(f"reference fixture {folder} is absent (it sits beside the repo on dev machines)")
    return folder


@pytest.fixture(scope="session")
def default_generator():
    """The embedded default DCGAN, on the CPU."""
    from sefa_core.default_model import default_checkpoint_path
    from sefa_core.formats import load_checkpoint

    return load_checkpoint(default_checkpoint_path(), device="cpu")
