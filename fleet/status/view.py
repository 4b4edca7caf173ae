"""`fleet status` as a table (rich): one row per group, then one per ASG of its pair (per slot with
blue/green) and per target group where a listener rule weighs two; below the table, one line per drift
or health problem. Reads only the report (fleet.status.join)."""

from __future__ import annotations

from rich import box
from rich.console import Group as Lines
from rich.table import Table
from rich.text import Text

COLUMNS = (("group", {"no_wrap": True}), ("state / part", {"no_wrap": True}), ("slot", {}),
           ("image", {"no_wrap": True}), ("lt", {"justify": "right"}), ("want", {"justify": "right"}),
           ("up", {"justify": "right"}), ("pend", {"justify": "right"}), ("bad", {"justify": "right"}),
           ("spot/od", {"justify": "right"}), ("targets ok/bad/drain", {"justify": "right"}),
           ("weight", {"justify": "right"}), ("in flight", {}))


def refresh_text(refresh: dict | None) -> str:
    """An instance refresh in flight (or the last one, when it did not succeed), in a few words."""
    if not refresh or (not refresh["in_flight"] and refresh["status"] in ("Successful", None)):
        return ""
    text = f"refresh {refresh['status']}"
    if not refresh["in_flight"]:
        return text
    if refresh["percent_complete"] is not None:
        text += f" {refresh['percent_complete']}%"
    if refresh["bake_time_left"] is not None:
        text += f", bake {refresh['bake_time_left']}s left"
    elif refresh["status"] == "Baking" and refresh["bake_time"] is not None:
        text += f", bake {refresh['bake_time']}s"
    return text + (", rollback possible" if refresh["rollback_possible"] else ", no rollback")


def verdict(group: dict) -> Text:
    if group["declared"] is None:
        return Text("unknown", style="magenta")
    if group["drift"]:
        return Text("drifted", style="yellow")
    if not group["healthy"]:
        return Text("unhealthy", style="red")
    if group["refresh_in_flight"] or group.get("traffic_split"):
        return Text("rolling", style="cyan")
    return Text("ok", style="green")


def cover_text(group: dict) -> str:
    """The spot reconciler's on-demand extra and its last decision."""
    cover = group["spot_cover"]
    if not cover:
        return ""
    text = f"+{cover['extra']} od covering spot" if cover["extra"] else ""
    last = cover.get("last") or {}
    if last.get("action"):
        text += f"{'; ' if text else ''}reconciler {last['action']}" + (f" at {last['at']}" if last.get("at") else "")
    return text


def _short_image(image_id: str | None, drifted: bool) -> Text:
    return Text(image_id or "?", style="yellow" if drifted else "")


def table(rep: dict) -> Table:
    t = Table(title=f"fleet status: stack {rep['stack']}", caption=f"read {rep['read_at']}", box=box.SIMPLE_HEAD,
              title_justify="left", caption_justify="left", pad_edge=False)
    for col, kw in COLUMNS:
        t.add_column(col, **kw)
    blank = [""] * len(COLUMNS)
    for g in rep["groups"]:
        tgs = g["target_groups"]
        targets = "/".join(str(sum(tg[k] for tg in tgs)) for k in ("healthy", "unhealthy", "draining")) if tgs else ""
        t.add_row(Text(g["group"], style="bold"), verdict(g), *blank[2:9],
                  f"{g['split']['spot']}/{g['split']['on_demand']}", targets, "", cover_text(g))
        for a in g["asgs"]:
            version = a["launch_template_version"]
            behind = a["latest_version"] is not None and version != str(a["latest_version"])
            in_slot = f" (slot {a['slot']})" if a["slot"] else ""
            label = f"{a['capacity']} ASG{in_slot} runs "
            drifted = g["declared"] is not None and any(line.startswith(label) for line in g["drift"])
            slot = a["slot"] or ""
            if slot and g.get("live_slot"):
                slot += " live" if a.get("live") else " idle"
            t.add_row("", a["capacity"] or "?", slot, _short_image(a["image_id"], drifted),
                      Text(f"{version}<{a['latest_version']}" if behind else version, style="yellow" if behind else ""),
                      str(a["desired"]), str(a["in_service"]), str(a["pending"]),
                      Text(str(a["unhealthy"]), style="red" if a["unhealthy"] else ""),
                      f"{a['spot']}/{a['on_demand']}", "", "", refresh_text(a["refresh"]))
        if any(tg["weight"] is not None for tg in tgs) or len(tgs) > 1:
            for tg in tgs:
                t.add_row("", "target group", tg["slot"] or "", tg["name"], *blank[4:10],
                          f"{tg['healthy']}/{tg['unhealthy']}/{tg['draining']}",
                          "" if tg["weight"] is None else str(tg["weight"]), "")
        for i in g["instances"]:
            t.add_row("", "instance", "", i["image_id"] or "?", *blank[4:9], "spot" if i["spot"] else "od", "", "",
                      f"{i['id']} {i['state']}")
    for name in rep["undeployed"]:
        t.add_row(Text(name, style="bold"), Text("undeployed", style="yellow"), *blank[2:])
    return t


def render(rep: dict) -> Lines:
    """The table, then one line per drift or problem, per unknown group and about the read itself."""
    parts: list = [table(rep)]
    for g in rep["groups"]:
        parts += [Text(f"{g['group']}: drift: {line}", style="yellow") for line in g["drift"]]
        parts += [Text(f"{g['group']}: unhealthy: {line}", style="red") for line in g["problems"]]
    for name in rep["undeployed"]:
        parts.append(Text(f"{name}: in nodes.yaml, nothing deployed in stack {rep['stack']}", style="yellow"))
    if rep["unknown"]:
        parts.append(Text(f"deployed but not in nodes.yaml: {', '.join(rep['unknown'])}", style="magenta"))
    if rep.get("refreshes_unavailable"):
        parts.append(Text(f"instance refreshes not read: {rep['refreshes_unavailable']}", style="dim"))
    return Lines(*parts)
