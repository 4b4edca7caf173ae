"""Load for the model: per-minute demand in instance-equivalents (how many of the group's instances
the minute's load keeps busy at 100 % CPU).

CSV (`--trace FILE.csv`), one row per minute, a header naming the columns:
- `minute` (0, 1, ...) or `timestamp` (ISO 8601, one minute apart), optional;
- then one of: `load` (instance-equivalents), `cpu` and `instances` (average CPUUtilization in % and
  GroupInServiceInstances, as CloudWatch records them: load = cpu / 100 x instances), or `requests`
  (requests per minute, with --requests-per-instance: what one instance serves per minute at 100 %).
A bad file is one line naming the file, the row and the column, exit 2.

Synthetic traces (`--trace synthetic:NAME`), scaled so the peak is `peak` instance-equivalents:
- `diurnal`: a smooth day, night at 20 % of the peak, the peak mid-afternoon;
- `flash`: a quiet day at 25 % of the peak, and a flash crowd at 10:00 that reaches the peak within 3
  minutes and lasts an hour (a crawler or a news event);
- `business-day`: a telephony business day (calls in working hours): near zero at night, a steep
  ramp from 08:00, busy until 20:00 with short bursts, a lunch dip.
The noise is drawn from the run's seed.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from fleet.simulate import SYNTHETIC
from fleet.spec.errors import Problem, SpecError

DAY = 24 * 60


def _bad(path: str, row: int | None, key: str | None, message: str) -> SpecError:
    return SpecError([Problem(path, row, None, key, message)])


def read_csv(path: str | Path, requests_per_instance: float | None = None) -> np.ndarray:
    """Per-minute demand from a CSV file (see the module docstring for the format)."""
    name = str(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise _bad(name, None, None, f"cannot read the trace: {exc.strerror or exc}") from None
    if not rows:
        raise _bad(name, None, None, "empty trace: a header row and one row per minute")
    header = [h.strip().lower() for h in rows[0]]
    if "load" in header:
        kind = "load"
    elif "cpu" in header and "instances" in header:
        kind = "cpu"
    elif "requests" in header:
        kind = "requests"
        if not requests_per_instance or requests_per_instance <= 0:
            raise _bad(name, 1, "requests", "a requests column needs --requests-per-instance N (> 0)")
    else:
        raise _bad(name, 1, None, f"header {','.join(rows[0])!r} has none of: load | cpu,instances | requests")
    col = {h: i for i, h in enumerate(header)}
    out, last_ts = [], None
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise _bad(name, line, None, f"{len(row)} fields, the header has {len(header)}")

        def number(key: str, row=row, line=line) -> float:
            text = row[col[key]].strip()
            try:
                value = float(text)
            except ValueError:
                raise _bad(name, line, key, f"{text!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise _bad(name, line, key, f"{text!r} must be a finite number >= 0")
            return value
        if "timestamp" in col:
            text = row[col["timestamp"]].strip()
            try:
                ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise _bad(name, line, "timestamp", f"{text!r} is not an ISO 8601 time") from None
            if last_ts is not None and (ts - last_ts).total_seconds() != 60:
                raise _bad(name, line, "timestamp", f"{text} is not one minute after the row before")
            last_ts = ts
        if kind == "load":
            out.append(number("load"))
        elif kind == "cpu":
            cpu = number("cpu")
            if cpu > 100:
                raise _bad(name, line, "cpu", f"{cpu:g} is not a percentage (0-100)")
            out.append(cpu / 100 * number("instances"))
        else:
            out.append(number("requests") / requests_per_instance)
    if not out:
        raise _bad(name, None, None, "no rows after the header")
    return np.array(out, dtype=float)


def synthetic(name: str, days: int, peak: float, seed: int) -> np.ndarray:
    """A synthetic trace of `days` days, peak `peak` instance-equivalents, noise from `seed`."""
    if name not in SYNTHETIC:
        raise SpecError([Problem("--trace", None, None, "synthetic",
                                 f"unknown synthetic trace {name!r}: one of {', '.join(SYNTHETIC)}")])
    rng = np.random.default_rng([seed, SYNTHETIC.index(name)])
    minute = np.arange(days * DAY)
    hour = (minute % DAY) / 60
    if name == "diurnal":
        shape = 0.2 + 0.8 * (0.5 - 0.5 * np.cos(2 * np.pi * (hour - 3) / 24)) ** 1.5
    elif name == "flash":
        shape = 0.25 + 0.05 * np.sin(2 * np.pi * hour / 24)
        t = minute % DAY - 10 * 60
        crowd = np.clip(t / 3, 0, 1) * (t < 60) + np.clip(1 - (t - 60) / 10, 0, 1) * (t >= 60)
        shape = np.maximum(shape, crowd * (t >= 0))
    else:  # business-day
        ramp_up = 1 / (1 + np.exp(-(hour - 9.0) * 3))
        ramp_down = 1 / (1 + np.exp((hour - 20.0) * 2.5))
        lunch = 1 - 0.15 * np.exp(-((hour - 13.5) ** 2) / 0.3)
        shape = 0.05 + 0.8 * ramp_up * ramp_down * lunch
        bursts = rng.random(len(minute)) < 0.004  # a handful of short bursts a day, in working hours
        lift = np.convolve(bursts.astype(float), np.ones(6), mode="same") * 0.15 * (shape > 0.4)
        shape = shape + lift
    noise = 1 + 0.04 * rng.standard_normal(len(minute))
    trace = np.clip(shape * noise, 0, None)
    return trace / trace.max() * peak
