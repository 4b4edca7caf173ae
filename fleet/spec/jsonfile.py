"""Bounded JSON reading, shared by every JSON file fleet reads from a project or a user: the lock file,
cookbook metadata.json, role JSON, data bag items, and the plans `fleet plan diff` compares.

Why bounded: these files come from the user's folder or a pull request, and a mistake or a hostile
file must cost one line (exit 2), never a traceback, a hang or unbounded memory. Python's json module
reads a file of any size whole and raises RecursionError on deep nesting; it also accepts NaN and
Infinity (and reads 1e999 as infinity), which no other JSON reader does.

Limits per call: the file's size (read at most `max_bytes` + 1 bytes, so a huge file costs nothing),
nesting depth, the number of values; numbers must be finite; an object must not repeat a key (Python
would silently keep the last). Every refusal is a JsonError whose message is one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fleet.spec.readonce import read_bytes

MAX_DEPTH = 64
MAX_VALUES = 1_000_000


class JsonError(ValueError):
    """A JSON file or text refused, with one line saying why."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError(f"{text} is not a finite number")
    return value


def _constant(text: str) -> Any:
    raise JsonError(f"{text} is not a number JSON can hold")


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise JsonError(f"key {json.dumps(repeated)[:80]} appears twice in one object")
    return out


def check_shape(value: Any, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """JsonError when `value` nests deeper than `max_depth` or holds more than `max_values` values."""
    count, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        count += 1
        if count > max_values:
            raise JsonError(f"more than {max_values} values: refused")
        if depth > max_depth:
            raise JsonError(f"nested more than {max_depth} levels deep: refused")
        if isinstance(item, dict):
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            todo += [(v, depth + 1) for v in item]


def parse_json(raw: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH,
               max_values: int = MAX_VALUES) -> Any:
    """The value of a JSON text within the limits; JsonError (one line) otherwise."""
    if len(raw) > max_bytes:
        raise JsonError(f"larger than {_size(max_bytes)}: refused")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_constant, object_pairs_hook=_no_repeats)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise JsonError(f"nested more than {max_depth} levels deep: refused") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise JsonError(f"not JSON Python can read ({' '.join(str(exc).split())[:120]})") from None
    check_shape(value, max_depth, max_values)
    return value


def read_json(path: str | Path, *, max_bytes: int, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> Any:
    """The value of the JSON file at `path` within the limits; JsonError (one line) otherwise, a file
    that cannot be read (missing, a folder, permission denied) included."""
    try:
        raw = read_bytes(path, max_bytes)
    except IsADirectoryError:
        raise JsonError("is a folder, not a file") from None
    except OSError as exc:
        raise JsonError(f"cannot read file: {exc.strerror or exc}") from None
    return parse_json(raw, max_bytes=max_bytes, max_depth=max_depth, max_values=max_values)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"
