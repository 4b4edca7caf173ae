"""`fleet plan`: the real program under Pulumi's mock engine; no cloud, no Pulumi CLI, no credentials.

The only module of fleet/ that imports pulumi. It holds the mock engine the tests use too
(tests/pulumi_mocks.py re-exports it):

- `FleetMocks`: the provider stand-in. `new_resource` returns the inputs plus every computed field
  our code reads, camelCase as a provider would (id, arn, arnSuffix, name for autonamed resources,
  dnsName, latestVersion as an int, stdout with a JSON last line for Commands); `call` answers
  getAmi, getAvailabilityZones and a few identity lookups, and records every invoke in `calls`.
  Ids are derived from the resource's URN (a hash), never random: two runs give the same values.
  With `offline=True` (what `plan()` uses) nothing pretends to be real: the image Command's AMI
  is `(baked at deploy: <image hash>)`; base images come from nodes.lock.json, and an AMI lookup (a pin's or a
  literal id's root device) is `(looked up at deploy: <filter>)`.
- `RecordingMonitor`: a MockMonitor that records every RegisterResource request (type, logical
  name, URN, parent URN, the registered inputs camelCase as the engine sees them, the outputs the
  mock returned, the resource options the SDK sent) and the outputs each component registers.
- `run(fn)` runs `fn` as a whole Pulumi program on a fresh engine (fresh root stack, config,
  monitor, RPC and output queues: no state leaks between runs) and returns a `Run`;
  `run_program(stack)` does that for a project's `__main__.py` via runpy, like the Pulumi CLI.
- `plan(project_dir, stack, nodes=None, group=None)` -> the plan as a JSON-able dict:
  `{"project","stack","resources":[{"type","name","parent","inputs","options"}],"outputs","violations"}`.

Everything runs with `preview=False`, so apply callbacks see values (a preview skips
them on unknowns).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import known_types, rpc
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import SETTINGS, get_root_resource, reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from fleet.plan.guardrails import check_all
from fleet.plan.tags import tag_value
from fleet.spec.errors import SpecError
from fleet.spec.names import slug
from fleet.spec.readonce import one_read_per_file, read_bytes

ROOT = Path(__file__).resolve().parents[2]  # this checkout (the project)
PROGRAM = ROOT / "__main__.py"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
MOCK_AMI = "ami-0123456789abcdef0"
MOCK_ROOT_DEVICE = "/dev/xvda"  # what mocked builds report: not Ubuntu's /dev/sda1, so nothing may assume it
PROJECT_PLACEHOLDER = "<project>"
# Options every plan resource carries (the plan's JSON contract: at least the first four).
PLAN_OPTIONS = ("ignoreChanges", "dependsOn", "protect", "deleteBeforeReplace", "replaceOnChanges",
                "retainOnDelete", "aliases")

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


def baked_at_deploy(image_hash: str) -> str:
    """The AMI the offline plan shows for an image the Command would bake (or reuse) at deploy."""
    return f"(baked at deploy: {image_hash})"


def partition_of(region: str) -> tuple[str, str]:
    """(partition, DNS suffix) of a region, as aws.get_partition answers in it: the mocks' ARNs use it."""
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


class FleetMocks(pulumi.runtime.Mocks):
    """Provider stand-in: inputs echoed back plus the computed fields fleet's code reads."""

    def __init__(self, region: str = REGION, offline: bool = False):
        self.region = region
        self.partition, self.dns_suffix = partition_of(region)
        self.offline = offline
        self.calls: list[tuple[str, dict]] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        typ, logical = args.typ, args.name
        state = dict(args.inputs)
        svc = typ.split(":")[1].split("/")[0]
        arn_base = f"arn:{self.partition}:{svc}:{self.region}:{ACCOUNT}"
        elb = f"arn:{self.partition}:elasticloadbalancing:{self.region}:{ACCOUNT}"
        if "name" not in state and typ.startswith("aws:"):
            prefix = state.get("namePrefix")
            state["name"] = f"{prefix}{_h(logical, n=26)}" if prefix else autoname(logical)
        name = state.get("name", logical)
        # Deterministic: from the URN (RecordingMonitor passes it), else from type and name.
        seed = getattr(args, "urn", None) or f"{typ}/{logical}"
        rid = _h(seed)
        if typ in _IDS:
            prefix, arn_svc, kind = _IDS[typ]
            rid = prefix + rid
            state["arn"] = f"arn:{self.partition}:{arn_svc}:{self.region}:{ACCOUNT}:{kind}/{rid}"
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state["arnSuffix"] = f"app/{name}/{_h(seed, n=16)}"
            state["arn"] = rid = f"{elb}:loadbalancer/{state['arnSuffix']}"
            state["dnsName"] = f"{name}-{_h(seed, n=10)}.{self.region}.elb.amazonaws.com"
            state["zoneId"] = "Z35SXDOTRQ7X7K"
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state["arnSuffix"] = f"targetgroup/{name}/{_h(seed, n=16)}"
            state["arn"] = rid = f"{elb}:{state['arnSuffix']}"
        elif typ in ("aws:lb/listener:Listener", "aws:lb/listenerRule:ListenerRule"):
            kind = "listener" if typ.endswith("Listener") else "listener-rule"
            state["arn"] = rid = f"{elb}:{kind}/app/{_h(seed)}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:{self.partition}:iam::{ACCOUNT}:role/{name}"
            rid = name
        elif typ == "aws:iam/instanceProfile:InstanceProfile":
            state["arn"] = f"arn:{self.partition}:iam::{ACCOUNT}:instance-profile/{name}"
            rid = name
        elif typ == "aws:autoscaling/group:Group":
            state["arn"] = f"{arn_base}:autoScalingGroup:{rid}:autoScalingGroupName/{name}"
            rid = name
        elif typ == "aws:autoscaling/policy:Policy":
            state["arn"] = (f"arn:{self.partition}:autoscaling:{self.region}:{ACCOUNT}:scalingPolicy:{rid}:"
                            f"policyName/{name}")
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state["arn"] = f"arn:{self.partition}:cloudwatch:{self.region}:{ACCOUNT}:alarm:{name}"
            rid = name
        elif typ == "command:local:Command":
            image_hash = (state.get("triggers") or [""])[0]
            ami = baked_at_deploy(str(image_hash)) if self.offline else "ami-0" + _h(seed, n=16)
            root = "(the baked image's root device, read at deploy)" if self.offline else MOCK_ROOT_DEVICE
            result = {"ami_id": ami, "image_hash": image_hash, "cached": False, "root_device_name": root}
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
            ami = MOCK_AMI
            if self.offline:
                names = [v for f in args.args.get("filters") or [] if f.get("name") == "name"
                         for v in f.get("values") or []]
                owners = ",".join(args.args.get("owners") or [])
                ami = f"(looked up at deploy: {' '.join(names) or 'filter'}{f' owners {owners}' if owners else ''})"
            return {"id": ami, "imageId": ami, "rootDeviceName": "/dev/sda1", "architecture": "x86_64",
                    "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
                    "ownerId": (args.args.get("owners") or [ACCOUNT])[0], "state": "available"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"id": self.region, "names": list(ZONES), "zoneIds": [f"use1-az{i + 1}" for i in range(len(ZONES))],
                    "groupNames": [self.region]}
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": self.region, "name": self.region, "region": self.region}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:{self.partition}:iam::{ACCOUNT}:user/test", "userId": "AIDTEST"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"id": self.partition, "partition": self.partition, "dnsSuffix": self.dns_suffix}
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
    """MockMonitor that keeps every registration (with its options) and every component's outputs.

    RegisterResource is MockMonitor's, with the inputs deserialized once (not twice) and the URN
    handed to the mocks (`args.urn`) so ids derive from it.
    """

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registered] = []
        self.component_outputs: dict[str, dict] = {}
        self.stack_urn: str | None = None

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()  # deserializing resource references needs a loop on this thread
        inputs = rpc.deserialize_properties(request.object)
        args = MockResourceArgs(typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
                                resource_id=request.importId, custom=request.custom or False)
        args.urn = urn
        rid, state = self.mocks.new_resource(args)
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, rid, state)

        parent = request.parent or None
        if parent == self.stack_urn:
            parent = None
        implicit = {u for deps in request.propertyDependencies.values() for u in deps.urns}
        options = {
            "ignoreChanges": list(request.ignoreChanges),
            "dependsOn": sorted(_urn_name(u) for u in request.dependencies if u not in implicit),
            "dependencies": sorted(_urn_name(u) for u in request.dependencies),
            "protect": bool(request.protect),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "replaceOnChanges": list(request.replaceOnChanges),
            "retainOnDelete": bool(request.retainOnDelete),
            "aliases": [MessageToDict(a) for a in request.aliases] + list(request.aliasURNs),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "provider": request.provider or None,
        }
        self.registrations.append(Registered(
            type=request.type, name=request.name, urn=urn, id=rid, parent=parent, custom=bool(request.custom),
            inputs=inputs, outputs=dict(state), options=options))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid, object=obj_proto)

    def RegisterResourceOutputs(self, request):  # noqa: N802
        _ensure_event_loop()
        self.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
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
        """Resource views as fleet.plan.guardrails and `fleet plan --json` take them: type, name, parent
        (logical name or None), parentType, inputs (camelCase), options, outputs (with the id)."""
        return [{"type": r.type, "name": r.name, "parent": r.parent_name, "parentType": r.parent_type,
                 "inputs": r.inputs,
                 "options": r.options,
                 "outputs": {**r.outputs, "id": r.id} if r.custom else dict(self.component_outputs.get(r.urn, {}))}
                for r in self.resources]

    def warnings(self) -> list[str]:
        return [m for level, m in self.logs if level in ("WARNING", "ERROR", "CRITICAL")]

    def errors(self) -> list[str]:
        return [m for level, m in self.logs if level in ("ERROR", "CRITICAL")]


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
    """The `config:` mapping of `Pulumi.<stack>.yaml` (values as YAML gives them), read with fleet's
    bounded loader (a bad file is a SpecError: one line per problem)."""
    from fleet.spec.stack import read_stack_values

    return read_stack_values(Path(project_dir) / f"Pulumi.{stack}.yaml")[0]


def use_mocks(*, stack: str = "test", project: str = "fleet", config: Mapping[str, Any] | None = None,
              region: str = REGION, mocks: FleetMocks | None = None,
              ) -> tuple[FleetMocks, RecordingMonitor, _ListHandler]:
    """Install a fresh mock engine (new root stack, config, monitor, RPC and output queues).

    For `@pulumi.runtime.test` style tests: call this first, then build resources and return an
    Output; `run()` below does this and also waits for every RPC and collects the registrations.
    """
    mocks = mocks if mocks is not None else FleetMocks(region=region)
    monitor = RecordingMonitor(mocks)
    handler = _ListHandler()
    logger = logging.getLogger("fleet.plan.engine")  # one logger, its handler replaced per run
    logger.propagate = False
    # INFO and up: the SDK logs several DEBUG lines per resource ("Registering resource ..."); keeping
    # them cost ~10% of a run under the mocks and nothing reads them.
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [handler]
    cfg = {"aws:region": region, **dict(config or {})}
    reset_options(project=project, stack=stack)  # ROOT = None: set_mocks makes a new root stack
    pulumi.runtime.set_all_config(_config_strings(cfg))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, logger=logger, monitor=monitor)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    return mocks, monitor, handler


@contextmanager
def _patched(module: Any, replacements: Mapping[str, Callable[[Callable], Callable]]) -> Iterator[None]:
    """While the mock engine runs, each `module.<name>` becomes `make(original)`; put back afterwards.
    The names are the SDK's private functions: when any of them is missing, nothing is patched."""
    originals = {name: getattr(module, name, None) for name in replacements}
    if None in originals.values():
        yield
        return
    for name, make in replacements.items():
        setattr(module, name, make(originals[name]))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(module, name, original)


def _memoized(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`original`, a function pure in its one argument, keeping one answer per argument for the run;
    unhashable arguments go to `original` every time."""
    answers: dict[Any, Any] = {}

    def memoized(val):
        try:
            return answers[val]
        except KeyError:
            answers[val] = found = original(val)
            return found
        except TypeError:  # unhashable
            return original(val)

    return memoized


def _without_source_positions():
    """No stack trace / source position per registration while the mock engine runs.

    The SDK walks the whole Python stack below each resource's constructor and turns every frame
    into a file URI, for the engine's diagnostics; the mock engine never reads them, and with
    components (deeper stacks) it was ~20% of a run. The SDK takes an empty trace as "no position".
    """
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    return _patched(sdk_resource, {"_get_stack_trace": lambda _original: source_pb2.StackTrace})


def _memoized_type_unwrapping():
    """`pulumi._types.unwrap_type` memoized while the mock engine runs.

    The SDK unwraps a property's type hint (`Optional[Input[T]]` -> `T`) every time it serializes a
    property of a typed `*Args` class: ~37k calls at 60 groups for ~180 distinct hints, and with
    `typing.get_origin` underneath ~5% of a plan. The function is pure in its argument (a type), so
    the run keeps one answer per hint.
    """
    from pulumi import _types

    return _patched(_types, {"unwrap_type": _memoized})


def _memoized_resource_types():
    """`pulumi._types.resource_types` and `resource_pulumi_to_py_names` memoized per class while the
    mock engine runs.

    The SDK reads a resource class's property types and names (its type hints and properties) for
    every resource whose outputs it resolves. A component class's hints are strings (postponed
    annotations), which `typing.get_type_hints` compiles again each time: ~40 us a component against
    ~4 us a provider class, ~0.1 s at 300 groups. Both are pure in the class and the SDK only reads
    the answers, so the run keeps one per class.
    """
    from pulumi import _types

    return _patched(_types, {"resource_types": _memoized, "resource_pulumi_to_py_names": _memoized})


def _unknown_in(val: Any, seen: set[int]) -> bool:
    """The SDK's `rpc.contains_unknowns` walk (same lookups, same order), as a module function."""
    if known_types.is_unknown(val):
        return True
    if id(val) in seen:
        return False
    seen.add(id(val))
    if isinstance(val, dict):
        for k in val:
            if _unknown_in(val[k], seen):
                return True
    elif isinstance(val, list):
        for x in val:
            if _unknown_in(x, seen):
                return True
    return False


def _contains_unknowns(val: Any) -> bool:
    return _unknown_in(val, set())


def _acyclic_unknown_checks():
    """`pulumi.runtime.rpc.contains_unknowns` without a reference cycle per call while the mock engine runs.

    The SDK's function defines an inner function that calls itself: each call leaves a function and its
    closure cell referring to each other, which only cyclic GC frees, and a run has it off. It is called
    for most values the SDK resolves (~140k calls, ~57 MiB never freed, at 100 groups). Same answers
    and the same lookups in the same order (an output type's `__getitem__` may warn); every caller in
    the SDK looks the name up in `rpc` at call time.
    """
    return _patched(rpc, {"contains_unknowns": lambda _original: _contains_unknowns})


def run(fn: Callable[[], Any], *, stack: str = "test", project: str = "fleet",
        config: Mapping[str, Any] | None = None, region: str = REGION, raise_errors: bool = True,
        mocks: FleetMocks | None = None) -> Run:
    """Run `fn` as a Pulumi program on a fresh mock engine; wait for every RPC and output.

    `config` keys are `namespace:key` (e.g. "fleet:groups"); structured values may be given as
    Python objects, they are passed on as JSON strings like the CLI does. With
    `raise_errors=False` an exception from the program is returned in `Run.error`.
    """
    mocks, monitor, handler = use_mocks(stack=stack, project=project, config=config, region=region, mocks=mocks)
    result: dict[str, Any] = {}

    def body() -> None:
        value = fn()
        root = get_root_resource()
        exported = dict(root.outputs) if root is not None else {}
        result["value"], result["outputs"] = _sync_await(pulumi.Output.from_input([value, exported]).future())

    error = None
    # No cyclic GC during the run: a run is a bounded batch whose heap only grows (every Output,
    # future and registration stays reachable until it ends), so each full collection re-walks
    # everything registered so far: 40% of the wall time at 100 groups, growing with the fleet
    # (bench/RESULTS.md, "Program cost"). Without it the peak RSS grows ~4%; one collection at the end.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with (_without_source_positions(), _memoized_type_unwrapping(), _memoized_resource_types(),
              _acyclic_unknown_checks()):
            _sync_await(run_pulumi_func(body))
    except Exception as exc:  # noqa: BLE001 - handed to the caller
        if raise_errors:
            raise
        error = exc
    finally:
        if gc_was_enabled:
            gc.enable()
            # One full pass now, rather than the run's objects (all still in generation 0) being
            # walked again by each generation's next automatic collection.
            gc.collect()
    # registrations arrive from the SDK's thread pool in no fixed order: sort for determinism
    return Run(resources=sorted(monitor.registrations, key=lambda x: x.urn), outputs=result.get("outputs") or {},
               value=result.get("value"), logs=list(handler.records), calls=list(mocks.calls),
               component_outputs=dict(monitor.component_outputs), error=error)


def run_program(stack: str, config: Mapping[str, Any] | None = None, *, program: Path = PROGRAM,
                raise_errors: bool = True, project: str = "fleet", offline: bool = False,
                project_dir: Path | None = None) -> Run:
    """Run `program` (a project's `__main__.py`, via runpy as the Pulumi CLI does) for `stack`.

    `config` defaults to the project's `Pulumi.<stack>.yaml`. The program's directory is put first
    on sys.path for the run, as Pulumi's Python language host does. `project_dir`: a folder without
    a program of its own that `program` (this checkout's) runs for; it reaches the program as
    `FLEET_PROJECT_DIR`, so every file comes from that folder.
    """
    program = Path(program)
    cfg = dict(stack_config(stack, project_dir or program.parent) if config is None else config)
    region = str(cfg.get("aws:region", REGION))
    init = {"FLEET_PROJECT_DIR": str(Path(project_dir).resolve())} if project_dir is not None else None

    def main() -> None:
        runpy.run_path(str(program), init_globals=init, run_name="__main__")

    project_dir = str(program.parent)
    added = project_dir not in sys.path
    if added:
        sys.path.insert(0, project_dir)
    try:
        return run(main, stack=stack, project=project, config=cfg, region=region, raise_errors=raise_errors,
                   mocks=FleetMocks(region=region, offline=offline))
    finally:
        if added and project_dir in sys.path:
            sys.path.remove(project_dir)


# -- the offline plan ----------------------------------------------------------------------------

class PlanInputError(SpecError):
    """Bad input the program itself reported (its error log lines, one problem each)."""

    def __init__(self, lines: list[str]):
        Exception.__init__(self, "\n".join(lines))
        self.problems = list(lines)


def project_name(project_dir: Path) -> str:
    """`name:` of Pulumi.yaml (read as a line: the rest of the file need not parse), else "fleet"."""
    from fleet.spec.yamlfile import MAX_BYTES

    try:  # the bounded read the program's own reader of Pulumi.yaml makes (one read per run)
        text = read_bytes(Path(project_dir) / "Pulumi.yaml", MAX_BYTES)[:MAX_BYTES].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return "fleet"
    found = re.search(r"^name:[ \t]*['\"]?([^'\"\s#]+)", text, re.M)
    return found.group(1) if found else "fleet"


def _load_stack_config(project_dir: Path, stack: str, required: bool = True) -> dict[str, Any]:
    """The project's `Pulumi.<stack>.yaml` config. A missing file is bad input when the stack was
    named (with "did you mean"); a stack nobody named (the default) without one runs on the
    defaults, as a new Pulumi stack does."""
    from fleet.spec.project import missing_stack

    path = Path(project_dir) / f"Pulumi.{stack}.yaml"
    if not path.exists():
        if not required:
            return {}
        raise SpecError([missing_stack(project_dir, stack)])
    return stack_config(stack, project_dir)


def _validate(project_dir: Path, stack: str, nodes_path: Path, config: dict[str, Any]):
    """Every nodes.yaml / stack file problem, with line numbers, before the program runs."""
    from fleet.spec.load import load_fleet

    if (Path(project_dir) / f"Pulumi.{stack}.yaml").is_file():
        return load_fleet(nodes_path, stack, project_dir=project_dir)  # the stack file, with line numbers
    return load_fleet(nodes_path, stack, stack_values=config, project_dir=project_dir)


def _jsonable(value: Any, project_dir: str) -> Any:
    """Plain JSON values: secrets masked, assets/archives as their path (the project's absolute path
    shown as `<project>`: the engine identifies an asset by its content hash, pulumi/pulumi#548) and
    content hash. Any other string is shown as is: an absolute checkout path in a resource input re-runs
    or replaces the resource from every other checkout, so the plan must show it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's numbers are doubles: 2.0 is shown as 2
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if rpc.is_rpc_secret(value):
        return "[secret]"
    if isinstance(value, Mapping):  # keys sorted: the same plan whatever the map order of the wire format
        return {str(k): _jsonable(v, project_dir) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, project_dir) for v in value]
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        kind = "fileAsset" if isinstance(value, pulumi.FileAsset) else "fileArchive"
        # a relative path is the project's (Pulumi runs the program there), not the caller's directory
        return {kind: str(value.path).replace(project_dir, PROJECT_PLACEHOLDER),
                "sha256": _path_hash(Path(project_dir) / str(value.path))}
    if isinstance(value, pulumi.StringAsset):
        return {"stringAsset": hashlib.sha256(value.text.encode()).hexdigest()}
    if isinstance(value, (pulumi.RemoteAsset, pulumi.RemoteArchive)):
        return {"remote": value.uri}
    if isinstance(value, pulumi.AssetArchive):
        return {"assetArchive": {k: _jsonable(v, project_dir) for k, v in sorted(value.assets.items())}}
    return str(value)


def _path_hash(path: Path) -> str | None:
    """sha256 over a file, or over a directory's files (relative names and contents, sorted)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def _plan_options(r: Registered) -> dict[str, Any]:
    """The plan's options, in PLAN_OPTIONS order. Aliases that only carry the provider SDK's old type
    token (pulumi-aws adds one per renamed type, on every resource of that type) are left out."""
    options = {k: r.options.get(k) for k in PLAN_OPTIONS}
    options["aliases"] = [a for a in options["aliases"] or [] if not _type_only_alias(a)]
    return options


def _type_only_alias(alias: Any) -> bool:
    spec = alias.get("spec") if isinstance(alias, Mapping) else None
    return isinstance(spec, Mapping) and set(spec) <= {"type", "parentUrn"} and not spec.get("parentUrn")


def _tree(resources: list[Registered]) -> list[tuple[Registered, int]]:
    """Depth first by URN: each resource right after its parent, siblings by (type, name); with depth."""
    urns = {r.urn for r in resources}
    children: dict[str | None, list[Registered]] = {}
    for r in resources:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    out: list[tuple[Registered, int]] = []

    def visit(parent: str | None, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda x: (x.type, x.name)):
            out.append((r, depth))
            visit(r.urn, depth + 1)

    visit(None, 0)
    return out


def group_members(resources: list[Registered], groups: list[str]) -> dict[str, set[str]]:
    """URNs of each group's resources: its NodeGroup with everything under it, plus resources
    elsewhere tagged `fleet:group: <group>` (its instance security group and rules). One pass over
    the resources for all groups (linear in the plan's size, whatever the number of groups)."""
    by_slug = {slug(g): g for g in groups}
    wanted = set(groups)
    kids: dict[str, list[str]] = {}
    members: dict[str, set[str]] = {g: set() for g in groups}
    roots: list[tuple[str, str]] = []
    for r in resources:
        if r.parent is not None:
            kids.setdefault(r.parent, []).append(r.urn)
        if r.type == "fleet:node_group:NodeGroup" and r.name in by_slug:
            roots.append((by_slug[r.name], r.urn))
        tagged = tag_value(r.inputs, "fleet:group")
        if tagged in wanted:
            members[tagged].add(r.urn)
    for g, urn in roots:
        picked, todo = members[g], [urn]
        while todo:
            u = todo.pop()
            if u not in picked:
                picked.add(u)
                todo += kids.get(u, [])
    return members


@dataclass
class PlanResult:
    """The plan (`data`, the JSON document), each resource's depth in the tree and its group
    (None: shared), and the engine run it came from."""

    data: dict[str, Any]
    depths: list[int]
    groups: list[str | None]
    homes: list[tuple[str, str]]  # (type, name) of each resource's top-level ancestor (itself at the top)
    run: Run
    group_names: list[str]
    where: str = ""  # project directory, nodes file and stack file, for the plan's header


def plan(project_dir: str | Path, stack: str, nodes: str | Path | None = None,
         group: str | None = None) -> dict[str, Any]:
    """The offline plan of `stack` as the JSON document (see `plan_result`)."""
    return plan_result(project_dir, stack, nodes, group).data


def plan_result(project_dir: str | Path, stack: str, nodes: str | Path | None = None,
                group: str | None = None, stack_named: bool = True) -> PlanResult:
    """See `_plan_result`; every project file is read once for the whole plan."""
    with one_read_per_file():
        return _plan_result(project_dir, stack, nodes, group, stack_named)


def _plan_result(project_dir: str | Path, stack: str, nodes: str | Path | None = None,
                 group: str | None = None, stack_named: bool = True) -> PlanResult:
    """The offline plan of `stack`: the project's real `__main__.py` (the checkout's program when the
    project has none: a folder holding only a nodes file) under the mock engine.

    `nodes` replaces the nodes file (passed to the program as `fleet:nodesFile`, absolute, so the
    program reads the project's file whichever program runs); `stack_named=False` lets a stack
    without a stack file run on the defaults (fleet plan's default stack); `group` keeps
    that group's resources only (see `group_members`; shared ones are left out), its stack output
    and the violations found on them (guardrails always see the whole program: links such as the
    ALB's security group need the shared resources). Raises SpecError (one problem per line) on
    bad input: nodes.yaml and the stack file are checked before the program runs.
    """
    project_dir = _display(Path(project_dir).resolve())
    config = _load_stack_config(project_dir, stack, required=stack_named)
    if nodes is None:
        nodes_file = config.get("fleet:nodesFile")
        nodes = project_dir / (nodes_file if isinstance(nodes_file, str) and nodes_file else "nodes.yaml")
    nodes_path = _display(Path(nodes).resolve())
    program = project_dir.resolve() / "__main__.py"
    try:  # relative to the project, as a stack file says it, when the project's own program reads it
        config["fleet:nodesFile"] = Path(nodes).resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        config["fleet:nodesFile"] = str(Path(nodes).resolve())
    if not program.is_file():
        config["fleet:nodesFile"] = str(Path(nodes).resolve())
    fleet = _validate(project_dir, stack, nodes_path, config)
    if group is not None:
        fleet.group(group)  # SpecError with "did you mean" for an unknown group

    project = project_name(project_dir)
    own = program.is_file()
    r = run_program(stack, config, program=program if own else PROGRAM, raise_errors=False,
                    project=project, offline=True, project_dir=None if own else project_dir.resolve())
    if r.error is not None:
        if isinstance(r.error, pulumi.RunError) and r.errors():
            raise PlanInputError(r.errors())
        raise r.error
    violations = check_all(r.views(), stack)
    outputs = dict(r.outputs)
    members = group_members(r.resources, list(fleet.groups))
    owner = {urn: g for g, urns in members.items() for urn in urns}
    tree = _tree(r.resources)
    homes: dict[str, tuple[str, str]] = {}
    top: tuple[str, str] = ("", "")
    for x, depth in tree:
        top = (x.type, x.name) if depth == 0 else top
        homes[x.urn] = top
    if group is not None:
        keep = members[group]
        tree = [(x, d) for x, d in tree if x.urn in keep]
        names = {x.name for x, _ in tree}
        violations = [v for v in violations if v["resource"] in names]
        exported = outputs.get("groups")
        outputs = {"groups": {group: exported[group]}} if isinstance(exported, Mapping) and group in exported else {}
    where = str(project_dir.resolve())
    resources = [{"type": x.type, "name": x.name, "parent": x.parent_name,
                  "inputs": _jsonable(x.inputs, where),
                  "options": {k: _jsonable(v, where) for k, v in _plan_options(x).items()}}
                 for x, _ in tree]
    data = {"project": project, "stack": stack, "resources": resources, "outputs": _jsonable(outputs, where),
            "violations": sorted(violations, key=lambda v: (v["policy"], v["resource"], v["message"]))}
    stack_path = Path(project_dir) / f"Pulumi.{stack}.yaml"
    context = (f"directory {Path(project_dir).resolve()}, nodes {nodes_path}, "
             + (f"stack file {_display(stack_path.resolve())}" if stack_path.is_file()
                else f"no Pulumi.{stack}.yaml: stack defaults"))
    return PlanResult(data=data, depths=[d for _, d in tree], groups=[owner.get(x.urn) for x, _ in tree],
                      homes=[homes[x.urn] for x, _ in tree], run=r,
                      group_names=list(fleet.groups) if group is None else [group], where=context)


def _display(path: Path) -> Path:
    """`path` relative to the current directory when it is below it (how problems name files)."""
    try:
        return path.relative_to(Path(os.getcwd()).resolve()) if path.is_absolute() else path
    except ValueError:
        return path
