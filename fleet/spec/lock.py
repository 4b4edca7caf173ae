"""nodes.lock.json: every `source_ami` name filter resolved once, committed, bumped on purpose.

A filter like `ubuntu-noble-24.04-amd64-server-*` matches a new image whenever the owner publishes
one: read "most recent" at deploy time and an unrelated `pulumi up` replaces instances, a PR preview
cannot say which base it bakes from, and two stacks may bake from different bases.
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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleet.spec.endpoints import describe, is_aws_endpoint
from fleet.spec.errors import Problem, SpecError, quote
from fleet.spec.jsonfile import JsonError, read_json
from fleet.spec.model import LockedImage, SourceAmiFilter
from fleet.spec.stack import AMI_RE, REGION_RE

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


MAX_BYTES = 1024 * 1024  # ~300 bytes an entry: thousands of filters
MAX_DEPTH = 8  # the format nests 4 levels
_DATE = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9:.]+(?:Z|[+-][0-9:]+)?)?)?")
_DEVICE = re.compile(r"/dev/[a-z0-9]{1,32}")
_ENDPOINT = re.compile(r"(?:https?://[^\s\x00-\x1f\x7f]{1,255})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CHECKS = {
    "ami_id": (lambda v: AMI_RE.fullmatch(v) is not None, "an AMI id (ami- and 8 or 17 hex digits)"),
    "name": (lambda v: len(v) <= 128 and not _CONTROL.search(v), "an image name (at most 128 characters)"),
    "creation_date": (lambda v: _DATE.fullmatch(v) is not None, "a date like 2024-01-31T12:00:00.000Z"),
    "root_device_name": (lambda v: _DEVICE.fullmatch(v) is not None, "a device name like /dev/sda1"),
    "resolved_at": (lambda v: _ENDPOINT.fullmatch(v) is not None, "an http(s) endpoint URL"),
}


def read_lock(path: str | Path) -> Lock:
    """The lock at `path` (an empty one when the file does not exist); SpecError with every problem of
    a malformed file at once (its size and nesting are bounded, every value is checked: a lock entry
    becomes a launch template's image id)."""
    path = Path(path)
    lock = Lock(path)
    if not path.exists():
        return lock
    where = str(path)
    fix = "; rewrite it with `fleet lock --update`"
    try:
        data = read_json(path, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    except JsonError as exc:
        raise SpecError([Problem(where, None, None, None, f"not a lock file: {exc}{fix}")]) from None
    problems: list[Problem] = []

    def bad(key: str | None, why: str) -> None:
        problems.append(Problem(where, None, None, key, f"{why}{fix}"))

    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError([Problem(where, None, None, None, f"a lock file is a JSON object, not {kind}{fix}")])
    for extra in sorted(set(data) - {"comment", "images"}):
        bad(extra, "not a key of the lock file (comment, images)")
    images = data.get("images")
    if not isinstance(images, dict):
        bad("images", "must be a mapping of region to locked filters")
        images = {}
    for region, keys in images.items():
        if not REGION_RE.fullmatch(region):
            bad(f"images.{region}", "is not an AWS region")
            continue
        if not isinstance(keys, dict):
            bad(f"images.{region}", "must be a mapping of filter to image")
            continue
        for key, entry in keys.items():
            at = f"images.{region}.{key}"
            if "/" not in key or len(key) > 1024 or _CONTROL.search(key):
                bad(at, "is not a filter key (OWNERS/NAME-PATTERN)")
                continue
            if not isinstance(entry, dict):
                bad(at, f"must be a mapping of {', '.join(FIELDS)}, not {type(entry).__name__}")
                continue
            ok = True
            for name in sorted(set(FIELDS) - set(entry)):
                bad(f"{at}.{name}", "is missing")
                ok = False
            for name in sorted(set(entry) - {*FIELDS, *OPTIONAL}):
                bad(f"{at}.{name}", f"is not a field of a lock entry ({', '.join((*FIELDS, *OPTIONAL))})")
                ok = False
            for name, value in entry.items():
                check = _CHECKS.get(name)
                if check is None:
                    continue
                if not isinstance(value, str) or not check[0](value):
                    bad(f"{at}.{name}", f"{quote(value)} is not {check[1]}")
                    ok = False
            if ok:
                lock.images.setdefault(region, {})[key] = LockedImage(**entry)
    if problems:
        raise SpecError(problems)
    return lock


def local_entry(image: LockedImage, stack: str) -> str | None:
    """Why a stack that targets AWS must not use `image`, or None when it was resolved at AWS."""
    if is_aws_endpoint(image.resolved_at):
        return None
    return (f"was resolved at {describe(image.resolved_at)}, not at AWS, and stack {stack} targets AWS: "
            f"{image.ami_id} may exist only there; run `fleet lock --update` with AWS credentials, or make the "
            f"stack a sandbox of that endpoint (`fleet:awsEndpoint: URL` in Pulumi.{stack}.yaml)")
