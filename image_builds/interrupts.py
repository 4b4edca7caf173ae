"""SIGINT and SIGTERM during a build: unwind, clean up, say so in one line, exit 128 + signal.

`raising_on_signals()` makes both signals raise `Interrupted` in the main thread, so every `finally`
and `except BaseException` on the way up runs: the uploader deletes its incomplete snapshot,
registration deregisters a half-made AMI, Packer gets SIGTERM (and deletes its build instance), and
temporary directories (a converted raw copy) are removed. Each step that cleaned something up
adds a note (`note`); the build prints them in its one line. Python's default SIGINT handling would
print a traceback and SIGTERM's would kill the process without any cleanup.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A build was interrupted by `signum`; `notes` says what was cleaned up on the way out."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.notes: list[str] = []

    @property
    def exit_status(self) -> int:
        """128 + signal number, as a shell reports a process killed by it (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum

    def line(self) -> str:
        """'interrupted by SIGTERM; snapshot snap-1 deleted; ...'."""
        return "; ".join([str(self), *self.notes])


def note(exc: BaseException, text: str) -> None:
    """Record a clean-up step on an `Interrupted` on its way up (no-op for any other exception)."""
    if isinstance(exc, Interrupted):
        exc.notes.append(text)


@contextlib.contextmanager
def raising_on_signals() -> Iterator[None]:
    """Within the block (main thread only), SIGINT/SIGTERM raise `Interrupted` once; a second signal
    during the clean-up is ignored, so the clean-up finishes. Previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum, _frame):
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    try:
        for s in SIGNALS:
            signal.signal(s, handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
