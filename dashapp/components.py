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
        return f"£{v / 1e6:,.2f}M" if abs(v) >= 1e5 else f"£{v:,.0f}"
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
        return f"{'+' if d >= 0 else '−'}£{abs(d) / 1e6:,.2f}M"
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


def problems_table(rows: Sequence[Mapping[str, Any]], id: str) -> html.Div:
    """The problems of a bad upload as a table (file, row, field, what is wrong)."""
    n = len(rows)
    return html.Div(
        [
            html.Strong(
                f"The file could not be used: {n} problem{'s' if n != 1 else ''} found. "
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


def job_view(running: bool | None, progress: Mapping[str, Any] | None) -> tuple:
    """A background job's controls: (run disabled, cancel disabled, progress %, text, class)."""
    if running:
        pct = float((progress or {}).get("pct") or 0)
        text = (progress or {}).get("text") or "starting"
        return True, False, pct, text, "progress-wrap"
    return False, True, 0, "", "progress-wrap hidden"
