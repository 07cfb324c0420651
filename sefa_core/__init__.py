"""SeFa Studio's engine: load a generator safely, factorize it in closed form, edit and render.

Example::

    import sefa_core
    generator = sefa_core.load_generator("default")          # or a config name, or a checkpoint path
    semantics = sefa_core.factorize(generator, layers="all")  # sorted unit directions + eigenvalues
    codes = generator.sample(4, seed=0)
    edited = sefa_core.apply_edits(codes, semantics, {0: 3.0})
    images = generator.synthesize(edited)                     # (4, 3, H, W) in about [-1, 1]
"""

from sefa_core.editing import apply_edits, traversal
from sefa_core.errors import CheckpointError, CodeFileError, ConfigError, LayerSpecError, SefaError
from sefa_core.factorize import Semantics, factorize
from sefa_core.layers import parse_layers
from sefa_core.models.base import Generator
from sefa_core.registry import load_generator

__all__ = [
    "CheckpointError",
    "CodeFileError",
    "ConfigError",
    "Generator",
    "LayerSpecError",
    "SefaError",
    "Semantics",
    "apply_edits",
    "factorize",
    "load_generator",
    "parse_layers",
    "traversal",
]
