"""`python -m fleet`: run the CLI, then leave without interpreter teardown.

Everything the CLI owes its caller is its output and its exit status: once both streams are flushed,
tearing down every imported module (pulumi, pulumi_aws, botocore: ~0.5 s of CPU after a plan) and
running a final garbage collection would buy nothing, so the process ends with os._exit. Logging
handlers are flushed first (files a command logs to). `fleet.cli.main` stays an ordinary function
for callers in-process (tests).
"""

import gc
import os
import sys

# No cyclic GC from the first import on: a plan's heap only grows until the process ends (os._exit
# below), so every collection re-walks the imported SDK and the run's objects for nothing (GC during
# the imports alone cost a 60-group plan 1.1 s of CPU). fleet.cli.main turns it back on for every
# command but `plan`.
gc.disable()

from fleet.cli import main  # noqa: E402
from fleet.spec.readonce import one_read_per_file  # noqa: E402


def _exit(status: int) -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`fleet plan | head`): nothing more to say
        pass
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(status)


if __name__ == "__main__":
    try:
        with one_read_per_file():  # one run of the CLI: each project file read once
            code = main()
    except SystemExit as exc:  # argparse (--help, usage errors) and sys.exit() in a command
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    _exit(code if isinstance(code, int) else 0)
