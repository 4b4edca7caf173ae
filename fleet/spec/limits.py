"""Limits that both `fleet validate` (fleet.spec) and the plan's guardrails (fleet.plan.guardrails,
also the policy pack) enforce: one definition, so what validate accepts the plan accepts too."""

from __future__ import annotations

PROD_STACKS = frozenset({"prod"})  # stacks whose listeners must be HTTPS
DEREGISTRATION_DELAY = (5, 120)  # seconds; AWS default 300 slows every deploy, 0 caused outages
MAX_HEALTH_CHECK_INTERVAL = 10  # seconds; AWS default 30
MIN_SPOT_TYPES = 3  # spot diversified over 3+ types: one type's shortage leaves the others
