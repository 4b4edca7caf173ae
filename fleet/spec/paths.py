"""Names the user writes that become paths, and paths that must stay inside their folder.

A cookbook, recipe, role or data bag name is a plain name: letters, digits, `_`, `-` and `.`, not
starting with `.` (so no `..`, no hidden file), no `/`, never empty. Anything else would let a run
list (`recipe[/etc]`, `role[../../x]`) or a cookbook's `depends "/"` reach a file outside the project,
which the image hash would read and the boot bundle would upload to the stack's bucket.

`inside(root, *parts)` is the second guard: the joined path, resolved (symbolic links followed), must
be `root` itself or below it.
"""

from __future__ import annotations

import re
from pathlib import Path

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


class OutsideError(ValueError):
    """A path that leaves its folder."""


def is_plain_name(name: object) -> bool:
    """A non-empty single path part without separators, `.`/`..`, hidden names or odd characters."""
    return isinstance(name, str) and PLAIN_NAME.fullmatch(name) is not None


def inside(root: Path, *parts: str) -> Path:
    """`root / parts...` resolved; OutsideError when it is not `root` or below it (a `..`, an absolute
    part or a symbolic link pointing elsewhere)."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and not path.is_relative_to(base):
        raise OutsideError(f"{Path(*parts) if parts else root} leaves {root}")
    return path
