"""nodes.lock.json: every `source_ami` name filter resolved once, committed, bumped on purpose.

A filter like `ubuntu-noble-24.04-amd64-server-*` matches a new image whenever the owner publishes
one: read "most recent" at deploy time and an unrelated `pulumi up` replaces instances, a PR preview
cannot say which base it bakes from, and two stacks may bake from different bases (PITFALLS 40).
So `fleet lock` resolves each filter once per region into the lock file beside the nodes file
(`nodes.yaml` -> `nodes.lock.json`), and everything else reads the lock: the program, the plan
and the bake use the locked id, the image hash covers it (a bump rebakes on purpose), and an
`ami` image's launch template maps the locked root device. `fleet lock --update [GROUP]`
re-resolves: a reviewable diff, like a dependency bump.

Format (keys sorted, so diffs are minimal):
    {"images": {REGION: {"OWNERS/NAME-FILTER": {"ami_id", "name", "creation_date", "root_device_name",
                                                 "resolved_at"}}}}
OWNERS is the filter's owners joined with ','. `resolved_at` is the EC2 endpoint `fleet lock` asked: an
AMI id that a local API (a moto server) made exists in no AWS account, so a stack that targets AWS
refuses an entry resolved anywhere else (`local_entry`; validate, plan, the program, the image build
and `fleet lock --check` all say so). An entry without it (an older lock) counts as not from AWS.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleet.spec.endpoints import describe, is_aws_endpoint
from fleet.spec.errors import Problem, SpecError
from fleet.spec.model import LockedImage, SourceAmiFilter
from fleet.spec.readonce import read_text

COMMENT = ("Base images resolved by `fleet lock` from the source_ami filters of nodes.yaml (per region). "
           "Commit it; `fleet lock --update [GROUP]` bumps on purpose. See README, 'Base images are locked'.")
FIELDS = ("ami_id", "name", "creation_date", "root_device_name")
OPTIONAL = ("resolved_at",)


def lock_path(nodes_path: str | Path) -> Path:
    """The lock file beside a nodes file: nodes.yaml -> nodes.lock.json, edge.yaml -> edge.lock.json."""
    nodes_path = Path(nodes_path)
    return nodes_path.with_name(f"{nodes_path.stem}.lock.json")


def filter_key(source: SourceAmiFilter) -> str:
    return f"{','.join(source.owners)}/{source.name}"


@dataclass
class Lock:
    path: Path
    images: dict[str, dict[str, LockedImage]] = field(default_factory=dict)  # region -> key -> image

    def find(self, source: SourceAmiFilter, region: str | None) -> LockedImage | None:
        """The locked image for `source` in `region`; with no region (no stack), the first region's."""
        key = filter_key(source)
        regions = [region] if region else sorted(self.images)
        for r in regions:
            if key in self.images.get(r, {}):
                return self.images[r][key]
        return None

    def put(self, source: SourceAmiFilter, region: str, image: LockedImage) -> None:
        self.images.setdefault(region, {})[filter_key(source)] = image

    def to_json(self) -> str:
        data = {"comment": COMMENT,
                "images": {r: {k: asdict(v) for k, v in sorted(keys.items())}
                           for r, keys in sorted(self.images.items()) if keys}}
        return json.dumps(data, indent=2) + "\n"

    def write(self) -> None:
        self.path.write_text(self.to_json())


def read_lock(path: str | Path) -> Lock:
    """The lock at `path` (an empty one when the file does not exist); SpecError on a malformed file."""
    path = Path(path)
    lock = Lock(path)
    if not path.exists():
        return lock

    def bad(why: str) -> SpecError:
        return SpecError([Problem(str(path), None, None, None, f"{why}; rewrite it with `fleet lock --update`")])

    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError) as exc:
        raise bad(f"not a readable JSON lock file ({exc})") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        raise bad("no 'images' mapping")
    for region, keys in images.items():
        if not isinstance(keys, dict):
            raise bad(f"images.{region} is not a mapping")
        for key, entry in keys.items():
            if not isinstance(entry, dict) or not set(FIELDS) <= set(entry) <= {*FIELDS, *OPTIONAL} or not all(
                    isinstance(v, str) for v in entry.values()):
                raise bad(f"images.{region}.{key} needs exactly the string fields {', '.join(FIELDS)} "
                          f"(and {', '.join(OPTIONAL)})")
            lock.images.setdefault(region, {})[key] = LockedImage(**entry)
    return lock


def local_entry(image: LockedImage, stack: str) -> str | None:
    """Why a stack that targets AWS must not use `image`, or None when it was resolved at AWS."""
    if is_aws_endpoint(image.resolved_at):
        return None
    return (f"was resolved at {describe(image.resolved_at)}, not at AWS, and stack {stack} targets AWS: "
            f"{image.ami_id} may exist only there; run `fleet lock --update` with AWS credentials")
