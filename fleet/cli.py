"""`python -m fleet`: seed 001's `package namespace:action`, as subcommands.

Exit status: 0 ok, 1 the operation failed (or plan violations), 2 bad input (nodes.yaml,
stack config, arguments). Bad input prints one line per problem to stderr, no traceback.
The CLI is a composition root like __main__.py: it may dispatch to image_builds.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from fleet.spec.errors import Problem, SpecError

if TYPE_CHECKING:  # imported where used: `fleet plan diff` needs neither yaml nor jsonschema
    from fleet.spec.load import Fleet
    from fleet.spec.project import Project

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (its default already uses 2, but prints usage first)."""

    def error(self, message: str):  # noqa: D102
        self.exit(EXIT_BAD_INPUT, f"fleet: {message} (see --help)\n")


def project_of(args, stack: str | None = None, default_stack: bool = False) -> Project:
    """The project, nodes file and stack this command works on (fleet.spec.project); printed once as
    the first stderr line, so the user sees which fleet they are looking at. `default_stack`: the
    stack rule of validate, show, deploy and plan (fleet.spec.project.pick_stack)."""
    from fleet.spec.project import resolve_project

    if getattr(args, "resolved_project", None) is None:
        stack = stack if stack is not None else args.stack
        try:
            args.resolved_project = resolve_project(args.project, args.nodes, stack, default_stack=default_stack)
        except SpecError:  # a stack without its file: the context line still comes first
            print(resolve_project(args.project, args.nodes, stack).describe(), file=sys.stderr, flush=True)
            raise
        print(args.resolved_project.describe(), file=sys.stderr, flush=True)
    return args.resolved_project


def _load(args, check_files: bool = False, default_stack: bool = False) -> Fleet:
    """The fleet of the project; `check_files`: also the repository files groups need at boot (validate);
    `default_stack`: see project_of (a stack without its file loads with the stack defaults)."""
    from fleet.spec.load import load_fleet
    from fleet.spec.project import display

    project = project_of(args, default_stack=default_stack)
    project.check_nodes_file()
    return load_fleet(Path(display(project.nodes)), project.stack, project_dir=project.dir,
                      check_files=check_files, stack_values={} if project.stack_defaults else None)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def cmd_validate(args) -> int:
    fleet = _load(args, check_files=True, default_stack=True)
    where = f" for stack {fleet.stack.name}" if fleet.stack else ""
    print(f"{fleet.nodes_file}: {len(fleet.groups)} groups OK{where}: {', '.join(fleet.groups)}")
    return EXIT_OK


def cmd_show(args) -> int:
    from fleet.spec.resolve import resolved

    fleet = _load(args, default_stack=True)
    _print_json(resolved(fleet.group(args.group), fleet.stack))
    return EXIT_OK


def cmd_role(args) -> int:
    from fleet.render.role import render_role

    role = render_role(_load(args).group(args.group))
    text = json.dumps(role, indent=2) + "\n"
    if args.write:
        out = project_of(args).dir / "roles" / f"{args.group}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_packer(args) -> int:
    from fleet.image_hash import image_hash
    from fleet.render.packer import bake_files, render_packer

    fleet = _load(args, check_files=True)  # the image hash reads the run list's files: they are checked first
    group = fleet.group(args.group)
    region = fleet.stack.region if fleet.stack else (args.region or group.region or "us-east-1")
    h = image_hash(group, project_of(args).dir)  # the project's cookbooks, not the checkout's
    bake = bake_files(group, project_of(args).dir) if group.image.communicator != "none" else None
    _print_json(render_packer(group, region=region, image_hash=h, bake=bake, endpoint_url=args.endpoint_url))
    return EXIT_OK


def _version() -> str:
    """The installed distribution's version (pyproject.toml), without importing anything heavy."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fleet")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fleet", description="One nodes.yaml -> baked images, spot/on-demand ASGs behind an ALB.")
    p.add_argument("--version", action="version", version=f"fleet {_version()}")
    p.add_argument("--project", default=None, metavar="DIR", help="the project (default: the nearest directory "
                   "upward holding a Pulumi.yaml, else the current one)")
    p.add_argument("--nodes", default=None, help="nodes file (default: the project's, from the stack's "
                   "fleet:nodesFile, else nodes.yaml)")
    p.add_argument("--stack", default=None, help="stack name: apply the overrides in the project's "
                   "Pulumi.<stack>.yaml")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    # --nodes/--stack are accepted after the subcommand too (`fleet show GROUP --stack prod`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--nodes", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--stack", default=argparse.SUPPRESS, help="stack name (Pulumi.<stack>.yaml overrides)")

    def add(name: str, func: Callable, help: str, group: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, parents=[common])
        if group:
            sp.add_argument("group", metavar="GROUP")
        sp.set_defaults(func=func)
        return sp

    add("validate", cmd_validate, "check nodes.yaml (and the stack's overrides with --stack)")
    add("show", cmd_show, "print the merged group as JSON", group=True)
    add("role", cmd_role, "print the group's Chef role (seed 001 role:create)", group=True).add_argument(
        "--write", action="store_true", help="write roles/GROUP.json instead of printing")
    sp = add("packer", cmd_packer, "print the group's Packer template (seed 001 packer:create)", group=True)
    sp.add_argument("--region", default=None, help="region when no --stack is given (default: the group's "
                    "`region`, else us-east-1)")
    sp.add_argument("--endpoint-url", default=None, help="custom EC2 endpoint (a local moto server)")
    for extra in _EXTRA_COMMANDS:
        extra(sub, add)
    for path, parser in _leaf_commands(p):
        example = EXAMPLES.get(path)
        if example:
            parser.epilog = f"example: {example}"
    return p


# One example per command, shown at the end of its --help (tests/test_cli_help.py parses each one);
# short enough for one line of an 80-column terminal.
EXAMPLES: dict[str, str] = {
    "validate": "fleet validate --stack prod",
    "show": "fleet show 12_04-www --stack prod",
    "role": "fleet role 12_04-www --write",
    "packer": "fleet packer 12_04-www --region eu-west-1",
    "image build": "fleet image build 12_04-www --stack staging",
    "image clean": "fleet image clean 12_04-www --keep 5 --dry-run",
    "image delete": "fleet image delete 12_04-old --dry-run",
    "deploy": "fleet deploy 12_04-www --stack prod",
    "plan": "fleet plan --stack prod --group 12_04-www",
    "lock": "fleet lock --update 12_04-www",
    "simulate": "fleet simulate 12_04-www --trace synthetic:diurnal --days 7",
    "status": "fleet status --stack prod --watch",
    "rollback": "fleet rollback 12_04-www --stack prod",
    "iam deployer": "fleet iam deployer > deployer-policy.json",
}


def _leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(`image build`-style path, parser) of every command that runs something (not a command group)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = list(_leaf_commands(sub, (*path, name)))
                yield from nested or [(" ".join((*path, name)), sub)]


def cmd_image(args) -> int:
    """`fleet image build|clean|delete GROUP`: boto3 work lives in image_builds (imported lazily)."""
    project = project_of(args)
    from fleet.spec.project import display

    nodes = display(project.nodes)
    if args.image_command == "build":
        from image_builds.build import run

        return run(args.group, nodes=nodes, stack=project.stack, region=args.region,
                   endpoint_url=args.endpoint_url, project_dir=project.dir)
    from image_builds.clean import run as run_clean

    keep = 0 if args.image_command == "delete" else args.keep
    return run_clean(args.group, nodes=nodes, stack=project.stack, keep=keep, dry_run=args.dry_run,
                     region=args.region, endpoint_url=args.endpoint_url,
                     orphan_grace_hours=args.orphan_grace_hours, project_dir=project.dir)


def _add_image(sub, add) -> None:
    sp = add("image", cmd_image, "bake, reuse, clean or delete a group's AMIs (seed 001 packer:run/clean/delete)")
    image_sub = sp.add_subparsers(dest="image_command", required=True, parser_class=_Parser, metavar="ACTION")
    for action, help in (("build", "bake the group's image, or reuse the AMI with the same image hash"),
                         ("clean", "deregister all but the newest --keep AMIs of the group (and their snapshots)"),
                         ("delete", "deregister every AMI of the group not in use (and their snapshots)")):
        a = image_sub.add_parser(action, help=help, description=help)
        a.add_argument("group", metavar="GROUP")
        a.add_argument("--stack", default=argparse.SUPPRESS, help="stack name (its aws:region and overrides)")
        a.add_argument("--project", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        a.add_argument("--nodes", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        a.add_argument("--region", default=None, help="AWS region (default: the stack's, else us-east-1)")
        a.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local moto server")
        if action == "clean":
            a.add_argument("--keep", "-n", type=int, default=None,
                           help="how many of the newest unused AMIs to keep (default: the group's image.keep)")
        if action != "build":
            a.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
            a.add_argument("--orphan-grace-hours", type=float, default=None, metavar="H",
                           help="remove the group's snapshots no AMI uses once older than this (default 6)")


def cmd_deploy(args) -> int:
    """`fleet deploy [GROUP] [--stack S]`: the health-gated rollout now (seed 001 instance:deploy); without
    GROUP every autoscaled group, in nodes.yaml order, stopping at the first that fails."""
    fleet = _load(args, default_stack=True)
    if args.group is not None:
        groups = [fleet.group(args.group)]
        if groups[0].autoscale is None:
            raise SpecError([Problem(fleet.nodes_file, None, args.group, "autoscale",
                                     "the group does not autoscale (autoscale: false): it has no ASGs to roll; "
                                     "its instances take a new launch template version with `pulumi up`")])
    else:
        groups = [g for g in fleet.groups.values() if g.autoscale is not None]
        if not groups:
            raise SpecError([Problem(fleet.nodes_file, None, None, None, "no autoscaled group to deploy")])
    for group in groups:
        code = _deploy_group(args, fleet, group)
        if code != EXIT_OK:
            return code
    return EXIT_OK


def _deploy_group(args, fleet: Fleet, group) -> int:
    """One group's rollout; any failure, AWS's own errors included, is one line and exit 1."""
    from fleet.ops import timing
    from fleet.ops.aws import failure_line, is_aws_error
    from fleet.ops.rollout import LaunchHook, RolloutError, deploy
    from fleet.spec.readiness import launch_hook_heartbeat

    if group.blue_green:
        return _blue_green(args, fleet, group, "deploy")
    warmup = group.autoscale.timeout if group.autoscale else None
    timeout = args.timeout if args.timeout is not None else timing.rollout_timeout(group)
    print(f"fleet deploy {group.name}: timeout {timeout:g}s"
          f"{'' if args.timeout is not None else ' (modelled from the group: --timeout overrides)'}",
          file=sys.stderr, flush=True)
    try:
        results = deploy(group.name, fleet.stack.name, region=args.region or fleet.stack.region,
                         endpoint_url=args.endpoint_url, warmup=warmup, bake_time=group.rollout.bake_time,
                         timeout=timeout, rollback_timeout=timing.rollback_timeout(group),
                         gate_timeout=timing.gate_timeout(group),
                         launch_hook=LaunchHook(launch_hook_heartbeat(group) if group.converges else None))
    except Exception as exc:  # the group's name leads the line: deploy without GROUP rolls several
        if not isinstance(exc, RolloutError) and not is_aws_error(exc):
            raise
        line = failure_line(exc) if is_aws_error(exc) else " ".join(str(exc).split())
        print(f"fleet deploy {group.name}: {line}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    for r in results:
        print(json.dumps(r.as_json()), flush=True)
    return EXIT_OK


def _add_deploy(sub, add) -> None:
    sp = add("deploy", cmd_deploy, "roll the group's ASGs (without GROUP: every autoscaled group, in nodes.yaml "
             "order) to the latest launch template now: on-demand canary, soak, spot; both back on the old "
             "version on any failure (seed 001 instance:deploy)")
    sp.add_argument("group", metavar="GROUP", nargs="?", default=None,
                    help="the group (default: every autoscaled group, stopping at the first failure)")
    sp.add_argument("--region", default=None, help="AWS region (default: the stack's)")
    sp.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local moto server")
    sp.add_argument("--timeout", type=float, default=None,
                    help="seconds for the canary, soak and spot together (default: modelled per group from its "
                         "autoscale.timeout, health check, drain and rollout.bake_time; deploy prints the value)")


def _add_plan(sub, add) -> None:
    """`fleet plan` and `fleet plan diff OLD NEW` (fleet/plan/cli.py; Pulumi is imported only when a plan runs)."""
    from fleet.plan.cli import add_plan_command

    add_plan_command(sub, add)


def cmd_lock(args) -> int:
    """`fleet lock [--update [GROUP]]`: resolve source_ami filters into nodes.lock.json (fleet/ops/lock.py)."""
    from fleet.ops.lock import check, lock
    from fleet.spec.project import display

    project = project_of(args)
    project.check_nodes_file()
    if args.check:
        if args.update is not None:
            raise SpecError([Problem("fleet lock", None, None, None, "--check changes nothing: drop --update")])
        return check(display(project.nodes), stack=project.stack, endpoint_url=args.endpoint_url)
    update = args.update is not None
    return lock(display(project.nodes), stack=project.stack, update=update, group=args.update or None,
                endpoint_url=args.endpoint_url)


def _add_lock(sub, add) -> None:
    sp = add("lock", cmd_lock, "resolve every source_ami name filter into nodes.lock.json (commit it); "
             "--update [GROUP] re-resolves on purpose")
    sp.add_argument("--update", nargs="?", const="", default=None, metavar="GROUP",
                    help="re-resolve every entry, or only those GROUP uses")
    sp.add_argument("--check", action="store_true", help="change nothing: every entry must exist in its region "
                    "with its name and owner, and come from AWS when the stack targets AWS (exit 1 if not)")
    sp.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local moto server")


def _add_simulate(sub, add) -> None:
    """`fleet simulate GROUP` (fleet/simulate/cli.py; numpy and the model are imported when it runs)."""
    from fleet.simulate.cli import add_simulate_command

    add_simulate_command(sub, add)


def _add_status(sub, add) -> None:
    """`fleet status` (fleet/status/cli.py; boto3 and rich are imported only when it runs)."""
    from fleet.status.cli import add_status_command

    add_status_command(sub, add)




def _blue_green(args, fleet: Fleet, group, action: str) -> int:
    """A blue/green group's deploy or rollback (fleet/ops/bluegreen.py); failures are one line, exit 1."""
    from fleet.ops import bluegreen as bg
    from fleet.ops.aws import client, failure_line, is_aws_error
    from lambdas.bluegreen.slots import SlotError

    region = args.region or fleet.stack.region
    try:
        clients = bg.Clients.make(region, args.endpoint_url)
        if action == "deploy":
            result = bg.deploy_latest(group, fleet.stack.name, clients,
                                      client("ec2", region=region, endpoint_url=args.endpoint_url))
        else:
            result = bg.rollback(group.name, fleet.stack.name, clients)
    except Exception as exc:
        if not isinstance(exc, (bg.BlueGreenError, SlotError)) and not is_aws_error(exc):
            raise
        line = failure_line(exc) if is_aws_error(exc) else " ".join(str(exc).split())
        print(f"fleet {action} {group.name}: {line}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(json.dumps(result.as_json()), flush=True)
    return EXIT_OK


def cmd_rollback(args) -> int:
    """`fleet rollback GROUP --stack S`: a blue/green group's traffic back to its other slot in one rule write."""
    fleet = _load(args)
    if fleet.stack is None:
        raise SpecError([Problem(fleet.nodes_file, None, args.group, None, "rollback needs --stack")])
    group = fleet.group(args.group)
    if not group.blue_green:
        raise SpecError([Problem(fleet.nodes_file, None, args.group, "rollout.strategy",
                                 "rollback needs a blue/green group (http, rollout.strategy blue_green); a refresh "
                                 "group rolls back by deploying its previous launch template version")])
    return _blue_green(args, fleet, group, "rollback")


def _add_rollback(sub, add) -> None:
    sp = add("rollback", cmd_rollback, "send a blue/green group's traffic back to its standby slot now (one "
             "listener-rule write; a standby already scaled down is scaled up first)", group=True)
    sp.add_argument("--region", default=None, help="AWS region (default: the stack's)")
    sp.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local moto server")




def cmd_iam(args) -> int:
    """`fleet iam deployer`: the deploy role's policy (fleet/render/deployer_policy.py), for
    `aws iam put-role-policy --policy-document file://...` (an inline policy: it is longer than a managed
    policy may be)."""
    from fleet.render.deployer_policy import render

    sys.stdout.write(render())
    return EXIT_OK


def _add_iam(sub, add) -> None:
    sp = add("iam", cmd_iam, "print IAM policies fleet needs")
    iam_sub = sp.add_subparsers(dest="iam_command", required=True, parser_class=_Parser, metavar="ROLE")
    iam_sub.add_parser("deployer", help="the policy of the role that runs `pulumi up` and the deploy workflow",
                       description="the least-privilege policy of the deploy role: every call the program, its "
                       "Commands (Packer included) and the deploy workflow make")


_EXTRA_COMMANDS: list[Callable] = [_add_image, _add_deploy, _add_plan, _add_lock, _add_simulate, _add_status,
                                   _add_rollback, _add_iam]


def command_name(args) -> str:
    """`fleet image build web`-style name of the command being run (prefixes its one-line failures)."""
    words = [args.command] + [getattr(args, a) for a in ("image_command", "action") if getattr(args, a, None)]
    group = getattr(args, "group", None)
    return "fleet " + " ".join(words + ([group] if group else []))


def run_reporting(args) -> int:
    """Run the parsed subcommand with the CLI's failure contract, so every subcommand (added here or
    through _EXTRA_COMMANDS) gets it without code of its own: bad input (SpecError) is one line per
    problem and exit 2; any AWS failure (no credentials, no answer, expired token, access denied,
    throttling past the retries, a non-AWS answer) is one line naming the command, the operation and
    what to do, exit 1 (fleet.ops.aws.failure_line); a closed stdout pipe is not an error."""
    try:
        return args.func(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        # botocore is imported only by commands that talk to AWS: an error can be its only then
        if "botocore.exceptions" not in sys.modules:
            raise
        from fleet.ops.aws import failure_line, is_aws_error

        if not is_aws_error(exc):
            raise
        print(f"{command_name(args)}: {failure_line(exc)}", file=sys.stderr, flush=True)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "without_gc", False):
        gc.enable()  # fleet.__main__ starts without it, for the plan; every other command runs as usual
    if getattr(args, "stack", None) is not None and not args.stack.strip():
        parser.error("--stack needs a name")
    return run_reporting(args)
