"""The repository stands alone: no text in it (README, docs, messages, docstrings, comments, tests) points
at a document that is not in it (the design notes and issue tracker the project was built from), every
"seed NNN" it names is described in docs/sources.md, and every repository path the README, the docs and
bench/RESULTS.md name exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# built from parts, so this file does not match itself
OUTSIDE = [
    re.compile("PIT" + "FALLS"),
    re.compile(r"\b[Ii]ssues? " + r"#?\d+"),
    re.compile(r"\.\./" + "shared"),
    re.compile("ARCHI" + r"TECTURE\.md"),
    re.compile(r"\b\d{3}_[0-9a-f]{16}" + r"\.txt"),  # a source document's file name
]
SEED = re.compile(r"\b[Ss]eeds? (\d{3})(?: and (\d{3}))?")
PATH = re.compile(r"(?<![\w/.-])((?:tests|components|fleet|image_builds|lambdas|bench|docs|examples|schema|policy|boot)"
                  r"/[\w./-]*\w\.(?:py|md|yaml|yml|json|sh|csv|txt))\b")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    files = []
    for name in names:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".gz", ".raw", ".lock"} or name.startswith(".venv"):
            continue
        try:
            files.append((path, path.read_text()))
        except UnicodeDecodeError:
            continue
    return files


FILES = _tracked_text_files()


def test_nothing_points_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for path, text in FILES for rx in OUTSIDE for m in rx.finditer(text)]
    assert not found, "\n".join(found)


def test_every_seed_named_is_described_in_the_repository():
    sources = (ROOT / "docs" / "sources.md").read_text()
    described = set(re.findall(r"^\| seed (\d{3}) \|", sources, re.M))
    named = {n for _, text in FILES for m in SEED.finditer(text) for n in m.groups() if n}
    assert named and named <= described, sorted(named - described)


@pytest.mark.parametrize("doc", ["README.md", "bench/RESULTS.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))])
def test_every_path_a_document_names_exists(doc):
    text = (ROOT / doc).read_text()
    missing = sorted({m.group(1) for m in PATH.finditer(text)
                      if not (ROOT / m.group(1)).exists() and "*" not in m.group(1)})
    assert not missing, missing
