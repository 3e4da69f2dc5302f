"""Step 6, Compare: save scenarios and plans by name, and compare saved plans side by side."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from dashapp import figures
from dashapp.auth import Identity, current_identity
from dashapp.components import (
    CHART_CONFIG,
    NHS_LIGHT_GREY,
    breach_summary,
    data_table_style,
    error_message,
    fmt_value,
    kpi_label,
    message,
    page_header,
    scroll_table,
    settings_rows,
    user_trigger,
)
from dashapp.state import (
    AppConfig,
    current_config,
    judge,
    open_store,
    plan_from_result,
    plan_settings,
    result_is_fresh,
    scenario_from_store,
    scenario_to_store,
)
from pathways.errors import InputError, Problem
from pathways.kpis import HEADLINE_KPIS, evaluate
from pathways.plan import baseline_plan

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path="/compare", name="Compare", title="Compare - Crisis pathway planner", order=6
)

SAVED_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Plan", "name"), ("Scenario", "scenario_name"), ("Saved", "created_at"), ("By", "user"),
    ("Workspace", "workspace"))]  # fmt: skip


def layout(**_query: str) -> html.Div:
    style = data_table_style()
    return html.Div(
        [
            page_header(
                "Save and compare",
                "Save this session's scenario and plan under a name (kept across restarts), then "
                "compare two or more saved plans side by side.",
            ),  # fmt: skip
            html.Div(
                [
                    html.Label("Name", htmlFor="compare-name"),
                    html.Div(
                        [
                            dcc.Input(
                                id="compare-name",
                                type="text",
                                placeholder="e.g. Sussex +4M crisis houses",
                                maxLength=100,
                                className="text-input",
                                debounce=False,
                            ),
                            html.Button(
                                "Save scenario and plan",
                                id="compare-save",
                                className="button primary",
                            ),
                        ],
                        className="input-row",
                    ),
                    html.Div(
                        "Saves the scenario and, if it is up to date, the optimised plan; otherwise "
                        "today's capacity as the plan.",
                        className="hint",
                    ),
                    dcc.Checklist(
                        id="compare-share",
                        options=[
                            {
                                "label": " Share with every team using this app (read only)",
                                "value": "share",
                            }
                        ],
                        value=[],
                        className="checklist",
                    ),  # fmt: skip
                    html.Div(
                        [
                            html.P(id="compare-confirm-text"),
                            html.Button(
                                "Replace the saved plan",
                                id="compare-replace",
                                className="button warning",
                            ),
                            html.Button(
                                "Keep it (choose another name)",
                                id="compare-keep",
                                className="button secondary",
                            ),
                        ],
                        id="compare-confirm",
                        className="message message-warning hidden",
                        role="alert",
                    ),
                    dcc.Store(id="compare-pending"),
                    dcc.Loading(html.Div(id="compare-save-message", **{"aria-live": "polite"})),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Saved plans", className="h3"),
                    dash_table.DataTable(
                        id="compare-saved",
                        data=[],
                        columns=SAVED_COLUMNS,
                        row_selectable="multi",
                        selected_rows=[],
                        page_size=10,
                        **style,
                    ),
                    html.Div(
                        [
                            html.Button(
                                "Compare selected", id="compare-run", className="button primary"
                            ),
                            html.Button(
                                "Open selected in this session",
                                id="compare-load",
                                className="button secondary",
                            ),
                            html.Button(
                                "Delete selected", id="compare-delete", className="button warning"
                            ),
                        ],
                        className="button-row",
                    ),
                    dcc.Loading(html.Div(id="compare-message", **{"aria-live": "polite"})),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Side by side", className="h3"),
                    scroll_table(
                        dash_table.DataTable(
                            id="compare-table",
                            data=[],
                            columns=[],
                            **style,
                            style_data_conditional=[
                                {"if": {"filter_query": '{kpi} = "Limits"'}, "fontWeight": "bold"},
                                {
                                    "if": {"filter_query": '{kpi} = "Settings"'},
                                    "backgroundColor": NHS_LIGHT_GREY,
                                    "fontWeight": "bold",
                                },
                            ],
                        )
                    ),
                    dcc.Graph(
                        id="compare-chart",
                        figure=figures.compare_chart({}, []),
                        config=CHART_CONFIG,
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            dcc.Store(id="compare-refresh", data=0),
        ]
    )


def _who(identity: Identity | None) -> Identity:
    return identity if identity is not None else current_identity()


def saved_entry(
    name: str, config: AppConfig, identity: Identity | None = None
) -> dict[str, Any] | None:
    """The team's own saved plan (or scenario) called ``name``, if there is one."""
    who = _who(identity)
    store = open_store(config)
    try:
        plan = store.find_plan(name, who.team)
        if plan is not None:
            return plan
        return next((s for s in store.list_scenarios(team=who.team)
                     if s["name"] == name and s["team"] == who.team), None)  # fmt: skip
    finally:
        store.close()


def facts_of(scenario, plan, settings: Mapping[str, Any] | None = None) -> tuple[dict, list[str]]:
    """(settings, limits broken) of a plan for a scenario: the settings it was made under
    (as recorded, else from its solver report and the scenario), judged afresh."""
    from pathways.constraints import resolve_goals
    from pathways.instance import prepare

    inst = prepare(scenario)
    today = evaluate(inst)
    cards = {"current": today, "plan": evaluate(inst, plan)}
    base = plan_settings(resolve_goals(inst, today), plan.solver)
    merged = {**base, **{k: v for k, v in (settings or {}).items() if v is not None}}
    return merged, judge(inst, cards)["plan"]


def save(
    name: str | None, scenario_data: dict | None, result: dict | None, config: AppConfig,
    replace: bool = False, *, shared: bool = False, identity: Identity | None = None,
    expect_version: int | None = None,
) -> tuple[Any, bool]:  # fmt: skip
    """Save the session's scenario and plan as ``name`` in the team's workspace: returns
    (message, saved).

    A name already in use is not overwritten unless ``replace`` (and then only the version
    the user was asked about, ``expect_version``). ``shared`` lets every team read it. The
    scorecard is saved with the settings the plan was made under and the limits it breaks.
    """
    who = _who(identity)
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        return message("Type a name first.", "warning"), False
    if not replace and saved_entry(name, config, who) is not None:
        return message(
            f"A saved plan called '{name}' already exists: nothing was saved.", "warning"
        ), False
    scenario = scenario_from_store(scenario_data)
    fresh = result_is_fresh(result, scenario)
    plan = plan_from_result(result) if fresh else None
    if plan is not None:
        card = dict(result["cards"].get("optimised") or evaluate(scenario, plan).to_dict())
        what = "the optimised plan"
        settings = result.get("settings")
    else:
        plan = baseline_plan(scenario).model_copy(update={"name": "current"})
        card = evaluate(scenario).to_dict()
        what = "today's capacity"
        settings = None
    card["settings"], card["breaches"] = facts_of(scenario, plan, settings)
    store = open_store(config)
    try:
        if replace and expect_version is not None:  # check before the scenario is replaced
            entry = store.find_plan(name, who.team)
            if entry is not None and entry["version"] != expect_version:
                raise InputError(Problem(
                    "store", None, "name",
                    f"the saved plan '{name}' was changed by someone else since you were asked; "
                    "nothing was replaced: save again to see the latest version",
                ))  # fmt: skip
        store.save_scenario(name, scenario, user=who.user, team=who.team, shared=shared)
        store.save_plan(name, name, plan, scorecard=card, user=who.user, team=who.team,
                        shared=shared, expect_version=expect_version if replace else None)  # fmt: skip
    finally:
        store.close()
    verb = "Replaced" if replace else "Saved"
    note = f"{verb} scenario '{name}' with {what}" + (", shared with every team" if shared else "")
    broken = card["breaches"]
    if broken:
        return message(note + f"; it {breach_summary(broken)}.", "warning", broken), True
    return message(note + ".", "success"), True


def save_flow(trigger: Any, name: str | None, pending: Any, scenario_data: dict | None,
              result: dict | None, config: AppConfig, shared: bool = False,
              identity: Identity | None = None) -> tuple:  # fmt: skip
    """Save, ask before replacing, replace or keep: returns (message, saved, confirm class,
    confirm text, pending: the name and version the user was asked about)."""
    hidden = "message message-warning hidden"
    who = _who(identity)
    if trigger == "compare-keep":
        return (message("Nothing was replaced: type another name and save again.", "info"), False,
                hidden, "", None)  # fmt: skip
    if trigger == "compare-replace" and pending:
        asked = pending if isinstance(pending, dict) else {"name": pending}
        version = asked.get("version")
        note, saved = save(str(asked.get("name") or ""), scenario_data, result, config, replace=True,
                           shared=shared, identity=who,
                           expect_version=version if isinstance(version, int) else None)  # fmt: skip
        return note, saved, hidden, "", None
    name = name.strip() if isinstance(name, str) else ""
    entry = saved_entry(name, config, who) if name else None
    if entry is not None:
        when = _when(entry.get("created_at"))
        by = f" by {entry['user']}" if entry.get("user") else ""
        text = (f"A saved plan called '{name}' already exists (saved {when}{by}). Replace it with "
                "this session's scenario and plan?")  # fmt: skip
        return (
            None,
            False,
            "message message-warning",
            text,
            {"name": name, "version": entry.get("version")},
        )
    note, saved = save(name, scenario_data, result, config, shared=shared, identity=who)
    return note, saved, hidden, "", None


@callback(
    Output("compare-save-message", "children"),
    Output("compare-refresh", "data"),
    Output("compare-confirm", "className"),
    Output("compare-confirm-text", "children"),
    Output("compare-pending", "data"),
    Input("compare-save", "n_clicks"),
    Input("compare-name", "n_submit"),
    Input("compare-replace", "n_clicks"),
    Input("compare-keep", "n_clicks"),
    State("compare-name", "value"),
    State("compare-pending", "data"),
    State("app-scenario", "data"),
    State("app-result", "data"),
    State("compare-refresh", "data"),
    State("compare-share", "value"),
    prevent_initial_call=True,
)
def on_save(_n, _submit, _replace, _keep, name, pending, scenario_data, result, token, share):
    trigger = user_trigger()
    if trigger is None:
        return no_update, no_update, no_update, no_update, no_update
    try:
        shared = isinstance(share, list) and "share" in share
        note, saved, cls, text, pend = save_flow(trigger, name, pending, scenario_data, result,
                                                 current_config(), shared)  # fmt: skip
        return note, ((token or 0) + 1 if saved else no_update), cls, text, pend
    except InputError as err:
        return error_message(err), no_update, no_update, no_update, no_update
    except Exception as err:  # noqa: BLE001
        log.exception("save failed")
        return error_message(err), no_update, no_update, no_update, no_update


def saved_rows(config: AppConfig, identity: Identity | None = None) -> list[dict[str, Any]]:
    """The saved plans the team may read (its own, then those other teams share), each with
    its unguessable token: the server checks the team again on every use of a token."""
    who = _who(identity)
    store = open_store(config)
    try:
        plans = store.list_plans(team=who.team)
    finally:
        store.close()
    plans.sort(key=lambda p: (p["team"] != who.team, p["name"], p["team"]))
    return [{"name": p["name"], "scenario_name": p["scenario_name"], "created_at": _when(p["created_at"]),
             "user": p["user"], "token": p["token"],
             "workspace": ("yours, shared" if p["shared"] else "yours") if p["team"] == who.team
             else f"shared by {p['team']}"} for p in plans]  # fmt: skip


def _when(iso: str | None) -> str:
    """``2026-11-26T12:50:40.93+00:00`` as ``2026-11-26 12:50 UTC``."""
    if not iso:
        return ""
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    zone = " UTC" if t.utcoffset() == dt.timedelta(0) else ""
    return t.strftime("%Y-%m-%d %H:%M") + zone


def _column(entry: Mapping[str, Any], team: str) -> str:
    """A saved plan's column heading: its name, with the team for another team's plan."""
    return entry["name"] if entry["team"] == team else f"{entry['name']} ({entry['team']})"


def compare(
    tokens: Sequence[str], config: AppConfig, identity: Identity | None = None
) -> tuple[list[dict], list[dict], Any]:
    """Headline KPIs of saved plans (by token) side by side, then the settings each was made
    under and the limits it breaks: (rows, columns, chart)."""
    who = _who(identity)
    store = open_store(config)
    kpis: dict[str, dict[str, float]] = {}
    facts: dict[str, tuple[dict, list[str]]] = {}
    roles: dict[str, str] = {}
    try:
        for token in tokens:
            entry, scenario, plan, card = store.open_saved(token, who.team)
            name = _column(entry, who.team)
            if not card or "kpis" not in card:
                card = evaluate(scenario, plan).to_dict()
            kpis[name] = card["kpis"]
            facts[name] = facts_of(scenario, plan, card.get("settings"))
            roles[name] = "current" if plan.name == "current" else "optimised"
    finally:
        store.close()
    keys = [k for k in HEADLINE_KPIS if all(k in v for v in kpis.values())]
    rows = [{"kpi": kpi_label(k), **{n: fmt_value(k, kpis[n].get(k)) for n in kpis}} for k in keys]
    rows.append({"kpi": "Limits", **{n: _limits_text(facts[n][1]) for n in kpis}})
    rows.append({"kpi": "Settings", **{n: "" for n in kpis}})
    labels = [label for label, _ in settings_rows(next(iter(facts.values()))[0])] if facts else []
    by_plan = {n: dict(settings_rows(facts[n][0])) for n in kpis}
    for label in dict.fromkeys(labels + [lb for n in kpis for lb in by_plan[n]]):
        rows.append({"kpi": label, **{n: by_plan[n].get(label, "–") for n in kpis}})
    cols = [{"name": "Measure", "id": "kpi"}] + [{"name": n, "id": n} for n in kpis]
    chart_keys = [k for k in keys if k not in ("inpatient_occupancy",)]
    return rows, cols, figures.compare_chart(kpis, chart_keys, roles)


def _limits_text(broken: Sequence[str]) -> str:
    if not broken:
        return "meets every limit"
    return f"{breach_summary(broken).upper()[0]}{breach_summary(broken)[1:]}: " + "; ".join(broken)


def load(token: str, config: AppConfig, identity: Identity | None = None) -> tuple[dict, dict]:
    """A saved scenario and plan (by token, if the team may read it) as session stores
    (scenario, result)."""
    who = _who(identity)
    store = open_store(config)
    try:
        _entry, scenario, plan, card = store.open_saved(token, who.team)
    finally:
        store.close()
    if plan.name == "current":
        return scenario_to_store(scenario), None
    today = evaluate(scenario)
    settings, broken = facts_of(scenario, plan, (card or {}).get("settings"))
    result = {
        "scenario_fingerprint": scenario.fingerprint(), "scenario_name": scenario.name,
        "plan": plan.model_dump(mode="json"), "baselines": {},
        "cards": {"current": today.to_dict(), "optimised": card or evaluate(scenario, plan).to_dict()},
        "objectives": {}, "budget_gbp": settings.get("budget_gbp"), "mode": scenario.objective.mode,
        "seconds": None, "settings": settings,
        "breaches": {"current": judge(scenario, {"current": today})["current"], "optimised": broken},
    }  # fmt: skip
    return scenario_to_store(scenario), result


@callback(
    Output("compare-saved", "data"),
    Output("compare-saved", "selected_rows"),
    Output("compare-table", "data"),
    Output("compare-table", "columns"),
    Output("compare-chart", "figure"),
    Output("compare-message", "children"),
    Output("app-scenario", "data", allow_duplicate=True),
    Output("app-result", "data", allow_duplicate=True),
    Input("compare-refresh", "data"),
    Input("compare-run", "n_clicks"),
    Input("compare-load", "n_clicks"),
    Input("compare-delete", "n_clicks"),
    State("compare-saved", "data"),
    State("compare-saved", "selected_rows"),
    prevent_initial_call="initial_duplicate",
)
def on_saved(_refresh, _run, _load, _delete, rows, selected):
    return act(user_trigger(), rows or [], selected or [], current_config())


def _picked(rows: Any, selected: Any) -> list[tuple[str, str]]:
    """(name, token) of the selected rows, from what the browser sent (checked later by the
    store against the team: a made-up or replayed token opens nothing)."""
    if not isinstance(rows, list) or not isinstance(selected, list):
        return []
    picked = []
    for i in selected:
        if isinstance(i, int) and 0 <= i < len(rows) and isinstance(rows[i], dict):
            name, token = rows[i].get("name"), rows[i].get("token")
            if isinstance(token, str) and token:
                picked.append((str(name or ""), token))
    return picked


def act(trigger: str | None, rows: list[dict], selected: list[int], config: AppConfig,
        identity: Identity | None = None) -> tuple:  # fmt: skip
    """List, compare, open or delete saved plans (8 outputs, see ``on_saved``)."""
    keep = (no_update,) * 4
    who = _who(identity)
    picked = _picked(rows, selected)
    names = [n for n, _ in picked]
    tokens = [t for _, t in picked]
    try:
        if trigger == "compare-run":
            if len(names) < 2:
                return (no_update, no_update, *keep[:3], message("Select two or more saved plans.", "warning"),
                        no_update, no_update)  # fmt: skip
            t_rows, t_cols, fig = compare(tokens, config, who)
            return no_update, no_update, t_rows, t_cols, fig, None, no_update, no_update
        if trigger == "compare-load":
            if len(names) != 1:
                return (no_update, no_update, *keep[:3], message("Select exactly one plan to open.", "warning"),
                        no_update, no_update)  # fmt: skip
            scenario_data, result = load(tokens[0], config, who)
            return (
                no_update,
                no_update,
                *keep[:3],
                message(f"Opened '{names[0]}': see the Results page.", "success"),
                scenario_data,
                result,
            )
        if trigger == "compare-delete" and names:
            store = open_store(config)
            try:
                gone = [store.delete_saved(token, who.team) for token in tokens]
            finally:
                store.close()
            note = message(f"Deleted {', '.join(gone)}.", "success")
            return (
                saved_rows(config, who),
                [],
                [],
                [],
                figures.compare_chart({}, []),
                note,
                no_update,
                no_update,
            )
        listed = saved_rows(config, who)
        note = (
            None
            if listed
            else message("No saved plans yet: save this session's plan above.", "info")
        )
        return listed, [], *keep[:3], note, no_update, no_update
    except Exception as err:  # noqa: BLE001
        if not isinstance(err, InputError):
            log.exception("saved plans action failed")
        return no_update, no_update, *keep[:3], error_message(err), no_update, no_update
