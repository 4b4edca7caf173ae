"""Which project, nodes file and stack a command works on: the one the user stands in.

The project is `--project DIR`, else the nearest directory at or above the current one that holds a
`Pulumi.yaml`, else the current directory itself. Everything else is read from the project: its
stack files (`Pulumi.<stack>.yaml`), and the nodes file when `--nodes` is not given (the stack's
`fleet:nodesFile`, else the default Pulumi.yaml declares for it, else `nodes.yaml`). A `--nodes`
file elsewhere is only the nodes file: stack files are never read from its directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.stack import stack_file
from fleet.spec.yamlfile import load_yaml_file

DEFAULT_NODES = "nodes.yaml"
# The stack `validate`, `show`, `deploy` and `plan` work on when none is named (pick_stack).
DEFAULT_STACK = "staging"


def display(path: Path) -> str:
    """`path` relative to the current directory when it is below it, else absolute (how problems name files)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def find_project_dir(start: str | Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: the current one) holding a Pulumi.yaml, else `start`."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    return here


def project_stacks(project_dir: Path) -> list[str]:
    """The stacks that have a `Pulumi.<stack>.yaml` in the project."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in Path(project_dir).glob("Pulumi.*.yaml"))


def missing_stack(project_dir: Path, stack: str) -> Problem:
    """The one line for a stack without a stack file (with "did you mean" over the project's stacks)."""
    stacks = project_stacks(project_dir)
    known = f"; stacks here: {', '.join(stacks)}" if stacks else ""
    return Problem(display(stack_file(project_dir, stack)), None, None, None,
                   f"no stack file for stack '{stack}'{did_you_mean(stack, stacks)}{known}")


def _configured_nodes_file(project_dir: Path, stack: str | None) -> tuple[str, Path, tuple[str, ...]] | None:
    """(value, file, key path) of the stack file's `fleet:nodesFile`, else of the `nodesFile` default
    Pulumi.yaml declares; None when neither sets one."""
    candidates = []
    if stack is not None and stack_file(project_dir, stack).is_file():
        candidates.append((stack_file(project_dir, stack), ("config", "fleet:nodesFile")))
    if (project_dir / "Pulumi.yaml").is_file():
        candidates.append((project_dir / "Pulumi.yaml", ("config", "nodesFile", "default")))
    for path, keys in candidates:
        try:
            value = load_yaml_file(path).data
        except SpecError:
            continue  # the stack file's own problems are reported when it is loaded
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if isinstance(value, str) and value.strip():
            return value, path, keys
    return None


def pick_stack(project_dir: Path, named: str | None) -> tuple[str, bool]:
    """(stack, whether it runs on the stack defaults): the one rule of `validate`, `show`, `deploy` and
    `plan`. The stack is `--stack`, else DEFAULT_STACK. The default stack without its Pulumi.<stack>.yaml
    runs on the defaults, as a new Pulumi stack does, whether it was named or not; any other stack needs
    its file (one line with "did you mean" over the project's stacks). So a folder holding only a
    nodes.yaml is the default stack on its defaults in every command."""
    stack = named if named is not None else DEFAULT_STACK
    if stack_file(project_dir, stack).is_file():
        return stack, False
    if stack != DEFAULT_STACK:
        raise SpecError([missing_stack(project_dir, stack)])
    return stack, True


@dataclass(frozen=True)
class Project:
    """What a command works on: the project directory, the nodes file and the stack (None: no stack)."""

    dir: Path
    nodes: Path
    stack: str | None
    nodes_set_in: tuple[Path, tuple[str, ...]] | None = None  # (file, key path) that named the nodes file
    stack_defaults: bool = False  # the stack has no Pulumi.<stack>.yaml: its config is the defaults

    def check_nodes_file(self) -> None:
        """A nodes file named by the stack (or Pulumi.yaml) that is missing is that file's key's problem."""
        if self.nodes_set_in is None or self.nodes.is_file():
            return
        path, keys = self.nodes_set_in
        try:
            line = load_yaml_file(path).line_of(keys)
        except SpecError:
            line = None
        key = "fleet:nodesFile" if keys[1] == "fleet:nodesFile" else "nodesFile"
        raise SpecError([Problem(display(path), line, None, key, f"{display(self.nodes)} does not exist")])

    @property
    def stack_path(self) -> Path | None:
        return stack_file(self.dir, self.stack) if self.stack is not None else None

    def describe(self) -> str:
        """The context line every command prints first on stderr."""
        stack = ("(none: nodes file only)" if self.stack is None
                 else f"{self.stack} (no Pulumi.{self.stack}.yaml: stack defaults)" if self.stack_defaults
                 else f"{self.stack} (Pulumi.{self.stack}.yaml)")
        return f"fleet: project {self.dir}, nodes {display(self.nodes)}, stack {stack}"


def resolve_project(project: str | Path | None = None, nodes: str | Path | None = None,
                    stack: str | None = None, cwd: str | Path | None = None, default_stack: bool = False) -> Project:
    """The project of `cwd` (or `project`), its nodes file (or `nodes`, relative to `cwd`) and `stack`;
    `default_stack`: the stack is chosen by pick_stack (never None)."""
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    project_dir = (here / project).resolve() if project is not None else find_project_dir(here)
    defaults = False
    if default_stack:
        stack, defaults = pick_stack(project_dir, stack)
    if nodes is not None:
        return Project(dir=project_dir, nodes=(here / nodes).resolve(), stack=stack, stack_defaults=defaults)
    configured = _configured_nodes_file(project_dir, stack)
    if configured is None:
        return Project(dir=project_dir, nodes=(project_dir / DEFAULT_NODES).resolve(), stack=stack,
                       stack_defaults=defaults)
    value, path, keys = configured
    return Project(dir=project_dir, nodes=(project_dir / value).resolve(), stack=stack, nodes_set_in=(path, keys),
                   stack_defaults=defaults)
