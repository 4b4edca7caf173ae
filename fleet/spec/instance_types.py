"""The EC2 instance types AWS knows, read from botocore's EC2 service model (data only, no API call).

The list is the model's `InstanceType` enum. It is read straight from botocore's data file (the
newest API version, as botocore's Loader picks it) without importing botocore: importing its loader
pulls in urllib3 and friends and parsing the whole 3 MB model costs ~0.15 s of CPU, on every
`fleet validate` and `fleet plan`, for one list. botocore's Loader is the fallback when the data
file is not where a botocore wheel puts it.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import re
from pathlib import Path

_ENUM = re.compile(rb'\n\s*"InstanceType"\s*:\s*\{\s*"type"\s*:\s*"string"\s*,\s*"enum"\s*:\s*')


@functools.lru_cache(maxsize=1)
def known_instance_types() -> frozenset[str]:
    found = _from_data_file()
    if found is not None:
        return found
    from botocore.loaders import Loader

    model = Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


def _from_data_file() -> frozenset[str] | None:
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.origin:
        return None
    ec2 = Path(spec.origin).parent / "data" / "ec2"
    versions = sorted(p for p in ec2.iterdir() if p.is_dir()) if ec2.is_dir() else []
    for name in ("service-2.json.gz", "service-2.json"):
        path = versions[-1] / name if versions else None
        if path is None or not path.is_file():
            continue
        raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        match = _ENUM.search(raw)
        if match is None:
            return None
        values, _ = json.JSONDecoder().raw_decode(raw[match.end():].decode("utf-8"))
        return frozenset(values) if isinstance(values, list) and values else None
    return None


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def size_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[1]


_FAMILY_RE = re.compile(r"([a-z]+?)(\d+)([a-z-]*)")


def architecture_of(instance_type: str) -> str:
    """The CPU architecture an instance type runs, from AWS's instance naming convention (botocore's
    EC2 model lists the types but not their architectures; DescribeInstanceTypes would need an account):
    a `g` among the attribute letters after the generation is Graviton (m6g, c7gn, t4g, is4gen: arm64),
    as are a1 and the Grace families (p6e-gb200); mac1 runs x86_64 macOS images and the other mac
    families arm64 macOS images only; everything else is x86_64."""
    family = family_of(instance_type)
    if family.startswith("mac"):
        return "x86_64_mac" if family == "mac1" else "arm64_mac"
    if family == "a1" or "-gb" in family:
        return "arm64"
    m = _FAMILY_RE.fullmatch(family)
    return "arm64" if m and "g" in m.group(3).split("-")[0] else "x86_64"
