"""Render settings of issue 18: how many threads one editor render may use (the cores shared out,
unless overridden), and batch renderers keeping freed memory for the next batch."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
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


# In a fresh process: touch 64 MiB (an activation of a large batch), free it, and print how much of
# it the process still holds. glibc maps an allocation that large on its own and unmaps it on free.
HELD_AFTER_FREE = """
import os, torch
from sefa_core.device import keep_freed_memory
kept = keep_freed_memory()
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
x = torch.ones(16 * 2**20)  # 64 MiB, every page touched
before = rss()
del x
print(kept, (before - rss()) / 2**20)
"""


def _freed_then_held(keep: str) -> tuple[bool, float]:
    """(whether keep_freed_memory took effect, MiB handed back to the kernel when the 64 MiB were freed)."""
    env = {**os.environ, "SEFA_KEEP_FREED_MEMORY": keep}
    done = subprocess.run(
        [sys.executable, "-c", HELD_AFTER_FREE], capture_output=True, text=True, env=env, check=True
    )
    kept, returned = done.stdout.split()
    return kept == "True", float(returned)


def test_a_batch_renderer_keeps_freed_activations_for_the_next_batch():
    if not Path("/proc/self/statm").exists() or platform.libc_ver()[0] != "glibc":
        pytest.skip("needs Linux with glibc (/proc/self/statm, mallopt)")
    kept, returned = _freed_then_held("1")
    assert kept
    assert returned < 8, f"{returned:.1f} MiB of 64 went back to the kernel although freed memory is kept"
    not_kept, returned_by_default = _freed_then_held("0")
    assert not not_kept
    assert returned_by_default > 48, f"only {returned_by_default:.1f} MiB of 64 went back by default"
