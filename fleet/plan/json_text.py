"""`json.dumps(value, indent=2)`, byte for byte, at the speed of the C encoder.

With `indent` the standard library falls back to its pure-Python encoder: 0.5 s of a 300-group
`plan --json`. The plan is plain JSON data (dicts with string keys, lists, strings, numbers, booleans,
None), so the indentation is added here and every scalar is still encoded by the C functions
`json.dumps` itself uses. Anything else is handed to `json.dumps` unchanged.
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder()
_scalar = _ENCODER.encode  # C-accelerated for str, int, float (NaN/Infinity as json.dumps writes them)


def dumps_indented(value: Any, indent: int = 2) -> str:
    """The text `json.dumps(value, indent=indent)` returns."""
    parts: list[str] = []
    try:
        _write(value, parts, "\n", " " * indent)
    except _NotPlain:
        return json.dumps(value, indent=indent)
    return "".join(parts)


class _NotPlain(Exception):
    """A key or value json.dumps treats specially (non-string keys, tuples, subclasses)."""


_PLAIN = (str, int, float, bool, type(None))
_str = json.encoder.encode_basestring_ascii  # the C function json.dumps uses for str


def _write(value: Any, out: list[str], newline: str, step: str) -> None:
    append = out.append
    kind = type(value)
    if kind is dict:
        if not value:
            append("{}")
            return
        inner = newline + step
        sep = inner
        append("{")
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            append(sep)
            sep = "," + inner
            append(_str(key))
            append(": ")
            t = type(item)
            if t is str:
                append(_str(item))
            elif t in _PLAIN:
                append(_scalar(item))
            else:
                _write(item, out, inner, step)
        append(newline + "}")
    elif kind is list:
        if not value:
            append("[]")
            return
        inner = newline + step
        sep = inner
        append("[")
        for item in value:
            append(sep)
            sep = "," + inner
            t = type(item)
            if t is str:
                append(_str(item))
            elif t in _PLAIN:
                append(_scalar(item))
            else:
                _write(item, out, inner, step)
        append(newline + "]")
    elif kind in _PLAIN:
        append(_scalar(value))
    else:
        raise _NotPlain
