"""Every figure the app draws, as pure functions of plain data.

Nothing here reads files, session state or the network: maps are drawn from the
GeoJSON passed in, on a blank MapLibre style (``white-bg``) unless a raster tile URL
is given, so they work offline. Every function accepts empty input and then returns
a figure that says there is nothing to show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashapp.components import (
    NHS_BLUE,
    NHS_DARK_BLUE,
    NHS_DARK_GREY,
    NHS_GREEN,
    NHS_MID_GREY,
    NHS_RED,
    NHS_WARM_YELLOW,
    SERVICE_COLOURS,
    SERVICE_NAMES,
    fmt_value,
    kpi_label,
)
from dashapp.state import MapGeometry

FONT = {"family": "Frutiger W01, Arial, Helvetica, sans-serif", "size": 14, "color": "#212b32"}
MAP_HEIGHT = 540
ATTRIBUTION = "Boundaries: ONS, contains OS data © Crown copyright and database right"

BLUES = [[0.0, "#F0F4F5"], [0.35, "#41B6E6"], [0.7, NHS_BLUE], [1.0, NHS_DARK_BLUE]]
DEPRIVATION = [[0.0, NHS_DARK_BLUE], [0.5, "#41B6E6"], [1.0, "#F0F4F5"]]
GREYS = [[0.0, "#FFFFFF"], [1.0, "#AEB7BD"]]
TRAFFIC = [[0.0, NHS_GREEN], [0.5, NHS_WARM_YELLOW], [1.0, NHS_RED]]
PLAN_COLOURS = [NHS_MID_GREY, NHS_BLUE, NHS_DARK_BLUE, NHS_GREEN, "#330072", "#ED8B00", "#AE2573"]
SERVICE_ORDER = ("inpatient", "crisis_house", "place_of_safety", "mobile_team")
#: Marker size range (px) per service: later layers are smaller, so co-located services
#: show as rings around each other rather than hiding one another.
MARKER_SIZES = {
    "inpatient": (14, 38),
    "crisis_house": (12, 28),
    "place_of_safety": (10, 22),
    "mobile_team": (7, 14),
}


def _layout(fig: go.Figure, **kwargs: Any) -> go.Figure:
    settings = {"template": "plotly_white", "font": FONT, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                "hoverlabel": {"font": {"family": FONT["family"], "size": 13}}}  # fmt: skip
    fig.update_layout(**{**settings, **kwargs})
    return fig


def empty_figure(text: str = "Nothing to show yet.", height: int = 320) -> go.Figure:
    """A blank figure carrying a message (for empty or failed states)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 16, "color": NHS_DARK_GREY})  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=height)


# --------------------------------------------------------------------------- maps


def fit_view(
    bounds: Sequence[float], width_px: float = 760, height_px: float = MAP_HEIGHT
) -> tuple[dict[str, float], float]:
    """Centre and zoom that show ``bounds`` (west, south, east, north) in a web-Mercator map."""
    west, south, east, north = (float(b) for b in bounds)
    centre = {"lon": (west + east) / 2, "lat": (south + north) / 2}
    lon_span = max(east - west, 1e-3)

    def merc(lat: float) -> float:
        lat = max(min(lat, 85.0), -85.0)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    y_span = max(merc(north) - merc(south), 1e-5)
    z_lon = math.log2(width_px * 360.0 / (512.0 * lon_span))
    z_lat = math.log2(height_px * 2 * math.pi / (512.0 * y_span))
    centre["lat"] = math.degrees(
        2 * math.atan(math.exp((merc(north) + merc(south)) / 2)) - math.pi / 2
    )
    return centre, max(min(z_lon, z_lat) - 0.15, 1.0)


def _map_layout(fig: go.Figure, geometry: MapGeometry, tile_url: str | None, uirevision: str,
                height: int = MAP_HEIGHT, width_px: float = 760) -> go.Figure:  # fmt: skip
    # leave room for the colour bar and the margins
    centre, zoom = fit_view(geometry.bounds, width_px=0.8 * width_px, height_px=height - 60)
    layers = []
    if tile_url:
        layers.append({"sourcetype": "raster", "source": [tile_url], "below": "traces",
                       "sourceattribution": "Map tiles as configured"})  # fmt: skip
    fig.update_layout(
        map={"style": "white-bg", "center": centre, "zoom": zoom, "layers": layers},
        height=height, uirevision=uirevision,
        legend={"orientation": "h", "yanchor": "top", "y": -0.01, "xanchor": "left", "x": 0,
                "bgcolor": "rgba(255,255,255,0.9)", "font": {"size": 13}},
        margin={"l": 0, "r": 0, "t": 8, "b": 40},
    )  # fmt: skip
    fig.add_annotation(text=ATTRIBUTION, x=0, y=0, xref="paper", yref="paper", showarrow=False,
                       xanchor="left", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)",
                       font={"size": 10, "color": NHS_DARK_GREY})  # fmt: skip
    return fig


def _area_trace(
    geometry: MapGeometry, values: pd.Series, hover: Sequence[str], colorscale: Any,
    colorbar_title: str, zmin: float | None, zmax: float | None,
) -> go.BaseTraceType:  # fmt: skip
    ids = list(geometry.ids)
    z = pd.Series(values, dtype=float).reindex(ids).to_numpy()
    finite = z[np.isfinite(z)]
    lo = float(np.nanmin(finite)) if zmin is None and finite.size else zmin
    hi = float(np.nanmax(finite)) if zmax is None and finite.size else zmax
    colorbar = {"title": {"text": colorbar_title, "side": "right"}, "thickness": 14, "len": 0.8,
                "x": 1.0, "xanchor": "right", "bgcolor": "rgba(255,255,255,0.85)"}  # fmt: skip
    if geometry.kind == "polygons":
        return go.Choroplethmap(
            geojson=geometry.geojson, locations=ids, z=z, featureidkey="id",
            colorscale=colorscale, zmin=lo, zmax=hi, marker={"line": {"width": 0.3, "color": "white"},
                                                             "opacity": 0.85},
            hovertext=list(hover), hovertemplate="%{hovertext}<extra></extra>",
            colorbar=colorbar, name="areas", showlegend=False,
        )  # fmt: skip
    return go.Scattermap(
        lon=list(geometry.lon), lat=list(geometry.lat), mode="markers", ids=ids,
        marker={"size": 9, "color": z, "colorscale": colorscale, "cmin": lo, "cmax": hi,
                "colorbar": colorbar, "opacity": 0.85},
        hovertext=list(hover), hovertemplate="%{hovertext}<extra></extra>", name="areas",
        showlegend=False,
    )  # fmt: skip


def _site_hover(row: Mapping[str, Any], with_change: bool) -> str:
    lines = [f"<b>{row['name']}</b> ({row['site_id']})", f"{row['status']}"]
    for svc in SERVICE_ORDER:
        cap = int(row.get(svc, 0) or 0)
        now = int(row.get(f"{svc}_now", cap) or 0)
        if svc not in row.get("services", ()) and cap == 0:
            continue
        text = f"{SERVICE_NAMES[svc]}: {cap}"
        if with_change and cap != now:
            text += f" (today {now})"
        lines.append(text)
    return "<br>".join(lines)


def site_traces(sites: pd.DataFrame, with_change: bool = False) -> list[go.Scattermap]:
    """Markers for sites: one layer per service sized by capacity, plus unopened candidates."""
    if sites is None or len(sites) == 0:
        return []
    traces = []
    for svc in SERVICE_ORDER:
        cap = pd.to_numeric(
            sites.get(svc, pd.Series(0, index=sites.index)), errors="coerce"
        ).fillna(0)
        on = sites[cap > 0]
        if len(on) == 0:
            continue
        c = cap[cap > 0].to_numpy(float)
        lo, hi = MARKER_SIZES[svc]
        size = lo + (hi - lo) * np.sqrt(c / c.max())
        traces.append(go.Scattermap(
            lon=on["lon"], lat=on["lat"], mode="markers", name=SERVICE_NAMES[svc],
            marker={"size": size, "color": SERVICE_COLOURS[svc], "opacity": 0.9},
            hovertext=[_site_hover(r, with_change) for r in on.to_dict("records")],
            hovertemplate="%{hovertext}<extra></extra>", customdata=on["site_id"],
        ))  # fmt: skip
    total = sum(pd.to_numeric(sites.get(s, 0), errors="coerce").fillna(0) for s in SERVICE_ORDER)
    idle = sites[np.asarray(total) == 0]
    if len(idle):
        traces.append(go.Scattermap(
            lon=idle["lon"], lat=idle["lat"], mode="markers", name="Site with nothing open",
            marker={"size": 9, "color": NHS_DARK_GREY, "opacity": 0.75},
            hovertext=[_site_hover(r, with_change) for r in idle.to_dict("records")],
            hovertemplate="%{hovertext}<extra></extra>", customdata=idle["site_id"],
        ))  # fmt: skip
    return traces


def area_map(
    geometry: MapGeometry | None,
    values: pd.Series | None = None,
    hover: Sequence[str] | None = None,
    *,
    colorbar_title: str = "",
    colorscale: Any = BLUES,
    zmin: float | None = None,
    zmax: float | None = None,
    sites: pd.DataFrame | None = None,
    with_change: bool = False,
    tile_url: str | None = None,
    uirevision: str = "map",
    height: int = MAP_HEIGHT,
    width_px: float = 760,
) -> go.Figure:
    """Areas shaded by ``values`` (indexed by area code), with optional site markers."""
    if geometry is None or not geometry.ids:
        return empty_figure("No areas to show: choose a footprint first.", height=height)
    if values is None:
        values = pd.Series(0.0, index=list(geometry.ids))
    if hover is None:
        hover = [str(i) for i in geometry.ids]
    fig = go.Figure(_area_trace(geometry, values, hover, colorscale, colorbar_title, zmin, zmax))
    for t in site_traces(sites, with_change):
        fig.add_trace(t)
    _layout(fig)
    return _map_layout(fig, geometry, tile_url, uirevision, height, width_px)


# --------------------------------------------------------------------------- charts


def scorecard_chart(rows: Sequence[Mapping[str, Any]], cap_pct: float = 100.0) -> go.Figure:
    """Horizontal bars of % change per KPI; ``rows`` have ``label``, ``pct`` and ``verdict``.

    Bars longer than ``cap_pct`` are drawn at the cap (hatched) so one large change does
    not flatten the rest; the label always gives the true change.
    """
    rows = [r for r in rows if r.get("pct") is not None and np.isfinite(r["pct"])]
    if not rows:
        return empty_figure("Run the optimiser to compare a plan with today.")
    colours = {"better": NHS_GREEN, "worse": NHS_RED, "same": NHS_MID_GREY, "neutral": NHS_BLUE}
    rows = rows[::-1]
    pct = [float(r["pct"]) for r in rows]
    shown = [max(min(p, cap_pct), -cap_pct) for p in pct]
    labels = [f"{r['label']}: {p:+.1f}%" for r, p in zip(rows, pct, strict=True)]
    fig = go.Figure(go.Bar(
        x=shown, y=labels, orientation="h",
        marker={"color": [colours.get(r["verdict"], NHS_BLUE) for r in rows],
                "pattern": {"shape": ["/" if abs(p) > cap_pct else "" for p in pct]}},
        customdata=pct, hovertemplate="%{y}<extra></extra>",
    ))  # fmt: skip
    span = max(max(abs(p) for p in shown), 1.0) * 1.1
    fig.update_xaxes(title_text="% change from today",
                     range=[-span, span], zeroline=True, zerolinecolor=NHS_DARK_GREY)  # fmt: skip
    return _layout(fig, height=50 + 34 * len(rows), showlegend=False,
                   margin={"l": 10, "r": 10, "t": 10, "b": 40})  # fmt: skip


def equity_chart(
    by_quintile: Mapping[str, Mapping[str, Mapping[str, Any]]], kpi: str, per_100k: bool
) -> go.Figure:
    """Grouped bars of one KPI by IMD quintile (1 = most deprived) for each plan.

    ``by_quintile`` maps plan name -> ``Scorecard.to_dict()["by_imd_quintile"]``.
    """
    plans = {n: q for n, q in by_quintile.items() if q and kpi in q}
    if not plans:
        return empty_figure("No equity figures to show yet.")
    fig = go.Figure()
    xs = ["1 most deprived", "2", "3", "4", "5 least deprived"]
    for k, (name, q) in enumerate(plans.items()):
        vals = []
        for qi in range(1, 6):
            v = q[kpi].get(str(qi))
            pop = q.get("population", {}).get(str(qi))
            if v is None:
                vals.append(None)
            elif per_100k:
                vals.append(v / pop * 1e5 if pop else None)
            else:
                vals.append(v * 100 if _is_share(kpi) else v)
        fig.add_trace(go.Bar(x=xs, y=vals, name=name, marker_color=PLAN_COLOURS[k % len(PLAN_COLOURS)],
                             hovertemplate=f"{name}<br>quintile %{{x}}: %{{y:,.1f}}<extra></extra>"))  # fmt: skip
    unit = " per 100,000 people" if per_100k else (" (%)" if _is_share(kpi) else "")
    fig.update_xaxes(title_text="IMD 2019 quintile of the area")
    fig.update_yaxes(title_text=unit.strip(" ()") or kpi_label(kpi))
    return _layout(fig, barmode="group", height=360, legend={"orientation": "h", "y": -0.25},
                   margin={"l": 10, "r": 10, "t": 10, "b": 10})  # fmt: skip


def _is_share(kpi: str) -> bool:
    return kpi.endswith("_share") or kpi in ("hub_service_level", "inpatient_occupancy")


def frontier_chart(df: pd.DataFrame | None, current_budget: float | None = None) -> go.Figure:
    """OAP bed-days and admissions against the revenue budget (from ``frontier``)."""
    if df is None or len(df) == 0 or "oap_bed_days_per_year" not in df:
        return empty_figure("Compute the frontier to see what each extra pound buys.")
    ok = df[df["oap_bed_days_per_year"].notna()].sort_values("budget_gbp_per_year")
    if len(ok) == 0:
        return empty_figure("No budget in the range gave a feasible plan.")
    x = ok["budget_gbp_per_year"] / 1e6
    # plans the solver proved best (within its gap) are filled; others hollow
    proven = ok.get("status", pd.Series("OPTIMAL", index=ok.index)).eq("OPTIMAL").to_numpy()
    gap = pd.to_numeric(
        ok.get("gap", pd.Series(np.nan, index=ok.index)), errors="coerce"
    ).to_numpy()
    note = [("proven best" if p else f"best found, gap {g:.1%}" if np.isfinite(g) else "best found")
            for p, g in zip(proven, gap, strict=True)]  # fmt: skip
    symbols = ["circle" if p else "circle-open" for p in proven]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=ok["oap_bed_days_per_year"], name="Out-of-area bed-days a year",
                             mode="lines+markers", line={"color": NHS_BLUE, "width": 3},
                             marker={"symbol": symbols, "size": 11, "line": {"width": 2}}, customdata=note,
                             hovertemplate="£%{x:,.1f}M: %{y:,.0f} OAP bed-days (%{customdata})<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=ok["admissions_per_year"], name="Admissions a year", yaxis="y2",
                             mode="lines+markers", line={"color": NHS_RED, "width": 2, "dash": "dot"},
                             marker={"symbol": symbols, "size": 9, "line": {"width": 2}},
                             hovertemplate="£%{x:,.1f}M: %{y:,.0f} admissions<extra></extra>"))  # fmt: skip
    if not proven.all():
        fig.add_annotation(text="hollow markers: best plan found in the time allowed, not proven best",
                           x=0, y=1.08, xref="paper", yref="paper", showarrow=False, xanchor="left",
                           font={"size": 12, "color": NHS_DARK_GREY})  # fmt: skip
    if current_budget:
        fig.add_vline(x=current_budget / 1e6, line={"color": NHS_DARK_GREY, "dash": "dash"},
                      annotation_text="this plan's budget", annotation_position="top")  # fmt: skip
    fig.update_layout(
        xaxis={"title": {"text": "Revenue budget (£ million a year)"}},
        yaxis={"title": {"text": "Out-of-area bed-days a year", "font": {"color": NHS_BLUE}}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "Admissions a year", "font": {"color": NHS_RED}}, "overlaying": "y",
                "side": "right", "showgrid": False},
        legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    return _layout(fig, height=400, margin={"l": 10, "r": 10, "t": 40, "b": 10})


def compare_chart(cards: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> go.Figure:
    """Headline KPIs of several plans: for each measure the largest value is the full bar,
    and every bar is labelled with its value."""
    names = list(cards)
    if len(names) < 1 or not keys:
        return empty_figure("Choose two or more saved plans to compare.")
    fig = go.Figure()
    labels = [kpi_label(k) for k in keys][::-1]
    top = {}
    for k in keys:
        vals = [abs(float(cards[n][k])) for n in names if cards[n].get(k) is not None]
        top[k] = max(vals) if vals and max(vals) > 0 else 1.0
    # horizontal groups stack traces bottom-up: add them last-first so the first plan is on top
    for i, name in reversed(list(enumerate(names))):
        vals, text = [], []
        for k in keys[::-1]:
            v = cards[name].get(k)
            vals.append(None if v is None else abs(float(v)) / top[k] * 100)
            text.append(fmt_value(k, v))
        fig.add_trace(go.Bar(x=vals, y=labels, orientation="h", name=name, text=text, textposition="outside",
                             cliponaxis=False, marker_color=PLAN_COLOURS[i % len(PLAN_COLOURS)],
                             hovertemplate=f"{name}<br>%{{y}}: %{{text}}<extra></extra>"))  # fmt: skip
    fig.update_xaxes(title_text="% of the largest value for each measure", range=[0, 118])
    return _layout(fig, barmode="group", height=120 + 26 * len(keys) * max(len(names), 1),
                   legend={"orientation": "h", "y": -0.08, "traceorder": "reversed"},
                   margin={"l": 10, "r": 10, "t": 10, "b": 10})  # fmt: skip


def capacity_chart(totals: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Total capacity by service for each plan (``totals[plan][service]``)."""
    if not totals:
        return empty_figure("No capacity to show.")
    fig = go.Figure()
    for i, (name, t) in enumerate(totals.items()):
        fig.add_trace(go.Bar(x=[SERVICE_NAMES[s] for s in SERVICE_ORDER], y=[t.get(s, 0) for s in SERVICE_ORDER],
                             name=name, marker_color=PLAN_COLOURS[i % len(PLAN_COLOURS)],
                             text=[f"{t.get(s, 0):,.0f}" for s in SERVICE_ORDER], textposition="outside"))  # fmt: skip
    fig.update_yaxes(type="log", title_text="units (log scale)")
    return _layout(fig, title="Capacity by service", barmode="group", height=340,
                   legend={"orientation": "h", "y": -0.2})  # fmt: skip


__all__ = [
    "BLUES", "DEPRIVATION", "GREYS", "TRAFFIC", "area_map", "capacity_chart", "compare_chart",
    "empty_figure", "equity_chart", "fit_view", "frontier_chart", "scorecard_chart", "site_traces",
]  # fmt: skip
