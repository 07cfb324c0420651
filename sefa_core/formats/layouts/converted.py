"""Converted generators as safetensors: what ``sefa convert`` and the conversion cache write.

The tensors are the state dict of the layout the source converts to (``Conversion.target``: NVIDIA's
``G_ema.state_dict()`` names for StyleGAN2, genforce's generator names for PGGAN and StyleGAN); the
text metadata says what they are:
- ``sefa.source_sha256``: the sha256 of the file they were converted from;
- ``sefa.layout``: ``nvidia`` or ``genforce``;
- ``sefa.build_options``: JSON of the build options (constructor kwargs such as ``conv_clamp`` and
  the mapping learning rate, or the class count);
- ``sefa.source_format``: e.g. "TensorFlow StyleGAN2 pickle (Gs)";
- ``sefa.conversion_version``: bumped when a conversion changes.
Such a file loads as a checkpoint too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.containers.safetensors import SafetensorsContent
from sefa_core.formats.layouts.common import Conversion, Layout
from sefa_core.formats.layouts.tensorflow import build_conversion
from sefa_core.models.base import Generator

CONVERSION_VERSION = "1"
DIGEST_KEY = "sefa.source_sha256"
TARGET_KEY = "sefa.layout"
OPTIONS_KEY = "sefa.build_options"
FORMAT_KEY = "sefa.source_format"
VERSION_KEY = "sefa.conversion_version"
REQUIRED_KEYS = (DIGEST_KEY, TARGET_KEY, OPTIONS_KEY, FORMAT_KEY, VERSION_KEY)


def conversion_metadata(conversion: Conversion, digest: str) -> dict[str, str]:
    """The metadata that names a conversion's source (``digest``: its sha256) and how to build it."""
    return {
        DIGEST_KEY: digest,
        TARGET_KEY: conversion.target,
        OPTIONS_KEY: json.dumps(conversion.options, sort_keys=True),
        FORMAT_KEY: conversion.source_format,
        VERSION_KEY: CONVERSION_VERSION,
    }


def conversion_from(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Conversion:
    """The conversion a safetensors file holds; refused naming the metadata it lacks."""
    if missing := [key for key in REQUIRED_KEYS if key not in metadata]:
        raise CheckpointError(path, f"a safetensors file without SeFa Studio's '{missing[0]}' metadata")
    try:
        options = json.loads(metadata[OPTIONS_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(path, f"'{OPTIONS_KEY}' in the metadata is not JSON") from error
    if not isinstance(options, dict):
        raise CheckpointError(path, f"'{OPTIONS_KEY}' in the metadata is not a JSON object")
    return Conversion(metadata[TARGET_KEY], tensors, options, metadata[FORMAT_KEY])


def matches(raw: RawCheckpoint) -> bool:
    return isinstance(raw.content, SafetensorsContent)  # one without our metadata is refused naming it


def build(raw: RawCheckpoint) -> Generator:
    content = raw.content
    return build_conversion(conversion_from(raw.path, content.tensors, content.metadata), raw.path)


LAYOUTS = (Layout("converted safetensors (sefa convert)", matches, build),)
