"""Pulumi.yaml is a project file like the others: read with the same bounds (size, nesting), one line
naming it when it is refused, never a traceback or an unbounded read."""

from __future__ import annotations

import pytest

from components.project_python import ProjectPythonError, virtualenv_of

HEAD = "name: fleet\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n"


def test_a_normal_file_names_its_virtualenv(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(HEAD)
    assert virtualenv_of(tmp_path) == ".venv"


def test_an_oversized_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(HEAD + "description: " + "x" * (3 << 20) + "\n")
    with pytest.raises(ProjectPythonError) as err:
        virtualenv_of(tmp_path)
    assert "Pulumi.yaml" in str(err.value) and "larger than" in str(err.value) and "\n" not in str(err.value)


def test_deep_nesting_is_refused_in_one_line(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(HEAD + "extra: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ProjectPythonError) as err:
        virtualenv_of(tmp_path)
    assert "Pulumi.yaml" in str(err.value) and "\n" not in str(err.value)
