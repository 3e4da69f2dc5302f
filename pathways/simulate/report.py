"""Command-line runs of the simulation: ``pathways simulate`` and ``pathways validate``.

Outputs are simulated numbers from the model, not records about people, so the
small-number suppression of scorecard exports does not apply to them.
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pathways.atomic import write_bytes_atomic, write_text_atomic
from pathways.simulate.params import PARAMETERS, SimParams
from pathways.simulate.result import SimulationResult

HEADLINE = (
    "admissions_per_year",
    "inpatient_blocked_share",
    "oap_placements_per_year",
    "oap_bed_days_per_year",
    "inpatient_occupancy",
    "crisis_house_episodes_per_year",
    "crisis_house_turned_away_per_year",
    "mobile_response_within_standard_share",
    "hub_service_level",
    "hub_abandoned_calls_per_year",
    "s136_turned_away_per_year",
    "mean_travel_mins",
    "total_cost_gbp_per_year",
    "oap_any_day_share",
    "oap_active_p50",
    "oap_active_p90",
    "oap_active_max",
    "oap_episode_days_mean",
    "oap_repatriated_share",
    "inpatient_peak_daily_occupancy",
    "mobile_response_mins_p50",
    "mobile_response_mins_p90",
    "hub_asa_seconds",
)


def fmt(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(v):
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    return f"{v:.4f}"


def params_from_args(args: Any) -> SimParams:
    base = SimParams.analytic() if getattr(args, "analytic", False) else SimParams()
    changes: dict[str, Any] = {}
    for opt, name in (("years", "years"), ("warmup_days", "warmup_days"),
                      ("repatriation", "repatriation"),
                      ("repatriation_days", "repatriation_after_days"),
                      ("seasonal_amplitude", "seasonal_amplitude"),
                      ("los", "los_distribution")):  # fmt: skip
        v = getattr(args, opt, None)
        if v is not None:
            changes[name] = v
    return base.with_changes(**changes) if changes else base


@dataclass
class _Bar:
    """Replications done, on the batch runner's progress display."""

    label: str

    def __enter__(self) -> _Bar:
        from pathways.batch import BatchProgress, ConsoleProgress

        class RepProgress(BatchProgress):
            def line(self) -> str:
                from pathways.batch import _duration

                eta = "" if self.eta_s is None else f", ETA {_duration(self.eta_s)}"
                return (f"{self.done}/{self.total} replications done, "
                        f"{_duration(self.elapsed_s)} elapsed{eta}")  # fmt: skip

        self._cls = RepProgress
        self._bar = ConsoleProgress(self.label).__enter__()
        return self

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        eta = elapsed / done * (total - done) if done else None
        self._bar(self._cls(done, 0, total, 0, elapsed, eta))

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)


def text_table(result: SimulationResult, kpis: tuple[str, ...] = HEADLINE) -> str:
    t = result.table().set_index("kpi")
    lines = [
        f"{result.scenario_name} - plan '{result.plan_name}': {result.reps} replications of "
        f"{result.params.days} days (seed {result.seed}, {result.params.warmup_days:g} days' "
        "warm-up discarded)",
        f"{'KPI':<40}{'analytic':>14}{'simulated':>14}{'95% CI':>28}  agrees",
    ]
    for k in kpis:
        if k not in t.index:
            continue
        r = t.loc[k]
        ci = f"{fmt(r['ci_low'])} to {fmt(r['ci_high'])}" if np.isfinite(r["ci_low"]) else ""
        ok = "" if pd.isna(r["agrees"]) else ("yes" if r["agrees"] else "NO")
        lines.append(f"{k:<40}{fmt(r['analytic']):>14}{fmt(r['simulated']):>14}{ci:>28}  {ok}")
    lines.append("(every KPI, by hour and by month: --json or --xlsx)")
    return "\n".join(lines)


def write_xlsx(result: SimulationResult, path: str) -> None:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        result.table().to_excel(xl, sheet_name="KPIs", index=False)
        result.replications.to_excel(xl, sheet_name="Replications")
        result.daily_oaps.to_excel(xl, sheet_name="OAPs by day")
        result.by_hour().to_excel(xl, sheet_name="Crisis line by hour")
        result.by_month().to_excel(xl, sheet_name="Occupancy by month")
        pd.DataFrame(
            [{"setting": k, "value": v, **PARAMETERS.get(k, {})}
             for k, v in result.params.to_dict().items()]  # fmt: skip
            + [{"setting": "seed", "value": result.seed}, {"setting": "reps", "value": result.reps}]
        ).to_excel(xl, sheet_name="Settings", index=False)
    write_bytes_atomic(path, buf.getvalue())


def simulate_cli(args: Any, scenario: Any, plan: Any) -> int:
    from pathways.simulate.run import simulate

    params = params_from_args(args)
    executor = args.dask or "local"
    with _Bar("simulate") as bar:
        result = simulate(scenario, plan, reps=args.reps, seed=args.seed, params=params,
                          workers=args.workers, executor=executor, progress=bar)  # fmt: skip
    if args.json:
        write_text_atomic(args.json, result.to_json())
        print(f"wrote {args.json}")
    if args.xlsx:
        write_xlsx(result, args.xlsx)
        print(f"wrote {args.xlsx}")
    if not (args.json or args.xlsx):
        print(text_table(result))
    return 0


def validate_cli(args: Any, scenario: Any, plan: Any) -> int:
    from pathways.simulate.validate import validate

    params = params_from_args(args)
    with _Bar("validate") as bar:
        v = validate(scenario, plan, reps=args.reps, seed=args.seed, params=params,
                     workers=args.workers, executor=args.dask or "local", progress=bar)  # fmt: skip
    if args.json:
        write_text_atomic(args.json, json.dumps(v.to_dict(), indent=2))
        print(f"wrote {args.json}")
    t = v.table
    t = t[t["analytic"].notna() & ~t["kpi"].str.contains(r"\[h\d\d\]")]
    full = v.full
    out = sys.stdout
    print(f"{full.scenario_name} - plan '{full.plan_name}': analytic model against "
          f"{full.reps} simulated replications of {full.params.days} days per step (seed "
          f"{full.seed})", file=out)  # fmt: skip
    print(f"{'KPI':<40}{'analytic':>14}{'simulated':>14}{'95% CI':>28}  verdict", file=out)
    for r in t.itertuples():
        ci = f"{fmt(r.ci_low)} to {fmt(r.ci_high)}" if np.isfinite(r.ci_low) else ""
        verdict = "agrees" if r.agrees is True or r.agrees == True else "DISAGREES"  # noqa: E712
        if pd.isna(r.agrees):
            verdict = ""
        print(f"{r.kpi:<40}{fmt(r.analytic):>14}{fmt(r.simulated):>14}{ci:>28}  {verdict}",
              file=out)  # fmt: skip
        if r.explained_by:
            print(f"{'':<4}explained by: {r.explained_by}", file=out)
    hours = v.table[v.table["kpi"].str.contains(r"^hub_service_level\[h")]
    bad = hours[hours["agrees"].fillna(True).eq(False)]["kpi"].str.slice(19, 21).tolist()
    print(f"crisis line by hour: {24 - len(bad)} of 24 hours agree"
          + (f" (not hours {', '.join(bad)}: time-varying load)" if bad else ""), file=out)  # fmt: skip
    for name, z in v.calibrated_peakedness_by_step.items():
        what = (f"queues.inpatient_peakedness = {z:.3f} gives the simulated blocked share"
                if z is not None else "no peakedness up to 20 gives the simulated blocked share")
        print(f"bed pool, up to {name}: {what}", file=out)
    return 0
