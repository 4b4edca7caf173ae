"""Content hash of everything that changes a group's image.

Covered: the builder and its image-changing settings, the source AMI, the Chef run list and
attributes (not the role's name: two groups with the same content share one image), every
file the build reads (for packer: only the run list's cookbook closure, the roles it names and
the data bags its recipes read, fleet/spec/cookbooks.py, plus the boot program the bake converges
with and the group's chef package; the image file for raw), and the build
code's own source. A packer group that converges at boot (`boot.converge`) leaves its cookbook
files out: the boot bundle carries them, so a cookbook edit rolls out without a rebake (seed 000).
Not covered, because they do not change the image:
`image.keep`, the instance type used to build, tags, the stack (staging and prod share AMIs).

`hash_groups` reads each distinct set of files once for the whole fleet.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Iterable, Mapping

from fleet.spec.cookbooks import closure
from fleet.spec.model import Group, SourceAmiFilter, to_plain

CODE_ROOT = Path(__file__).resolve().parent.parent  # the code that runs (this checkout), not the project
# The code whose behaviour shapes an image: a change here must rebuild. It is read from the code that
# runs; everything else from the project, which may be a folder of the user's own.
BUILD_CODE = ("image_builds", "fleet/render")


def _file_digest(path: Path, h) -> None:
    """Symbolic links are left out, as the bundle and the bake leave them out: a link may point anywhere
    on the machine, and nothing outside the project may reach an image."""
    if path.is_symlink():
        h.update(b"<link>")
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                            and "__pycache__" not in p.parts):
            h.update(str(child.relative_to(path)).encode() + b"\0")
            _file_digest(child, h)
    elif path.is_file():
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(b"<missing>")


def tree_digest(entries: Iterable[tuple[str, Path]]) -> str:
    """sha256 over (name, files under path) pairs; names are relative to the project or the code, so no
    checkout path is in it."""
    h = hashlib.sha256()
    for name, p in entries:
        h.update(name.encode() + b"\0")
        _file_digest(p, h)
    return h.hexdigest()


def _named(path: Path, root: Path) -> tuple[str, Path]:
    return (str(path.relative_to(root)) if path.is_relative_to(root) else str(path)), path


def image_document(group: Group, project_dir: Path, digest=tree_digest) -> dict:
    """The canonical description of the image that `image_hash` digests."""
    img = group.image
    source = group.source_ami
    doc: dict = {
        "builder": img.builder,
        # a filter counts with its locked image: `fleet lock --update` rebakes on purpose, and only then
        "source_ami": {"name": source.name, "owners": list(source.owners),
                       "locked": source.locked.ami_id if source.locked else None}
        if isinstance(source, SourceAmiFilter) else source,
        "architecture": img.architecture,
    }
    project_dir = Path(project_dir)
    read: list[tuple[str, Path]] = []
    if img.builder == "packer":
        doc["packer"] = {"communicator": img.communicator, "ssh_username": img.ssh_username}
        doc["chef"] = {
            "run_list": [*group.run_list, *group.post_run_list],
            "default_attributes": to_plain(group.default_attributes),
        }
        if not group.converges:
            chef = closure(project_dir, doc["chef"]["run_list"]).require_clean()
            doc["chef"]["missing"] = list(chef.missing)
            read += [_named(path, project_dir) for _, path in chef.paths(project_dir)]
        # the bake converges with the boot program (fleet/render/packer.py) and installs the chef package
        read.append(("boot/fleet_boot.py", CODE_ROOT / "boot" / "fleet_boot.py"))
        if group.boot.chef_package:
            read.append(_named(project_dir / group.boot.chef_package, project_dir))
    elif img.builder == "raw":
        doc["raw"] = {"path": img.path, "command": img.command, "boot_mode": img.boot_mode}
        if img.skip_zero_blocks_unsafe_if_encrypted:  # only when set: existing hashes stay the same
            doc["raw"]["skip_zero_blocks_unsafe_if_encrypted"] = True
        if img.path:
            read.append(_named(project_dir / img.path, project_dir))
    if img.builder != "ami":
        read += [(p, CODE_ROOT / p) for p in BUILD_CODE]
    doc["files"] = digest(tuple(read)) if read else None
    return doc


def image_hash(group: Group, project_dir: Path, digest=tree_digest) -> str:
    """sha256 hex of the group's image document."""
    doc = image_document(group, project_dir, digest)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def hash_groups(groups: Mapping[str, Group], project_dir: Path) -> dict[str, str]:
    """Hash per group; each distinct set of files is read once however many groups share it."""
    digest = functools.lru_cache(maxsize=None)(tree_digest)
    return {name: image_hash(group, project_dir, digest) for name, group in groups.items()}
