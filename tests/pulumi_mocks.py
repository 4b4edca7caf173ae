"""Run fleet's Pulumi code under Pulumi's mock engine and record everything it registers.

- `FleetMocks`: `new_resource` returns the inputs plus every computed field our code reads, in
  camelCase as a provider would (id, arn, arnSuffix, name for autonamed resources, dnsName,
  latestVersion as an int, stdout with a JSON last line for Commands); `call` answers getAmi,
  getAvailabilityZones and a few identity lookups. Invokes are recorded in `calls`.
- `RecordingMonitor`: a MockMonitor that records every RegisterResource request: type, logical
  name, URN, parent URN, the registered inputs (camelCase, as the engine sees them), the outputs
  the mock returned, and the resource options the SDK sent (ignoreChanges, dependsOn, protect,
  deleteBeforeReplace, aliases, ...), plus the outputs each component registers.
- `run(fn, ...)` runs `fn` as a whole Pulumi program on a fresh engine (fresh root stack, config,
  monitor, RPC and output queues: no state leaks between runs) and returns a `Run`;
  `run_program(stack, config)` does that for `__main__.py` via runpy, like the Pulumi CLI does;
  `stack_config(stack)` reads `Pulumi.<stack>.yaml` into `set_all_config` form.

Everything runs with `preview=False`, so apply callbacks see values (PITFALLS 13).
"""

from __future__ import annotations

import hashlib
import json
import logging
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import SETTINGS, get_root_resource, reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
MOCK_AMI = "ami-0123456789abcdef0"

# resource type -> (id prefix, ARN service, ARN resource kind)
_IDS = {
    "aws:ec2/vpc:Vpc": ("vpc-", "ec2", "vpc"),
    "aws:ec2/subnet:Subnet": ("subnet-", "ec2", "subnet"),
    "aws:ec2/securityGroup:SecurityGroup": ("sg-", "ec2", "security-group"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("sgr-", "ec2", "security-group-rule"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("sgr-", "ec2", "security-group-rule"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("lt-", "ec2", "launch-template"),
    "aws:ec2/instance:Instance": ("i-", "ec2", "instance"),
    "aws:ec2/internetGateway:InternetGateway": ("igw-", "ec2", "internet-gateway"),
    "aws:ec2/natGateway:NatGateway": ("nat-", "ec2", "natgateway"),
    "aws:ec2/eip:Eip": ("eipalloc-", "ec2", "elastic-ip"),
    "aws:ec2/routeTable:RouteTable": ("rtb-", "ec2", "route-table"),
}


def _h(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def autoname(logical: str) -> str:
    """What Pulumi's default autonaming makes of a logical name: name + '-' + 7 random hex chars."""
    return f"{logical}-{_h(logical, n=7)}"


class FleetMocks(pulumi.runtime.Mocks):
    """Provider stand-in: inputs echoed back plus the computed fields fleet's code reads."""

    def __init__(self, region: str = REGION):
        self.region = region
        self.calls: list[tuple[str, dict]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        typ, logical = args.typ, args.name
        state = dict(args.inputs)
        svc = typ.split(":")[1].split("/")[0]
        arn_base = f"arn:aws:{svc}:{self.region}:{ACCOUNT}"
        elb = f"arn:aws:elasticloadbalancing:{self.region}:{ACCOUNT}"
        if "name" not in state and typ.startswith("aws:"):
            prefix = state.get("namePrefix")
            state["name"] = f"{prefix}{_h(logical, n=26)}" if prefix else autoname(logical)
        name = state.get("name", logical)
        rid = _h(typ, logical)
        if typ in _IDS:
            prefix, arn_svc, kind = _IDS[typ]
            rid = prefix + rid
            state["arn"] = f"arn:aws:{arn_svc}:{self.region}:{ACCOUNT}:{kind}/{rid}"
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state["arnSuffix"] = f"app/{name}/{_h(logical, n=16)}"
            state["arn"] = rid = f"{elb}:loadbalancer/{state['arnSuffix']}"
            state["dnsName"] = f"{name}-{_h(logical, n=10)}.{self.region}.elb.amazonaws.com"
            state["zoneId"] = "Z35SXDOTRQ7X7K"
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state["arnSuffix"] = f"targetgroup/{name}/{_h(logical, n=16)}"
            state["arn"] = rid = f"{elb}:{state['arnSuffix']}"
        elif typ in ("aws:lb/listener:Listener", "aws:lb/listenerRule:ListenerRule"):
            kind = "listener" if typ.endswith("Listener") else "listener-rule"
            state["arn"] = rid = f"{elb}:{kind}/app/{_h(logical)}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            rid = name
        elif typ == "aws:iam/instanceProfile:InstanceProfile":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}"
            rid = name
        elif typ == "aws:autoscaling/group:Group":
            state["arn"] = f"{arn_base}:autoScalingGroup:{rid}:autoScalingGroupName/{name}"
            rid = name
        elif typ == "aws:autoscaling/policy:Policy":
            state["arn"] = f"arn:aws:autoscaling:{self.region}:{ACCOUNT}:scalingPolicy:{rid}:policyName/{name}"
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state["arn"] = f"arn:aws:cloudwatch:{self.region}:{ACCOUNT}:alarm:{name}"
            rid = name
        elif typ == "command:local:Command":
            result = {"ami_id": "ami-0" + _h(logical, n=16), "image_hash": (state.get("triggers") or [""])[0],
                      "cached": False}
            state["stdout"] = "image build: log lines go to stderr\n" + json.dumps(result) + "\n"
            state["stderr"] = ""
        elif typ.startswith("aws:"):
            state.setdefault("arn", f"{arn_base}:{logical}")
        if typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
            state["defaultVersion"] = 1
        if typ == "aws:ec2/eip:Eip":
            state["allocationId"] = rid
            state["publicIp"] = "203.0.113.10"
        if typ == "aws:ec2/instance:Instance":
            state["privateIp"] = "10.0.1.10"
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": MOCK_AMI, "imageId": MOCK_AMI, "rootDeviceName": "/dev/sda1", "architecture": "x86_64",
                    "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
                    "ownerId": (args.args.get("owners") or [ACCOUNT])[0], "state": "available"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"id": self.region, "names": list(ZONES), "zoneIds": [f"use1-az{i + 1}" for i in range(len(ZONES))],
                    "groupNames": [self.region]}
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": self.region, "name": self.region, "region": self.region}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/test", "userId": "AIDTEST"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
        return {}


@dataclass
class Registered:
    """One RegisterResource request as the engine received it."""

    type: str
    name: str
    urn: str
    id: str
    parent: str | None  # parent URN (None for children of the root stack)
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    options: dict[str, Any]

    @property
    def parent_name(self) -> str | None:
        return self.parent.split("::")[-1] if self.parent else None

    @property
    def parent_type(self) -> str | None:
        return self.parent.split("::")[2].split("$")[-1] if self.parent else None


def _urn_name(urn: str) -> str:
    return urn.split("::")[-1]


class RecordingMonitor(MockMonitor):
    """MockMonitor that keeps every registration (with its options) and every component's outputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registered] = []
        self.component_outputs: dict[str, dict] = {}
        self.stack_urn: str | None = None

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        urn = response.urn
        outputs = self.resources[urn].state if urn in self.resources else {}
        parent = request.parent or None
        if parent == self.stack_urn:
            parent = None
        implicit = {u for deps in request.propertyDependencies.values() for u in deps.urns}
        options = {
            "ignoreChanges": list(request.ignoreChanges),
            "dependsOn": [_urn_name(u) for u in request.dependencies if u not in implicit],
            "dependencies": [_urn_name(u) for u in request.dependencies],
            "protect": bool(request.protect),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "replaceOnChanges": list(request.replaceOnChanges),
            "retainOnDelete": bool(request.retainOnDelete),
            "aliases": [MessageToDict(a) for a in request.aliases] + list(request.aliasURNs),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "provider": request.provider or None,
        }
        self.registrations.append(Registered(
            type=request.type, name=request.name, urn=urn, id=response.id, parent=parent, custom=bool(request.custom),
            inputs=inputs, outputs=dict(outputs), options=options))
        return response

    def RegisterResourceOutputs(self, request):  # noqa: N802
        _ensure_event_loop()
        self.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


@dataclass
class Run:
    """What one program run registered, logged, invoked and exported."""

    resources: list[Registered]
    outputs: dict[str, Any]  # stack exports, resolved
    value: Any  # what the run's function returned, resolved
    logs: list[tuple[str, str]]
    calls: list[tuple[str, dict]]
    component_outputs: dict[str, dict] = field(default_factory=dict)
    error: BaseException | None = None

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def named(self, name: str, typ: str | None = None) -> Registered:
        found = [r for r in self.resources if r.name == name and (typ is None or r.type == typ)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r} (type {typ})")
        return found[0]

    def children(self, parent: Registered, typ: str | None = None) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn and (typ is None or r.type == typ)]

    def descendants(self, parent: Registered, typ: str | None = None) -> list[Registered]:
        out, todo = [], [parent.urn]
        while todo:
            urn = todo.pop()
            for r in self.resources:
                if r.parent == urn:
                    todo.append(r.urn)
                    if typ is None or r.type == typ:
                        out.append(r)
        return out

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def views(self) -> list[dict[str, Any]]:
        """Resource views as fleet.guardrails and `fleet plan --json` take them: type, name, parent
        (logical name or None), inputs (camelCase), options, outputs (with the id)."""
        return [{"type": r.type, "name": r.name, "parent": r.parent_name, "inputs": r.inputs,
                 "options": r.options,
                 "outputs": {**r.outputs, "id": r.id} if r.custom else dict(self.component_outputs.get(r.urn, {}))}
                for r in self.resources]

    def warnings(self) -> list[str]:
        return [m for level, m in self.logs if level in ("WARNING", "ERROR", "CRITICAL")]


def _config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    """`set_all_config` form: structured values as JSON strings, bools as true/false."""
    out = {}
    for key, value in config.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


def stack_config(stack: str, project_dir: Path = ROOT) -> dict[str, Any]:
    """The `config:` mapping of `Pulumi.<stack>.yaml` (values as YAML gives them)."""
    data = yaml.safe_load((project_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    return dict(data.get("config") or {})


def use_mocks(*, stack: str = "test", project: str = "fleet", config: Mapping[str, Any] | None = None,
              region: str = REGION) -> tuple[FleetMocks, RecordingMonitor, _ListHandler]:
    """Install a fresh mock engine (new root stack, config, monitor, RPC and output queues).

    For `@pulumi.runtime.test` style tests: call this first, then build resources and return an
    Output; `run()` below does this and also waits for every RPC and collects the registrations.
    """
    mocks = FleetMocks(region=region)
    monitor = RecordingMonitor(mocks)
    handler = _ListHandler()
    logger = logging.getLogger("fleet.tests.pulumi")  # one logger, its handler replaced per run
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    cfg = {"aws:region": region, **dict(config or {})}
    reset_options(project=project, stack=stack)  # ROOT = None: set_mocks makes a new root stack
    pulumi.runtime.set_all_config(_config_strings(cfg))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, logger=logger, monitor=monitor)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    return mocks, monitor, handler


def run(fn: Callable[[], Any], *, stack: str = "test", project: str = "fleet",
        config: Mapping[str, Any] | None = None, region: str = REGION, raise_errors: bool = True) -> Run:
    """Run `fn` as a Pulumi program on a fresh mock engine; wait for every RPC and output.

    `config` keys are `namespace:key` (e.g. "fleet:groups"); structured values may be given as
    Python objects, they are passed on as JSON strings like the CLI does. With
    `raise_errors=False` an exception from the program is returned in `Run.error`.
    """
    mocks, monitor, handler = use_mocks(stack=stack, project=project, config=config, region=region)
    result: dict[str, Any] = {}

    def body() -> None:
        value = fn()
        root = get_root_resource()
        exported = dict(root.outputs) if root is not None else {}
        result["value"], result["outputs"] = _sync_await(pulumi.Output.from_input([value, exported]).future())

    error = None
    try:
        _sync_await(run_pulumi_func(body))
    except Exception as exc:  # noqa: BLE001 - handed to the caller
        if raise_errors:
            raise
        error = exc
    # registrations arrive from the SDK's thread pool in no fixed order: sort for determinism
    return Run(resources=sorted(monitor.registrations, key=lambda x: x.urn), outputs=result.get("outputs") or {},
               value=result.get("value"), logs=list(handler.records), calls=list(mocks.calls),
               component_outputs=dict(monitor.component_outputs), error=error)


def run_program(stack: str, config: Mapping[str, Any] | None = None, *, program: Path = PROGRAM,
                raise_errors: bool = True) -> Run:
    """Run `__main__.py` (via runpy, as the Pulumi CLI does) for `stack` with `config`."""
    cfg = dict(stack_config(stack, program.parent) if config is None else config)

    def main() -> None:
        runpy.run_path(str(program), run_name="__main__")

    return run(main, stack=stack, config=cfg, region=str(cfg.get("aws:region", REGION)), raise_errors=raise_errors)


# -- helpers for component tests ---------------------------------------------------------------

def group(name: str = "web", **merged: Any):
    """A typed Group from a merged mapping (fleet.model defaults fill the rest)."""
    from fleet.model import build_group

    raw = {"instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0", **merged}
    return build_group(name, raw)


def http_group(name: str = "web", **merged: Any):
    raw = {"autoscale": {"node_min": 2, "node_max": 6, "timeout": 150},
           "http": {"port": 8080, "hosts": ["web.example.com"]}, **merged}
    return group(name, **raw)


def worker_group(name: str = "jobs", **merged: Any):
    return group(name, **{"autoscale": {"node_min": 1, "node_max": 4, "timeout": 120}, **merged})


def project_groups(stack: str = "prod"):
    """The merged groups of the project's own nodes.yaml for `stack` (read from its stack file)."""
    from fleet.spec import load_fleet

    return load_fleet(ROOT / "nodes.yaml", stack).groups
