"""What a Chef run list really needs from the project: its cookbooks' `depends` closure, the roles it
names and the data bags its recipes read; and every problem of those files, one line each.

Why: only these files go into a group's image hash and its boot bundle, so editing one cookbook
rebakes (or re-converges) only the groups whose run list reaches it. And they are the user's files:
a wrong or hostile one must be one line (exit 2), never a traceback, a hang, or a file from outside
the project in an image or a bundle.

- `recipe[cb]`, `recipe[cb::recipe]`, `recipe[cb::recipe@1.2.3]` -> cookbook `cb` (recipe
  `recipes/<recipe>.rb`, `default` when not named); `role[r]` -> `roles/r.json`, whose `run_list`
  and `env_run_lists` are followed in turn. Every name is a plain name (fleet/spec/paths.py) and every
  path is resolved and must stay inside its folder. Roles that name each other are a cycle, reported
  with its chain.
- `depends` comes from `metadata.json` (`dependencies`, a mapping) when present, else from
  `metadata.rb` (`depends 'name'` / `depends "name", "~> 1.0"`): chef-solo itself prefers metadata.json.
- Data bags: a cookbook's Ruby files are scanned for `data_bag_item('bag', ...)`, `data_bag('bag')`
  and `search(:bag, ...)` with a literal bag name; any call whose bag is not a literal makes every bag
  under `data_bags/` part of the closure (the safe side). Each item of a bag in the closure must be a
  JSON object (`<item>.json`).
- Limits: JSON files (metadata, roles, data bag items) through fleet/spec/jsonfile.py, at most
  MAX_JSON_BYTES and MAX_DEPTH levels; Ruby files scanned up to MAX_RUBY_BYTES each; role nesting at
  most MAX_ROLE_DEPTH.

Names the project does not have are reported in `missing` (cookbooks as `cb`, roles as `role[r]`;
they stay part of the image hash so a later addition changes it) and `missing_recipes`
(`recipe[cb::r]`); bad files and names in `problems`. A closure with problems is never hashed or
bundled (`require_clean`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fleet.spec.errors import did_you_mean, quote
from fleet.spec.jsonfile import JsonError, read_json
from fleet.spec.paths import OutsideError, inside, is_plain_name
from fleet.spec.readonce import derived, read_bytes

COOKBOOKS, ROLES, DATA_BAGS = "cookbooks", "roles", "data_bags"
MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_RUBY_BYTES = 1024 * 1024
MAX_ROLE_DEPTH = 32
_ITEM = re.compile(r"(recipe|role)\[(.*)\]", re.S)
_RECIPE = re.compile(r"(?P<cb>[^:@]*)(?:::(?P<recipe>[^@]*))?(?:@(?P<version>.*))?", re.S)
_VERSION = re.compile(r"\d+(\.\d+){0,2}")
_DEPENDS = re.compile(r"""^\s*depends\s*\(?\s*['"]([^'"]*)['"]""", re.M)
_BAG_CALL = re.compile(r"""\b(data_bag_item|data_bag|search)\s*\(?\s*(:?)(['"]?)([A-Za-z0-9_-]*)""")


class ClosureError(ValueError):
    """The run list's files have problems: nothing of them may be hashed or bundled."""


@dataclass(frozen=True)
class Closure:
    cookbooks: tuple[str, ...]
    roles: tuple[str, ...]
    data_bags: tuple[str, ...]
    missing: tuple[str, ...]
    missing_recipes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def paths(self, project_dir: Path) -> list[tuple[str, Path]]:
        """(path in the project, absolute path) of every file or folder the closure covers, sorted."""
        out = [(f"{COOKBOOKS}/{c}", project_dir / COOKBOOKS / c) for c in self.cookbooks]
        out += [(f"{ROLES}/{r}", project_dir / ROLES / r) for r in self.roles]
        out += [(f"{DATA_BAGS}/{b}", project_dir / DATA_BAGS / b) for b in self.data_bags]
        return sorted(out)

    def require_clean(self) -> Closure:
        if self.problems:
            raise ClosureError("; ".join(self.problems[:3]))
        return self


def parse_item(item: object) -> tuple[str, str, str | None]:
    """('recipe', cookbook, recipe or None) or ('role', name, None) for one run list entry;
    ValueError (one line) for anything else."""
    m = _ITEM.fullmatch(item) if isinstance(item, str) else None
    if not m:
        raise ValueError(f"{quote(item)} is not a run list item (recipe[cookbook::recipe] or role[name])")
    kind, body = m.groups()
    if kind == "role":
        if not is_plain_name(body):
            raise ValueError(f"{quote(item)}: {quote(body)} is not a plain role name")
        return kind, body, None
    parts = _RECIPE.fullmatch(body)
    cb, recipe, version = parts["cb"], parts["recipe"], parts["version"]
    if not is_plain_name(cb):
        raise ValueError(f"{quote(item)}: {quote(cb)} is not a plain cookbook name")
    if recipe is not None and not is_plain_name(recipe):
        raise ValueError(f"{quote(item)}: {quote(recipe)} is not a plain recipe name")
    if version is not None and not _VERSION.fullmatch(version):
        raise ValueError(f"{quote(item)}: {quote(version)} is not a version (like 1.2.3)")
    return kind, cb, recipe


class _Reader:
    """One closure's walk; problems are collected, never raised."""

    def __init__(self, project_dir: Path):
        self.root = Path(project_dir)
        self.problems: list[str] = []
        self.cookbooks: set[str] = set()
        self.roles: dict[str, list[str]] = {}
        self.missing: set[str] = set()
        self.missing_recipes: set[str] = set()
        self.bags: set[str] = set()
        self.dynamic = False

    def problem(self, where: str | None, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def folder(self, kind: str, name: str) -> Path | None:
        """`<project>/<kind>/<name>` resolved inside `<project>/<kind>` (itself may be a link: a cookbooks
        folder shared with another repository is the user's choice); None (a problem) when it leaves."""
        try:
            return inside(self.root / kind, name)
        except (OutsideError, OSError):
            self.problem(f"{kind}/{name}", f"leaves the project's {kind}/ folder (a link to elsewhere?)")
            return None

    # -- run lists and roles

    def run_list(self, items: Iterable[object], where: str | None, chain: tuple[str, ...]) -> None:
        for item in items:
            try:
                kind, name, recipe = parse_item(item)
            except ValueError as exc:
                self.problem(where, str(exc))
                continue
            if kind == "role":
                self.role(name, chain)
            else:
                self.recipe(name, recipe)

    def role(self, name: str, chain: tuple[str, ...]) -> None:
        if name in chain:
            cycle = " -> ".join(f"role[{r}]" for r in (*chain[chain.index(name):], name))
            self.problem(f"{ROLES}/{chain[-1]}.json", f"roles name each other in a cycle: {cycle}")
            return
        if name in self.roles or f"role[{name}]" in self.missing:
            return
        if len(chain) >= MAX_ROLE_DEPTH:
            self.problem(f"{ROLES}/{chain[-1]}.json", f"roles nested more than {MAX_ROLE_DEPTH} deep")
            return
        rel = f"{ROLES}/{name}.json"
        path = self.folder(ROLES, f"{name}.json")
        if path is None:
            return
        if not path.exists():
            self.missing.add(f"role[{name}]")
            return
        try:
            data = read_json(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_DEPTH)
        except JsonError as exc:
            self.problem(rel, str(exc))
            return
        self.roles[name] = []
        if not isinstance(data, dict):
            self.problem(rel, f"a role is a JSON object, not {type(data).__name__}")
            return
        items = data.get("run_list", [])
        if not isinstance(items, list):
            self.problem(rel, f"run_list must be a list of items, not {type(items).__name__}")
            items = []
        env = data.get("env_run_lists", {})
        if not isinstance(env, dict):
            self.problem(rel, f"env_run_lists must be a mapping of environment to list, not {type(env).__name__}")
            env = {}
        for env_name, env_items in env.items():
            if not isinstance(env_items, list):
                self.problem(rel, f"env_run_lists.{env_name} must be a list of items, not {type(env_items).__name__}")
                continue
            items = [*items, *env_items]
        self.run_list(items, rel, (*chain, name))

    # -- cookbooks

    def recipe(self, cb: str, recipe: str | None) -> None:
        path = self.cookbook(cb)
        if path is None:
            return
        file = path / "recipes" / f"{recipe or 'default'}.rb"
        if not file.is_file():
            known = [p.stem for p in (path / "recipes").glob("*.rb")] if (path / "recipes").is_dir() else []
            self.missing_recipes.add(f"recipe[{cb}::{recipe or 'default'}]{did_you_mean(recipe or 'default', known)}")

    def cookbook(self, name: str) -> Path | None:
        """Add `name` and its `depends` closure; the cookbook's folder, or None when it is not there."""
        todo = [name]
        while todo:
            cb = todo.pop()
            if cb in self.cookbooks or cb in self.missing:
                continue
            path = self.folder(COOKBOOKS, cb)
            if path is None:
                continue
            if not path.is_dir():
                self.missing.add(cb)
                continue
            self.cookbooks.add(cb)
            todo += self.dependencies(cb, path)
            self.scan_data_bags(cb, path)
        return self.root / COOKBOOKS / name if name in self.cookbooks else None

    def dependencies(self, cb: str, path: Path) -> list[str]:
        meta_json, meta_rb = path / "metadata.json", path / "metadata.rb"
        if meta_json.exists():
            rel = f"{COOKBOOKS}/{cb}/metadata.json"
            try:
                data = read_json(meta_json, max_bytes=MAX_JSON_BYTES, max_depth=MAX_DEPTH)
            except JsonError as exc:
                self.problem(rel, str(exc))
                return []
            deps = data.get("dependencies", {}) if isinstance(data, dict) else None
            if deps is None:
                self.problem(rel, f"metadata is a JSON object, not {type(data).__name__}")
                return []
            if not isinstance(deps, dict):
                self.problem(rel, f"dependencies must be a mapping of cookbook to version, not {type(deps).__name__}")
                return []
            names = list(deps)
        elif meta_rb.exists():
            rel = f"{COOKBOOKS}/{cb}/metadata.rb"
            text = self.ruby(meta_rb, rel)
            names = _DEPENDS.findall(text) if text is not None else []
        else:
            return []
        good = []
        for dep in names:
            if is_plain_name(dep):
                good.append(dep)
            else:
                self.problem(rel, f"depends {quote(dep)}: not a plain cookbook name")
        return sorted(set(good))

    def ruby(self, path: Path, rel: str) -> str | None:
        if not path.is_file():
            self.problem(rel, "is not a file")
            return None
        try:
            raw = read_bytes(path, MAX_RUBY_BYTES)
        except OSError as exc:
            self.problem(rel, f"cannot read file: {exc.strerror or exc}")
            return None
        if len(raw) > MAX_RUBY_BYTES:
            self.problem(rel, f"larger than {MAX_RUBY_BYTES // (1024 * 1024)} MiB: refused")
            return None
        return raw.decode("utf-8", errors="replace")

    def scan_data_bags(self, cb: str, path: Path) -> None:
        try:
            files = sorted(p for p in path.rglob("*.rb") if not p.is_symlink())
        except OSError as exc:
            self.problem(f"{COOKBOOKS}/{cb}", f"cannot read folder: {exc.strerror or exc}")
            return
        for rb in files:
            if rb.is_dir():
                continue
            text = self.ruby(rb, f"{COOKBOOKS}/{cb}/{rb.relative_to(path).as_posix()}")
            if text is None:
                continue
            for func, symbol, quote_, name in _BAG_CALL.findall(text):
                if name and (quote_ or symbol):
                    if func == "search" and name in ("node", "role", "client", "environment"):
                        continue  # searches of Chef's own indexes, not data bags
                    self.bags.add(name)
                elif func != "search":
                    self.dynamic = True

    # -- data bags and readability

    def data_bags(self) -> list[str]:
        root = self.root / DATA_BAGS
        if not root.is_dir():
            return []
        try:
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
        except OSError as exc:
            self.problem(DATA_BAGS, f"cannot read folder: {exc.strerror or exc}")
            return []
        present = [b for b in present if is_plain_name(b)]  # `.git` and the like are no data bags
        chosen = present if self.dynamic else sorted(b for b in self.bags if b in present)
        out = []
        for bag in chosen:
            path = self.folder(DATA_BAGS, bag)
            if path is None:
                continue
            out.append(bag)
            try:
                items = sorted(path.iterdir())
            except OSError as exc:
                self.problem(f"{DATA_BAGS}/{bag}", f"cannot read folder: {exc.strerror or exc}")
                continue
            for item in items:
                if item.suffix != ".json" or item.is_symlink():
                    continue
                rel = f"{DATA_BAGS}/{bag}/{item.name}"
                try:
                    data = read_json(item, max_bytes=MAX_JSON_BYTES, max_depth=MAX_DEPTH)
                except JsonError as exc:
                    self.problem(rel, str(exc))
                    continue
                if not isinstance(data, dict):
                    self.problem(rel, f"a data bag item is a JSON object, not {type(data).__name__}")
        return out

    def check_readable(self, closure: Closure) -> None:
        """Every file the hash and the bundle will read can be read (a permission problem is one line here,
        not a traceback halfway through a plan)."""
        for rel, path in closure.paths(self.root):
            try:
                members = [path] if path.is_file() else [p for p in path.rglob("*") if not p.is_symlink()]
                for p in members:
                    if p.is_file():
                        with p.open("rb"):
                            pass
                    elif p.is_dir():
                        next(iter(p.iterdir()), None)
            except OSError as exc:
                self.problem(rel, f"cannot read {getattr(exc, 'filename', '') or 'it'}: {exc.strerror or exc}")


def closure(project_dir: Path, run_list: Iterable[object]) -> Closure:
    """Cookbooks (with their `depends`), roles and data bags that `run_list` needs, and their problems.
    Within one run (fleet.spec.readonce) each distinct run list is walked once, however many groups
    share it."""
    items = list(run_list)
    key = (str(Path(project_dir).resolve()), tuple(repr(i) for i in items))
    return derived(key, lambda: _closure(Path(project_dir), items))


def _closure(project_dir: Path, items: list[object]) -> Closure:
    reader = _Reader(project_dir)
    bags: list[str] = []
    try:
        reader.run_list(items, None, ())
        bags = reader.data_bags()
    except OSError as exc:  # a folder the walk cannot enter (permission denied): one line, not a traceback
        where = Path(exc.filename).relative_to(project_dir) if exc.filename and Path(exc.filename).is_relative_to(
            project_dir) else (exc.filename or "the project")
        reader.problem(str(where), f"cannot read: {exc.strerror or exc}")
    found = Closure(tuple(sorted(reader.cookbooks)), tuple(sorted(f"{r}.json" for r in reader.roles)),
                    tuple(bags), tuple(sorted(reader.missing)), tuple(sorted(reader.missing_recipes)))
    reader.check_readable(found)
    problems = tuple(dict.fromkeys(reader.problems))  # in the order found, each once
    return Closure(found.cookbooks, found.roles, found.data_bags, found.missing, found.missing_recipes, problems)


def suggestions(project_dir: Path, missing: Iterable[str]) -> list[str]:
    """Each missing cookbook (`cb`) or role (`role[r]`) with a "did you mean" over what the project has."""
    root = Path(project_dir)
    try:
        cookbooks = sorted(p.name for p in (root / COOKBOOKS).iterdir() if p.is_dir())
    except OSError:
        cookbooks = []
    roles = sorted(p.stem for p in (root / ROLES).glob("*.json"))
    out = []
    for name in missing:
        if name.startswith("role["):
            out.append(f"{name}{did_you_mean(name[5:-1], roles)}")
        else:
            out.append(f"cookbook '{name}'{did_you_mean(name, cookbooks)}")
    return out

