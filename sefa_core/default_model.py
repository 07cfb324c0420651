"""The embedded default model: a 64x64 face DCGAN trained on DigiFace1M.

Its weights ship inside the PyPI package ``gan-face-generate==1.1.1`` (installed with
``--no-deps``). We locate the file through the package's metadata and never import its modules.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from sefa_core.errors import SefaError

DEFAULT_MODEL_NAME = "default"
DEFAULT_DISTRIBUTION = "gan-face-generate"
DEFAULT_WEIGHTS = "gan_face_generate/weights.tar"
INSTALL_HINT = "pip install --no-deps gan-face-generate==1.1.1"


def default_checkpoint_path() -> Path:
    """Path of ``weights.tar`` inside the installed package, without importing it."""
    try:
        distribution = metadata.distribution(DEFAULT_DISTRIBUTION)
    except metadata.PackageNotFoundError as error:
        raise SefaError(f"the default model is not installed; run: {INSTALL_HINT}") from error
    path = Path(str(distribution.locate_file(DEFAULT_WEIGHTS)))
    if not path.is_file():
        raise SefaError(f"{path}: the default model's weights are missing; reinstall with: {INSTALL_HINT}")
    return path
