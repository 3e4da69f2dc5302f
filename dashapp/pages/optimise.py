"""Step 4, Optimise: budget, objective and constraints; the solver runs in the background.

The settings on this page are part of the scenario: each one is checked against its
bounds and written to the session's scenario as soon as it is typed (so it survives
other pages and reloads, and a Run uses exactly what the page shows). The time limit
is a setting of the run, kept in the session's options.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashapp.components import (
    error_data,
    job_view,
    message_data,
    page_header,
    render_message,
    status_words,
    user_trigger,
)
from dashapp.slots import SLOTS_DIR, JobSlots, be_gentle, max_jobs, waiting_text
from dashapp.state import (
    SETTING_BOUNDS,
    TIME_LIMIT,
    FieldError,
    apply_settings,
    field_text,
    job_board,
    job_config,
    new_job_id,
    own_process_pid,
    result_to_store,
    scenario_from_store,
    scenario_to_store,
    setting_values,
)
from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError
from pathways.scenario import Scenario

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/optimise", name="Optimise", title="Optimise - Crisis pathway planner",
                   order=4)  # fmt: skip

DEFAULT_TIME_LIMIT_S = 30
MAX_TIME_LIMIT_S = int(TIME_LIMIT.hi or 900)
#: Seconds of no typing before a field's value is checked and kept.
TYPING_PAUSE_S = 0.5

#: Typed settings: field id suffix -> scenario path (bounds and scale in ``SETTING_BOUNDS``).
NUMBER_FIELDS: dict[str, str] = {
    "budget": "budget.revenue_gbp_per_year",
    "capital": "budget.capital_gbp",
    "oap-target": "objective.targets.oap_bed_days_per_year_max",
    "admissions-target": "objective.targets.admissions_per_year_max",
    "mobile-min": "constraints.mobile_within_standard_share_min",
    "hub-min": "constraints.hub_service_level_min",
    "ch-travel": "constraints.crisis_house_travel_mins",
    "ch-share": "constraints.crisis_house_population_share_min",
    "equity-gap": "constraints.equity.max_gap_share",
}
#: Controls on this page, in callback order: the typed fields, then the two choices.
SETTINGS: tuple[str, ...] = (*NUMBER_FIELDS, "mode", "equity-on")
CONTROL_IDS = [f"optimise-{k}" for k in SETTINGS]
ERROR_IDS = [f"optimise-{k}-error" for k in NUMBER_FIELDS]
MODE_PATH = "objective.mode"
EQUITY_PATH = "constraints.equity.enabled"
JOB = "optimise"


def _number(label: str, key: str, unit: str, hint: str) -> html.Div:
    cid = f"optimise-{key}"
    path = NUMBER_FIELDS.get(key)
    bound = SETTING_BOUNDS[path][0] if path else TIME_LIMIT
    hint_id = f"{cid}-hint"
    return html.Div(
        [html.Label(label, htmlFor=cid),
         html.Div([dcc.Input(id=cid, type="text", debounce=TYPING_PAUSE_S, className="num-input",
                             autoComplete="off"),
                   html.Span(unit, className="unit")], className="input-with-unit"),
         html.Div(f"{hint} {bound.hint()}", id=hint_id, className="hint"),
         html.Div(id=f"{cid}-error", className="field-error", role="alert")],
        className="form-field",
    )  # fmt: skip


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            page_header(
                "Optimise",
                "Set the money and the rules; the optimiser suggests how many beds, crisis-house "
                "places, mobile teams and crisis-line staff to have, and where. It runs in the "
                "background: you can keep using the other pages, or reload this one.",
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
                            ),
                            _number(
                                "Crisis-line calls answered within target, at least",
                                "hub-min",
                                "%",
                                "Blank: no worse than today.",
                            ),
                            _number(
                                "Crisis-house travel cap",
                                "ch-travel",
                                "minutes",
                                "With the share below: people within this drive of an open "
                                "crisis house.",
                            ),
                            _number(
                                "Population within the crisis-house travel cap, at least",
                                "ch-share",
                                "%",
                                "Blank: no coverage rule.",
                            ),
                            dcc.Checklist(
                                id="optimise-equity-on",
                                className="check-list",
                                options=[
                                    {
                                        "label": "Equity rule: the most deprived fifth may not fare worse "
                                        "than the footprint average",
                                        "value": "on",
                                    }
                                ],
                            ),
                            _number(
                                "Allowed shortfall for the most deprived fifth",
                                "equity-gap",
                                "percentage points",
                                "0 = strictly no worse than average.",
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


# --------------------------------------------------------------------------- settings


def control_values(scenario: Scenario) -> list[Any]:
    """The controls' values for a scenario, in ``SETTINGS`` order."""
    typed = setting_values(scenario)
    out: list[Any] = [typed[path] for path in NUMBER_FIELDS.values()]
    out.append(scenario.objective.mode)
    out.append(["on"] if scenario.constraints.equity.enabled else [])
    return out


def time_limit_text(options: Mapping[str, Any] | None) -> str:
    value = (options or {}).get("time_limit_s")
    return field_text(value if value is not None else DEFAULT_TIME_LIMIT_S)


def read_time_limit(raw: Any) -> float:
    """The time limit typed (blank: the default). Raises ``FieldError``."""
    value = TIME_LIMIT.read(raw)
    return float(DEFAULT_TIME_LIMIT_S if value is None else value)


@callback(
    [*(Output(i, "value") for i in CONTROL_IDS), Output("optimise-time-limit", "value")],
    Input("optimise-init", "data"),
    State("app-scenario", "data"),
    State("app-options", "data"),
)
def on_init(_init, scenario_data, options):
    try:
        return [*control_values(scenario_from_store(scenario_data)), time_limit_text(options)]
    except Exception:  # noqa: BLE001
        log.exception("optimise controls failed")
        return [no_update] * (len(CONTROL_IDS) + 1)


def settings_changes(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(typed values by scenario path, choices by scenario path) from the controls."""
    raw = {path: values.get(key) for key, path in NUMBER_FIELDS.items()}
    equity = values.get("equity-on")
    mode = values.get("mode")
    flags = {MODE_PATH: mode if isinstance(mode, str) and mode else "min_weighted",
             EQUITY_PATH: isinstance(equity, list) and "on" in equity}  # fmt: skip
    return raw, flags


def apply_controls(
    scenario: Scenario, values: Mapping[str, Any]
) -> tuple[Scenario, dict[str, str]]:
    """The scenario with this page's settings, and a message for each field that is wrong
    (keyed by field id suffix). Good fields are applied even when others are wrong."""
    raw, flags = settings_changes(values)
    new, errors = apply_settings(scenario, raw, flags)
    by_key = {key: errors[path] for key, path in NUMBER_FIELDS.items() if path in errors}
    for path in (MODE_PATH, EQUITY_PATH):
        if path in errors:
            by_key["mode" if path == MODE_PATH else "equity-gap"] = errors[path]
    return new, by_key


def settings_update(trigger: Any, values: Mapping[str, Any], time_limit: Any,
                    scenario_data: dict | None, options: dict | None) -> tuple:  # fmt: skip
    """Keep what the user typed: returns (scenario store, options store, field errors in
    ``ERROR_IDS`` order, time-limit error). Page renders (no single user change) do nothing."""
    keep = (no_update, no_update, [no_update] * len(ERROR_IDS), no_update)
    if trigger is None:
        return keep
    scenario = scenario_from_store(scenario_data)
    new, errors = apply_controls(scenario, values)
    field_errors = [errors.get(k) for k in NUMBER_FIELDS]
    try:
        limit = read_time_limit(time_limit)
        limit_error = None
        new_options = {**(options or {}), "time_limit_s": limit}
        options_out = new_options if new_options != (options or {}) else no_update
    except FieldError as err:
        limit_error, options_out = str(err), no_update
    scenario_out = scenario_to_store(new) if new != scenario else no_update
    return scenario_out, options_out, field_errors, limit_error


@callback(
    [
        Output("app-scenario", "data", allow_duplicate=True),
        Output("app-options", "data", allow_duplicate=True),
        *(Output(i, "children") for i in ERROR_IDS),
        Output("optimise-time-limit-error", "children"),
    ],
    [*(Input(i, "value") for i in CONTROL_IDS), Input("optimise-time-limit", "value")],
    [State("app-scenario", "data"), State("app-options", "data")],
    prevent_initial_call=True,
)
def on_settings(*args):
    *values, time_limit, scenario_data, options = args
    try:
        scenario, opts, errors, limit_error = settings_update(
            user_trigger(), dict(zip(SETTINGS, values, strict=True)), time_limit, scenario_data,
            options,
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - a broken session must not break the page
        log.exception("optimise settings failed")
        return [no_update] * (len(ERROR_IDS) + 3)
    return [scenario, opts, *errors, limit_error]


# --------------------------------------------------------------------------- the run


def run_optimisation(
    scenario_data: dict | None,
    values: Mapping[str, Any] | None,
    time_limit_s: float | None,
    progress: Callable[[float, str], None] = lambda pct, text: None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Optimise the session's scenario (with ``values`` from this page's controls, if
    given): returns (result, scenario, status message data)."""
    from pathways.optimise import SolverOptions, optimise_with_baselines

    try:
        scenario = scenario_from_store(scenario_data)
        if values:
            scenario, errors = apply_controls(scenario, values)
            if errors:
                raise FieldError(" ".join(errors.values()))
        limit = read_time_limit(time_limit_s)
    except (InputError, FieldError) as err:
        return no_update, no_update, error_data(err)
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
    options = SolverOptions(time_limit_s=limit, progress=report)
    try:
        outcome = optimise_with_baselines(scenario, options)
    except (InfeasibleError, NoPlanInTimeError, InputError) as err:
        return no_update, scenario_to_store(scenario), error_data(err)
    except Exception as err:  # noqa: BLE001 - shown to the user, logged in full
        log.exception("optimisation failed")
        return no_update, scenario_to_store(scenario), error_data(err)
    finally:
        done.set()
    seconds = time.perf_counter() - start
    result = result_to_store(scenario, outcome, seconds, limit, options.gap)
    return result, scenario_to_store(scenario), outcome_message(result)


def outcome_message(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the run ended with, in words: how the search ended, and any limit broken."""
    settings = result.get("settings") or {}
    status = settings.get("status")
    seconds = float(result.get("seconds") or 0)
    broken = (result.get("breaches") or {}).get("optimised") or []
    words = status_words(settings)
    if status == "OPTIMAL":
        head, kind = f"The optimiser found the best plan in {seconds:.0f} s.", "success"
    elif status == "TIME_LIMIT":
        head, kind = (
            f"The optimiser stopped at the time limit after {seconds:.0f} s with a plan.",
            "success",
        )
    elif status == "HEURISTIC":
        head, kind = (f"The solver found nothing better than the first plan that meets every limit in "
                      f"{seconds:.0f} s: allow more time for a better plan.", "warning")  # fmt: skip
    else:
        head, kind = f"The optimiser returned a plan in {seconds:.0f} s.", "success"
    lines = [words]
    if broken:
        kind = "warning"
        lines += [f"The plan breaks a limit: {b}" for b in broken]
    return message_data(head, kind, lines, link="/results", link_text="See the results")


# The job's inputs and outputs are session stores of the app shell (``app-optimise-*``),
# not this page's components: the job keeps going, and its result arrives, while the user
# is on another page. The job also reports to the job board (see state.py), so that a
# reloaded page can pick it up again (app.py polls the board for jobs it is not tracking).


def job_request(
    values: Mapping[str, Any] | None, time_limit: Any, scenario_data: dict | None
) -> dict:
    """What the background job needs, with a fresh job id (so repeating a request runs it again)."""
    return {"job_id": new_job_id(), "values": dict(values or {}), "time_limit": time_limit,
            "scenario": scenario_data, "requested_at": time.time()}  # fmt: skip


def request_run(values: Mapping[str, Any], time_limit: Any, scenario_data: dict | None) -> tuple:
    """Start a run: returns (request, session job, scenario store, status message).

    Nothing starts while a setting is wrong; the scenario the job optimises is the
    session's with this page's settings, written back so that the plan that arrives is
    the plan for what the page shows.
    """
    scenario = scenario_from_store(scenario_data)
    new, errors = apply_controls(scenario, values)
    try:
        limit = read_time_limit(time_limit)
    except FieldError as err:
        errors["time-limit"] = str(err)
    if errors:
        note = message_data("Fix the settings marked in red, then run the optimiser.", "error",
                            list(errors.values()))  # fmt: skip
        return no_update, no_update, no_update, note
    data = scenario_to_store(new)
    request = job_request({}, limit, data)
    with job_board() as board:
        board.start(request["job_id"], JOB, None)  # the job's process takes it over
    job = {"id": request["job_id"], "kind": JOB, "started": request["requested_at"]}
    return request, job, (data if new != scenario else no_update), None


@callback(
    Output("app-optimise-request", "data"),
    Output("app-optimise-job", "data", allow_duplicate=True),
    Output("app-scenario", "data", allow_duplicate=True),
    Output("app-optimise-status", "data", allow_duplicate=True),
    Input("optimise-run", "n_clicks"),
    [
        *(State(i, "value") for i in CONTROL_IDS),
        State("optimise-time-limit", "value"),
        State("app-scenario", "data"),
    ],
    prevent_initial_call=True,
)
def on_request(n_clicks, *args):
    *values, time_limit, scenario_data = args
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    try:
        return request_run(dict(zip(SETTINGS, values, strict=True)), time_limit, scenario_data)
    except Exception as err:  # noqa: BLE001
        log.exception("optimise request failed")
        return no_update, no_update, no_update, error_data(err)


CANCELLED = "Optimisation cancelled: no plan was produced, and the plan you had is kept."


def cancel_job(job: Mapping[str, Any] | None) -> tuple:
    """Cancel the session's job: returns (Dash cancel token, job store, watch, status)."""
    with job_board() as board:
        board.cancel((job or {}).get("id"))
    return time.time(), None, None, message_data(CANCELLED, "info")


@callback(
    Output("app-optimise-cancel", "data"),
    Output("app-optimise-job", "data", allow_duplicate=True),
    Output("app-optimise-watch", "data", allow_duplicate=True),
    Output("app-optimise-status", "data", allow_duplicate=True),
    Input("optimise-cancel", "n_clicks"),
    State("app-optimise-job", "data"),
    prevent_initial_call=True,
)
def on_cancel(n_clicks, job):
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    return cancel_job(job)


def run_job(set_progress: Callable[[list], None], request: Mapping[str, Any] | None, kind: str,
            work: Callable[[Callable[[float, str], None]], tuple[Any, Any]]) -> tuple:  # fmt: skip
    """Run a background job's ``work(progress) -> (status, data)`` and report it to the
    job board. Returns (status, data, job store); nothing when the job was cancelled."""
    if not request:
        return no_update, no_update, no_update
    job_id = request.get("job_id")
    own = own_process_pid()
    with job_board() as board:
        board.start(job_id, kind, own)
    if own is not None:
        be_gentle()  # pages come first: the server's requests outrank a job's solver
    last = [0.0]

    def progress(pct: float, text: str) -> None:
        set_progress([{"pct": pct, "text": text}])
        now = time.monotonic()
        if now - last[0] >= 0.9:
            last[0] = now
            with job_board() as b:
                b.progress(job_id, pct, text)

    set_progress([{"pct": 0, "text": "starting"}])
    slots = JobSlots(job_config().cache_dir / SLOTS_DIR, max_jobs())
    with slots.hold(lambda position, n: progress(0, waiting_text(position, n))):
        status, data = work(progress)
    failed = isinstance(status, Mapping) and status.get("kind") == "error"
    kept_data = None if data is no_update else data
    with job_board() as board:
        kept = board.finish(job_id, {"status": status, "data": kept_data}, failed=failed)
    if not kept:  # cancelled meanwhile: the cancel already said so
        return no_update, no_update, no_update
    return status, data, None


@callback(
    Output("app-optimise-status", "data"),
    Output("app-result", "data", allow_duplicate=True),
    Output("app-optimise-job", "data", allow_duplicate=True),
    Input("app-optimise-request", "data"),
    background=True,
    running=[(Output("app-optimise-running", "data"), True, False)],
    progress=[Output("app-optimise-progress", "data")],
    progress_default=[None],
    cancel=[Input("app-optimise-cancel", "data")],
    prevent_initial_call=True,
)
def on_run(set_progress, request):
    def work(progress):
        result, _scenario, status = run_optimisation(
            request.get("scenario"), request.get("values") or {}, request.get("time_limit"),
            progress,
        )  # fmt: skip
        return status, result

    return run_job(set_progress, request, JOB, work)


# Two views of the job: the controls follow its running/progress side outputs at once
# (or, after a reload, what the job board says: ``app-optimise-watch``); the message
# waits for the job's result.


@callback(
    Output("optimise-run", "disabled"),
    Output("optimise-cancel", "disabled"),
    Output("optimise-progress", "value"),
    Output("optimise-progress-label", "children"),
    Output("optimise-progress-wrap", "className"),
    Input("app-optimise-running", "data"),
    Input("app-optimise-progress", "data"),
    Input("app-optimise-watch", "data"),
)
def on_job_view(running, progress, watch):
    return job_view(running, progress, watch)


@callback(Output("optimise-status", "children"), Input("app-optimise-status", "data"))
def on_job_status(status):
    return render_message(status)
