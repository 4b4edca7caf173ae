"""`fleet status [GROUP] [--stack S] [--watch [SECONDS]] [--json]`: what runs, per group, against what the
nodes file and the stack file declare.

Exit status: 0 every group matches and is healthy; 1 anything drifted, unhealthy, undeployed or unknown
(so CI and cron jobs can use it), or AWS failed; 2 bad input (nodes file, stack file, arguments).
`--watch` reads again every SECONDS (default 5) until Ctrl-C, and then exits with the last read's status:
a live view on a terminal, one table (or one JSON line) per read otherwise (a log, a pipe).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from fleet.spec.errors import Problem, SpecError

DEFAULT_WATCH = 5.0
PIPE_WIDTH = 160
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT, for Ctrl-C before the first read answered


def add_status_command(sub, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `status` on fleet.cli's subparsers (an _EXTRA_COMMANDS hook)."""
    sp = add("status", cmd_status, "what runs per group (image, launch template version, instances, targets, "
             "refreshes, spot cover), read live from AWS and checked against nodes.yaml: exit 1 when "
             "anything is drifted or unhealthy")
    sp.add_argument("group", metavar="GROUP", nargs="?", default=None, help="only this group")
    sp.add_argument("--watch", nargs="?", type=_seconds, const=DEFAULT_WATCH, default=None, metavar="SECONDS",
                    help=f"read again every SECONDS (default {DEFAULT_WATCH:g}) until Ctrl-C")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.add_argument("--region", default=None, help="AWS region (default: the stack's)")
    sp.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local moto server")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--watch takes seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--watch takes a positive number of seconds, not {text!r}")
    return value


def declared_of(fleet, project_dir: Path) -> dict:
    """Group -> what it should run: the image hash the build tags its AMI with, or the AMI itself when
    the stack pins one (`fleet:amis`) or the group's builder is `ami`."""
    from fleet.image_hash import hash_groups
    from fleet.spec.model import SourceAmiFilter
    from fleet.status.join import Declared

    hashes = hash_groups(fleet.groups, project_dir)
    pins = dict(fleet.stack.amis) if fleet.stack else {}
    out = {}
    for name, g in fleet.groups.items():
        image_id = pins.get(name)
        if image_id is None and g.image.builder == "ami":
            src = g.source_ami
            image_id = src.locked.ami_id if isinstance(src, SourceAmiFilter) and src.locked else (
                src if isinstance(src, str) else None)
        a = g.autoscale
        out[name] = Declared(image_hash=hashes[name], image_id=image_id, autoscaled=a is not None,
                             http=g.http is not None, node_min=a.node_min if a else None,
                             node_max=a.node_max if a else None, instances=None if a else g.instances)
    return out


def cmd_status(args) -> int:
    from fleet.cli import _load, project_of

    fleet = _load(args, default_stack=True)  # the CLI's stack rule: --stack S, else staging
    if fleet.stack is None:
        raise SpecError([Problem(fleet.nodes_file, None, args.group, None, "status needs --stack")])
    if args.group is not None:
        fleet.group(args.group)  # one line with "did you mean" for a group the file does not have
    declared = declared_of(fleet, project_of(args).dir)
    region = args.region or fleet.stack.region

    from fleet.ops.status_read import StackReader
    from fleet.status.join import report

    instance_groups = [name for name, d in declared.items() if not d.autoscaled]
    reader = StackReader(fleet.stack.name, region=region, endpoint_url=args.endpoint_url)

    def read() -> dict:
        return report(fleet.stack.name, declared, reader.read(instance_groups=instance_groups), only=args.group)

    return run(read, as_json=args.json, watch=args.watch)  # AWS failures: one line, by fleet.cli.run_reporting


def run(read: Callable[[], dict], *, as_json: bool, watch: float | None, console=None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Read, print, and with `watch` again every `watch` seconds until Ctrl-C; the last read's exit status."""
    from rich.console import Console

    from fleet.status.join import exit_code
    from fleet.status.view import render

    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = PIPE_WIDTH  # a log or a pipe: whole rows, not a table squeezed to 80 columns
    with _ctrl_c() as stopped:
        try:
            rep = read()
        except KeyboardInterrupt:  # Ctrl-C before the first answer: nothing to show, no traceback
            return EXIT_INTERRUPTED
        if stopped.is_set():
            return EXIT_INTERRUPTED
        if watch is None:
            _emit(console, rep, as_json, indent=2)
            return exit_code(rep)
        live = None
        try:
            if console.is_terminal and not as_json:
                from rich.live import Live

                live = Live(render(rep), console=console, auto_refresh=False)
                live.start(refresh=True)
            else:
                _emit(console, rep, as_json)
            while not stopped.is_set():
                sleep(watch)
                if stopped.is_set():
                    break
                rep = read()
                if live is not None:
                    live.update(render(rep), refresh=True)
                else:
                    _emit(console, rep, as_json)
        except KeyboardInterrupt:
            pass
        finally:
            if live is not None:
                live.stop()
    return exit_code(rep)


@contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C as a flag as well as a KeyboardInterrupt. Python raises KeyboardInterrupt wherever the
    main thread happens to be, and where that is a finalizer or a callback (a closing connection, a
    worker pool's clean-up) it is printed as ignored and lost: the watch would go on. The flag, set
    by the handler itself, is checked around every read and wait, so one Ctrl-C always ends it."""
    stopped = threading.Event()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield stopped  # not ours to change (a caller's own handler, or Ctrl-C ignored)
        return

    def handler(signum, frame):
        stopped.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _emit(console, rep: dict, as_json: bool, indent: int | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rep, indent=indent) + "\n")
        sys.stdout.flush()
    else:
        from fleet.status.view import render

        console.print(render(rep))
