"""Benchmark: the largest user data fleet renders, against EC2's 16 KB limit on raw user data.

The worst case nodes.yaml allows: 200 converging groups with the longest group names, 20-item run lists,
an http block, a chef package with a 100-character file name, the longest artifacts bucket name, and
20-character stack and 40-character environment names. Prints the largest and the limit (README's
"User data" figure). `tests/test_boot.py` asserts the same worst case stays under the limit.
Run `python bench/bench_user_data.py`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.render.userdata import USER_DATA_LIMIT, BootArtifacts, render_user_data  # noqa: E402
from fleet.spec.model import build_group  # noqa: E402
from fleet.spec.names import MAX_GROUP_NAME  # noqa: E402


def generated(i: int):
    """A converging group with names and lists as long as nodes.yaml allows."""
    name = f"g{i:03d}-" + "x" * (MAX_GROUP_NAME - 5)
    return build_group(name, {
        "instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0", "image": {"builder": "ami"},
        "run_list": [f"recipe[cookbook-{j}::recipe-{j}]" for j in range(20)],
        "autoscale": {"node_min": 1, "node_max": 4, "timeout": 600},
        "http": {"port": 8080, "hosts": ["a.example.com"]}})


def worst_case_sizes(groups: int = 200) -> list[int]:
    bucket = "fleet-" + "p" * 20 + "-artifacts-" + "0" * 26  # the longest bucket_prefix + suffix: 63
    sizes = []
    for i in range(groups):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        files = BootArtifacts(bucket, f"bundles/{sha}.tar.gz", sha, f"packages/{sha}/{'c' * 100}.deb", sha)
        sizes.append(len(render_user_data(generated(i), "p" * 20, "e" * 40, files).encode()))
    return sizes


if __name__ == "__main__":
    print(f"largest user data of 200 generated groups: {max(worst_case_sizes()):,} bytes "
          f"(EC2's limit: {USER_DATA_LIMIT:,})")
