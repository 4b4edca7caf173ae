"""What a Chef run list really needs from the repository: its cookbooks' `depends` closure, the
roles it names and the data bags its recipes read.

Why: only these files go into a group's image hash and its boot bundle, so editing one cookbook
rebakes (or re-converges) only the groups whose run list reaches it.

- `recipe[cb]`, `recipe[cb::recipe]`, `cb@1.2.3` -> cookbook `cb`; `role[r]` -> `roles/r.json` (or
  `.rb`: its run list is read from the JSON form only), whose run list is followed in turn.
- `depends` comes from `metadata.json` (`dependencies`) when present, else from `metadata.rb`
  (`depends 'name'` / `depends "name", "~> 1.0"`): chef-solo itself prefers metadata.json.
- Data bags: a cookbook's Ruby files are scanned for `data_bag_item('bag', ...)`,
  `data_bag('bag')` and `search(:bag, ...)` with a literal bag name; any call whose bag is not a
  literal makes every bag under `data_bags/` part of the closure (the safe side).

Names the repository does not have are reported in `missing` (cookbooks as `cb`, roles as
`role[r]`); they stay part of the digest so a later addition changes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

COOKBOOKS, ROLES, DATA_BAGS = "cookbooks", "roles", "data_bags"
_ITEM = re.compile(r"^(recipe|role)\[([^\]\s]+)\]$")
_DEPENDS = re.compile(r"""^\s*depends\s*\(?\s*['"]([^'"]+)['"]""", re.M)
_BAG_CALL = re.compile(r"""\b(data_bag_item|data_bag|search)\s*\(?\s*(:?)(['"]?)([A-Za-z0-9_-]*)""")


@dataclass(frozen=True)
class Closure:
    cookbooks: tuple[str, ...]
    roles: tuple[str, ...]
    data_bags: tuple[str, ...]
    missing: tuple[str, ...]

    def paths(self, project_dir: Path) -> list[tuple[str, Path]]:
        """(path in the repository, absolute path) of every file or folder the closure covers, sorted."""
        out = [(f"{COOKBOOKS}/{c}", project_dir / COOKBOOKS / c) for c in self.cookbooks]
        out += [(f"{ROLES}/{r}", project_dir / ROLES / r) for r in self.roles]
        out += [(f"{DATA_BAGS}/{b}", project_dir / DATA_BAGS / b) for b in self.data_bags]
        return sorted(out)


def parse_item(item: str) -> tuple[str, str]:
    """('recipe', cookbook) or ('role', name) for one run list entry."""
    m = _ITEM.fullmatch(item)
    if not m:
        raise ValueError(f"not a run list item: {item!r}")
    kind, name = m.groups()
    if kind == "recipe":
        name = name.split("::", 1)[0].split("@", 1)[0]
    return kind, name


def dependencies(cookbook_dir: Path) -> list[str]:
    """The cookbooks `cookbook_dir` depends on, from metadata.json, else metadata.rb."""
    meta_json = cookbook_dir / "metadata.json"
    if meta_json.is_file():
        try:
            deps = json.loads(meta_json.read_text()).get("dependencies") or {}
        except (ValueError, AttributeError):
            deps = {}
        return sorted(str(d) for d in deps)
    meta_rb = cookbook_dir / "metadata.rb"
    if meta_rb.is_file():
        return sorted(set(_DEPENDS.findall(meta_rb.read_text(errors="replace"))))
    return []


def data_bags_used(cookbook_dir: Path) -> tuple[set[str], bool]:
    """(literal bag names, True when some call names its bag dynamically) in a cookbook's Ruby files."""
    bags: set[str] = set()
    dynamic = False
    for rb in sorted(cookbook_dir.rglob("*.rb")):
        for func, symbol, quote, name in _BAG_CALL.findall(rb.read_text(errors="replace")):
            if name and (quote or symbol):
                if func == "search" and name in ("node", "role", "client", "environment"):
                    continue  # searches of Chef's own indexes, not data bags
                bags.add(name)
            elif func != "search":
                dynamic = True
    return bags, dynamic


def _role_run_list(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return []
    items = data.get("run_list") or []
    for env_list in (data.get("env_run_lists") or {}).values():
        items = [*items, *(env_list or [])]
    return [i for i in items if isinstance(i, str)]


def closure(project_dir: Path, run_list: Iterable[str]) -> Closure:
    """Cookbooks (with their `depends`), roles and data bags that `run_list` needs."""
    project_dir = Path(project_dir)
    cookbooks: set[str] = set()
    roles: set[str] = set()
    missing: set[str] = set()
    bags: set[str] = set()
    dynamic = False
    todo = list(run_list)
    while todo:
        kind, name = parse_item(todo.pop())
        if kind == "role":
            if name in roles or f"role[{name}]" in missing:
                continue
            path = project_dir / ROLES / f"{name}.json"
            if path.is_file():
                roles.add(f"{name}.json")
                todo += _role_run_list(path)
            else:
                missing.add(f"role[{name}]")
            continue
        stack = [name]
        while stack:
            cb = stack.pop()
            if cb in cookbooks or cb in missing:
                continue
            path = project_dir / COOKBOOKS / cb
            if not path.is_dir():
                missing.add(cb)
                continue
            cookbooks.add(cb)
            stack += dependencies(path)
            used, dyn = data_bags_used(path)
            bags |= used
            dynamic = dynamic or dyn
    bag_root = project_dir / DATA_BAGS
    present = sorted(p.name for p in bag_root.iterdir() if p.is_dir()) if bag_root.is_dir() else []
    chosen = present if dynamic else sorted(b for b in bags if b in present)
    return Closure(tuple(sorted(cookbooks)), tuple(sorted(roles)), tuple(chosen), tuple(sorted(missing)))
