"""Typed, frozen node groups with every default filled in.

Built from a merged, validated mapping (see fleet/spec/load.py). Defaults here must match the
`default` fields of schema/nodes.schema.json; tests/test_schema.py keeps the two in step.
Nested mappings given by the user are completed field by field, so
`scaling: {burst: {cpu: 90}}` keeps the other seed-004 burst defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


def frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class LockedImage:
    """What `fleet lock` resolved a source_ami filter to (nodes.lock.json; fleet/spec/lock.py)."""

    ami_id: str
    name: str
    creation_date: str
    root_device_name: str
    resolved_at: str = ""  # the EC2 endpoint `fleet lock` asked ("" in locks written before it was recorded)


@dataclass(frozen=True)
class SourceAmiFilter:
    name: str
    owners: tuple[str, ...]
    locked: LockedImage | None = None  # set by fleet.spec.load from the lock file: the image everyone uses


@dataclass(frozen=True)
class Spot:
    instance_types: tuple[str, ...] = ()
    allocation_strategy: str = "price-capacity-optimized"


@dataclass(frozen=True)
class OnDemand:
    base: int = 1
    max: int | None = None  # None: derived from node_max (see Autoscale.on_demand_max)


@dataclass(frozen=True)
class Autoscale:
    node_min: int = 1
    node_max: int = 4
    timeout: int = 300
    spot: Spot = field(default_factory=Spot)
    on_demand: OnDemand = field(default_factory=OnDemand)

    @property
    def on_demand_max(self) -> int:
        """Cap of the on-demand fallback: as given, else node_max (it may have to carry the group)."""
        return self.on_demand.max if self.on_demand.max is not None else self.node_max


@dataclass(frozen=True)
class Image:
    builder: str = "packer"
    keep: int = 10
    communicator: str = "ssh"
    ssh_username: str = "ubuntu"
    path: str | None = None
    command: str | None = None
    boot_mode: str = "uefi-preferred"
    architecture: str = "x86_64"
    skip_zero_blocks_unsafe_if_encrypted: bool = False  # raw only; refused by a guardrail (encrypted volumes)


@dataclass(frozen=True)
class Boot:
    """How an instance becomes ready at boot (README "Boot modes")."""

    converge: bool | None = None  # None: on for image.builder ami, off for baked images (Group.converges)
    chef_package: str | None = None  # a .deb/.rpm in the repository, installed at boot when chef-solo is absent


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/"
    interval: int = 5
    timeout: int = 2
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    matcher: str = "200-399"


@dataclass(frozen=True)
class Http:
    port: int
    health_check: HealthCheck = field(default_factory=HealthCheck)
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    deregistration_delay: int = 30
    slow_start: int = 0
    priority: int | None = None


@dataclass(frozen=True)
class Burst:
    cpu: float = 85
    periods: int = 2
    period: int = 60
    add_percent: int = 20


@dataclass(frozen=True)
class ScaleIn:
    cpu: float = 30
    periods: int = 10
    period: int = 60
    remove_percent: int = 10
    cooldown: int = 300


@dataclass(frozen=True)
class OnDemandScaling:
    target_cpu: float = 75
    burst_cpu: float = 95


@dataclass(frozen=True)
class Scaling:
    target_cpu: float = 50
    burst: Burst = field(default_factory=Burst)
    scale_in: ScaleIn = field(default_factory=ScaleIn)
    on_demand: OnDemandScaling = field(default_factory=OnDemandScaling)


@dataclass(frozen=True)
class Rollout:
    """How a new launch template version reaches the group (fleet/ops/rollout.py)."""

    bake_time: int = 300  # soak after the on-demand canary, health alarms watched, before spot
    # blue_green (http groups only: two slots behind weighted target groups, fleet/ops/bluegreen.py) or
    # refresh (instance refresh of the one pair, fleet/ops/rollout.py); None: blue_green when the group has http
    strategy: str | None = None
    canary_weight: int = 5  # blue_green: percent of the group's traffic the new slot takes during the soak
    standby: int = 3600  # blue_green: seconds the previous slot stays at full size (rollback without a launch)
    standby_min: int | None = None  # blue_green: instances the standby keeps afterwards; None: node_min


@dataclass(frozen=True)
class Volume:
    size: int = 20
    type: str = "gp3"


@dataclass(frozen=True)
class Group:
    """One merged node group (after __base__ and the stack's overrides)."""

    name: str
    instance_type: str
    source_ami: str | SourceAmiFilter | None = None
    description: str = ""
    security_groups: tuple[str, ...] = ()
    default_attributes: Mapping[str, Any] = field(default_factory=lambda: frozen_map(None))
    run_list: tuple[str, ...] = ()
    post_run_list: tuple[str, ...] = ()
    containers: bool = False
    autoscale: Autoscale | None = None
    instances: int = 1
    image: Image = field(default_factory=Image)
    boot: Boot = field(default_factory=Boot)
    http: Http | None = None
    scaling: Scaling = field(default_factory=Scaling)
    volume: Volume = field(default_factory=Volume)
    rollout: Rollout = field(default_factory=Rollout)
    tags: Mapping[str, str] = field(default_factory=lambda: frozen_map(None))
    region: str | None = None  # seed 001's key: must equal the stack's aws:region (fleet.spec.load)

    @property
    def blue_green(self) -> bool:
        """Deploys into the idle one of two slots and shifts listener-rule weights (http groups by default)."""
        if self.autoscale is None or self.http is None:
            return False
        return (self.rollout.strategy or "blue_green") == "blue_green"

    @property
    def converges(self) -> bool:
        """Runs its role at boot from the cookbook bundle: `boot.converge`; by default only `builder: ami`
        groups with a run list (a baked image already ran its role; an empty run list has nothing to run)."""
        if self.boot.converge is not None:
            return self.boot.converge
        return self.image.builder == "ami" and bool(self.run_list or self.post_run_list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what `fleet show` prints)."""
        return to_plain(self)


def to_plain(value: Any) -> Any:
    """Dataclasses, read-only mappings and tuples as plain dicts and lists (JSON-able)."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def _build(cls: type, raw: Mapping[str, Any] | None, nested: Mapping[str, Any] | None = None) -> Any:
    """Instantiate dataclass `cls` from `raw`, building nested dataclasses via `nested`."""
    raw = dict(raw or {})
    for key, build in (nested or {}).items():
        if key in raw:
            raw[key] = build(raw[key])
    for f in dataclasses.fields(cls):
        if f.name in raw and isinstance(raw[f.name], list):
            raw[f.name] = tuple(raw[f.name])
    return cls(**raw)


def build_group(name: str, merged: Mapping[str, Any]) -> Group:
    """Turn a merged, validated group mapping into a Group with all defaults."""
    raw = dict(merged)
    raw.pop("type", None)  # seed 001's `type: amazon-ebs` is image.builder packer (the default; rules check it)
    source = raw.get("source_ami")
    if isinstance(source, Mapping):
        raw["source_ami"] = SourceAmiFilter(source["name"], tuple(source["owners"]))
    autoscale = raw.get("autoscale", False)
    raw["autoscale"] = (
        None
        if autoscale is False
        else _build(Autoscale, autoscale,
                    {"spot": lambda v: _build(Spot, v), "on_demand": lambda v: _build(OnDemand, v)})
    )
    if "image" in raw:
        raw["image"] = _build(Image, raw["image"])
    if "boot" in raw:
        raw["boot"] = _build(Boot, raw["boot"])
    if raw.get("http") is not None:
        hc = raw["http"].get("health_check", {})
        hc = {"path": hc} if isinstance(hc, str) else hc
        raw["http"] = _build(Http, {**raw["http"], "health_check": _build(HealthCheck, hc)})
    if "scaling" in raw:
        raw["scaling"] = _build(
            Scaling,
            raw["scaling"],
            {
                "burst": lambda v: _build(Burst, v),
                "scale_in": lambda v: _build(ScaleIn, v),
                "on_demand": lambda v: _build(OnDemandScaling, v),
            },
        )
    if "volume" in raw:
        raw["volume"] = _build(Volume, raw["volume"])
    if "rollout" in raw:
        raw["rollout"] = _build(Rollout, raw["rollout"])
    for key in ("default_attributes", "tags"):
        if key in raw:
            raw[key] = frozen_map(raw[key])
    return _build(Group, {**raw, "name": name})
