"""The cookbook bundle a group converges from at boot: a deterministic `.tar.gz`.

Contents: `cookbooks/<cb>/...` for the run list's cookbook closure (fleet/spec/cookbooks.py), the
repository's `roles/*.json` the run list names, `data_bags/<bag>/...` its recipes read, and the
group's own role as `roles/role-<group>.json` (fleet/render/role.py). Same inputs, same bytes: entries
sorted by path, regular files only, mtime 0, owner root, mode 0644 (0755 when executable), gzip
without a name or timestamp. So the bundle is content-addressed: `bundles/<sha256>.tar.gz` in the
stack's artifacts bucket, and the hash in user data changes exactly when a file in it does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fleet.render.role import render_role, role_name
from fleet.spec.cookbooks import ROLES, Closure, closure
from fleet.spec.model import Group

PREFIX = "bundles/"


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    closure: Closure

    @property
    def key(self) -> str:
        """The object key in the artifacts bucket."""
        return f"{PREFIX}{self.sha256}.tar.gz"


def run_list(group: Group) -> list[str]:
    return [*group.run_list, *group.post_run_list]


def bundle_files(group: Group, project_dir: Path) -> tuple[list[tuple[str, bytes, bool]], Closure]:
    """[(path in the bundle, bytes, executable)] sorted by path, and the closure they came from."""
    found = closure(project_dir, run_list(group)).require_clean()
    files: dict[str, tuple[bytes, bool]] = {}
    for rel, path in found.paths(project_dir):
        members = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in members:
            if "__pycache__" in p.parts or p.is_symlink():
                continue
            name = rel if p == path else f"{rel}/{p.relative_to(path).as_posix()}"
            files[name] = (p.read_bytes(), bool(p.stat().st_mode & 0o111))
    role = json.dumps(render_role(group), indent=2, sort_keys=True).encode() + b"\n"
    files[f"{ROLES}/{role_name(group)}.json"] = (role, False)
    return [(name, data, x) for name, (data, x) in sorted(files.items())], found


def pack(files: list[tuple[str, bytes, bool]]) -> bytes:
    """A reproducible tar.gz of `files` (already sorted)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, executable in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o755 if executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_bundle(group: Group, project_dir: Path) -> Bundle:
    files, found = bundle_files(group, Path(project_dir))
    data = pack(files)
    return Bundle(data, hashlib.sha256(data).hexdigest(), found)
