"""User-facing errors: one line a person can act on; tracebacks go to the log."""

from __future__ import annotations

from pathlib import Path


class SefaError(Exception):
    """Base of every error SeFa Studio shows to a user as a single line."""


class LayerSpecError(SefaError, ValueError):
    """A layer spec such as ``"2,4,6-8"`` that cannot be resolved."""


class CheckpointError(SefaError):
    """A checkpoint file that cannot be loaded safely; the message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self) -> tuple[type[CheckpointError], tuple[str, str]]:
        # Rebuilt from its own arguments, so it crosses process boundaries (Ray workers) intact.
        return (CheckpointError, (self.path, self.problem))


class ConfigError(SefaError):
    """An invalid ``config.yaml``; the message names the key and what was expected."""


class CodeFileError(SefaError):
    """A latent-code file (``.npy``) that does not fit the model."""


class InputError(SefaError, ValueError):
    """A value handed to the engine that does not fit: a shape, an index, a range."""


def require(condition: bool, message: str) -> None:
    """Raise ``InputError(message)`` unless ``condition``: an input check that ``python -O`` keeps."""
    if not condition:
        raise InputError(message)


class PhotoError(SefaError):
    """A photo that cannot be read as an image; the message names the file."""


class AlreadySavedError(SefaError):
    """A shared name (a direction set, a model in config.yaml) that someone saved already.

    Shared files are never replaced silently: the caller asks the user, then saves with
    ``overwrite=True``. The message says who saved it and when.
    """
