"""``SimulationResult``: replications, pooled means with confidence intervals, JSON.

The interface the app and the command line use:

* ``result.replications``: one row per replication, one column per KPI;
* ``result.table(level=0.95, kpis=None)``: kpi, analytic, simulated (mean), ci_low,
  ci_high, agrees (the analytic value inside the interval);
* ``result.mean(kpi)``, ``result.ci(kpi)`` and ``result.kpi(kpi)`` (a dict with mean,
  ci_low, ci_high, analytic) for one KPI;
* ``result.daily_oaps``: people out of area on each day of the measured window (day
  0 = 1 April), as a DataFrame with the mean over replications, its 95% interval, and
  the lowest and highest replication; ``result.daily_oaps_by_replication`` is the
  (replications x days) array behind it;
* ``result.by_hour()``: the crisis line's service level and speed of answer by hour of
  day; ``result.by_month()``: ward occupancy by month;
* ``result.to_dict()`` / ``to_json()`` / ``SimulationResult.from_dict()``.

Bracketed KPI names carry a key: ``crisis_house_turned_away_share[<site>]``,
``hub_service_level[h07]``, ``inpatient_occupancy_month[Jan]``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pathways.simulate import engine
from pathways.simulate.params import SimParams


def _num(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class SimulationResult:
    """Replications of one plan's pathway and the analytic values they check."""

    replications: pd.DataFrame
    analytic: dict[str, float]
    daily_oaps_by_replication: np.ndarray
    params: SimParams
    seed: int
    reps: int
    plan_name: str = "plan"
    scenario_name: str = ""
    crisis_houses: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ one KPI

    def mean(self, kpi: str) -> float:
        return float(np.nanmean(self.replications[kpi].to_numpy(float)))

    def ci(self, kpi: str, level: float = 0.95) -> tuple[float, float]:
        _, lo, hi = engine.t_interval(self.replications[kpi].to_numpy(float), level)
        return lo, hi

    def kpi(self, kpi: str, level: float = 0.95) -> dict[str, float]:
        m, lo, hi = engine.t_interval(self.replications[kpi].to_numpy(float), level)
        return {"mean": m, "ci_low": lo, "ci_high": hi,
                "analytic": self.analytic.get(kpi, float("nan"))}  # fmt: skip

    # ------------------------------------------------------------------ tables

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Mean over replications, standard deviation and the t confidence interval."""
        rows = []
        for k in self.replications.columns:
            v = self.replications[k].to_numpy(float)
            m, lo, hi = engine.t_interval(v, level)
            sd = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")
            rows.append({"kpi": k, "mean": m, "sd": sd, "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows).set_index("kpi")

    def table(self, level: float = 0.95, kpis: list[str] | None = None) -> pd.DataFrame:
        """kpi, analytic, simulated mean, ci_low, ci_high, agrees (analytic within the CI).

        ``agrees`` is missing (``pd.NA``) where there is no analytic value or no
        interval. An interval of zero width (a KPI that does not vary) agrees when the
        values are equal to within 1e-9 relative.
        """
        s = self.summary(level)
        rows = []
        for k, r in s.iterrows():
            if kpis is not None and k not in kpis:
                continue
            a = self.analytic.get(k, float("nan"))
            ok: Any = pd.NA
            if np.isfinite(a) and np.isfinite(r["ci_low"]):
                tol = 1e-9 * max(abs(a), 1.0)
                ok = bool(r["ci_low"] - tol <= a <= r["ci_high"] + tol)
            rows.append({"kpi": k, "analytic": a, "simulated": r["mean"],
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "agrees": ok})  # fmt: skip
        df = pd.DataFrame(rows, columns=["kpi", "analytic", "simulated", "ci_low", "ci_high",
                                         "agrees"])  # fmt: skip
        df["agrees"] = df["agrees"].astype("boolean")
        return df

    @property
    def daily_oaps(self) -> pd.DataFrame:
        """People out of area on each day of the window: mean, 95% CI, min and max."""
        a = np.asarray(self.daily_oaps_by_replication, float)
        if a.size == 0:
            return pd.DataFrame(columns=["day", "mean", "ci_low", "ci_high", "min", "max"])
        n = a.shape[0]
        m = a.mean(axis=0)
        if n > 1:
            from scipy import stats

            half = stats.t.ppf(0.975, n - 1) * a.std(axis=0, ddof=1) / math.sqrt(n)
        else:
            half = np.full(a.shape[1], np.nan)
        df = pd.DataFrame({"day": np.arange(a.shape[1]), "mean": m, "ci_low": m - half,
                           "ci_high": m + half, "min": a.min(axis=0), "max": a.max(axis=0)})  # fmt: skip
        return df.set_index("day")

    def _keyed(self, prefix: str, level: float) -> pd.DataFrame:
        t = self.table(level)
        t = t[t["kpi"].str.startswith(prefix + "[")].copy()
        t.insert(0, "key", t["kpi"].str.slice(len(prefix) + 1, -1))
        return t.drop(columns="kpi").set_index("key")

    def by_hour(self, level: float = 0.95) -> pd.DataFrame:
        """Crisis line by hour of day: service level (with analytic) and mean answer time."""
        sl = self._keyed("hub_service_level", level)
        asa = self._keyed("hub_asa_seconds", level)[["simulated", "ci_low", "ci_high"]]
        asa.columns = ["asa_seconds", "asa_ci_low", "asa_ci_high"]
        return sl.join(asa)

    def by_month(self, level: float = 0.95) -> pd.DataFrame:
        """Ward occupancy by month of the window (April first)."""
        return self._keyed("inpatient_occupancy_month", level)

    # ------------------------------------------------------------------ JSON

    def to_dict(self, include_daily: bool = True) -> dict[str, Any]:
        t = self.table()
        out: dict[str, Any] = {
            "scenario": self.scenario_name,
            "plan": self.plan_name,
            "seed": self.seed,
            "reps": self.reps,
            "params": self.params.to_dict(),
            "kpis": {
                r.kpi: {"analytic": _num(r.analytic), "mean": _num(r.simulated),
                        "ci_low": _num(r.ci_low), "ci_high": _num(r.ci_high),
                        "agrees": None if pd.isna(r.agrees) else bool(r.agrees)}  # fmt: skip
                for r in t.itertuples()
            },
            "replications": {
                k: [_num(v) for v in self.replications[k]] for k in self.replications.columns
            },
            "analytic": {k: _num(v) for k, v in self.analytic.items()},
            "crisis_houses": list(self.crisis_houses),
            "extra": self.extra,
        }
        if include_daily:
            out["daily_oaps_by_replication"] = np.asarray(
                self.daily_oaps_by_replication, int
            ).tolist()
        return out

    def to_json(self, indent: int | None = 2, include_daily: bool = True) -> str:
        return json.dumps(self.to_dict(include_daily), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimulationResult:
        reps = pd.DataFrame(
            {k: [np.nan if v is None else v for v in vs] for k, vs in d["replications"].items()}
        )
        reps.index.name = "replication"
        return cls(
            replications=reps,
            analytic={k: (np.nan if v is None else v) for k, v in d["analytic"].items()},
            daily_oaps_by_replication=np.asarray(d.get("daily_oaps_by_replication", []), int),
            params=SimParams(**d["params"]),
            seed=int(d["seed"]),
            reps=int(d["reps"]),
            plan_name=d.get("plan", "plan"),
            scenario_name=d.get("scenario", ""),
            crisis_houses=tuple(d.get("crisis_houses", ())),
            extra=dict(d.get("extra", {})),
        )
