"""Every AWS call a deploy path makes in a test must be one `fleet iam deployer` allows.

An autouse fixture (imported by conftest.py) hooks botocore's `before-call` event on every client made
during a test and records the calls made with a deploy path on the stack: what the program's Commands
run (image_builds/, the rollouts, blue/green included, and the health gate) and what the deploy
workflow runs (`fleet lock --check`). Calls the tests make themselves (setting up moto) and the
Lambdas' own calls (their own roles) are not the deploy role's. At teardown the test fails, naming the
IAM action, the caller and the table to extend (fleet/render/deployer_policy.py).
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
        """Record the call when a deploy path is on the stack below the nearest frame of this repository
        (it may reach AWS through a shared helper, e.g. the blue/green slot functions under lambdas/);
        a call whose nearest frame is a test's (a fake clock's callback, a moto set-up) is the test's."""
        frame, root, nearest = sys._getframe(1), str(ROOT) + "/", None
        while frame is not None and model is not None:
            name = frame.f_code.co_filename
            if name.startswith(root) and "/.venv/" not in name:
                rel = name[len(root):]
                nearest = nearest or rel
                if nearest.startswith("tests/"):
                    return
                if rel.startswith(DEPLOY_PATHS):
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
