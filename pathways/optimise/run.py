"""Command-line faces of the optimiser: ``pathways optimise`` and ``pathways frontier``."""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pathways.errors import InputError, Problem
from pathways.kpis import HEADLINE_KPIS
from pathways.optimise import SolverOptions, objective_value, optimise_with_baselines, status_text
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


def summary_text(scenario: Scenario, result, suppress: bool = True, disc=None) -> str:
    """``summary.txt``: the solver's report, every plan's headline KPIs, and the prediction check.

    Small numbers are suppressed as in the scorecard exports of ``result.cards`` (``disc``:
    their protection, worked out once for all of them): a hidden cell prints ``[c]``, and
    so do the objective, the solver's bound and the prediction of a hidden KPI, which
    would give it back.
    """
    from pathways import io
    from pathways.disclosure import ALL, FOOTPRINT, GAP

    plan, cards = result.plan, result.cards
    disc = io.protection(cards, suppress, disc)
    g = result.goals
    weights = scenario.objective.weights
    names = list(cards)
    main = "optimised" if "optimised" in cards else names[-1]

    def hidden(name: str, measure: str) -> bool:
        return io.is_hidden(disc, (name, FOOTPRINT, ALL, measure))

    def obj_hidden(name: str) -> bool:
        return io.objective_hidden(disc, name, g.mode, weights)

    pred = plan.predicted
    drop = io.hidden_predictions(disc, main, pred, g.mode, weights)
    rep = plan.solver
    c = io.SUPPRESSED
    bound = f"{rep.best_bound:,.2f}" if rep.best_bound is not None else "none proven"
    objective = f"{rep.objective:,.2f}" if rep.objective is not None else "none"
    if obj_hidden(main) or "objective" in drop:
        objective, bound = c, (c if rep.best_bound is not None else bound)
    gap = f"{rep.gap:.3%}" if rep.gap is not None else "unknown"
    budget = c if io.budget_hidden(disc, scenario) else f"{g.budget_gbp:,.0f}"
    lines = [
        f"Scenario: {scenario.name}",
        f"Objective mode: {g.mode}; budget GBP {budget} a year; capital "
        + (f"GBP {g.capital_gbp:,.0f}" if g.capital_gbp is not None else "unlimited"),
        f"Standards: mobile responses within the standard >= {g.mobile_within_min:.1%}; crisis "
        f"line answered in time >= {g.hub_sl_min:.1%}"
        + (
            f"; {g.ch_pop_share_min:.0%} of people within {g.ch_travel_mins:.0f} min of a crisis house"
            if g.ch_travel_mins is not None and g.ch_pop_share_min is not None
            else ""
        )
        + (f"; equity gap <= {g.equity_gap:.0%}" if g.equity_gap is not None else ""),
        f"Solver: {rep.solver}, status {rep.status}, objective {objective}, best bound "
        f"{bound}, gap {gap}, {rep.seconds:.1f} s, {rep.iterations} round(s)",
        f"Status: {status_text(rep)}",
        "Every limit above is met by the plan, as judged by evaluate.",
    ]
    lines.append("")
    lines.append(f"{'KPI':<40}" + "".join(f"{n:>18}" for n in names))
    for k in (*HEADLINE_KPIS, "travel_burden_hours_per_year"):
        row = []
        for n in names:
            v = cards[n].kpis[k]
            row.append(io.masked(f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}", hidden(n, k), 18))
        lines.append(f"{k:<40}" + "".join(row))
    lines.append(
        f"{'objective':<40}"
        + "".join(io.masked(f"{result.objectives[n]:,.1f}", obj_hidden(n), 18) for n in names)
    )
    gap_key = "admissions_per_year"
    lines.append(
        f"{'equity gap: admissions per 100k Q1-Q5':<40}"
        + "".join(
            io.masked(f"{cards[n].imd_gap[gap_key]:,.1f}", hidden(n, GAP + gap_key), 18)
            for n in names
        )
    )
    card = cards[main]
    lines.append("")
    checked = [k for k in ("oap_bed_days_per_year", "admissions_per_year",
                           "total_cost_gbp_per_year") if k in pred]  # fmt: skip
    if checked:
        lines.append("Optimiser's prediction vs evaluate (relative difference):")
    else:
        lines.append("Optimiser's prediction vs evaluate: none (the plan carries no prediction)")
    for k in checked:
        diff = abs(pred[k] - card.kpis[k]) / max(abs(card.kpis[k]), 1e-9)
        shown_k, shown_pred = not hidden(main, k), k not in drop
        lines.append(
            f"  {k:<36}"
            + io.masked(f"{pred[k]:,.2f}", not shown_pred, 16)
            + io.masked(f"{card.kpis[k]:,.2f}", not shown_k, 16)
            + io.masked(f"{diff:.4%}", not (shown_k and shown_pred), 10)
        )
    lines.append("")
    lines.append(io.suppression_note(disc is not None))
    return "\n".join(lines)


def optimise_cli(args, scenario: Scenario | None = None) -> int:
    from pathways import io
    from pathways.disclosure import SITE

    scenario = _apply_overrides(scenario or load_scenario(args.scenario), args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = SolverOptions(
        time_limit_s=args.time_limit,
        gap=args.gap,
        workers=args.workers,
        seed=args.seed,
        node_limit=getattr(args, "node_limit", None),
    )
    with Progress(args.quiet) as progress:
        result = optimise_with_baselines(
            scenario, SolverOptions(**{**opts.__dict__, "progress": progress})
        )
    plan, card = result.plan, result.cards["optimised"]
    suppress = not getattr(args, "no_suppress", False)
    # one protection for every file of this run: they all hide the same cells
    disc = io.protection(result.cards, suppress)
    io.write_plan_yaml(plan, out / "plan.yaml", scenario, suppress, disc)
    table = sites_table(scenario, plan, card)
    # a site's blocked and busy shares are functions of its arrivals: hidden with them, as
    # in the workbook ([c] in the CSV, null in the GeoJSON)
    shares = ("crisis_house_blocked_share", "mobile_all_busy_share")
    csv_table = table.astype({c: object for c in shares})
    for c in shares:
        hide = [io.is_hidden(disc, ("optimised", SITE, str(s), c)) for s in table.index]
        csv_table.loc[hide, c] = io.SUPPRESSED
        table.loc[hide, c] = np.nan
    csv_table.to_csv(out / "plan_sites.csv")
    write_sites_geojson(table, out / "plan_sites.geojson")
    plan.allocation_table().to_csv(out / "plan_allocation.csv", index=False)
    io.write_scorecard_csv(result.cards, out / "scorecard.csv", suppress, disc)
    io.write_scorecard_json(result.cards, out / "scorecard.json", suppress, disc)
    io.write_xlsx(scenario, result.cards, out / "scorecard.xlsx", plan=plan, suppress=suppress,
                  disc=disc)  # fmt: skip
    text = summary_text(scenario, result, suppress, disc)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(
        f"\nwrote {out}/plan.yaml, plan_sites.csv, plan_sites.geojson, scorecard.csv/.json/.xlsx, summary.txt"
    )
    return 0


MAX_BUDGETS = 200
"""Budgets in one frontier run (as the command line allows)."""


def parse_budgets(text: str) -> list[float]:
    try:
        a, b, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise InputError(
            Problem("--budgets", None, "budgets", f"expected a:b:step in GBP, got '{text}'")
        ) from None
    if not all(math.isfinite(v) for v in (a, b, step)):
        raise InputError(Problem("--budgets", None, "budgets", "a, b and step must be numbers"))
    if step <= 0 or b < a or a < 0:
        raise InputError(Problem("--budgets", None, "budgets", "expected 0 <= a <= b and step > 0"))
    n = int(np.floor((b - a) / step + 1e-9)) + 1
    if n > MAX_BUDGETS:
        raise InputError(
            Problem(
                "--budgets", None, "budgets", f"{n:,} budgets; at most {MAX_BUDGETS} in one run"
            )
        )
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


FRONTIER_HIDDEN = "[c]"
"""Marker of a suppressed frontier cell (the same as every other export's)."""


def suppress_frontier(df: pd.DataFrame) -> pd.DataFrame:
    """The frontier table with counts between 0 and 5 hidden, and what would reveal them.

    Each row is one plan's footprint totals. An OAP bed-day count below 5 is hidden with
    what gives it back by arithmetic: the row's total cost (the rest of it is capacity x
    published unit costs), and the marginal-cost column of this row and the next (each
    is a difference of consecutive rows). The objective stays: it adds the travel
    burden, which the frontier does not publish, so it does not give the count back.
    Zeros are shown. docs/disclosure.md explains the rule.
    """
    out = df.copy().astype(object)
    marginal = "marginal_gbp_per_oap_bed_day_avoided"
    ties = {
        "oap_bed_days_per_year": ["total_cost_gbp_per_year", marginal],
        "admissions_per_year": [],
    }
    positions = list(out.index)
    for measure, tied in ties.items():
        if measure not in out:
            continue
        values = pd.to_numeric(df[measure], errors="coerce")
        for pos, idx in enumerate(positions):
            v = values[idx]
            if not (pd.notna(v) and 0 < v < 5):
                continue
            out.loc[idx, measure] = FRONTIER_HIDDEN
            for col in tied:
                if col in out:
                    out.loc[idx, col] = FRONTIER_HIDDEN
            if measure == "oap_bed_days_per_year" and marginal in out and pos + 1 < len(positions):
                out.loc[positions[pos + 1], marginal] = FRONTIER_HIDDEN
    return out


def frontier_figure(df: pd.DataFrame):
    """OAP bed-days and admissions against the budget; hidden cells leave a gap."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = df.copy()
    for col in ("oap_bed_days_per_year", "admissions_per_year"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
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
    opts = SolverOptions(
        time_limit_s=args.time_limit,
        gap=args.gap,
        workers=args.workers,
        node_limit=getattr(args, "node_limit", None),
    )
    with Progress() as progress:
        opts = SolverOptions(
            **{
                **opts.__dict__,
                "progress": lambda msg, frac: progress(f"budget steps: {msg}", frac),
            }
        )
        df = frontier(scenario, budgets, opts)
    suppress = not getattr(args, "no_suppress", False)
    published = suppress_frontier(df) if suppress else df
    shown = published.drop(columns=["message"], errors="ignore").copy()
    if "gap" in shown:
        shown["gap"] = shown["gap"].map(lambda g: f"{g:.2%}" if pd.notna(g) else "")
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.1f}".format
    ):
        print(shown.to_string(index=False))
    if suppress and (published == FRONTIER_HIDDEN).any().any():
        print(f"{FRONTIER_HIDDEN}: hidden, a count below 5 or a figure that would reveal one")
    for row in df.itertuples(index=False):
        if row.status in ("INFEASIBLE", "NO_PLAN_IN_TIME"):
            print(f"GBP {row.budget_gbp_per_year / 1e6:,.1f}M: {row.message}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        published.to_csv(out / "frontier.csv", index=False)
        frontier_figure(published).write_html(out / "frontier.html", include_plotlyjs=True)
        print(f"wrote {out}/frontier.csv and frontier.html")
    return 0
