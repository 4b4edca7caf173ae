"""Every AWS call a deploy path makes in a test must be one `fleet iam deployer` allows.

An autouse fixture (imported by conftest.py) hooks botocore's `before-call` event on every client made
during a test and records the calls whose nearest frame in this repository is a deploy path: what the
program's Commands run (image_builds/, the rollout and the health gate) and what the deploy workflow
runs (`fleet lock --check`). Calls made by the tests themselves (setting up moto) and by the reconciler
Lambda (its own role) are not the deploy role's. At teardown the test fails, naming the IAM action, the
caller and the table to extend (fleet/render/deployer_policy.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import botocore.client
import pytest

from fleet.render.deployer_policy import allows, iam_action, policy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_PATHS = ("image_builds/", "fleet/ops/rollout.py", "fleet/ops/gate.py", "fleet/ops/lock.py",
                "fleet/ops/bluegreen.py", "lambdas/bluegreen/slots.py")  # slots.py: the blue/green rollout's too


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []  # (IAM action, "file:line" of the deploy path)

    def __call__(self, model=None, **_):
        frame, root = sys._getframe(1), str(ROOT) + "/"
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(root) and "/.venv/" not in name and "/site-packages/" not in name:
                rel = name[len(root):]
                if rel.startswith(DEPLOY_PATHS) and model is not None:
                    self.calls.append((iam_action(model.service_model.service_name, model.name),
                                       f"{rel}:{frame.f_lineno}"))
                return
            frame = frame.f_back

    def uncovered(self, document: dict | None = None) -> list[tuple[str, str]]:
        document = document or policy()
        return sorted({c for c in self.calls if not allows(document, c[0])})


@pytest.fixture(autouse=True)
def deploy_calls_are_allowed(monkeypatch):
    recorder = Recorder()
    original = botocore.client.ClientCreator.create_client

    def create_client(self, *args, **kwargs):
        made = original(self, *args, **kwargs)
        made.meta.events.register("before-call", recorder)
        return made

    monkeypatch.setattr(botocore.client.ClientCreator, "create_client", create_client)
    yield recorder
    missing = recorder.uncovered()
    if missing:
        pytest.fail("; ".join(f"{action} (called from {where})" for action, where in missing)
                    + ": `fleet iam deployer` does not allow it; add it to CALLS in fleet/render/deployer_policy.py",
                    pytrace=False)
