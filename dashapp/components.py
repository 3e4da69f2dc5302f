"""Words, number formats and small layout pieces shared by the pages."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dash import dash_table, dcc, html

from pathways.io import KPI_FORMAT, KPI_LABELS  # one label table, in the library

# NHS identity colours.
NHS_BLUE = "#005EB8"
NHS_DARK_BLUE = "#003087"
NHS_LIGHT_GREY = "#E8EDEE"
NHS_MID_GREY = "#768692"
NHS_DARK_GREY = "#425563"
NHS_WARM_YELLOW = "#FFB81C"
NHS_RED = "#DA291C"
NHS_GREEN = "#007F3B"
NHS_ORANGE = "#ED8B00"
NHS_PINK = "#AE2573"
NHS_BLACK = "#231f20"
FONT_STACK = '"Frutiger W01", Arial, Helvetica, sans-serif'
#: Charts show no toolbar (maps keep theirs, for zooming).
CHART_CONFIG = {"displayModeBar": False, "displaylogo": False}
MAP_CONFIG = {
    "displaylogo": False,
    "scrollZoom": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}

SERVICE_COLOURS: dict[str, str] = {
    "inpatient": NHS_DARK_BLUE,
    "crisis_house": NHS_GREEN,
    "mobile_team": NHS_ORANGE,
    "place_of_safety": NHS_PINK,
}
SERVICE_NAMES: dict[str, str] = {
    "inpatient": "Inpatient beds",
    "crisis_house": "Crisis-house places",
    "mobile_team": "Mobile crisis teams",
    "place_of_safety": "Place-of-safety suites",
}

#: KPIs that are better when they go down unless listed in ``pathways.kpis.HIGHER_IS_BETTER``;
#: occupancy is neither (shown without a verdict).
NEUTRAL_KPIS = frozenset({"inpatient_occupancy", "episodes_per_year"})


def kpi_label(key: str) -> str:
    return KPI_LABELS.get(key, key.replace("_", " ").capitalize())


def fmt_money(value: Any, signed: bool = False) -> str:
    """Money the one way the app writes it: ``£60.12M`` from a million up, else ``£14,823``.

    ``signed`` puts ``+`` or ``−`` in front (for changes).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    sign = ("+" if v >= 0 else "−") if signed else ("−" if v < 0 else "")
    a = abs(v)
    body = f"£{a / 1e6:,.2f}M" if round(a) >= 1e6 else f"£{a:,.0f}"
    return sign + body


def fmt_value(key: str, value: Any) -> str:
    """A KPI value as a commissioner reads it (``86%``, ``£12.3M``, ``1,234``)."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    kind = KPI_FORMAT.get(key, "count")
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "gbp":
        return fmt_money(v)
    if kind == "mins":
        return f"{v:,.1f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


def fmt_change(key: str, new: Any, old: Any) -> str:
    try:
        d = float(new) - float(old)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(d):
        return "–"
    kind = KPI_FORMAT.get(key, "count")
    if kind == "pct":
        return f"{d * 100:+.1f} points"
    if kind == "gbp":
        return fmt_money(d, signed=True)
    return f"{d:+,.1f}" if abs(d) < 100 else f"{d:+,.0f}"


def verdict(key: str, new: Any, old: Any, higher_is_better: frozenset[str]) -> str:
    """``better``, ``worse`` or ``same`` (or ``neutral``) for a KPI change."""
    try:
        d = float(new) - float(old)
    except (TypeError, ValueError):
        return "neutral"
    if key in NEUTRAL_KPIS or not math.isfinite(d):
        return "neutral"
    scale = max(abs(float(old)), 1e-9)
    if abs(d) / scale < 1e-3:
        return "same"
    up_good = key in higher_is_better
    return "better" if (d > 0) == up_good else "worse"


# --------------------------------------------------------------------------- layout pieces


def page_header(title: str, lead: str) -> html.Div:
    return html.Div([html.H1(title), html.P(lead, className="lead")], className="page-header")


def card(label: str, value: str, note: str = "", id: str | None = None) -> html.Div:
    kwargs = {"id": id} if id else {}
    return html.Div(
        [html.Div(label, className="card-label"), html.Div(value, className="card-value"),
         html.Div(note, className="card-note") if note else None],
        className="summary-card", **kwargs,
    )  # fmt: skip


def message(text: Any, kind: str = "info", details: Sequence[str] = ()) -> html.Div:
    """A status message: ``info``, ``success``, ``warning`` or ``error`` (announced to screen readers)."""
    role = "alert" if kind in ("error", "warning") else "status"
    body: list[Any] = [html.Strong(text) if details else html.Span(text)]
    if details:
        body.append(html.Ul([html.Li(d) for d in details]))
    return html.Div(body, className=f"message message-{kind}", role=role)


def error_message(err: BaseException) -> html.Div:
    from dashapp.state import error_lines

    head, lines = error_lines(err)
    return message(head, "error", lines)


# Messages kept in session stores (so a background job's outcome survives page changes)
# are plain dicts: {"kind", "head", "lines", "link", "link_text"}.


def message_data(
    head: str, kind: str = "info", lines: Sequence[str] = (), link: str | None = None,
    link_text: str = "",
) -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "head": head, "lines": list(lines), "link": link, "link_text": link_text}


def error_data(err: BaseException) -> dict[str, Any]:
    from dashapp.state import error_lines

    head, lines = error_lines(err)
    return message_data(head, "error", lines)


def render_message(data: Mapping[str, Any] | None) -> html.Div | None:
    """A stored message as a component (``None`` when there is none)."""
    if not data:
        return None
    head: Any = data.get("head", "")
    if data.get("link"):
        head = [
            head,
            " ",
            dcc.Link(data.get("link_text") or "Open", href=data["link"], className="link"),
        ]
    return message(head, data.get("kind", "info"), data.get("lines") or ())


def problems_table(
    rows: Sequence[Mapping[str, Any]], id: str, heading: str | None = None
) -> html.Div:
    """The problems of a bad upload (or a bad edit: give ``heading``) as a table
    (file, row, field, what is wrong)."""
    n = len(rows)
    return html.Div(
        [
            html.Strong(
                heading
                or f"The file could not be used: {n} problem{'s' if n != 1 else ''} found. "
                "Fix them and upload it again."
            ),
            dash_table.DataTable(
                id=id,
                data=list(rows)[:200],
                columns=[{"name": c.capitalize(), "id": c} for c in ("file", "row", "field", "message")],
                style_cell={"textAlign": "left", "whiteSpace": "normal", "height": "auto",
                            "fontFamily": FONT_STACK, "fontSize": "0.9rem"},
                style_header={"fontWeight": "bold", "backgroundColor": NHS_LIGHT_GREY},
                page_size=10,
            ),
        ],
        className="message message-error",
        role="alert",
    )  # fmt: skip


def empty_state(text: str) -> html.Div:
    return html.Div(text, className="empty-state")


def data_table_style() -> dict[str, Any]:
    """Shared DataTable styling (readable, NHS colours, wraps long text)."""
    return {
        "style_cell": {"fontFamily": FONT_STACK, "fontSize": "0.92rem", "padding": "6px 8px",
                       "textAlign": "left", "whiteSpace": "normal", "height": "auto"},
        "style_header": {"backgroundColor": NHS_DARK_BLUE, "color": "white", "fontWeight": "bold"},
        "style_table": {"overflowX": "auto"},
    }  # fmt: skip


def scroll_table(table: Any, cue: str = "Swipe or scroll sideways to see every column") -> html.Div:
    """A wide table that scrolls sideways inside its panel, with a cue on narrow screens
    (the fading edge shows there is more to the right)."""
    return html.Div([html.P(["↔ ", cue], className="scroll-cue"), html.Div(table, className="table-scroll")],
                    className="table-wrap")  # fmt: skip


def size_key(spec: Sequence[Mapping[str, Any]]) -> html.Div | None:
    """The key to map markers' sizes (from ``figures.marker_size_key``): per service, the
    marker of its smallest and largest capacity, drawn at their size on the map."""
    if not spec:
        return None
    items = []
    for entry in spec:
        parts: list[Any] = [html.Span(entry["name"], className="size-key-name")]
        for value, px in entry["sizes"]:
            d = f"{px:.0f}px"
            parts += [html.Span(className="size-key-dot", style={"width": d, "height": d,
                                                                 "background": entry["colour"]}),
                      html.Span(f"{value:,.0f} {entry['units'][value != 1]}", className="size-key-value")]  # fmt: skip
        items.append(html.Li(parts))
    return html.Div([html.Span("Marker size shows capacity:", className="size-key-title"),
                     html.Ul(items)], className="size-key")  # fmt: skip


def user_trigger() -> Any:
    """The id of the one input the user changed, or ``None``.

    When a page is shown, Dash reports every input of the new layout as triggered (and
    fires callbacks whose inputs were rendered by another callback); those calls are
    initial renders, not user actions. Buttons that were never clicked do not count.
    """
    from dash import ctx

    triggered = ctx.triggered or []
    if len(ctx.triggered_prop_ids) != 1:
        return None
    prop = triggered[0].get("prop_id", "")
    value = triggered[0].get("value")
    if (
        prop.endswith((".n_clicks", ".n_blur", ".n_submit", ".contents", ".clickData"))
        and not value
    ):
        return None
    return ctx.triggered_id


def job_state(running: bool | None, progress: Mapping[str, Any] | None,
              watch: Mapping[str, Any] | None = None) -> tuple[bool, float, str]:  # fmt: skip
    """(running, percent, text) of a background job: the one this page load started
    (``running``/``progress``), else one it found on the job board after a reload (``watch``)."""
    if running:
        return (
            True,
            float((progress or {}).get("pct") or 0),
            (progress or {}).get("text") or "starting",
        )
    if watch and watch.get("state") == "running":
        text = watch.get("text") or "running"
        return True, float(watch.get("pct") or 0), f"{text} (started before the page was reloaded)"
    return False, 0.0, ""


def job_view(running: bool | None, progress: Mapping[str, Any] | None,
             watch: Mapping[str, Any] | None = None) -> tuple:  # fmt: skip
    """A background job's controls: (run disabled, cancel disabled, progress %, text, class)."""
    busy, pct, text = job_state(running, progress, watch)
    if busy:
        return True, False, pct, text, "progress-wrap"
    return False, True, 0, "", "progress-wrap hidden"


# --------------------------------------------------------------------------- plan settings

#: The optimiser's objectives in commissioners' words.
MODE_WORDS = {
    "min_weighted": "Fewest out-of-area bed-days and admissions within the budget",
    "min_cost": "Least cost that meets the targets",
}


def _pct_or(value: Any, none: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return none
    return f"{v:.1%}" if math.isfinite(v) else none


def status_words(settings: Mapping[str, Any] | None) -> str:
    """How the search for a plan ended, in commissioners' words (with the gap)."""
    settings = settings or {}
    status = settings.get("status")
    if not status:
        return "not optimised: the scenario's capacity as entered"
    from pathways.optimise import status_text
    from pathways.plan import SolverReport

    words = status_text(SolverReport(status=str(status), gap=settings.get("gap"),
                                     message=settings.get("solver_message") or ""))  # fmt: skip
    gap = settings.get("gap")
    said = "%" in (settings.get("solver_message") or "")  # the solver's words may give the gap
    if (
        status in ("OPTIMAL", "TIME_LIMIT")
        and not said
        and gap is not None
        and math.isfinite(float(gap))
    ):
        words += f" (within {float(gap):.1%} of the best possible)"
    return words[0].upper() + words[1:]


def settings_rows(settings: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The settings a plan was made under (or is judged against) as (setting, value) pairs."""
    s = dict(settings or {})
    mode = s.get("mode") or "min_weighted"
    rows = [("Objective", MODE_WORDS.get(mode, str(mode)))]
    budget = s.get("budget_gbp")
    rows.append(
        ("Revenue budget", f"{fmt_money(budget)} a year" if budget is not None else "today's spend")
    )
    capital = s.get("capital_gbp")
    rows.append(
        ("Capital for new sites", fmt_money(capital) if capital is not None else "no limit")
    )
    if mode == "min_cost":
        oap, adm = s.get("oap_bed_days_max"), s.get("admissions_max")
        rows.append(("Target: out-of-area bed-days a year at most",
                     f"{float(oap):,.0f}" if oap is not None else "no target"))  # fmt: skip
        rows.append(("Target: admissions a year at most",
                     f"{float(adm):,.0f}" if adm is not None else "no target"))  # fmt: skip
    rows.append(("Mobile responses within the standard, at least",
                 _pct_or(s.get("mobile_within_min"), "no minimum")))  # fmt: skip
    rows.append(("Crisis-line calls answered within target, at least",
                 _pct_or(s.get("hub_sl_min"), "no minimum")))  # fmt: skip
    mins, share = s.get("ch_travel_mins"), s.get("ch_pop_share_min")
    rows.append(("Crisis-house coverage",
                 f"at least {_pct_or(share, '')} of people within {float(mins):,.0f} minutes"
                 if mins is not None and share is not None else "no coverage rule"))  # fmt: skip
    gap = s.get("equity_gap")
    rows.append(("Equity rule", "off" if gap is None else
                 f"the most deprived fifth at most {float(gap) * 100:,.1f} points below the average"))  # fmt: skip
    if s.get("status") or s.get("time_limit_s") is not None:
        limit, target = s.get("time_limit_s"), s.get("gap_target")
        rows.append(("Time limit", f"{float(limit):,.0f} seconds" if limit is not None else "–"))
        rows.append(("Optimality gap aimed for", _pct_or(target, "–")))
    rows.append(("Solver status", status_words(s)))
    return rows


def breach_summary(breaches: Sequence[str] | None) -> str:
    """``meets every limit`` or ``breaks 2 limits``."""
    n = len(breaches or ())
    return "meets every limit" if n == 0 else f"breaks {n} limit{'s' if n != 1 else ''}"


def plan_facts(settings: Mapping[str, Any] | None, breaches: Sequence[str] | None,
               title: str = "Settings used for this plan", id: str | None = None) -> html.Div:  # fmt: skip
    """A plan's settings and whether it meets every limit, for the Results and Compare pages."""
    rows = settings_rows(settings)
    body: list[Any] = [
        html.H3(title, className="h4"),
        html.Dl(
            [html.Div([html.Dt(label), html.Dd(value)], className="fact") for label, value in rows],
            className="facts",
        ),
    ]
    if breaches:
        body.append(message(f"This plan {breach_summary(breaches)}:", "error", list(breaches)))
    else:
        body.append(html.P("It meets every limit above.", className="hint meets"))
    kwargs = {"id": id} if id else {}
    return html.Div(body, className="plan-facts", **kwargs)


BASIS_WORDS = {
    "published": "Published",
    "calibrated": "Calibrated",
    "assumed": "Assumed",
    "setting": "Your setting",
}
"""How the app names each basis of :mod:`pathways.provenance`."""


def basis_tag(basis: str) -> html.Span:
    """A small label saying whether a figure is published, calibrated, assumed or set."""
    return html.Span(BASIS_WORDS.get(basis, basis), className=f"basis-tag basis-{basis}")


def capacity_sources(rows: Sequence[Mapping[str, Any]]) -> html.Div:
    """Where today's capacities come from: one line per capacity with its basis."""
    return html.Div(
        [
            html.H3("Where today's capacities come from", className="panel-title"),
            html.Ul(
                [
                    html.Li([basis_tag(r["basis"]), " ", html.B(r["figure"]), ": ", r["source"]])
                    for r in rows
                ],
                className="sources-list",
            ),
        ],
        className="panel",
        id="services-sources-panel",
    )
