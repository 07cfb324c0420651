"""How many threads one editor render may use (issue 18): the cores shared out, unless overridden."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
import torch

from sefa_core.device import render_threads

APP_ROOT = Path(__file__).parents[1]  # studio_ui is imported from here, as the app's scripts do


@pytest.fixture
def resources(monkeypatch):
    """``studio_ui.resources``; torch's thread count is put back afterwards."""
    monkeypatch.syspath_prepend(str(APP_ROOT))
    threads = torch.get_num_threads()
    yield importlib.import_module("studio_ui.resources")
    torch.set_num_threads(threads)


def test_the_editor_shares_the_cores_out_between_its_live_renders(monkeypatch, resources):
    monkeypatch.delenv(resources.TORCH_THREADS_ENV, raising=False)
    threads = resources.use_torch_threads()
    assert threads == render_threads(resources.LIVE_VIEW_SHARES) == max(1, (os.cpu_count() or 1) // 2)
    assert torch.get_num_threads() == threads


def test_sefa_torch_threads_overrides_the_editors_thread_count(monkeypatch, resources):
    wanted = 3 if torch.get_num_threads() != 3 else 2
    monkeypatch.setenv(resources.TORCH_THREADS_ENV, str(wanted))
    assert resources.use_torch_threads() == wanted
    assert torch.get_num_threads() == wanted
