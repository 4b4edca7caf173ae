"""What `fleet plan` costs the user, against floors, side by side (not a test; results in bench/RESULTS.md).

    .venv/bin/python bench/bench_program.py [--sizes sample,100,300] [--repeat 5] [--out results.json]

Every number is the CPU time (user + sys, from the child's own rusage) of a whole process: interpreter
start, imports, work, output, exit; the median of `--repeat` runs, the rows' processes interleaved so a
busy moment hits all of them alike. This machine is shared (2 cores, other sessions): CPU time, not
wall time, and ratios measured in one run.

- ours: `python -m fleet plan --json --stack staging`, in this project (`sample`) or, for N groups,
  in a throwaway project (this project's program and packages, the staging config without its
  group overrides) whose nodes file has N generated groups (per 10 groups: 3 http groups behind the
  ALB, 5 workers, 2 one-off `autoscale: false` boxes whose image is an Ubuntu name filter; recipes
  from this project's cookbooks, an attribute per group so every group has its own image);
- import floor: a process that imports pulumi, pulumi_aws and pulumi_command, touches every
  pulumi_aws / pulumi_command class and function the program's source names (pulumi_aws loads its
  submodules lazily: touching is importing), then flushes and exits the way the CLI does (os._exit);
- registration floor (bench/registration_floor.py): a process on the same mock engine
  (fleet.plan.engine), GC off as in the plan, that makes the very calls the program makes into the SDK,
  recorded in an untimed run: the same pulumi_aws / pulumi_command classes with the same typed Args,
  parents, `depends_on` and property dependencies (each Output the program passed becomes a resolved
  Output over the same resources), the same component registrations and outputs, the same invokes and
  stack exports. The recording run checks that the replay registers exactly what the program did
  (types, names, parents, inputs, options, dependencies). It pays for reading the recording (pickle).

Goals: the sample within 1.2x, and 300 and 1,000 groups within 1.15x, of the registration floor.

Invokes during the program are counted in the untimed recording run: the goal is one per distinct
AMI filter (plus the network's availability-zone lookup), never one per group.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = """\
__base__:
  autoscale: false
  instance_type: m5.large
  source_ami:
    name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    owners: ["099720109477"]
  security_groups: [internal]
  image: {builder: packer, ssh_username: ubuntu, keep: 10}
  volume: {size: 20, type: gp3}
  run_list: ["recipe[seatgeek::base-server]"]
  tags: {team: platform}
"""
HTTP = """\
{name}:
  instance_type: c6i.large
  autoscale: {{timeout: 150, node_min: 2, node_max: 10}}
  security_groups: [www]
  run_list: ["recipe[seatgeek-service::api]"]
  default_attributes: {{svc: {name}}}
  http: {{port: 8000, health_check: /status, hosts: [{name}.example.com]{priority}}}
"""
WORKER = """\
{name}:
  autoscale:
    timeout: 120
    node_min: 1
    node_max: 6
    spot: {{instance_types: [m5.large, m5a.large, m6i.large, m6a.large]}}
  run_list: ["recipe[seatgeek-service::cronq-workers]"]
  default_attributes: {{svc: {name}}}
"""
CRON = """\
{name}:
  instance_type: t3.medium
  image: {{builder: ami}}
  run_list: ["recipe[seatgeek-service::cronq]"]
  default_attributes: {{svc: {name}}}
"""  # builder ami converges at boot: its cookbooks must exist (the sample's), and it gets a bundle
KINDS = [HTTP, WORKER, WORKER, HTTP, CRON, WORKER, HTTP, WORKER, WORKER, CRON]  # 3 http, 5 worker, 2 cron

# The floors run as `python -c` so they import nothing of the bench: only what they name.
EXIT = "import sys, os\nsys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n"
IMPORT_FLOOR = """\
import gc; gc.disable()  # as the plan does
import json, sys
import pulumi, pulumi_aws, pulumi_command
names = json.loads(open(sys.argv[1]).read())
for module, attr in names["aws"]:
    getattr(getattr(pulumi_aws, module), attr) if attr else getattr(pulumi_aws, module)
for attr in names["command"]:
    getattr(pulumi_command.local, attr)
""" + EXIT
def nodes_yaml(groups: int) -> str:
    """N groups. Beyond 300, the http groups get explicit listener rule priorities: derived ones (a
    hash of the name) collide among a few hundred groups, which validate refuses."""
    parts = [BASE]
    for i in range(groups):
        priority = f", priority: {i // 10 * 3 + KINDS[:i % 10].count(HTTP) + 1}" if groups > 300 else ""
        parts.append(KINDS[i % len(KINDS)].format(name=f"g{i:03d}", priority=priority))
    return "\n".join(parts)


def program_names() -> dict:
    """Every `aws.<module>.<Name>`, `aws.<function>(` and `command.local.<Name>` the program's source names."""
    aws: set[tuple[str, str]] = set()
    cmd: set[str] = set()
    for path in [ROOT / "__main__.py", *sorted((ROOT / "components").glob("*.py"))]:
        text = path.read_text()
        aws |= set(re.findall(r"\baws\.([a-z][a-z0-9_]*)\.([A-Za-z_]\w*)", text))
        aws |= {(fn, "") for fn in re.findall(r"\baws\.([a-z_][a-z0-9_]*)\(", text)}
        cmd |= set(re.findall(r"\bcommand\.local\.([A-Za-z_]\w*)", text))
    return {"aws": sorted(aws), "command": sorted(cmd)}


def make_project(where: Path, groups: int) -> Path:
    """A throwaway project: this project's program and packages (symlinked), staging config without
    its group overrides, a generated nodes.yaml."""
    import yaml

    where.mkdir(parents=True)
    for name in ("components", "fleet", "image_builds", "lambdas", "boot"):
        (where / name).symlink_to(ROOT / name)
    for name in ("cookbooks", "data_bags"):  # the project's own files: a link out of the project is refused
        shutil.copytree(ROOT / name, where / name)
    shutil.copy(ROOT / "__main__.py", where / "__main__.py")
    shutil.copy(ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
    shutil.copy(ROOT / "nodes.lock.json", where / "nodes.lock.json")  # the generated groups' base image
    stack = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())
    stack["config"].pop("fleet:groups", None)  # staging's overrides name the project's own groups
    (where / "Pulumi.staging.yaml").write_text(yaml.safe_dump(stack))
    (where / "nodes.yaml").write_text(nodes_yaml(groups))
    return where


# -- the untimed recording (for the registration floor) -------------------------------------------

def child_record(project: Path, names: Path, out: Path) -> dict:
    """Record the program's SDK calls (bench/registration_floor.py), then check that replaying them
    registers exactly what the program did."""
    import registration_floor

    info = registration_floor.record(project, json.loads(names.read_text()), out)
    registration_floor.verify(out)
    return info


# -- timing ---------------------------------------------------------------------------------------

# Bytecode goes to a cache outside the tree (PYTHONPYCACHEPREFIX, set in `measure`) and every command
# runs once untimed first: a user's second plan finds its modules compiled, and so do the floors (with
# writing disabled, every run recompiled fleet/ and components/ from source: 1.2 s of a 60-group plan).
PYCACHE: dict[str, str] = {}


def cpu_of(argv: list[str], cwd: Path, ok=(0,)) -> dict:
    """Run one process; its own user + sys CPU seconds and peak RSS (MB), from wait4's rusage."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**env, "PYTHONWARNINGS": "ignore", **PYCACHE})
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode not in ok:
        raise SystemExit(f"{argv} exited {p.returncode}:\n{err.decode()[-3000:]}")
    return {"cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime, "sys": ru.ru_stime, "rss": ru.ru_maxrss / 1024}


def measure(sizes: list[str], repeat: int) -> list[dict]:
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        PYCACHE["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        names = work / "names.json"
        names.write_text(json.dumps(program_names()))
        for size in sizes:
            project = ROOT if size == "sample" else make_project(work / f"p{size}", int(size))
            record = work / f"record-{size}.pickle"
            child = [py, __file__, "--child", "record", str(project), str(names), str(record)]
            extra = json.loads(subprocess.run(child, capture_output=True, text=True, check=True, cwd=ROOT
                                              ).stdout.strip().splitlines()[-1])
            argv = {"ours": [py, "-m", "fleet", "plan", "--stack", "staging", "--json"],
                    "import": [py, "-c", IMPORT_FLOOR, str(names)],
                    "registration": [py, str(ROOT / "bench" / "registration_floor.py"), str(record)]}
            runs: dict[str, list[dict]] = {k: [] for k in argv}
            cpu_of(argv["ours"], project, ok=(0, 1))  # untimed: compile and cache the bytecode
            cpu_of(argv["import"], ROOT)
            cpu_of(argv["registration"], project)
            for _ in range(repeat):  # interleaved
                runs["ours"].append(cpu_of(argv["ours"], project, ok=(0, 1)))
                runs["import"].append(cpu_of(argv["import"], ROOT))
                runs["registration"].append(cpu_of(argv["registration"], project))
            med = {k: {m: statistics.median(x[m] for x in v) for m in ("cpu", "user", "sys", "rss")}
                   for k, v in runs.items()}
            row = {"size": size, **extra, **med,
                   "ratio_import": med["ours"]["cpu"] / med["import"]["cpu"],
                   "ratio_registration": med["ours"]["cpu"] / med["registration"]["cpu"],
                   "all": {k: [x["cpu"] for x in v] for k, v in runs.items()}}
            rows.append(row)
            print(_fmt_row(row), flush=True)
    return rows


def _fmt_row(row: dict) -> str:
    def cell(k: str) -> str:
        m = row[k]
        return f"{m['cpu']:.2f} ({m['user']:.2f}+{m['sys']:.2f})"

    invokes = ", ".join(f"{t.split(':')[-1]} {k}" for t, k in sorted(row["invokes"].items())) or "-"
    spread = " / ".join(f"{min(v):.2f}-{max(v):.2f}" for v in row["all"].values())
    rss = " / ".join(f"{row[k]['rss']:.0f}" for k in ("ours", "import", "registration"))
    return (f"| {row['size']} | {row['resources']} | {cell('ours')} | {cell('import')} | {row['ratio_import']:.2f}x | "
            f"{cell('registration')} | {row['ratio_registration']:.2f}x | {row['edges']} | {spread} | {rss} | "
            f"{invokes} |")


HEADER = ("| groups | resources | `fleet plan --json` CPU s (user+sys) | import floor | ours / import floor | "
          "registration floor | ours / registration | dependency edges | range ours / import / registration | "
          "peak RSS MB ours / import / registration | invokes (whole run) |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, pulumi {version('pulumi')}, "
            f"pulumi-aws {version('pulumi-aws')}, pulumi-command {version('pulumi-command')}, "
            f"{platform.system()} {platform.release()}, load average {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(child_record(Path(argv[2]), Path(argv[3]), Path(argv[4]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="sample,100,300", help="`sample` (this project) and/or group counts")
    p.add_argument("--repeat", type=int, default=5, help="processes per measurement; the median is kept")
    p.add_argument("--out", default=None, help="also write the raw numbers as JSON")
    args = p.parse_args(argv)
    print(machine())
    print(HEADER)
    rows = measure(args.sizes.split(","), args.repeat)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
