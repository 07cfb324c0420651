"""Layer specs: ``"all"``, ``"0-1"``, ``"2, 4, 6-8"`` -> sorted layer indices.

A spec names the factorizable layers SeFa stacks together (and, for W+ models, the W+ rows an
edit touches). Every failure is one line that names the valid range.
"""

from __future__ import annotations

import re

from sefa_core.errors import LayerSpecError

ALL_LAYERS = "all"
MAX_SPEC_LENGTH = 1000
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
_SINGLE = re.compile(r"^\d+$")


def parse_layers(spec: str, num_layers: int) -> tuple[int, ...]:
    """Resolve ``spec`` against a model with ``num_layers`` factorizable layers."""
    chosen: set[int] = set()
    for first, last in layer_ranges(spec, num_layers):
        chosen.update(range(first, last + 1))
    return tuple(sorted(chosen))


def layer_ranges(spec: str, num_layers: int) -> list[tuple[int, int]]:
    """The inclusive (first, last) ranges a spec names, checked against ``num_layers``."""
    if num_layers < 1:
        raise LayerSpecError(f"the model has no factorizable layers (num_layers={num_layers})")
    valid = f"valid layers are 0-{num_layers - 1}, or 'all'"
    if not isinstance(spec, str):
        raise LayerSpecError(f"layer spec must be text like '0-1', not {type(spec).__name__}; {valid}")
    text = spec.strip()
    if len(text) > MAX_SPEC_LENGTH:
        raise LayerSpecError(f"layer spec is too long ({len(text)} characters); {valid}")
    if text.lower() == ALL_LAYERS:
        return [(0, num_layers - 1)]
    if not text:
        raise LayerSpecError(f"layer spec is empty; {valid}")

    ranges = []
    for part in text.split(","):
        part = part.strip()
        if single := _SINGLE.match(part):
            first = last = int(single.group(0))
        elif span := _RANGE.match(part):
            first, last = int(span.group(1)), int(span.group(2))
            if first > last:
                raise LayerSpecError(f"layer range '{part}' is reversed; {valid}")
        else:
            shown = part if part else "(empty)"
            raise LayerSpecError(f"cannot read '{shown}' in layer spec '{text}'; {valid}")
        if last >= num_layers:
            raise LayerSpecError(f"layer {last} in '{text}' is out of range; {valid}")
        ranges.append((first, last))
    return ranges


def format_layers(layers: tuple[int, ...]) -> str:
    """The shortest spec for ``layers``: ``(0, 1, 2, 5)`` -> ``"0-2,5"``."""
    parts: list[str] = []
    start = previous = None
    for index in sorted(layers):
        if previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(parts)
