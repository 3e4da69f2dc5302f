"""Step 4, Optimise: budget, objective and constraints; the solver runs in the background."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashapp.components import error_data, job_view, message_data, page_header, render_message
from dashapp.state import result_to_store, scenario_from_store, scenario_to_store
from pathways.errors import InfeasibleError, InputError
from pathways.scenario import Scenario, with_changes

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/optimise", name="Optimise", title="Optimise - Crisis pathway planner",
                   order=4)  # fmt: skip

DEFAULT_TIME_LIMIT_S = 30
MAX_TIME_LIMIT_S = 900

#: Controls on this page: id suffix -> (scenario path, scale from the control to the scenario).
SETTINGS: dict[str, tuple[str, float]] = {
    "budget": ("budget.revenue_gbp_per_year", 1e6),
    "capital": ("budget.capital_gbp", 1e6),
    "mode": ("objective.mode", 1.0),
    "oap-target": ("objective.targets.oap_bed_days_per_year_max", 1.0),
    "admissions-target": ("objective.targets.admissions_per_year_max", 1.0),
    "mobile-min": ("constraints.mobile_within_standard_share_min", 0.01),
    "hub-min": ("constraints.hub_service_level_min", 0.01),
    "ch-travel": ("constraints.crisis_house_travel_mins", 1.0),
    "ch-share": ("constraints.crisis_house_population_share_min", 0.01),
    "equity-on": ("constraints.equity.enabled", 1.0),
    "equity-gap": ("constraints.equity.max_gap_share", 0.01),
}
CONTROL_IDS = [f"optimise-{k}" for k in SETTINGS]


def _number(label: str, key: str, unit: str, hint: str, **kwargs: Any) -> html.Div:
    cid = f"optimise-{key}"
    return html.Div(
        [html.Label(label, htmlFor=cid),
         html.Div([dcc.Input(id=cid, type="number", min=0, step="any", className="num-input", **kwargs),
                   html.Span(unit, className="unit")], className="input-with-unit"),
         html.Div(hint, className="hint")],
        className="form-field",
    )  # fmt: skip


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            page_header(
                "Optimise",
                "Set the money and the rules; the optimiser suggests how many beds, crisis-house "
                "places, mobile teams and crisis-line staff to have, and where. It runs in the "
                "background: you can keep using the other pages.",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            _number(
                                "Time limit",
                                "time-limit",
                                "seconds",
                                "The best plan found in this time is returned.",
                                value=DEFAULT_TIME_LIMIT_S,
                                max=MAX_TIME_LIMIT_S,
                            ),
                            html.Div(
                                [
                                    html.Button(
                                        "Run optimiser",
                                        id="optimise-run",
                                        className="button primary",
                                    ),
                                    html.Button(
                                        "Cancel",
                                        id="optimise-cancel",
                                        className="button warning",
                                        disabled=True,
                                    ),
                                ],
                                className="button-row",
                            ),
                        ],
                        className="run-controls",
                    ),
                    html.Div(
                        [
                            html.Progress(
                                id="optimise-progress",
                                max=100,
                                value=0,
                                **{"aria-label": "progress"},
                            ),
                            html.Span(id="optimise-progress-label", className="progress-label"),
                        ],
                        id="optimise-progress-wrap",
                        className="progress-wrap hidden",
                        **{"aria-live": "polite"},
                    ),
                    html.Div(id="optimise-status", **{"aria-live": "polite"}),
                ],
                className="panel run-panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.Fieldset(
                        [
                            html.Legend("Money and goal"),
                            _number(
                                "Revenue budget",
                                "budget",
                                "£ million a year",
                                "Blank: today's modelled spend.",
                            ),
                            _number(
                                "Capital for new sites",
                                "capital",
                                "£ million",
                                "Blank: no capital limit.",
                            ),
                            html.Label("Objective", htmlFor="optimise-mode"),
                            dcc.RadioItems(
                                id="optimise-mode",
                                className="radio-list",
                                options=[
                                    {
                                        "label": "Fewest out-of-area bed-days and admissions within the budget",
                                        "value": "min_weighted",
                                    },
                                    {
                                        "label": "Least cost that meets the targets below",
                                        "value": "min_cost",
                                    },
                                ],
                            ),
                            _number(
                                "Target: out-of-area bed-days a year at most",
                                "oap-target",
                                "bed-days",
                                "Used by 'least cost'. Blank: no target.",
                            ),
                            _number(
                                "Target: admissions a year at most",
                                "admissions-target",
                                "admissions",
                                "Used by 'least cost'. Blank: no target.",
                            ),
                        ],
                        className="panel fieldset",
                    ),
                    html.Fieldset(
                        [
                            html.Legend("Standards and equity"),
                            _number(
                                "Mobile responses within the response standard, at least",
                                "mobile-min",
                                "%",
                                "Blank: no worse than today.",
                                max=100,
                            ),
                            _number(
                                "Crisis-line calls answered within target, at least",
                                "hub-min",
                                "%",
                                "Blank: no worse than today.",
                                max=100,
                            ),
                            _number(
                                "Crisis-house travel cap",
                                "ch-travel",
                                "minutes",
                                "With the share below: people within this drive of an open crisis house.",
                            ),
                            _number(
                                "Population within the crisis-house travel cap, at least",
                                "ch-share",
                                "%",
                                "Blank: no coverage rule.",
                                max=100,
                            ),
                            dcc.Checklist(
                                id="optimise-equity-on",
                                className="check-list",
                                options=[
                                    {
                                        "label": "Equity rule: the most deprived fifth may not fare worse than the "
                                        "footprint average",
                                        "value": "on",
                                    }
                                ],
                            ),
                            _number(
                                "Allowed shortfall for the most deprived fifth",
                                "equity-gap",
                                "percentage points",
                                "0 = strictly no worse than average.",
                                max=100,
                            ),
                        ],
                        className="panel fieldset",
                    ),
                ],
                className="two-col even",
            ),  # fmt: skip
            dcc.Store(id="optimise-init", data=True),
        ]
    )


def control_values(scenario: Scenario) -> list[Any]:
    """The controls' values for a scenario, in ``SETTINGS`` order."""
    data = scenario.model_dump(mode="json")
    out = []
    for key, (path, scale) in SETTINGS.items():
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if key == "equity-on":
            out.append(["on"] if node else [])
        elif key == "mode" or node is None:
            out.append(node)
        else:
            out.append(round(float(node) / scale, 6))
    return out


@callback(
    [Output(i, "value") for i in CONTROL_IDS],
    Input("optimise-init", "data"),
    State("app-scenario", "data"),
)
def on_init(_init, scenario_data):
    try:
        return control_values(scenario_from_store(scenario_data))
    except Exception:  # noqa: BLE001
        log.exception("optimise controls failed")
        return [no_update] * len(CONTROL_IDS)


def settings_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Scenario changes from the controls (blank numbers mean 'no limit' / 'today')."""
    changes: dict[str, Any] = {}
    for key, (path, scale) in SETTINGS.items():
        v = values.get(key)
        if key == "equity-on":
            changes[path] = bool(v) and "on" in v
        elif key == "mode":
            changes[path] = v or "min_weighted"
        elif key == "equity-gap":
            changes[path] = 0.0 if v in (None, "") else float(v) * scale
        else:
            changes[path] = None if v in (None, "") else float(v) * scale
    return changes


def apply_settings(scenario: Scenario, values: Mapping[str, Any]) -> Scenario:
    """The scenario with this page's settings (validated: bad values raise InputError)."""
    return with_changes(scenario, settings_changes(values))


def run_optimisation(
    scenario_data: dict | None,
    values: Mapping[str, Any],
    time_limit_s: float | None,
    progress: Callable[[float, str], None] = lambda pct, text: None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Optimise the session's scenario: returns (result, scenario, status message data)."""
    from pathways.optimise import SolverOptions, optimise_with_baselines

    try:
        scenario = apply_settings(scenario_from_store(scenario_data), values)
    except InputError as err:
        return no_update, no_update, error_data(err)
    limit = float(time_limit_s or DEFAULT_TIME_LIMIT_S)
    limit = min(max(limit, 2.0), MAX_TIME_LIMIT_S)
    state = {"msg": "starting", "frac": 0.0}
    done = threading.Event()
    start = time.perf_counter()

    def tick() -> None:
        while not done.wait(1.0):
            elapsed = time.perf_counter() - start
            pct = max(state["frac"], min(elapsed / (limit + 10), 0.97)) * 100
            progress(pct, f"{state['msg']}: {elapsed:.0f} s (time limit {limit:.0f} s)")

    def report(msg: str, frac: float) -> None:
        state.update(msg=msg, frac=float(frac))

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        outcome = optimise_with_baselines(
            scenario, SolverOptions(time_limit_s=limit, progress=report)
        )
    except (InfeasibleError, InputError) as err:
        return no_update, scenario_to_store(scenario), error_data(err)
    except Exception as err:  # noqa: BLE001 - shown to the user, logged in full
        log.exception("optimisation failed")
        return no_update, scenario_to_store(scenario), error_data(err)
    finally:
        done.set()
    seconds = time.perf_counter() - start
    result = result_to_store(scenario, outcome, seconds)
    rep = outcome.plan.solver
    found = (
        "found the best plan"
        if rep is not None and rep.status == "OPTIMAL"
        else "found a good plan"
    )
    gap = (
        f" (within {rep.gap:.1%} of the best possible)"
        if rep is not None and rep.gap is not None
        else ""
    )
    note = message_data(f"The optimiser {found}{gap} in {seconds:.0f} s.", "success", link="/results",
                        link_text="See the results")  # fmt: skip
    return result, scenario_to_store(scenario), note


# The job's inputs and outputs are session stores of the app shell (``app-optimise-*``),
# not this page's components: the job keeps going, and its result arrives, while the user
# is on another page. This page only writes the request and shows the job's state.


@callback(
    Output("app-optimise-request", "data"),
    Input("optimise-run", "n_clicks"),
    [State(i, "value") for i in CONTROL_IDS],
    State("optimise-time-limit", "value"),
    State("app-scenario", "data"),
    prevent_initial_call=True,
)
def on_request(n_clicks, *args):
    *values, time_limit, scenario_data = args
    if not n_clicks:
        return no_update
    return job_request(dict(zip(SETTINGS, values, strict=True)), time_limit, scenario_data)


def job_request(values: Mapping[str, Any], time_limit: Any, scenario_data: dict | None) -> dict:
    """What the background job needs, stamped so that repeating a request runs it again."""
    return {"values": dict(values), "time_limit": time_limit, "scenario": scenario_data,
            "requested_at": time.time()}  # fmt: skip


@callback(
    Output("app-optimise-cancel", "data"),
    Input("optimise-cancel", "n_clicks"),
    prevent_initial_call=True,
)
def on_cancel(n_clicks):
    return time.time() if n_clicks else no_update


@callback(
    Output("app-optimise-status", "data"),
    Output("app-result", "data", allow_duplicate=True),
    Output("app-scenario", "data", allow_duplicate=True),
    Input("app-optimise-request", "data"),
    background=True,
    running=[(Output("app-optimise-running", "data"), True, False)],
    progress=[Output("app-optimise-progress", "data")],
    progress_default=[None],
    cancel=[Input("app-optimise-cancel", "data")],
    prevent_initial_call=True,
)
def on_run(set_progress, request):
    if not request:
        return no_update, no_update, no_update
    set_progress([{"pct": 0, "text": "starting"}])
    result, scenario, status = run_optimisation(
        request.get("scenario"), request.get("values") or {}, request.get("time_limit"),
        lambda pct, text: set_progress([{"pct": pct, "text": text}]),
    )  # fmt: skip
    return status, result, scenario


# Two views of the job: the controls follow its running/progress side outputs at once;
# the message waits for the job's result (Dash holds callbacks on a running job's outputs).


@callback(
    Output("optimise-run", "disabled"),
    Output("optimise-cancel", "disabled"),
    Output("optimise-progress", "value"),
    Output("optimise-progress-label", "children"),
    Output("optimise-progress-wrap", "className"),
    Input("app-optimise-running", "data"),
    Input("app-optimise-progress", "data"),
)
def on_job_view(running, progress):
    return job_view(running, progress)


@callback(Output("optimise-status", "children"), Input("app-optimise-status", "data"))
def on_job_status(status):
    return render_message(status)
