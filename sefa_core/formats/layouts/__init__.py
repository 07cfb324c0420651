"""Layouts: which tensors mean which network (genforce, rosinality, NVIDIA, BigGAN, DCGAN, TensorFlow,
and the safetensors ``sefa convert`` writes).

Each module exports ``LAYOUTS``; ``ALL_LAYOUTS`` is tried in this order and the first whose
``matches`` is true builds the generator.
"""

from __future__ import annotations

from sefa_core.formats.layouts import biggan, converted, dcgan, genforce, nvidia, rosinality, tensorflow
from sefa_core.formats.layouts.common import Layout
from sefa_core.formats.layouts.tensorflow import build_conversion

__all__ = ["ALL_LAYOUTS", "build_conversion"]

ALL_LAYOUTS: tuple[Layout, ...] = (
    *dcgan.LAYOUTS,
    *genforce.LAYOUTS,
    *rosinality.LAYOUTS,
    *nvidia.LAYOUTS,
    *biggan.LAYOUTS,
    *tensorflow.LAYOUTS,
    *converted.LAYOUTS,
)
