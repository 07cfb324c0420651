"""The globals a pickle stream names, read from its opcodes (``pickletools.genops``): nothing runs.

What tells a network pickle's dialect before it is unpickled (``pickles``) and a whole pickled
model in a torch file (``checks``).
"""

from __future__ import annotations

import pickletools
from typing import BinaryIO

# Opcodes that push a string (a global's module or name under protocol 4), that fetch from or
# store to the memo, and that leave the stack as it is.
_STRING_OPCODES = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_STACK_NEUTRAL = frozenset({"PROTO", "FRAME", "MEMOIZE"}) | _MEMO_PUTS


def globals_named(handle: BinaryIO) -> list[str]:
    """The globals a pickle stream names, in order, read from its opcodes without running any.

    Protocol 4 names a global with two strings pushed before ``STACK_GLOBAL`` (often fetched from
    the memo); a global named any other way (computed strings) raises ValueError.
    """
    names: list[str] = []
    memo: dict[int, str | None] = {}
    recent: list[str | None] = [None, None]  # the two values on top of the stack, when known
    for opcode, arg, _ in pickletools.genops(handle):
        kind = opcode.name
        if kind in ("GLOBAL", "INST"):
            module, name = str(arg).split(" ", 1)
            names.append(f"{module}.{name}")
        elif kind == "STACK_GLOBAL":
            module, name = recent
            if module is None or name is None:
                raise ValueError("the file names a global with computed strings")
            names.append(f"{module}.{name}")
        if kind in _STACK_NEUTRAL:
            if kind == "MEMOIZE":
                memo[len(memo)] = recent[-1]
            elif kind in _MEMO_PUTS:
                memo[arg] = recent[-1]
            continue
        if kind in _STRING_OPCODES:
            pushed = arg.decode("latin-1") if isinstance(arg, bytes) else arg
        elif kind in _MEMO_GETS:
            pushed = memo.get(arg)
        else:
            pushed = None
        recent = [recent[-1], pushed]
    return names
