"""The Pulumi SDK versions the offline engine is tested with.

fleet/plan/engine.py drives the Python SDK's mock monitor and settings (`pulumi.runtime.mocks`,
`settings.SETTINGS`, `stack.run_pulumi_func`, ...): internals that change between minor releases.
requirements.txt pins the tested minor (and requirements.lock the exact release); an environment
with another SDK gets one clear line from `check_sdk()` instead of a traceback from deep inside
the engine. Read from the installed distribution's metadata, without importing pulumi.
"""

from __future__ import annotations

from importlib import metadata

TESTED_MINORS = ("3.272",)  # keep equal to requirements.txt's `pulumi~=` pin


class UnsupportedSdk(RuntimeError):
    """The installed Pulumi SDK is not one the offline engine is tested with."""


def installed_version() -> str | None:
    try:
        return metadata.version("pulumi")
    except metadata.PackageNotFoundError:
        return None


def check_sdk(version: str | None = None) -> str:
    """The installed SDK version if it is a tested minor; else UnsupportedSdk with one line."""
    version = installed_version() if version is None else version
    if version is None:
        raise UnsupportedSdk("the Pulumi SDK (pulumi) is not installed: run `make` (installs requirements.lock)")
    minor = ".".join(version.split(".")[:2])
    if minor not in TESTED_MINORS:
        raise UnsupportedSdk(f"Pulumi SDK {version} is not supported (tested: {', '.join(TESTED_MINORS)}.x); "
                             "install the locked versions: `make` (pip install --require-hashes -r requirements.lock)")
    return version
