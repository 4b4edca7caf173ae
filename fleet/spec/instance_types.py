"""The EC2 instance types AWS knows, read from botocore's EC2 service model (data only, no API call)."""

from __future__ import annotations

import functools

from botocore.loaders import Loader


@functools.lru_cache(maxsize=1)
def known_instance_types() -> frozenset[str]:
    model = Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def size_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[1]
