"""The interpreter the program's Commands run: the project's own virtualenv, by a relative path.

pulumi-command runs `create` with `/bin/sh -c` in the provider's process, whose environment is the
Pulumi CLI's, not the language host's virtualenv: a bare `python` is whatever the
runner's PATH has (the deploy workflow never activates `.venv`), and `import boto3` fails there.
So the command names the interpreter itself: `<virtualenv>/bin/python`, with `<virtualenv>` read
from Pulumi.yaml's `runtime.options.virtualenv` (the one the language host uses for the program).

No absolute path of the checkout appears in the command, and the Commands set neither `dir` nor
`environment` (an absolute path differs per checkout and re-runs the Command): with `dir`
unset, the provider runs the command in its own working
directory, which the engine sets to the project directory (pulumi `execPlugin`: `cmd.Dir = pwd`,
the project root; pulumi-command `run`: `cmd.Dir = os.Getwd()` when `dir` is unset). `python -m`
puts that directory first on sys.path, so `image_builds` and `fleet` import from this checkout.
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath
from typing import Iterable

from fleet.spec.errors import SpecError
from fleet.spec.readonce import derived
from fleet.spec.yamlfile import load_yaml_file


class ProjectPythonError(ValueError):
    """Pulumi.yaml does not name a relative virtualenv for the program."""


def virtualenv_of(project_dir: Path) -> str:
    """Pulumi.yaml's `runtime.options.virtualenv`, checked to be a relative path inside the project."""
    path = Path(project_dir) / "Pulumi.yaml"
    try:  # fleet's bounded reader (size, depth, one line per problem), once per run
        data = derived(("Pulumi.yaml", path.resolve()), lambda: load_yaml_file(path).data)
    except SpecError as exc:
        raise ProjectPythonError(str(exc.problems[0])) from None
    runtime = data.get("runtime") if isinstance(data, dict) else None
    venv = runtime.get("options", {}).get("virtualenv") if isinstance(runtime, dict) else None
    if not isinstance(venv, str) or not venv:
        raise ProjectPythonError(f"{path}: runtime.options.virtualenv must name the project's virtualenv "
                                 "(e.g. .venv): the image and rollout Commands run its python")
    rel = PurePosixPath(venv)
    if rel.is_absolute() or ".." in rel.parts:
        raise ProjectPythonError(f"{path}: runtime.options.virtualenv {venv!r} must be a path inside the project "
                                 "(an absolute path would differ per checkout)")
    return rel.as_posix()


def python_module_command(project_dir: Path, module: str, args: Iterable[str]) -> str:
    """`<venv>/bin/python -m MODULE ARGS...`, every part shell-quoted, for a Command's `create`."""
    python = f"{virtualenv_of(project_dir)}/bin/python"
    return " ".join(shlex.quote(str(a)) for a in (python, "-m", module, *args))
