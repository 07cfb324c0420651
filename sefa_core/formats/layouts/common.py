"""What every layout module shares: the ``Layout`` record and finding a state dict under wrapper keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sefa_core.formats.containers import RawCheckpoint
from sefa_core.models.base import Generator


@dataclass(frozen=True)
class Conversion:
    """A file converted into the state dict of a layout we build: what the conversion cache stores."""

    target: str  # the layout that builds it, e.g. "nvidia"
    state: dict[str, torch.Tensor]
    options: dict[str, Any]  # JSON-able build options: constructor kwargs, class count
    source_format: str  # the original file's format, shown to users


@dataclass(frozen=True)
class Layout:
    """An on-disk layout: how to recognise it and how to build a generator from it.

    A layout that ``convert``s (TensorFlow pickles) builds from a ``Conversion``, which
    ``load_checkpoint`` caches so that the next load of the same file skips the conversion.
    """

    name: str  # shown to users, e.g. "genforce .pth"
    matches: Callable[[RawCheckpoint], bool]
    build: Callable[[RawCheckpoint], Generator]
    convert: Callable[[RawCheckpoint], Conversion] | None = None


def unwrap_state_dict(content: Any, wrapper_keys: Sequence[str]) -> dict[str, Any] | None:
    """The state dict under the first of ``wrapper_keys`` present, else ``content`` itself if a dict."""
    if not isinstance(content, dict):
        return None
    for key in wrapper_keys:
        if isinstance(content.get(key), dict):
            return content[key]
    return content
