"""Strict, bounded YAML loading: syntax errors with line and column, duplicate keys rejected,
the line of every mapping key kept so problems can point at it, and nothing a hostile or
mistaken file can use to crash or stall the reader.

PyYAML silently keeps the last of two equal keys; a fleet file where that happens is
almost always a paste mistake, so it is an error here. A merge key (`<<: *web`) is not a
duplicate of the keys written next to it: those override the merged ones, as YAML says.

Limits (README, "nodes.yaml"; costs in bench/RESULTS.md): a file is at most MAX_BYTES; its values,
counted with every alias expanded where it is used, at most MAX_NODES; nesting at most MAX_DEPTH;
an alias may not sit inside its own anchor. A pass over the parser's events checks them before a
node is composed and stops at the first limit crossed (a "billion laughs" file costs what a small
one does).
Only JSON's kinds of values are read: strings, numbers (finite), booleans, null, lists and
mappings with string keys. A date, a `!!binary` or `!!set`, or a key YAML reads as a number,
boolean or null (`off:`, `null:`, `1:`) is one problem line asking to quote it, because Chef
attributes, tags, the image hash and `fleet show` are JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from fleet.spec.errors import Problem, SpecError, quote
from fleet.spec.readonce import read_bytes

Path_ = tuple[str, ...]
Label = Callable[[Path_], "tuple[str | None, str | None]"]

MAX_BYTES = 2 * 1024 * 1024  # a 300-group fleet is ~20 KB
MAX_NODES = 200_000  # scalars, lists and mappings, aliases expanded
MAX_DEPTH = 64  # nested lists/mappings

_TAG = "tag:yaml.org,2002:"
_VALUE_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
_KIND = {"int": "a number", "float": "a number", "bool": "a boolean", "null": "null", "timestamp": "a date",
         "binary": "binary data", "set": "a set", "omap": "an ordered map", "pairs": "a list of pairs"}


@dataclass
class YamlDoc:
    """A loaded document and where each key was: lines[("grp", "autoscale", "node_min")] = 12."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    # with keep_going: what the reader refused (values JSON cannot hold, repeated keys), already
    # neutralized in `data` (read as strings, the last of repeated keys kept) so the rest is checked too
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest key of `path` that exists in the file."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


# libyaml's parser when PyYAML has it (10x faster on big fleets), same marks and errors.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """A value YAML cannot build (`!!int four`, `!!float abc`) is a marked error, not a ValueError."""

    def construct_object(self, node, deep=False):  # noqa: D102
        try:
            return super().construct_object(node, deep)
        except yaml.MarkedYAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError, IndexError) as exc:
            tag = str(node.tag).removeprefix(_TAG)
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {quote(node.value)} as {tag} ({type(exc).__name__})",
                node.start_mark) from None


def _default_label(path: Path_) -> tuple[str | None, str | None]:
    return None, ".".join(path) or None


def _prescan(text: str, filename: str) -> None:
    """Refuse, before anything is built, a document over the limits: more than MAX_NODES values with
    every alias counted as the values it stands for, nesting deeper than MAX_DEPTH, or an alias
    inside its own anchor. One pass over the parser's events, stopping at the first limit crossed,
    so the time and memory spent on a hostile file are bounded too."""
    parser = _Base(text)
    count, sizes, open_ = 0, {}, []  # open_: (anchor, count at its start) of each unfinished collection
    try:
        while True:
            event = parser.get_event()
            if isinstance(event, yaml.ScalarEvent):
                count += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                count += 1
                open_.append((event.anchor, count))
                if len(open_) > MAX_DEPTH:
                    raise SpecError([Problem(filename, event.start_mark.line + 1, None, None,
                                             f"nested more than {MAX_DEPTH} levels deep: refused")])
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, start = open_.pop()
                if anchor:
                    sizes[anchor] = count - start + 1
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_):
                    raise SpecError([Problem(filename, event.start_mark.line + 1, None, None,
                                             f"alias *{event.anchor} is inside its own anchor (a recursive "
                                             "structure)")])
                count += sizes.get(event.anchor, 1)  # an undefined alias: the composer reports it
            elif isinstance(event, yaml.StreamEndEvent):
                return
            if count > MAX_NODES:
                raise SpecError([Problem(filename, event.start_mark.line + 1, None, None,
                                         f"more than {MAX_NODES} values with aliases expanded: refused")])
    finally:
        parser.dispose()


def _walk(root: yaml.Node, filename: str, label: Label) -> tuple[dict[Path_, int], list[Problem]]:
    """Each key's line; problems: repeated keys, keys that are not strings, values JSON cannot hold."""
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    checked: set[int] = set()  # an aliased node is checked once, where it is defined

    def problem(path: Path_, node: yaml.Node, message: str) -> None:
        group, key = label(path)
        problems.append(Problem(filename, node.start_mark.line + 1, group, key, message))

    todo: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while todo:
        node, prefix = todo.pop()
        first = id(node) not in checked
        checked.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            tag = str(node.tag)
            if first and tag not in _VALUE_TAGS:
                short = tag.removeprefix(_TAG)
                problem(prefix, node, f"YAML reads {quote(node.value)} as {_KIND.get(short, '!' + short)}, "
                        "which JSON cannot hold: quote it")
                node.tag = f"{_TAG}str"  # read as the text it is written as, for the checks that follow
            elif first and tag == f"{_TAG}float" and node.value.lower().lstrip("+-") in (".inf", ".nan"):
                problem(prefix, node, f"{node.value} is not a number JSON can hold")
                node.tag = f"{_TAG}str"
        elif isinstance(node, yaml.SequenceNode):
            if first and node.tag != f"{_TAG}seq":
                short = str(node.tag).removeprefix(_TAG)
                problem(prefix, node, f"YAML reads this as {_KIND.get(short, '!' + short)}: write a plain list")
                node.tag = f"{_TAG}seq"
            todo += [(item, prefix) for item in reversed(node.value)]
        elif isinstance(node, yaml.MappingNode):
            if first and node.tag != f"{_TAG}map":
                short = str(node.tag).removeprefix(_TAG)
                problem(prefix, node, f"YAML reads this as {_KIND.get(short, '!' + short)}: write a plain mapping")
                node.tag = f"{_TAG}map"
            seen: dict[str, int] = {}
            if any(not isinstance(k, yaml.ScalarNode) for k, _ in node.value):
                for key_node, _ in node.value:
                    if first and not isinstance(key_node, yaml.ScalarNode):
                        problem(prefix, key_node, "a key must be a plain string, not a list or mapping")
                node.value = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]  # nothing can hold it
            for key_node, value_node in node.value:
                text = key_node.value
                path = (*prefix, text)
                line = key_node.start_mark.line + 1
                if key_node.tag == f"{_TAG}merge":
                    todo.append((value_node, prefix))
                    continue
                if first and key_node.tag != f"{_TAG}str":
                    short = str(key_node.tag).removeprefix(_TAG)
                    problem(path, key_node, f"{'group name' if not prefix else 'key'} {quote(text)} is read by "
                            f"YAML as {_KIND.get(short, '!' + short)}: quote it")
                    key_node.tag = f"{_TAG}str"
                if first and text in seen:
                    group, key = label(path)
                    problems.append(Problem(filename, line, group, key, (
                        f"duplicate {'key' if key else 'entry'} (first defined on line {seen[text]}; "
                        "YAML would silently keep the last)")))
                seen[text] = line
                lines.setdefault(path, line)
                todo.append((value_node, path))
    return lines, problems


def within_limits(value: Any) -> bool:
    """Does a plain value (parsed JSON from Pulumi config) stay within MAX_NODES and MAX_DEPTH?"""
    count, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            return False
        if isinstance(item, dict):
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            todo += [(v, depth + 1) for v in item]
    return True


def load_yaml_text(text: str, filename: str, label: Label = _default_label, keep_going: bool = False) -> YamlDoc:
    """Parse `text`; raise SpecError naming `filename` on syntax errors, duplicate keys, values JSON
    cannot hold, or a document over the limits. `label(path)` names the (group, key) of a key path.
    `keep_going`: duplicate keys and values JSON cannot hold do not stop the reader; they are in the
    document's `problems` (the caller reports them with the file's other problems, in one run)."""
    if len(text) > MAX_BYTES:
        raise SpecError([Problem(filename, None, None, None,
                                 f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a fleet file")])
    loader = _Loader(text)
    try:
        _prescan(text, filename)
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(None)
        lines, problems = _walk(node, filename, label)  # before construction flattens merge keys
        if problems and not keep_going:
            raise SpecError(problems)
        data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise SpecError([Problem(filename, mark.line + 1 if mark else None, None, None,
                                 f"YAML error: {exc.problem}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        raise SpecError(
            [Problem(filename, line, None, None, f"YAML syntax error{col}: {exc.problem or exc.context}")]
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise SpecError([Problem(filename, line, None, None,
                                 f"YAML error: {exc.reason} (character U+{char:04X})")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(filename, None, None, None, f"YAML error: {exc}")]) from None
    except RecursionError:  # the pure-Python parser (no libyaml) on deep input
        raise SpecError([Problem(filename, None, None, None,
                                 f"nested more than {MAX_DEPTH} levels deep: refused")]) from None
    finally:
        loader.dispose()
    return YamlDoc(data, lines, problems)


def load_yaml_file(path: str | Path, label: Label = _default_label, keep_going: bool = False) -> YamlDoc:
    """Read and parse a YAML file; a missing, unreadable, oversized or non-UTF-8 file is a SpecError too."""
    path = Path(path)
    try:
        raw = read_bytes(path, MAX_BYTES)
    except OSError as exc:
        raise SpecError([Problem(str(path), None, None, None, f"cannot read file: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError([Problem(str(path), None, None, None,
                                 f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a fleet file")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise SpecError([Problem(str(path), line, None, None,
                                 f"not UTF-8 text (byte {raw[exc.start]:#04x} at column {column})")]) from None
    return load_yaml_text(text, str(path), label, keep_going)
