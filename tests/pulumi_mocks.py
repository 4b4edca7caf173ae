"""The mock engine for tests: fleet.plan.engine's (FleetMocks, RecordingMonitor, run, run_program, ...),
re-exported under the names the tests import, plus test-only helpers that build typed groups.

See fleet/plan/engine.py for what the mocks return and record. Tests use the engine with
`offline=False` (the default): a baked image's AMI is a fake `ami-0...` id, not the plan's
`(baked at deploy: <hash>)` text.
"""

from __future__ import annotations

from typing import Any

from fleet.plan.engine import (  # noqa: F401 - re-exported for the tests
    ACCOUNT,
    MOCK_AMI,
    MOCK_ROOT_DEVICE,
    PROGRAM,
    REGION,
    ROOT,
    ZONES,
    FleetMocks,
    RecordingMonitor,
    Registered,
    Run,
    _config_strings,
    _ListHandler,
    autoname,
    run,
    run_program,
    stack_config,
    use_mocks,
)

# -- helpers for component tests ---------------------------------------------------------------


def group(name: str = "web", **merged: Any):
    """A typed Group from a merged mapping (fleet.spec.model defaults fill the rest)."""
    from fleet.spec.model import build_group

    raw = {"instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0", **merged}
    return build_group(name, raw)


def http_group(name: str = "web", **merged: Any):
    raw = {"autoscale": {"node_min": 2, "node_max": 6, "timeout": 150},
           "http": {"port": 8080, "hosts": ["web.example.com"]}, **merged}
    return group(name, **raw)


def worker_group(name: str = "jobs", **merged: Any):
    return group(name, **{"autoscale": {"node_min": 1, "node_max": 4, "timeout": 120}, **merged})


def project_groups(stack: str = "prod"):
    """The merged groups of the project's own nodes.yaml for `stack` (read from its stack file)."""
    from fleet.spec.load import load_fleet

    return load_fleet(ROOT / "nodes.yaml", stack).groups
