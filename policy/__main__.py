"""Policy pack entry point: `pulumi preview --policy-pack policy` (or `pulumi up --policy-pack policy`).

The Pulumi CLI runs this directory (`python -m pulumi.policy ... policy/`, i.e. runpy on this file
with `policy/` first on sys.path); the module-level PolicyPack(...) call starts the analyzer's gRPC
server and serves until the engine stops it, so nothing else imports this file. The logic is in
`validators.py`, tested directly (tests/test_policy_pack.py).

The project root (this directory's parent) goes on sys.path so `fleet.plan.guardrails` (pure Python)
imports without installing the project.
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402
from validators import policies  # noqa: E402

PolicyPack(
    name="fleet-guardrails",
    description="fleet's guardrails (fleet/plan/guardrails.py), the same checks `fleet plan` reports as violations.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
