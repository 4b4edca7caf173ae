"""Progress on stderr only (stdout is reserved for the result JSON, pitfall 11): a redrawn bar when
stderr is a TTY, otherwise a plain line every `interval` seconds and one at the end."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def format_bytes(n: float) -> str:
    """Human-readable binary size: '512.0 KiB', '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """'4.2s', '3m05s', '1h02m'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta(done: int, total: int, elapsed: float) -> float:
    """Seconds left at the average rate so far (done > 0)."""
    return elapsed * (total - done) / done


class Progress:
    """Thread-safe counter of blocks done and bytes sent, rendered at most every `interval` s."""

    def __init__(self, label: str, total_blocks: int, *, stream: TextIO | None = None,
                 tty: bool | None = None, interval: float | None = None, width: int = 30):
        self.label = label
        self.total = total_blocks
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.width = width
        self.done = 0
        self.sent = 0
        self.sent_bytes = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start

    def add(self, blocks: int = 1, sent_bytes: int = 0) -> None:
        """Count finished blocks (sent, or skipped when `sent_bytes` is 0) and the bytes sent."""
        with self._lock:
            self.done += blocks
            if sent_bytes:
                self.sent += blocks
            self.sent_bytes += sent_bytes
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
            self._render(now, final=False)

    def finish(self, status: str = "done") -> None:
        """Render the final state (with `status`) and end the line."""
        with self._lock:
            self._render(time.monotonic(), final=True, status=status)

    def line(self, now: float, status: str = "") -> str:
        """The text of one progress report: blocks done (sent or skipped) of the total, blocks and
        bytes sent, rate, elapsed time and, until the end, the ETA at the average rate so far."""
        elapsed = max(now - self._start, 1e-9)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = format_bytes(self.sent_bytes / elapsed)
        text = (f"{self.label}: {self.done}/{self.total} blocks ({pct:.0f}%), {self.sent} sent "
                f"({format_bytes(self.sent_bytes)}), {rate}/s, {format_duration(elapsed)}")
        if not status and self.done < self.total:
            text += f", ETA {format_duration(eta(self.done, self.total, elapsed))}" if self.done else ", ETA ?"
        if self.tty:
            filled = int(self.width * pct / 100)
            text = f"[{'#' * filled}{'.' * (self.width - filled)}] " + text
        return text + (f" {status}" if status else "")

    def _render(self, now: float, *, final: bool, status: str = "") -> None:
        text = self.line(now, status if final else "")
        try:
            if self.tty:
                self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr must not fail the upload
            pass
