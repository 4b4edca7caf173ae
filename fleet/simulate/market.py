"""Prices and spot interruption rates from the bundled, dated snapshots (data/*.json), overridable.

A snapshot is data with its date and source inside; the model never fetches anything. Types the
snapshot lacks are bad input (one line naming the file and the type): a guessed price would make a
cost table look measured when it is not.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fleet.spec.errors import Problem, SpecError

DATA = Path(__file__).resolve().parent / "data"
PRICES, INTERRUPTIONS = DATA / "prices.json", DATA / "interruptions.json"
MONTH_SECONDS = 30 * 24 * 3600
DAY_SECONDS = 24 * 3600


def _read(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpecError([Problem(str(path), None, None, None, f"cannot read the snapshot: {exc}")]) from None
    if not isinstance(doc, dict):
        raise SpecError([Problem(str(path), None, None, None, "a snapshot is a JSON object")])
    return doc


@dataclass(frozen=True)
class Market:
    prices: dict
    interruptions: dict
    prices_file: str
    interruptions_file: str

    @classmethod
    def load(cls, prices: Path | str | None = None, interruptions: Path | str | None = None) -> Market:
        pf, inf = Path(prices or PRICES), Path(interruptions or INTERRUPTIONS)
        market = cls(_read(pf), _read(inf), str(pf), str(inf))
        for key in ("on_demand", "spot"):
            if not isinstance(market.prices.get(key), dict):
                raise SpecError([Problem(str(pf), None, None, key, "missing: a mapping instance type -> USD/hour")])
        return market

    def _price(self, kind: str, itype: str) -> float:
        table = self.prices[kind]
        if itype not in table:
            raise SpecError([Problem(self.prices_file, None, None, f"{kind}.{itype}",
                                     f"no {kind.replace('_', '-')} price for {itype} in the snapshot "
                                     f"(as of {self.prices.get('as_of', '?')}): add it or pass --prices FILE")])
        return float(table[itype])

    def on_demand_price(self, itype: str) -> float:
        return self._price("on_demand", itype)

    def spot_price(self, types: Sequence[str]) -> float:
        """Mean spot price over the group's spot types (price-capacity-optimized spreads over them)."""
        return sum(self._price("spot", t) for t in types) / len(types)

    def monthly_rate(self, itype: str) -> float:
        doc = self.interruptions
        bucket = doc.get("types", {}).get(itype, doc.get("default_bucket"))
        return float(doc["buckets"][bucket])

    def interruption_per_step(self, types: Sequence[str], step: int) -> float:
        """Per-step probability that one running spot instance gets its interruption warning."""
        monthly = sum(self.monthly_rate(t) for t in types) / len(types)
        hazard = -math.log(1 - monthly) / MONTH_SECONDS
        return 1 - math.exp(-hazard * step)

    @property
    def shortage_seconds(self) -> int:
        return int(self.interruptions.get("shortages", {}).get("minutes", 0)) * 60

    def shortage_per_step(self, types: Sequence[str], step: int) -> float:
        per_day = float(self.interruptions.get("shortages", {}).get("per_day_per_bucket_point", 0.0))
        monthly = sum(self.monthly_rate(t) for t in types) / len(types)
        return per_day * monthly * step / DAY_SECONDS

    def dated(self) -> dict:
        return {"prices": {"as_of": self.prices.get("as_of"), "file": self.prices_file},
                "interruptions": {"as_of": self.interruptions.get("as_of"), "file": self.interruptions_file}}
