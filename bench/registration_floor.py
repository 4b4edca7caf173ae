"""The registration floor: the least a program can do to make `fleet plan`'s registrations.

`record(project, out)` (untimed) runs the project's program on the plan's mock engine and writes down,
in call order, every call the program makes into the SDK: each pulumi_aws / pulumi_command resource
constructor with its Python arguments (typed `*Args` objects, options, assets), each component's
registration and outputs, each invoke and each stack export. An Output the program passed is written
down as its value plus the resources it depends on.

`replay(recording)` (the timed floor, run as its own process) makes the very same calls through the
very same provider classes on the same mock engine: the same typed Args, the same parents, the same
`depends_on` and property dependencies (each recorded Output becomes a resolved Output over the same
resources), the same invokes. What it leaves out is the program's own logic: reading nodes.yaml,
merging, rendering, hashing, and the `apply` callbacks that computed values the recording already has.
`verify` checks, untimed, that the replay registered exactly what the program did (types, names,
parents, inputs, options and dependencies), so the floor cannot drift into doing less.

    python bench/registration_floor.py RECORDING.pickle      # the timed floor (GC off, as the plan)
"""

from __future__ import annotations

import asyncio
import enum
import gc
import importlib
import inspect
import pickle
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- recording (untimed) ----------------------------------------------------------------------------

class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.index: dict[int, int] = {}  # id(resource object) -> its number
        self.keep: list[Any] = []        # every recorded object stays alive, so ids stay unique

    def resource(self, obj: Any) -> int:
        self.keep.append(obj)
        self.index[id(obj)] = len(self.index)
        return self.index[id(obj)]

    def walk(self, value: Any) -> Any:
        """Plain, picklable data for a Python argument (tagged tuples for what the SDK gives meaning)."""
        import pulumi
        from pulumi import _types

        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, str):
            return str(value)
        if isinstance(value, pulumi.Resource):
            return ("res", self.index[id(value)])
        if isinstance(value, pulumi.Output):
            data = value._data.result()  # the run is over: every Output is resolved
            deps = sorted(self.index[id(r)] for r in data.resources)
            return ("out", deps, self.walk(data.value), bool(data.is_secret), bool(data.is_known))
        if _types.is_input_type(type(value)):
            fields = _types.input_type_to_untranslated_dict(value)
            return ("args", _qualified(type(value)), {k: self.walk(v) for k, v in fields.items()})
        if isinstance(value, (pulumi.ResourceOptions, pulumi.InvokeOptions, pulumi.InvokeOutputOptions)):
            params = inspect.signature(type(value).__init__).parameters
            fields = {k: v for k, v in vars(value).items() if v is not None and k in params}
            return ("opts", _qualified(type(value)), {k: self.walk(v) for k, v in fields.items()})
        if isinstance(value, pulumi.CustomTimeouts):
            return ("timeouts", {k: v for k, v in vars(value).items() if v is not None})
        if isinstance(value, pulumi.Alias):
            return ("alias", {k.lstrip("_"): self.walk(v) for k, v in vars(value).items() if v is not None})
        if isinstance(value, pulumi.StringAsset):
            return ("asset", "StringAsset", value.text)
        if isinstance(value, pulumi.FileAsset):
            return ("asset", "FileAsset", str(value.path))
        if isinstance(value, pulumi.FileArchive):
            return ("asset", "FileArchive", str(value.path))
        if isinstance(value, pulumi.AssetArchive):
            return ("asset", "AssetArchive", {k: self.walk(v) for k, v in value.assets.items()})
        if isinstance(value, (list, tuple)):
            return ("list", [self.walk(v) for v in value])
        if isinstance(value, dict):
            return ("dict", {str(k): self.walk(v) for k, v in value.items()})
        raise TypeError(f"the recording does not know {type(value)!r}: teach _Recorder.walk")


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resolve(name: str) -> Any:
    module, _, qual = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def sdk_names(names: dict) -> tuple[list[Any], list[Any]]:
    """(resource classes, invoke functions) the program's source names (`bench_program.program_names`)."""
    import pulumi_aws
    import pulumi_command

    classes, functions = [], []
    for module, attr in names["aws"]:
        obj = getattr(getattr(pulumi_aws, module), attr) if attr else getattr(pulumi_aws, module)
        (classes if isinstance(obj, type) else functions if callable(obj) else []).append(obj)
    for attr in names["command"]:
        obj = getattr(pulumi_command.local, attr)
        (classes if isinstance(obj, type) else functions).append(obj)
    return [c for c in classes if _is_custom(c)], functions


def _is_custom(cls: type) -> bool:
    import pulumi

    return issubclass(cls, pulumi.CustomResource)


def record(project: Path, names: dict, out: Path) -> dict:
    """Run the program once under the recorder; write the recording; return counts for the bench."""
    import pulumi

    from fleet.plan.engine import run_program, stack_config

    rec = _Recorder()
    raw: list[tuple] = []  # events with live objects; walked after the run, when every Output is resolved
    classes, functions = sdk_names(names)

    def wrap_class(cls: type) -> None:
        original = cls.__init__

        def init(self, resource_name, *args, **kwargs):
            if type(self) is cls:
                raw.append(("custom", _qualified(cls), resource_name, args, kwargs, rec.resource(self)))
            original(self, resource_name, *args, **kwargs)

        cls.__init__ = init

    for cls in classes:
        wrap_class(cls)

    component_init = pulumi.ComponentResource.__init__
    register_outputs = pulumi.ComponentResource.register_outputs

    def component(self, t, name, props=None, opts=None, remote=False, package_ref=None):
        if t != "pulumi:pulumi:Stack":
            raw.append(("component", t, name, opts, rec.resource(self)))
        component_init(self, t, name, props, opts, remote, package_ref)

    def outputs(self, value):
        if id(self) in rec.index:
            raw.append(("outputs", rec.index[id(self)], value))
        register_outputs(self, value)

    pulumi.ComponentResource.__init__ = component
    pulumi.ComponentResource.register_outputs = outputs

    def wrap_function(module: Any, attr: str, fn: Any) -> None:
        def call(*args, **kwargs):
            raw.append(("invoke", _qualified(fn), args, kwargs))
            return fn(*args, **kwargs)

        setattr(module, attr, call)

    for fn in functions:
        wrap_function(sys.modules[fn.__module__], fn.__name__, fn)
        for module in list(sys.modules.values()):  # pulumi_aws re-exports functions in its package
            if getattr(module, "__name__", "").startswith("pulumi_aws") and getattr(module, fn.__name__, None) is fn:
                wrap_function(module, fn.__name__, fn)
    export = pulumi.export

    def exporting(name, value):
        raw.append(("export", name, value))
        export(name, value)

    pulumi.export = exporting

    r = run_program("staging", stack_config("staging", project), program=project / "__main__.py", offline=True)
    events = []
    for ev in raw:
        if ev[0] == "custom":
            events.append(("custom", ev[1], ev[2], rec.walk(list(ev[3]))[1], rec.walk(ev[4])[1], ev[5]))
        elif ev[0] == "component":
            events.append(("component", ev[1], ev[2], rec.walk(ev[3]), ev[4]))
        elif ev[0] == "outputs":
            events.append(("outputs", ev[1], rec.walk(ev[2])))
        elif ev[0] == "invoke":
            events.append(("invoke", ev[1], rec.walk(list(ev[2]))[1], rec.walk(ev[3])[1]))
        else:
            events.append(("export", ev[1], rec.walk(ev[2])))
    expected = [_comparable(x) for x in r.resources]
    out.write_bytes(pickle.dumps({"events": events, "expected": expected}, protocol=pickle.HIGHEST_PROTOCOL))
    calls: dict[str, int] = {}
    for token, _ in r.calls:
        calls[token] = calls.get(token, 0) + 1
    edges = sum(len(x.options["dependencies"]) for x in r.resources)
    return {"resources": len(r.resources), "invokes": calls, "edges": edges,
            "typed_args": sum(_count_args(e) for e in events)}


def _count_args(value: Any) -> int:
    if isinstance(value, tuple) and value and value[0] == "args":
        return 1 + sum(_count_args(v) for v in value[2].values())
    if isinstance(value, (tuple, list)):
        return sum(_count_args(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_args(v) for v in value.values())
    return 0


def _comparable(x: Any) -> tuple:
    def stable(value: Any) -> str:  # assets print their address: compare their kind and path instead
        return re.sub(r"<pulumi\.asset\.(\w+) object at 0x[0-9a-f]+>", r"<\1>", repr(value))

    return (x.type, x.name, x.parent, x.custom, stable(x.inputs), stable(sorted(x.options.items())))


# -- replay (the timed floor) -----------------------------------------------------------------------

def replay(recording: dict) -> None:
    """Make the recorded calls; call inside the mock engine's `run`."""
    import pulumi

    made: dict[int, Any] = {}
    loop = asyncio.get_event_loop()

    def ready(value: Any) -> asyncio.Future:
        fut = loop.create_future()
        fut.set_result(value)
        return fut

    def build(value: Any) -> Any:
        if not isinstance(value, tuple):
            return value
        tag = value[0]
        if tag == "list":
            return [build(v) for v in value[1]]
        if tag == "dict":
            return {k: build(v) for k, v in value[1].items()}
        if tag == "res":
            return made[value[1]]
        if tag == "out":
            _, deps, inner, secret, known = value
            return pulumi.Output({made[i] for i in deps}, ready(build(inner)), ready(known), ready(secret))
        if tag == "args":
            return _resolve(value[1])(**{k: build(v) for k, v in value[2].items()})
        if tag == "opts":
            return _resolve(value[1])(**{k: build(v) for k, v in value[2].items()})
        if tag == "timeouts":
            return pulumi.CustomTimeouts(**value[1])
        if tag == "alias":
            return pulumi.Alias(**{k: build(v) for k, v in value[1].items()})
        if tag == "asset":
            kind, arg = value[1], value[2]
            if kind == "AssetArchive":
                return pulumi.AssetArchive({k: build(v) for k, v in arg.items()})
            return getattr(pulumi, kind)(arg)
        raise TypeError(f"unknown recorded value {tag!r}")

    for ev in recording["events"]:
        kind = ev[0]
        if kind == "custom":
            _, cls, name, args, kwargs, index = ev
            made[index] = _resolve(cls)(name, *build(("list", args)), **build(("dict", kwargs)))
        elif kind == "component":
            _, t, name, opts, index = ev
            made[index] = pulumi.ComponentResource(t, name, None, build(opts))
        elif kind == "outputs":
            made[ev[1]].register_outputs(build(ev[2]))
        elif kind == "invoke":
            _resolve(ev[1])(*build(("list", ev[2])), **build(("dict", ev[3])))
        else:
            pulumi.export(ev[1], build(ev[2]))


def run_replay(recording: dict):
    from fleet.plan.engine import FleetMocks, run

    return run(lambda: replay(recording), stack="staging", mocks=FleetMocks(offline=True))


def verify(path: Path) -> None:
    """Raise unless the replay registers exactly what the recorded program did."""
    recording = pickle.loads(path.read_bytes())
    r = run_replay(recording)
    got = [_comparable(x) for x in r.resources]
    expected = recording["expected"]
    if got != expected:
        if len(got) != len(expected):
            raise SystemExit(f"the floor registered {len(got)} resources, the program {len(expected)}")
        at = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise SystemExit(f"the floor registered something else at #{at}:\n  floor: {got[at]}\n"
                         f"  program: {expected[at]}")


if __name__ == "__main__":
    gc.disable()  # as the plan does (fleet/plan/cli.py): the floor pays what the plan pays
    sys.path.insert(0, str(ROOT))
    rec = pickle.loads(Path(sys.argv[1]).read_bytes())
    result = run_replay(rec)
    assert len(result.resources) == len(rec["expected"]), (len(result.resources), len(rec["expected"]))
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(0)
