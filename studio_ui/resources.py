"""Models and prepared codes, loaded once per process and shared read-only by every session."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from sefa_core.codes import load_codes
from sefa_core.config import AppConfig, ModelEntry
from sefa_core.device import render_threads
from sefa_core.errors import SefaError
from sefa_core.formats import load_checkpoint
from sefa_core.models.base import Generator
from sefa_core.session import CodeRows

# Models kept while no session uses them (a 1024 px StyleGAN2 holds ~120 MB of weights); the server's
# memory is bounded by this, not by the number of models configured. SEFA_MAX_CACHED_MODELS overrides it.
MAX_CACHED_MODELS_ENV = "SEFA_MAX_CACHED_MODELS"
MAX_CACHED_MODELS = int(os.environ.get(MAX_CACHED_MODELS_ENV, 0)) or 4
MAX_CACHED_CODE_FILES = 16
TORCH_THREADS_ENV = "SEFA_TORCH_THREADS"
LIVE_VIEW_SHARES = 2  # renders the cores are shared out between: the live view's and one other's
MIB = 1024 * 1024

ModelKey = tuple[str, str, tuple[int, int], tuple[str, ...] | None]  # (path, device, file stamp, classes)


def _stamp(path: Path) -> tuple[int, int]:
    """Modification time and size: a replaced file is loaded again."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True)
class LoadedModel:
    """One generator in this process's memory, as the Models page lists it."""

    path: str
    digest: str
    device: str
    parameters: int
    mib: float  # parameters and buffers


class ModelsInMemory:
    """Every generator this process loaded and something still holds: the cache, a session, a fragment.

    The cache keeps at most ``MAX_CACHED_MODELS``, but a model it lets go stays alive while a
    session still draws with it; asked for again, that copy is handed out rather than a second
    one loaded. References are weak, so this never keeps a model alive itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # sessions load and list from their own threads
        self._keys: weakref.WeakKeyDictionary[Generator, ModelKey] = weakref.WeakKeyDictionary()

    def get_or_load(self, key: ModelKey, load: Callable[[], Generator]) -> Generator:
        with self._lock:
            alive = next((model for model, held in self._keys.items() if held == key), None)
        if alive is not None:
            return alive
        model = load()  # outside the lock: the cache already lets one session at a time load a key
        with self._lock:
            self._keys[model] = key
        return model

    def listing(self) -> list[LoadedModel]:
        with self._lock:
            models = list(self._keys.items())
        return sorted(
            (
                LoadedModel(
                    path,
                    model.digest,
                    str(model.device),  # where it runs now: a GPU failure may have moved it
                    sum(p.numel() for p in model.parameters()),
                    sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / MIB,
                )
                for model, (path, *_) in models
            ),
            key=lambda loaded: (loaded.path, loaded.device),
        )


@st.cache_resource(show_spinner=False)
def models_in_memory() -> ModelsInMemory:
    """The one registry of this process (a cached resource, like the models themselves)."""
    return ModelsInMemory()


@st.cache_resource(show_spinner="Loading the model…", max_entries=MAX_CACHED_MODELS)
def _generator(path: str, device: str, stamp: tuple[int, int], classes: tuple[str, ...] | None) -> Generator:
    return models_in_memory().get_or_load(
        (path, device, stamp, classes), lambda: load_checkpoint(path, device, classes)
    )


def generator(path: Path, device: torch.device, classes: tuple[str, ...] | None = None) -> Generator:
    """The model at ``path`` on ``device``; one copy per process, shared by every session.

    ``classes``: the config entry's class names (a conditional DCGAN needs them to load).
    """
    return _generator(str(path), str(device), _stamp(path), classes)


@st.cache_resource(show_spinner=False, max_entries=MAX_CACHED_CODE_FILES)
def _code_rows(path: str, stamp: tuple[int, int], key: tuple[str, str], _model: Generator) -> torch.Tensor:
    """``key`` (digest, device) names the model; ``_model`` itself is not hashed."""
    return load_codes(path, _model)


def prepared_codes(config: AppConfig, entry: ModelEntry, model: Generator) -> tuple[CodeRows, str]:
    """The entry's prepared codes, and a line to show when there are none or they cannot be used."""
    path = config.codes_path(entry)
    if path is None:
        return CodeRows(), ""
    if not path.is_file():
        return CodeRows(), f"{entry.codes}: not found, so Random samples seeds"
    try:
        rows = _code_rows(str(path), _stamp(path), (model.digest, str(model.device)), model)
    except SefaError as error:
        return CodeRows(), str(error)
    return CodeRows(rows, "prepared"), ""


def use_torch_threads() -> int:
    """Cap the threads one render may use, in the calling thread; returns the cap.

    The live view renders one small batch per frame, and every thread beyond the free cores spins
    against the other sessions (and, on a laptop, the browser): on 2 shared cores, 2 threads gave
    a p95 frame time 3x worse than 1. So the cores are shared out as between ``LIVE_VIEW_SHARES``
    renders (``sefa_core.device.render_threads``: half the cores, at least 1), unless
    SEFA_TORCH_THREADS says.
    OpenMP keeps this setting per thread and Streamlit runs scripts and fragments on threads of
    their own, so every run calls this (it costs well under a microsecond).
    """
    threads = int(os.environ.get(TORCH_THREADS_ENV, 0)) or render_threads(LIVE_VIEW_SHARES)
    torch.set_num_threads(threads)
    return threads
