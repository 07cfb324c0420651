"""Checks every container's content passes before a layout walks it, and one-line read errors."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.opcodes import globals_named

# Checkpoints nest a few dicts deep (NVIDIA module trees about 20 levels); walking code recurses.
MAX_NESTING_DEPTH = 100
# Items met walking the content as a tree, shared references counted each time they are met.
MAX_EXPANDED_ITEMS = 10_000_000

_REFUSED_GLOBAL = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)")
_WEIGHTS_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+)")
# A reader running off the end of the data: torch's weights-only unpickler indexes what read() gave.
_TRUNCATED_ERRORS = (EOFError, IndexError, struct.error, tarfile.ReadError, zipfile.BadZipFile)
_TRUNCATED = re.compile(
    r"failed finding central directory|PytorchStreamReader failed|pickle data was truncated|unexpected EOF"
    r"|pickle exhausted before|but only \d+ remain"
)


def check_structure(path: Path, content: Any) -> None:
    """Refuse content no checkpoint has, before code that walks it recursively meets it.

    Deep nesting would end in a RecursionError, a reference cycle in an endless walk, and a few
    shared references nested in each other (a "billion laughs" pickle) in an exponential one.
    The walk is iterative and visits each container once.
    """
    done: dict[int, tuple[int, int]] = {}  # id -> (levels below, items when walked as a tree)
    _refuse_object_array(path, content)
    if not _children(content):
        return
    # One frame per open container: [object, iterator over its children, levels below, items].
    stack: list[list[Any]] = [[content, iter(_children(content)), 0, 1]]
    open_ids = {id(content)}
    while stack:
        frame = stack[-1]
        child = next(frame[1], _END)
        if child is _END:
            stack.pop()
            open_ids.discard(id(frame[0]))
            _merge(path, stack, done, frame[0], frame[2], frame[3])
            continue
        _refuse_object_array(path, child)
        children = _children(child)
        if not children:
            frame[3] += 1
        elif id(child) in done:
            _merge(path, stack, done, child, *done[id(child)])
        elif id(child) in open_ids:
            raise CheckpointError(
                path, "refused to load: the file's data contains itself (a reference cycle)"
            )
        else:
            open_ids.add(id(child))
            stack.append([child, iter(children), 0, 1])


_END = object()


def _refuse_object_array(path: Path, value: Any) -> None:
    # Its items would escape the walk; checkpoints hold numeric arrays only.
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        raise CheckpointError(path, "refused to load: the file holds a numpy array of Python objects")


def _merge(path: Path, stack: list[list[Any]], done: dict, node: Any, levels: int, items: int) -> None:
    """Record a finished container and add its depth and size to its parent's."""
    done[id(node)] = (levels, items)
    if len(stack) + levels > MAX_NESTING_DEPTH:
        raise CheckpointError(
            path, f"refused to load: the file's data is nested more than {MAX_NESTING_DEPTH} levels deep"
        )
    if items > MAX_EXPANDED_ITEMS:
        raise CheckpointError(
            path,
            f"refused to load: the file's data expands to more than {MAX_EXPANDED_ITEMS:,} items "
            "through shared references",
        )
    if stack:
        parent = stack[-1]
        parent[2] = max(parent[2], levels + 1)
        parent[3] += items


def _children(value: Any) -> tuple[Any, ...]:
    """The objects a container holds; empty for leaves (tensors, numbers, strings)."""
    if isinstance(value, dict):
        return (*value.keys(), *value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    if isinstance(value, argparse.Namespace):
        return tuple(vars(value).values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(getattr(value, field.name) for field in dataclasses.fields(value))
    return ()


# Globals of a whole pickled model (``torch.save(model)``): torch's layer classes, or a class of the
# script that saved it. Loading one would run that code; its weights alone load fine.
TORCH_LAYERS = "torch.nn.modules."
WHOLE_MODEL_GLOBALS = (TORCH_LAYERS, "__main__.")


def refused_global(name: str, where: str = "", whole_model: bool = False) -> str:
    """The one-line reason for a global a file asks for and may not have (``where``: in which format).

    ``whole_model``: the file is known to pickle torch layers, whatever class it asks for first.
    """
    if whole_model or name.startswith(WHOLE_MODEL_GLOBALS):
        return (
            f"refused to load: the file is a whole pickled model (it asks for '{name}'), as "
            "torch.save(model) writes; it needs the code that made it, which is never run here. "
            "Where that code runs, save the weights alone and load that file: "
            'torch.save(netG.state_dict(), "netG.pth")'
        )
    return f"refused to load: the file asks for the global '{name}', which is not allowed" + (
        f" {where}" if where else ""
    )


def describe_read_error(error: BaseException, path: Path | None = None) -> str:
    """One line for a reader failure, naming a refused global where there is one.

    ``path``: the torch file that failed, scanned (never run) for a whole pickled model.
    """
    text = str(error)
    if match := _REFUSED_GLOBAL.search(text):
        name = match.group(1)
        # torch names builtins without their module ("GLOBAL eval").
        return refused_global(name if "." in name else f"builtins.{name}", whole_model=_pickles_layers(path))
    if isinstance(error, MemoryError):
        return "the file claims more memory than there is (corrupt or hostile)"
    if isinstance(error, _TRUNCATED_ERRORS) or _TRUNCATED.search(text):
        return "the file is truncated or corrupt"
    if match := _WEIGHTS_UNPICKLER_ERROR.search(text):
        return f"refused to load: {match.group(1).strip()[:200]}"
    if isinstance(error, (pickle.UnpicklingError, RuntimeError, ValueError, TypeError)):
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return f"the file is corrupt or not a checkpoint ({first[:200]})"
    return f"could not read the file ({type(error).__name__}: {text[:200]})"


def _pickles_layers(path: Path | None) -> bool:
    """Whether a torch file's pickle names torch's layer classes, read from its opcodes without running it.

    ``torch.save(model)`` of a class from the user's own package asks for that class first
    (``models.Generator``), so its name alone does not tell a whole model.
    """
    if path is None:
        return False
    try:
        names = _pickled_globals(path)
    except Exception:  # noqa: BLE001 - not a readable torch file: the refused name is all there is
        return False
    return any(name.startswith(TORCH_LAYERS) for name in names)


LEGACY_PICKLES = 4  # torch's legacy stream: magic number, protocol, system info, then the object


def _pickled_globals(path: Path) -> set[str]:
    """The globals a torch zip or legacy file's object pickle names (``pickletools`` reads, nothing runs)."""
    if zipfile.is_zipfile(path):
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    names: set[str] = set()
    with path.open("rb") as stream:
        for _ in range(LEGACY_PICKLES):
            names.update(globals_named(stream))
    return names
