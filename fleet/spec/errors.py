"""Problems found in nodes.yaml or stack config: one line each, naming file, group and key.

One line is a promise: control characters (a newline in a key, a raw \\x01) are printed escaped,
and values are quoted through `quote`, which caps what it echoes (a 5 MB value costs 80 characters).
"""

from __future__ import annotations

import difflib
import re
import reprlib
from dataclasses import dataclass
from typing import Any, Iterable

MAX_QUOTE = 60  # characters of a quoted string value; longer ones are cut in the middle
MAX_PART = 500  # characters of the group, key or message part of a problem line (a last guard)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_repr = reprlib.Repr()
_repr.maxstring = MAX_QUOTE
_repr.maxother = MAX_QUOTE
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_repr.maxlevel = 2


def quote(value: Any) -> str:
    """`repr(value)`, short: long strings and big or deep containers are cut ('...')."""
    if isinstance(value, str) and len(value) > MAX_QUOTE:
        return f"{_repr.repr(value)} ({len(value)} characters)"
    return _repr.repr(value)


def one_line(text: str, limit: int = MAX_PART) -> str:
    """`text` with control characters escaped and at most `limit` characters (cut in the middle)."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int | None
    group: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [one_line(where)]
        if self.group is not None:
            parts.append(f"group '{one_line(self.group, 140)}'")
        if self.key:
            parts.append(f"key '{one_line(self.key)}'")
        return ": ".join(parts) + f": {one_line(self.message)}"


class SpecError(Exception):
    """Raised with every problem found at once; the CLI prints one line each and exits 2."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line or 0, str(p)))
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a near miss, else ''."""
    word = str(word)
    if len(word) > 200:  # nothing is that long; and difflib's time grows with it
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
