"""Each project file read (and parsed) once per run.

A plan asks for Pulumi.yaml's virtualenv once per Command (three per group: 900 parses of the same
file at 300 groups, a fifth of the plan's time with pure-Python yaml), and for its name again. Inside
`one_read_per_file()` (the CLI and the plan engine open it around a run) the bytes of a file are kept
by resolved path, and what is computed from files read in the run is kept by key; outside it every
call reads and computes afresh, so a long-lived caller (tests, an editor) always sees the file as it
is now. A read or computation that fails is not kept: the next call fails the same way.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

_bytes: dict[tuple[Path, int | None], bytes] | None = None
_kept: dict[Any, Any] | None = None


@contextmanager
def one_read_per_file() -> Iterator[None]:
    """Keep what files are read inside this block (nested blocks share the outer one's memory)."""
    global _bytes, _kept
    if _bytes is not None:
        yield
        return
    _bytes, _kept = {}, {}
    try:
        yield
    finally:
        _bytes = _kept = None


def _read(path: Path, limit: int | None) -> bytes:
    with path.open("rb") as f:
        return f.read() if limit is None else f.read(limit + 1)


def read_bytes(path: str | Path, limit: int | None = None) -> bytes:
    """The file's bytes, or with `limit` at most limit + 1 of them (so a caller sees that the file is
    too big without reading it all). OSError as opening the file raises it."""
    if _bytes is None:
        return _read(Path(path), limit)
    key = (Path(path).resolve(), limit)
    if key not in _bytes:
        _bytes[key] = _read(key[0], limit)
    return _bytes[key]


def derived(key: tuple, compute: Callable[[], Any]) -> Any:
    """`compute()`, kept under `key` in a run (what several files make together, e.g. a run list's
    cookbook closure, asked for once per group). Callers must not mutate it."""
    if _kept is None:
        return compute()
    full = ("derived", key)
    if full not in _kept:
        _kept[full] = compute()
    return _kept[full]


def kept(key: Any) -> Any:
    """What `keep(key, value)` stored in this run, else None (always None outside a run)."""
    return None if _kept is None else _kept.get(key)


def keep(key: Any, value: Any) -> None:
    """Remember a result derived only from files read in this run (so it cannot go stale within it)."""
    if _kept is not None:
        _kept[key] = value
