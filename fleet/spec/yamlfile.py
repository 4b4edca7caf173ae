"""Strict YAML loading: syntax errors with line and column, duplicate keys rejected,
and the line of every mapping key kept so problems can point at it.

PyYAML silently keeps the last of two equal keys; a fleet file where that happens is
almost always a paste mistake, so it is an error here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.spec.errors import Problem, SpecError

Path_ = tuple[str, ...]


@dataclass
class YamlDoc:
    """A loaded document and where each key was: lines[("grp", "autoscale", "node_min")] = 12."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest key of `path` that exists in the file."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


# libyaml's parser when PyYAML has it (10x faster on big fleets), same marks and errors.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _walk(node: yaml.Node, prefix: Path_, lines: dict[Path_, int], dups: list) -> None:
    """Record each key's line and every key that repeats within its mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            path = (*prefix, key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.value in seen and key_node.value != "<<":
                dups.append((path, line, seen[key_node.value]))
            seen[key_node.value] = line
            lines.setdefault(path, line)
            _walk(value_node, path, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _walk(item, prefix, lines, dups)


def load_yaml_text(text: str, filename: str) -> YamlDoc:
    """Parse `text`; raise SpecError naming `filename` on syntax errors or duplicate keys."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        raise SpecError(
            [Problem(filename, line, None, None, f"YAML syntax error{col}: {exc.problem or exc.context}")]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(filename, None, None, None, f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    dups: list = []
    if node is not None:
        _walk(node, (), lines, dups)
    if dups:
        raise SpecError(
            Problem(filename, line, path[0], ".".join(path[1:]) or None,
                    f"duplicate {'key' if len(path) > 1 else 'entry'} (first defined on line {first}; "
                    "YAML would silently keep the last)")
            for path, line, first in dups
        )
    return YamlDoc(data, lines)


def load_yaml_file(path: str | Path) -> YamlDoc:
    """Read and parse a YAML file; a missing or unreadable file is a SpecError too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([Problem(str(path), None, None, None, f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise SpecError([Problem(str(path), None, None, None, "not UTF-8 text")]) from None
    return load_yaml_text(text, str(path))
