"""Command-line faces of the optimiser: ``pathways optimise`` and ``pathways frontier``."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pathways.errors import InputError, Problem
from pathways.kpis import HEADLINE_KPIS
from pathways.optimise import SolverOptions, objective_value, optimise_with_baselines, status_text
from pathways.plan import dump_plan
from pathways.scenario import SERVICES, Scenario, load_scenario, with_changes


class Progress:
    """Progress on stderr while the solver works: a refreshed line on a terminal, else one line per step."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.msg, self.frac, self.start = "starting", 0.0, time.perf_counter()
        self._printed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __call__(self, msg: str, frac: float) -> None:
        self.msg, self.frac = msg, frac
        if not self.tty:
            self._show()

    def _show(self) -> None:
        if self.quiet:
            return
        line = f"[{time.perf_counter() - self.start:6.1f} s] {self.msg}"
        if self.tty:
            print(f"\r{line:<60}", end="", file=sys.stderr, flush=True)
        elif self.msg != self._printed:
            print(line, file=sys.stderr, flush=True)
            self._printed = self.msg

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            if self.tty:
                self._show()

    def __enter__(self) -> Progress:
        self._show()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty and not self.quiet:
            print(file=sys.stderr)


def _apply_overrides(scenario: Scenario, args) -> Scenario:
    changes = {}
    if getattr(args, "mode", None):
        changes["objective.mode"] = args.mode
    if getattr(args, "budget", None) is not None:
        changes["budget.revenue_gbp_per_year"] = args.budget
    if getattr(args, "oap_target", None) is not None:
        changes["objective.targets"] = {
            **scenario.objective.targets.model_dump(),
            "oap_bed_days_per_year_max": args.oap_target,
        }
    return with_changes(scenario, changes) if changes else scenario


def sites_table(scenario: Scenario, plan, card) -> pd.DataFrame:
    rows = []
    for sp in plan.sites:
        s = scenario.site(sp.site_id)
        row = {"site_id": s.site_id, "name": s.name, "status": s.status, "x_m": s.x_m, "y_m": s.y_m}
        for svc in SERVICES:
            row[f"{svc}_now"] = s.capacity.of(svc)
            row[f"{svc}_plan"] = sp.capacity.of(svc)
            row[f"{svc}_change"] = sp.capacity.of(svc) - s.capacity.of(svc)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("site_id")
    return df.join(card.by_site[["crisis_house_blocked_share", "mobile_all_busy_share"]])


def write_sites_geojson(table: pd.DataFrame, path: Path) -> None:
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        table.reset_index(),
        geometry=gpd.points_from_xy(table["x_m"], table["y_m"]),
        crs="EPSG:27700",
    )
    gdf.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")


def summary_text(scenario: Scenario, result) -> str:
    plan, cards = result.plan, result.cards
    rep = plan.solver
    bound = f"{rep.best_bound:,.2f}" if rep.best_bound is not None else "none proven"
    gap = f"{rep.gap:.3%}" if rep.gap is not None else "unknown"
    g = result.goals
    lines = [
        f"Scenario: {scenario.name}",
        f"Objective mode: {g.mode}; budget GBP {g.budget_gbp:,.0f} a year; capital "
        + (f"GBP {g.capital_gbp:,.0f}" if g.capital_gbp is not None else "unlimited"),
        f"Standards: mobile responses within the standard >= {g.mobile_within_min:.1%}; crisis "
        f"line answered in time >= {g.hub_sl_min:.1%}"
        + (
            f"; {g.ch_pop_share_min:.0%} of people within {g.ch_travel_mins:.0f} min of a crisis house"
            if g.ch_travel_mins is not None and g.ch_pop_share_min is not None
            else ""
        )
        + (f"; equity gap <= {g.equity_gap:.0%}" if g.equity_gap is not None else ""),
        f"Solver: {rep.solver}, status {rep.status}, objective {rep.objective:,.2f}, best bound "
        f"{bound}, gap {gap}, {rep.seconds:.1f} s, {rep.iterations} round(s)",
        f"Status: {status_text(rep)}",
        "Every limit above is met by the plan, as judged by evaluate.",
    ]
    names = list(cards)
    lines.append("")
    lines.append(f"{'KPI':<40}" + "".join(f"{n:>18}" for n in names))
    for k in (*HEADLINE_KPIS, "travel_burden_hours_per_year"):
        lines.append(
            f"{k:<40}"
            + "".join(
                f"{cards[n].kpis[k]:>18,.3f}"
                if abs(cards[n].kpis[k]) < 10
                else f"{cards[n].kpis[k]:>18,.0f}"
                for n in names
            )
        )
    lines.append(f"{'objective':<40}" + "".join(f"{result.objectives[n]:>18,.1f}" for n in names))
    lines.append(
        f"{'equity gap: admissions per 100k Q1-Q5':<40}"
        + "".join(f"{cards[n].imd_gap['admissions_per_year']:>18,.1f}" for n in names)
    )
    pred = plan.predicted
    card = cards["optimised"]
    lines.append("")
    lines.append("Optimiser's prediction vs evaluate (relative difference):")
    for k in ("oap_bed_days_per_year", "admissions_per_year", "total_cost_gbp_per_year"):
        diff = abs(pred[k] - card.kpis[k]) / max(abs(card.kpis[k]), 1e-9)
        lines.append(f"  {k:<36}{pred[k]:>16,.2f}{card.kpis[k]:>16,.2f}{diff:>10.4%}")
    return "\n".join(lines)


def optimise_cli(args, scenario: Scenario | None = None) -> int:
    scenario = _apply_overrides(scenario or load_scenario(args.scenario), args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = SolverOptions(
        time_limit_s=args.time_limit, gap=args.gap, workers=args.workers, seed=args.seed
    )
    with Progress(args.quiet) as progress:
        result = optimise_with_baselines(
            scenario, SolverOptions(**{**opts.__dict__, "progress": progress})
        )
    plan, card = result.plan, result.cards["optimised"]
    dump_plan(plan, out / "plan.yaml")
    table = sites_table(scenario, plan, card)
    table.to_csv(out / "plan_sites.csv")
    write_sites_geojson(table, out / "plan_sites.geojson")
    plan.allocation_table().to_csv(out / "plan_allocation.csv", index=False)
    from pathways.io import write_scorecard_csv, write_xlsx

    write_scorecard_csv(result.cards, out / "scorecard.csv")
    (out / "scorecard.json").write_text(
        json.dumps({n: c.to_dict() for n, c in result.cards.items()}, indent=2)
    )
    write_xlsx(scenario, result.cards, out / "scorecard.xlsx", plan=plan)
    text = summary_text(scenario, result)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(
        f"\nwrote {out}/plan.yaml, plan_sites.csv, plan_sites.geojson, scorecard.csv/.json/.xlsx, summary.txt"
    )
    return 0


def parse_budgets(text: str) -> list[float]:
    try:
        a, b, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise InputError(
            Problem("--budgets", None, "budgets", f"expected a:b:step in GBP, got '{text}'")
        ) from None
    if step <= 0 or b < a:
        raise InputError(Problem("--budgets", None, "budgets", "expected a <= b and step > 0"))
    n = int(np.floor((b - a) / step + 1e-9)) + 1
    return [a + i * step for i in range(n)]


def frontier(scenario: Scenario, budgets: list[float], opts: SolverOptions) -> pd.DataFrame:
    """Optimise at each budget: OAP bed-days, admissions and cost, and what each extra pound buys.

    Budgets are solved in ascending order and each budget's plan is offered to the next
    (it stays within a larger budget), with the heuristic's plan at that budget, so the
    objective never rises with the budget. Each row says what happened there: a plan
    (OPTIMAL, TIME_LIMIT or HEURISTIC, with its gap), INFEASIBLE (with the reason) or
    NO_PLAN_IN_TIME. Budgets above what the best plan spends are flagged ``binding=False``.
    """
    from pathways.constraints import resolve_goals
    from pathways.costs import unit_cost
    from pathways.errors import InfeasibleError, NoPlanInTimeError
    from pathways.instance import prepare
    from pathways.kpis import evaluate
    from pathways.optimise.heuristic import feasible_plan
    from pathways.optimise.model import solve

    inst = prepare(scenario)
    rows = []
    previous = None
    # a budget binds when what is left would not buy one more unit of anything
    cheapest = min(unit_cost(scenario, s) for s in ("inpatient", "crisis_house", "mobile_team"))
    base = evaluate(inst)
    ordered = sorted(budgets)
    for step, b in enumerate(ordered, start=1):
        if opts.progress:
            opts.progress(
                f"budget {step}/{len(ordered)}: GBP {b / 1e6:,.1f}M", (step - 1) / len(ordered)
            )
        sc_b = with_changes(
            scenario, {"budget.revenue_gbp_per_year": b, "objective.mode": "min_weighted"}
        )
        inst_b = inst.with_scenario(sc_b)
        goals = resolve_goals(inst_b, base)
        hints = [p for p in (feasible_plan(inst_b, goals), previous) if p is not None]
        try:
            plan = solve(inst_b, goals, opts, hint=hints, name=f"budget {b:,.0f}")
        except InfeasibleError as err:
            rows.append(
                {
                    "budget_gbp_per_year": b,
                    "status": "INFEASIBLE",
                    "message": "; ".join(err.reasons),
                }
            )
            continue
        except NoPlanInTimeError as err:
            rows.append(
                {"budget_gbp_per_year": b, "status": "NO_PLAN_IN_TIME", "message": str(err)}
            )
            continue
        previous = plan
        card = evaluate(inst_b, plan)
        cost = card.kpis["total_cost_gbp_per_year"]
        rows.append(
            {
                "budget_gbp_per_year": b,
                "status": plan.solver.status,
                "gap": plan.solver.gap,
                "message": plan.solver.message,
                "objective": objective_value(card, "min_weighted", sc_b.objective.weights),
                "oap_bed_days_per_year": card.kpis["oap_bed_days_per_year"],
                "admissions_per_year": card.kpis["admissions_per_year"],
                "total_cost_gbp_per_year": cost,
                "binding": bool(b - cost < cheapest),
                "crisis_house_places": plan.total("crisis_house"),
                "inpatient_beds": plan.total("inpatient"),
                "mobile_teams": plan.total("mobile_team"),
            }
        )
    df = pd.DataFrame(rows)
    df["marginal_gbp_per_oap_bed_day_avoided"] = marginal_cost(df)
    return df


def marginal_cost(df: pd.DataFrame) -> pd.Series:
    """Extra spend per OAP bed-day avoided between consecutive plans on a frontier (GBP)."""
    if "oap_bed_days_per_year" not in df:
        return pd.Series(np.nan, index=df.index)
    ok = df["oap_bed_days_per_year"].notna()
    d_cost = df.loc[ok, "total_cost_gbp_per_year"].diff()
    d_oap = -df.loc[ok, "oap_bed_days_per_year"].diff()
    out = pd.Series(np.nan, index=df.index)
    # below one bed-day avoided the ratio is noise, not a price
    out[ok] = np.where(d_oap >= 1.0, d_cost / d_oap.where(d_oap >= 1.0, 1.0), np.nan)
    return out


def frontier_figure(df: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=df["budget_gbp_per_year"] / 1e6,
            y=df["oap_bed_days_per_year"],
            name="OAP bed-days / year",
            mode="lines+markers",
            line={"color": "#005EB8"},
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=df["budget_gbp_per_year"] / 1e6,
            y=df["admissions_per_year"],
            name="admissions / year",
            mode="lines+markers",
            line={"color": "#DA291C"},
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title_text="revenue budget (GBP million a year)")
    fig.update_yaxes(title_text="OAP bed-days per year", secondary_y=False)
    fig.update_yaxes(title_text="admissions per year", secondary_y=True)
    fig.update_layout(title="Budget frontier", template="plotly_white")
    return fig


def frontier_cli(args, scenario: Scenario | None = None) -> int:
    scenario = scenario or load_scenario(args.scenario)
    budgets = parse_budgets(args.budgets)
    opts = SolverOptions(time_limit_s=args.time_limit, gap=args.gap, workers=args.workers)
    with Progress() as progress:
        opts = SolverOptions(
            **{
                **opts.__dict__,
                "progress": lambda msg, frac: progress(f"budget steps: {msg}", frac),
            }
        )
        df = frontier(scenario, budgets, opts)
    shown = df.drop(columns=["message"], errors="ignore").copy()
    if "gap" in shown:
        shown["gap"] = shown["gap"].map(lambda g: f"{g:.2%}" if pd.notna(g) else "")
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.1f}".format
    ):
        print(shown.to_string(index=False))
    for row in df.itertuples(index=False):
        if row.status in ("INFEASIBLE", "NO_PLAN_IN_TIME"):
            print(f"GBP {row.budget_gbp_per_year / 1e6:,.1f}M: {row.message}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "frontier.csv", index=False)
        frontier_figure(df).write_html(out / "frontier.html", include_plotlyjs=True)
        print(f"wrote {out}/frontier.csv and frontier.html")
    return 0
