"""Step 5, Results: the plan on the map, its scorecard against today, equity and the frontier."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from dashapp import figures
from dashapp.components import (
    CHART_CONFIG,
    MAP_CONFIG,
    NHS_GREEN,
    NHS_RED,
    SERVICE_NAMES,
    data_table_style,
    empty_state,
    error_data,
    error_message,
    fmt_change,
    fmt_value,
    job_view,
    kpi_label,
    message,
    message_data,
    page_header,
    render_message,
    verdict,
)
from dashapp.state import (
    area_table,
    current_config,
    footprint_geometry,
    plan_from_result,
    result_is_fresh,
    scenario_from_store,
    sites_frame,
)
from pathways.kpis import HEADLINE_KPIS, HIGHER_IS_BETTER, evaluate
from pathways.scenario import SERVICES, Scenario

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/results", name="Results", title="Results - Crisis pathway planner",
                   order=5)  # fmt: skip

PLAN_NAMES = {"current": "Today", "pro rata": "Pro rata", "greedy marginal": "Greedy marginal",
              "optimised": "Optimised"}  # fmt: skip
MAP_METRICS = {
    "mobile_response_mins": "Mobile response time",
    "crisis_house_travel_mins": "Travel to a crisis house",
    "admissions_per_100k": "Admissions per 100,000",
}
EQUITY_KPIS = [
    ("admissions_per_year", True),
    ("oap_bed_days_per_year", True),
    ("crisis_house_episodes_per_year", True),
    ("mobile_response_within_standard_share", False),
    ("mean_travel_mins", False),
]
FRONTIER_STEPS = 4
FRONTIER_TIME_LIMIT_S = 15


def layout(**_query: str) -> html.Div:
    style = data_table_style()
    return html.Div(
        [
            page_header("Results", "The plan on the map and its balanced scorecard against today."),
            dcc.Loading(html.Div(id="results-status", **{"aria-live": "polite"})),
            html.Div(
                [
                    html.Div(
                        [
                            html.H2("Plan map", className="h3"),
                            dcc.RadioItems(
                                id="results-map-metric",
                                className="radio-list inline",
                                options=[{"label": v, "value": k} for k, v in MAP_METRICS.items()],
                                value="mobile_response_mins",
                            ),
                            dcc.Loading(
                                dcc.Graph(id="results-map", config=MAP_CONFIG), type="circle"
                            ),
                        ],
                        className="panel wide",
                    ),
                    html.Div(
                        [
                            html.H2("Change from today", className="h3"),
                            dcc.Loading(dcc.Graph(id="results-change-chart", config=CHART_CONFIG)),
                        ],
                        className="panel",
                    ),
                ],
                className="two-col",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Balanced scorecard", className="h3"),
                    html.P(
                        "Modelled expected values per year. 'Pro rata' and 'greedy marginal' are simple "
                        "ways of spending the same budget, for comparison.",
                        className="hint",
                    ),
                    dash_table.DataTable(
                        id="results-scorecard",
                        data=[],
                        columns=[],
                        **style,
                        style_data_conditional=[],
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.Div(
                        [
                            html.H2("Equity: by deprivation quintile", className="h3"),
                            html.Label("Measure", htmlFor="results-equity-kpi"),
                            dcc.Dropdown(
                                id="results-equity-kpi",
                                clearable=False,
                                value="admissions_per_year",
                                options=[
                                    {"label": kpi_label(k), "value": k} for k, _ in EQUITY_KPIS
                                ],
                            ),
                            dcc.Loading(dcc.Graph(id="results-equity-chart", config=CHART_CONFIG)),
                        ],
                        className="panel",
                    ),
                    html.Div(
                        [
                            html.H2("By deprivation quintile (per 100,000 people)", className="h3"),
                            dash_table.DataTable(
                                id="results-quintiles", data=[], columns=[], **style
                            ),
                        ],
                        className="panel",
                    ),
                ],
                className="two-col even",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("What changed, site by site", className="h3"),
                    html.Div(id="results-changes-note"),
                    dash_table.DataTable(
                        id="results-changes",
                        data=[],
                        columns=[],
                        page_size=15,
                        **style,
                        style_data_conditional=[
                            {
                                "if": {"filter_query": "{change} > 0", "column_id": "change"},
                                "color": NHS_GREEN,
                                "fontWeight": "bold",
                            },
                            {
                                "if": {"filter_query": "{change} < 0", "column_id": "change"},
                                "color": NHS_RED,
                                "fontWeight": "bold",
                            },
                        ],
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Budget frontier", className="h3"),
                    html.P(
                        "How many out-of-area bed-days each extra pound avoids. Each budget is a separate "
                        "optimisation, so this takes a few minutes.",
                        className="hint",
                    ),
                    html.Div(
                        [
                            html.Div(
                                [
                                    html.Label("Up to", htmlFor="results-frontier-max"),
                                    html.Div(
                                        [
                                            dcc.Input(
                                                id="results-frontier-max",
                                                type="number",
                                                value=15,
                                                min=1,
                                                max=100,
                                                className="num-input",
                                            ),
                                            html.Span("% above today's cost", className="unit"),
                                        ],
                                        className="input-with-unit",
                                    ),
                                ],
                                className="form-field",
                            ),
                            html.Div(
                                [
                                    html.Label(
                                        "Seconds per budget", htmlFor="results-frontier-time"
                                    ),
                                    dcc.Input(
                                        id="results-frontier-time",
                                        type="number",
                                        value=FRONTIER_TIME_LIMIT_S,
                                        min=2,
                                        max=300,
                                        className="num-input",
                                    ),
                                ],
                                className="form-field",
                            ),
                            html.Div(
                                [
                                    html.Button(
                                        "Compute frontier",
                                        id="results-frontier-run",
                                        className="button secondary",
                                    ),
                                    html.Button(
                                        "Cancel",
                                        id="results-frontier-cancel",
                                        className="button warning",
                                        disabled=True,
                                    ),
                                ],
                                className="button-row",
                            ),
                        ],
                        className="toolbar",
                    ),
                    html.Div(
                        [
                            html.Progress(
                                id="results-frontier-progress",
                                max=100,
                                value=0,
                                **{"aria-label": "frontier progress"},
                            ),
                            html.Span(id="results-frontier-label", className="progress-label"),
                        ],
                        id="results-frontier-wrap",
                        className="progress-wrap hidden",
                    ),
                    html.Div(id="results-frontier-status", **{"aria-live": "polite"}),
                    dcc.Graph(id="results-frontier-chart", config=CHART_CONFIG),
                ],
                className="panel",
            ),  # fmt: skip
        ]
    )


# --------------------------------------------------------------------------- data


def session_cards(
    scenario: Scenario, result: Mapping[str, Any] | None
) -> tuple[dict[str, dict], Any, Any]:
    """(card dicts by plan name, the Scorecard of the plan shown, the plan shown or None)."""
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    if plan is not None:
        cards = dict(result["cards"])
        shown = evaluate(scenario, plan)
        return cards, shown, plan
    today = evaluate(scenario)
    return {"current": today.to_dict()}, today, None


def scorecard_rows(
    cards: Mapping[str, Mapping[str, Any]],
) -> tuple[list[dict], list[dict], list[dict]]:
    """Scorecard table rows and columns, and the change-chart rows (optimised vs today)."""
    names = [n for n in ("current", "pro rata", "greedy marginal", "optimised") if n in cards]
    names += [n for n in cards if n not in names]
    target = "optimised" if "optimised" in cards else None
    rows, chart = [], []
    for k in HEADLINE_KPIS:
        row: dict[str, Any] = {"kpi": kpi_label(k)}
        for n in names:
            row[n] = fmt_value(k, cards[n]["kpis"].get(k))
        today = cards["current"]["kpis"].get(k)
        p100 = cards["current"].get("per_100k", {}).get(k)
        row["per_100k_current"] = fmt_value(k, p100) if p100 is not None else ""
        if target:
            new = cards[target]["kpis"].get(k)
            v = verdict(k, new, today, HIGHER_IS_BETTER)
            row["change"] = fmt_change(k, new, today)
            row["verdict"] = {"better": "better", "worse": "worse", "same": "no change"}.get(v, "")
            p100n = cards[target].get("per_100k", {}).get(k)
            row["per_100k_optimised"] = fmt_value(k, p100n) if p100n is not None else ""
            if today not in (None, 0) and new is not None and math.isfinite(float(today)):
                chart.append({"label": kpi_label(k), "pct": (float(new) - float(today)) / abs(float(today)) * 100,
                              "verdict": v})  # fmt: skip
        rows.append(row)
    columns = [{"name": "Measure", "id": "kpi"}] + [
        {"name": PLAN_NAMES.get(n, n), "id": n} for n in names
    ]
    if target:
        columns += [{"name": "Change", "id": "change"}, {"name": "Verdict", "id": "verdict"},
                    {"name": "Per 100k today", "id": "per_100k_current"},
                    {"name": "Per 100k optimised", "id": "per_100k_optimised"}]  # fmt: skip
    else:
        columns += [{"name": "Per 100k", "id": "per_100k_current"}]
    return rows, columns, chart


def quintile_rows(card: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    bq = card.get("by_imd_quintile", {})
    pop = bq.get("population", {})
    rows = []
    for k, per in EQUITY_KPIS:
        if k not in bq:
            continue
        row = {"kpi": kpi_label(k)}
        for q in range(1, 6):
            v = bq[k].get(str(q))
            p = pop.get(str(q))
            if v is None:
                row[f"q{q}"] = "–"
            elif per:
                row[f"q{q}"] = f"{v / p * 1e5:,.1f}" if p else "–"
            else:
                row[f"q{q}"] = fmt_value(k, v)
        rows.append(row)
    cols = [{"name": "Measure", "id": "kpi"}] + [
        {
            "name": f"Q{q}" + (" (most deprived)" if q == 1 else " (least)" if q == 5 else ""),
            "id": f"q{q}",
        }
        for q in range(1, 6)
    ]
    return rows, cols


def change_rows(scenario: Scenario, plan) -> list[dict[str, Any]]:
    """Sites whose capacity the plan changes, per service."""
    if plan is None:
        return []
    rows = []
    for s in scenario.sites:
        cap = plan.capacity(s.site_id)
        for svc in SERVICES:
            now, new = s.capacity.of(svc), cap.of(svc)
            if now != new:
                rows.append({"site_id": s.site_id, "name": s.name, "status": s.status,
                             "service": SERVICE_NAMES[svc], "today": now, "plan": new, "change": new - now,
                             "what": "opens" if now == 0 else "closes" if new == 0 else
                             "grows" if new > now else "shrinks"})  # fmt: skip
    for shift in ("night", "day", "evening"):
        now, new = scenario.hub.of(shift), plan.hub.of(shift)
        if now != new:
            rows.append({"site_id": "crisis line", "name": f"Crisis-line handlers, {shift} shift",
                         "status": "", "service": "Crisis line", "today": now, "plan": new,
                         "change": new - now, "what": "grows" if new > now else "shrinks"})  # fmt: skip
    return sorted(rows, key=lambda r: (-abs(r["change"]), r["site_id"]))


CHANGE_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Site id", "site_id"), ("Name", "name"), ("Service", "service"), ("Today", "today"), ("Plan", "plan"),
    ("Change", "change"), ("What happens", "what"))]  # fmt: skip


def map_values(
    scenario: Scenario, by_area: pd.DataFrame, metric: str
) -> tuple[pd.Series, str, Any]:
    q = scenario.queues
    if metric == "crisis_house_travel_mins":
        return by_area["crisis_house_travel_mins"], "minutes", figures.TRAFFIC
    if metric == "admissions_per_100k":
        pop = by_area["population"].replace(0, np.nan)
        return by_area["admissions_per_year"] / pop * 1e5, "per 100k a year", figures.BLUES
    return by_area["mobile_travel_mins"] + q.mobile_dispatch_mins, "minutes", figures.TRAFFIC


def plan_map(scenario: Scenario, card, plan, metric: str, tile_url: str | None):
    by_area = card.by_area
    geometry = footprint_geometry(scenario)
    values, unit, scale = map_values(
        scenario, by_area, metric if metric in MAP_METRICS else "mobile_response_mins"
    )
    q = scenario.queues
    rows = by_area.reindex(list(geometry.ids))
    vals = values.reindex(list(geometry.ids))
    names = area_table(scenario)["name"]
    hover = [
        f"<b>{names.get(code, code)}</b> ({code})<br>{MAP_METRICS.get(metric, '')}: {v:,.0f}<br>"
        f"mobile standard {q.mobile_standard_rural_mins if r.rural else q.mobile_standard_urban_mins:.0f} min"
        f"{' (rural)' if r.rural else ''}<br>within standard {r.mobile_response_within_standard_share:.0%}<br>"
        f"admissions {r.admissions_per_year:,.1f} a year"
        for (code, r), v in zip(rows.iterrows(), vals.fillna(np.nan), strict=True)
    ]
    zmax = None
    if metric != "admissions_per_100k":
        zmax = max(
            q.mobile_standard_rural_mins, float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
        )
    return figures.area_map(
        geometry, values, hover, colorbar_title=unit, colorscale=scale, zmin=0 if zmax else None, zmax=zmax,
        sites=sites_frame(scenario, plan), with_change=plan is not None, tile_url=tile_url,
        uirevision=scenario.footprint.model_dump_json(), width_px=760,
    )  # fmt: skip


def build(scenario_data: dict | None, result: dict | None, metric: str | None, equity_kpi: str | None,
          tile_url: str | None) -> tuple:  # fmt: skip
    """Everything on the page: (status, map, change chart, scorecard rows, cols, styles,
    equity chart, quintile rows, cols, change rows, change cols, change note)."""
    scenario = scenario_from_store(scenario_data)
    cards, shown, plan = session_cards(scenario, result)
    if plan is not None:
        secs = result.get("seconds")
        status = message(f"Showing the optimised plan for '{scenario.name}'"
                         + (f" (found in {secs:.0f} s)." if secs else "."), "success")  # fmt: skip
    elif result:
        status = message("The scenario has changed since the last optimisation, so that plan no longer "
                         "applies. Showing today's capacity: run the optimiser again.", "warning")  # fmt: skip
    else:
        status = message(
            "Showing today's capacity. Run the optimiser to see a suggested plan.", "info"
        )
    rows, cols, chart_rows = scorecard_rows(cards)
    styles = [
        {"if": {"filter_query": '{verdict} = "better"', "column_id": ["change", "verdict"]}, "color": NHS_GREEN,
         "fontWeight": "bold"},
        {"if": {"filter_query": '{verdict} = "worse"', "column_id": ["change", "verdict"]}, "color": NHS_RED,
         "fontWeight": "bold"},
    ]  # fmt: skip
    main = cards.get("optimised", cards["current"])
    q_rows, q_cols = quintile_rows(main)
    equity = figures.equity_chart(
        {PLAN_NAMES.get(n, n): c.get("by_imd_quintile", {}) for n, c in cards.items() if n in ("current", "optimised")},
        equity_kpi or "admissions_per_year", dict(EQUITY_KPIS).get(equity_kpi or "admissions_per_year", False),
    )  # fmt: skip
    fig = plan_map(scenario, shown, plan, metric or "mobile_response_mins", tile_url)
    changes = change_rows(scenario, plan)
    if plan is None:
        note = empty_state("No plan yet: run the optimiser to see which sites change.")
    elif not changes:
        note = empty_state("The plan keeps today's capacity at every site.")
    else:
        note = html.P(
            f"{len(changes)} change(s). Green: more capacity; red: less.", className="hint"
        )
    return (status, fig, figures.scorecard_chart(chart_rows), rows, cols, styles, equity, q_rows, q_cols,
            changes, CHANGE_COLUMNS, note)  # fmt: skip


@callback(
    Output("results-status", "children"),
    Output("results-map", "figure"),
    Output("results-change-chart", "figure"),
    Output("results-scorecard", "data"),
    Output("results-scorecard", "columns"),
    Output("results-scorecard", "style_data_conditional"),
    Output("results-equity-chart", "figure"),
    Output("results-quintiles", "data"),
    Output("results-quintiles", "columns"),
    Output("results-changes", "data"),
    Output("results-changes", "columns"),
    Output("results-changes-note", "children"),
    Input("app-scenario", "data"),
    Input("app-result", "data"),
    Input("results-map-metric", "value"),
    Input("results-equity-kpi", "value"),
)
def on_render(scenario_data, result, metric, equity_kpi):
    try:
        return build(scenario_data, result, metric, equity_kpi, current_config().tile_url)
    except Exception as err:  # noqa: BLE001
        log.exception("results failed")
        empty = figures.empty_figure("Nothing to show.")
        return error_message(err), empty, empty, [], [], [], empty, [], [], [], [], None


# --------------------------------------------------------------------------- frontier


def frontier_budgets(base_cost: float, max_pct: float, steps: int = FRONTIER_STEPS) -> list[float]:
    top = max(float(max_pct or 0), 1.0) / 100.0
    return [base_cost * (1 + top * i / steps) for i in range(steps + 1)]


def compute_frontier(scenario_data: dict | None, max_pct: float | None, seconds: float | None,
                     progress=lambda pct, text: None) -> tuple:  # fmt: skip
    """Optimise at budgets from today's cost up: returns (frontier store, status)."""
    from pathways.optimise import SolverOptions
    from pathways.optimise.run import frontier

    scenario = scenario_from_store(scenario_data)
    base = evaluate(scenario).kpis["total_cost_gbp_per_year"]
    budgets = frontier_budgets(base, max_pct or 15)
    opts = SolverOptions(time_limit_s=float(min(max(seconds or FRONTIER_TIME_LIMIT_S, 2), 300)))
    parts = []
    for i, b in enumerate(budgets):
        progress(
            100 * i / len(budgets), f"budget {i + 1} of {len(budgets)}: £{b / 1e6:,.1f}M a year"
        )
        parts.append(frontier(scenario, [b], opts))
    df = pd.concat(parts, ignore_index=True)
    if "oap_bed_days_per_year" in df:
        d_cost = df["total_cost_gbp_per_year"].diff()
        d_oap = -df["oap_bed_days_per_year"].diff()
        df["marginal_gbp_per_oap_bed_day_avoided"] = np.where(d_oap > 1e-6, d_cost / d_oap, np.nan)
    n_ok = int(df.get("oap_bed_days_per_year", pd.Series(dtype=float)).notna().sum())
    store = {"scenario_fingerprint": scenario.fingerprint(), "base_cost": base,
             "rows": df.replace({np.nan: None}).to_dict("records")}  # fmt: skip
    return store, message_data(
        f"Frontier computed at {len(budgets)} budgets ({n_ok} feasible).", "success"
    )


# Like the optimiser (pages/optimise.py), the frontier job reads and writes shell stores
# (``app-frontier-*``), so it finishes even if the user leaves this page.


@callback(
    Output("app-frontier-request", "data"),
    Input("results-frontier-run", "n_clicks"),
    State("results-frontier-max", "value"),
    State("results-frontier-time", "value"),
    State("app-scenario", "data"),
    prevent_initial_call=True,
)
def on_frontier_request(n_clicks, max_pct, seconds, scenario_data):
    if not n_clicks:
        return no_update
    return {
        "max_pct": max_pct,
        "seconds": seconds,
        "scenario": scenario_data,
        "requested_at": time.time(),
    }


@callback(
    Output("app-frontier-cancel", "data"),
    Input("results-frontier-cancel", "n_clicks"),
    prevent_initial_call=True,
)
def on_frontier_cancel(n_clicks):
    return time.time() if n_clicks else no_update


@callback(
    Output("app-frontier-status", "data"),
    Output("app-frontier", "data", allow_duplicate=True),
    Input("app-frontier-request", "data"),
    background=True,
    running=[(Output("app-frontier-running", "data"), True, False)],
    progress=[Output("app-frontier-progress", "data")],
    progress_default=[None],
    cancel=[Input("app-frontier-cancel", "data")],
    prevent_initial_call=True,
)
def on_frontier(set_progress, request):
    if not request:
        return no_update, no_update
    try:
        store, status = compute_frontier(
            request.get("scenario"), request.get("max_pct"), request.get("seconds"),
            lambda p, t: set_progress([{"pct": p, "text": t}]),
        )  # fmt: skip
        return status, store
    except Exception as err:  # noqa: BLE001
        log.exception("frontier failed")
        return error_data(err), no_update


# Two views of the job: the controls follow its running/progress side outputs at once;
# the message waits for the job's result (Dash holds callbacks on a running job's outputs).


@callback(
    Output("results-frontier-run", "disabled"),
    Output("results-frontier-cancel", "disabled"),
    Output("results-frontier-progress", "value"),
    Output("results-frontier-label", "children"),
    Output("results-frontier-wrap", "className"),
    Input("app-frontier-running", "data"),
    Input("app-frontier-progress", "data"),
)
def on_frontier_job_view(running, progress):
    return job_view(running, progress)


@callback(Output("results-frontier-status", "children"), Input("app-frontier-status", "data"))
def on_frontier_job_status(status):
    return render_message(status)


def frontier_view(scenario_data: dict | None, frontier_data: dict | None, result: dict | None):
    scenario = scenario_from_store(scenario_data)
    if not frontier_data or frontier_data.get("scenario_fingerprint") != scenario.fingerprint():
        return figures.frontier_chart(None)
    df = pd.DataFrame(frontier_data.get("rows", []))
    budget = result.get("budget_gbp") if result_is_fresh(result, scenario) else None
    return figures.frontier_chart(df, budget)


@callback(Output("results-frontier-chart", "figure"), Input("app-frontier", "data"), State("app-scenario", "data"),
          State("app-result", "data"))  # fmt: skip
def on_frontier_view(frontier_data, scenario_data, result):
    try:
        return frontier_view(scenario_data, frontier_data, result)
    except Exception:  # noqa: BLE001
        log.exception("frontier chart failed")
        return figures.empty_figure("The frontier could not be drawn.")
