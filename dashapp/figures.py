"""Every figure the app draws, as pure functions of plain data.

Nothing here reads files, session state or the network: maps are drawn from the
GeoJSON passed in, on a blank MapLibre style (``white-bg``) unless a raster tile URL
is given, so they work offline. Every function accepts empty input and then returns
a figure that says there is nothing to show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
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
MAP_HEIGHT = 640
ATTRIBUTION = "Boundaries: ONS, contains OS data © Crown copyright and database right"

BLUES = [[0.0, "#F0F4F5"], [0.35, "#41B6E6"], [0.7, NHS_BLUE], [1.0, NHS_DARK_BLUE]]
DEPRIVATION = [[0.0, NHS_DARK_BLUE], [0.5, "#41B6E6"], [1.0, "#F0F4F5"]]
GREYS = [[0.0, "#FFFFFF"], [1.0, "#AEB7BD"]]
TRAFFIC = [[0.0, NHS_GREEN], [0.5, NHS_WARM_YELLOW], [1.0, NHS_RED]]
#: One colour per plan role, the same on every page: today grey, the optimised plan NHS blue.
PLAN_ROLE_COLOURS: dict[str, str] = {
    "current": NHS_MID_GREY,
    "optimised": NHS_BLUE,
    "pro rata": "#330072",
    "greedy marginal": "#ED8B00",
}
#: Further optimised plans (Compare): shades that stay apart from today's grey.
OPTIMISED_SHADES = (NHS_BLUE, NHS_DARK_BLUE, "#41B6E6", NHS_GREEN, "#AE2573", "#330072", "#ED8B00")
PLAN_COLOURS = [NHS_MID_GREY, *OPTIMISED_SHADES]
#: Areas a service cannot reach at all (no open site within its travel limit).
BEYOND_REACH_COLOUR = "#330072"


def plan_colours(roles: Sequence[str]) -> list[str]:
    """A colour for each plan, by its role (``current``, ``optimised``, ``pro rata``,
    ``greedy marginal``): today is always grey and the first optimised plan always blue;
    further optimised plans take the next shades."""
    out, k = [], 0
    for role in roles:
        if role == "optimised":
            out.append(OPTIMISED_SHADES[k % len(OPTIMISED_SHADES)])
            k += 1
        else:
            out.append(PLAN_ROLE_COLOURS.get(role, NHS_DARK_GREY))
    return out


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


def wrap(text: str, width: int = 34) -> str:
    """Text broken into lines of about ``width`` characters (``<br>``), so that it fits a
    phone's screen; short text is returned as it is."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width)) if len(text) > width else text


def empty_figure(text: str = "Nothing to show yet.", height: int = 320) -> go.Figure:
    """A blank figure carrying a message (for empty or failed states)."""
    fig = go.Figure()
    fig.add_annotation(text=wrap(text, 34), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
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
    # The colour bar and the legend sit under the map, never on it, so that nothing
    # covers areas on a phone. The view fits the footprint at ``width_px``; the browser
    # refits it to the map's real size (assets/maps.js reads ``meta.fit_bounds``).
    centre, zoom = fit_view(geometry.bounds, width_px=width_px, height_px=height - MAP_BELOW_PX)
    layers = []
    if tile_url:
        layers.append({"sourcetype": "raster", "source": [tile_url], "below": "traces",
                       "sourceattribution": "Map tiles as configured"})  # fmt: skip
    below = MAP_BELOW_PX
    fig.update_layout(
        map={"style": "white-bg", "center": centre, "zoom": zoom, "layers": layers},
        height=height, uirevision=uirevision,
        legend={"orientation": "h", "yanchor": "bottom", "yref": "container", "y": 0, "xanchor": "left",
                "x": 0, "bgcolor": "rgba(255,255,255,0)", "font": {"size": 13}, "itemsizing": "constant"},
        margin={"l": 0, "r": 0, "t": 8, "b": below, "autoexpand": False},
        meta={"fit_bounds": list(geometry.bounds), "height": height, "below_px": below},
    )  # fmt: skip
    # the colour bar hangs from the map's lower edge, the legend sits on the figure's foot:
    # both stay in place whatever height the browser gives the map
    bar = {"yref": "paper", "y": 0, "yanchor": "top", "ypad": 26}
    for trace in fig.data[:1]:
        if isinstance(trace, go.Choroplethmap):
            trace.colorbar.update(bar)
        elif isinstance(trace, go.Scattermap):
            trace.marker.colorbar.update(bar)
    fig.add_annotation(text=ATTRIBUTION, x=0, y=0, xref="paper", yref="paper", showarrow=False,
                       xanchor="left", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)",
                       font={"size": 10, "color": NHS_DARK_GREY})  # fmt: skip
    return fig


#: Height under the map for its colour bar (title, bar, ticks) and legend (px).
MAP_BELOW_PX = 180


def _area_trace(
    geometry: MapGeometry, values: pd.Series, hover: Sequence[str], colorscale: Any,
    colorbar_title: str, zmin: float | None, zmax: float | None,
) -> go.BaseTraceType:  # fmt: skip
    ids = list(geometry.ids)
    z = pd.Series(values, dtype=float).reindex(ids).to_numpy()
    finite = z[np.isfinite(z)]
    lo = float(np.nanmin(finite)) if zmin is None and finite.size else zmin
    hi = float(np.nanmax(finite)) if zmax is None and finite.size else zmax
    colorbar = {"title": {"text": colorbar_title, "side": "top"}, "orientation": "h", "thickness": 12,
                "len": 0.9, "lenmode": "fraction", "x": 0, "xanchor": "left", "y": -0.01,
                "yanchor": "top", "outlinewidth": 0}  # fmt: skip
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


def _missing_trace(geometry: MapGeometry, values: pd.Series, hover: Sequence[str],
                   label: str) -> go.BaseTraceType | None:  # fmt: skip
    """Areas with no value (beyond reach), in their own colour and with a legend entry,
    so that they are not left as blank holes in the map."""
    ids = list(geometry.ids)
    z = pd.Series(values, dtype=float).reindex(ids).to_numpy()
    missing = ~np.isfinite(z)
    if not missing.any():
        return None
    where = np.flatnonzero(missing)
    text = [list(hover)[i] for i in where]
    if geometry.kind == "polygons":
        return go.Choroplethmap(
            geojson=geometry.geojson, locations=[ids[i] for i in where], z=[1.0] * len(where),
            featureidkey="id", colorscale=[[0, BEYOND_REACH_COLOUR], [1, BEYOND_REACH_COLOUR]],
            showscale=False, marker={"line": {"width": 0.3, "color": "white"}, "opacity": 0.85},
            hovertext=text, hovertemplate="%{hovertext}<extra></extra>", name=label, showlegend=True,
        )  # fmt: skip
    return go.Scattermap(
        lon=[geometry.lon[i] for i in where], lat=[geometry.lat[i] for i in where], mode="markers",
        marker={"size": 9, "color": BEYOND_REACH_COLOUR, "opacity": 0.85}, hovertext=text,
        hovertemplate="%{hovertext}<extra></extra>", name=label, showlegend=True,
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


def _marker_px(svc: str, cap: np.ndarray, top: float) -> np.ndarray:
    lo, hi = MARKER_SIZES[svc]
    return lo + (hi - lo) * np.sqrt(cap / max(top, 1e-9))


#: Units of each service's capacity, for the marker-size key.
SERVICE_UNITS = {"inpatient": ("bed", "beds"), "crisis_house": ("place", "places"),
                 "mobile_team": ("team", "teams"), "place_of_safety": ("suite", "suites")}  # fmt: skip


def marker_size_key(sites: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The key to the site markers' sizes: for each service on the map, the marker of its
    smallest and largest capacity (``sizes``: (capacity, diameter in px)), in map order."""
    if sites is None or len(sites) == 0:
        return []
    out = []
    for svc in SERVICE_ORDER:
        cap = pd.to_numeric(
            sites.get(svc, pd.Series(0, index=sites.index)), errors="coerce"
        ).fillna(0)
        c = cap[cap > 0].to_numpy(float)
        if c.size == 0:
            continue
        values = sorted({float(c.min()), float(c.max())})
        px = _marker_px(svc, np.asarray(values), float(c.max()))
        out.append({"service": svc, "name": SERVICE_NAMES[svc], "colour": SERVICE_COLOURS[svc],
                    "units": SERVICE_UNITS[svc],
                    "sizes": [(v, float(p)) for v, p in zip(values, px, strict=True)]})  # fmt: skip
    return out


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
        size = _marker_px(svc, c, float(c.max()))
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
    missing_label: str | None = None,
) -> go.Figure:
    """Areas shaded by ``values`` (indexed by area code), with optional site markers.

    ``missing_label`` names areas without a value (e.g. beyond reach of any crisis house):
    they are drawn in their own colour with that legend entry instead of left blank.
    """
    if geometry is None or not geometry.ids:
        return empty_figure("No areas to show: choose a footprint first.", height=height)
    if values is None:
        values = pd.Series(0.0, index=list(geometry.ids))
    if hover is None:
        hover = [str(i) for i in geometry.ids]
    fig = go.Figure(_area_trace(geometry, values, hover, colorscale, colorbar_title, zmin, zmax))
    if missing_label:
        extra = _missing_trace(geometry, values, hover, missing_label)
        if extra is not None:
            fig.add_trace(extra)
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
        return empty_figure("Run the optimiser to compare a plan with today.", height=200)
    colours = {"better": NHS_GREEN, "worse": NHS_RED, "same": NHS_MID_GREY, "neutral": NHS_BLUE}
    rows = rows[::-1]
    pct = [float(r["pct"]) for r in rows]
    shown = [max(min(p, cap_pct), -cap_pct) for p in pct]
    labels = [f"{r['label']}: {p:+.1f}%" for r, p in zip(rows, pct, strict=True)]
    fig = go.Figure(go.Bar(
        x=shown, y=labels, orientation="h", width=0.45,
        marker={"color": [colours.get(r["verdict"], NHS_BLUE) for r in rows],
                "pattern": {"shape": ["/" if abs(p) > cap_pct else "" for p in pct]}},
        customdata=pct, hovertemplate="%{y}<extra></extra>",
    ))  # fmt: skip
    # each label sits above its bar, from the left edge, so that long labels never clip
    for label in labels:
        fig.add_annotation(text=label, x=0, xref="paper", xanchor="left", y=label, yref="y",
                           yshift=15, showarrow=False, font={"size": 13})  # fmt: skip
    span = max(max(abs(p) for p in shown), 1.0) * 1.1
    fig.update_xaxes(title_text="% change from today",
                     range=[-span, span], zeroline=True, zerolinecolor=NHS_DARK_GREY)  # fmt: skip
    fig.update_yaxes(showticklabels=False)
    return _layout(fig, height=60 + 52 * len(rows), showlegend=False,
                   margin={"l": 6, "r": 6, "t": 10, "b": 40})  # fmt: skip


def equity_chart(
    by_quintile: Mapping[str, Mapping[str, Mapping[str, Any]]],
    kpi: str,
    per_100k: bool,
    roles: Mapping[str, str] | None = None,
) -> go.Figure:
    """Grouped bars of one KPI by IMD quintile (1 = most deprived) for each plan.

    ``by_quintile`` maps plan name -> ``Scorecard.to_dict()["by_imd_quintile"]``;
    ``roles`` maps plan name -> role for its colour (default: the first plan is today's).
    """
    plans = {n: q for n, q in by_quintile.items() if q and kpi in q}
    if not plans:
        return empty_figure("No equity figures to show yet.")
    fig = go.Figure()
    xs = ["1 most deprived", "2", "3", "4", "5 least deprived"]
    names = list(plans)
    colours = plan_colours([(roles or {}).get(n, "current" if i == 0 else "optimised")
                            for i, n in enumerate(names)])  # fmt: skip
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
        fig.add_trace(go.Bar(x=xs, y=vals, name=name, marker_color=colours[k],
                             hovertemplate=f"{name}<br>quintile %{{x}}: %{{y:,.1f}}<extra></extra>"))  # fmt: skip
    unit = " per 100,000 people" if per_100k else (" (%)" if _is_share(kpi) else "")
    fig.update_xaxes(title_text="IMD 2019 quintile of the area")
    fig.update_yaxes(title_text=unit.strip(" ()") or kpi_label(kpi))
    return _layout(fig, barmode="group", height=360, legend={"orientation": "h", "y": -0.25},
                   margin={"l": 10, "r": 10, "t": 10, "b": 10})  # fmt: skip


def _is_share(kpi: str) -> bool:
    return kpi.endswith("_share") or kpi in ("hub_service_level", "inpatient_occupancy")


#: Marker of a frontier point by how it was found (filled: proven best).
FRONTIER_SYMBOLS = {"OPTIMAL": "circle", "TIME_LIMIT": "circle-open", "FEASIBLE": "circle-open",
                    "HEURISTIC": "square-open"}  # fmt: skip


def _frontier_note(status: str, gap: float) -> str:
    if status == "OPTIMAL":
        return "proven best"
    if status == "HEURISTIC":
        return "first plan meeting every limit; the solver found nothing better in time"
    return f"best found in the time allowed, gap {gap:.1%}" if np.isfinite(gap) else "best found"


def frontier_chart(df: pd.DataFrame | None, current_budget: float | None = None) -> go.Figure:
    """OAP bed-days and admissions against the revenue budget (from ``frontier``).

    Each point's marker says how it was found (``status``); points flagged
    ``worse_than_today`` are ringed in red, and budgets without a plan are marked on the
    axis with the reason on hover.
    """
    if df is None or len(df) == 0 or "oap_bed_days_per_year" not in df:
        return empty_figure("Compute the frontier to see what each extra pound buys.")
    ok = df[df["oap_bed_days_per_year"].notna()].sort_values("budget_gbp_per_year")
    if len(ok) == 0:
        return empty_figure("No budget in the range gave a feasible plan.")
    x = ok["budget_gbp_per_year"] / 1e6
    status = ok.get("status", pd.Series("OPTIMAL", index=ok.index)).fillna("OPTIMAL").astype(str)
    gap = pd.to_numeric(
        ok.get("gap", pd.Series(np.nan, index=ok.index)), errors="coerce"
    ).to_numpy()
    worse = (
        ok.get("worse_than_today", pd.Series(False, index=ok.index))
        .fillna(False)
        .astype(bool)
        .to_numpy()
    )
    note = [_frontier_note(st, g) + ("; worse than today's capacity" if w else "")
            for st, g, w in zip(status, gap, worse, strict=True)]  # fmt: skip
    symbols = [FRONTIER_SYMBOLS.get(st, "circle-open") for st in status]
    ring = [NHS_RED if w else NHS_BLUE for w in worse]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=ok["oap_bed_days_per_year"], name="Out-of-area bed-days a year",
                             mode="lines+markers", line={"color": NHS_BLUE, "width": 3},
                             marker={"symbol": symbols, "size": 12, "line": {"width": 2, "color": ring}},
                             customdata=note,
                             hovertemplate="£%{x:,.1f}M: %{y:,.0f} OAP bed-days (%{customdata})<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=ok["admissions_per_year"], name="Admissions a year", yaxis="y2",
                             mode="lines+markers", line={"color": NHS_RED, "width": 2, "dash": "dot"},
                             marker={"symbol": symbols, "size": 9, "line": {"width": 2}},
                             hovertemplate="£%{x:,.1f}M: %{y:,.0f} admissions<extra></extra>"))  # fmt: skip
    none = df[df["oap_bed_days_per_year"].isna()]
    if len(none):
        reason = none.get("what", none.get("status", pd.Series("no plan", index=none.index)))
        fig.add_trace(go.Scatter(x=none["budget_gbp_per_year"] / 1e6, y=[0] * len(none), mode="markers",
                                 name="No plan at this budget", marker={"symbol": "x", "size": 12,
                                                                         "color": NHS_DARK_GREY},
                                 customdata=[str(r) for r in reason],
                                 hovertemplate="£%{x:,.1f}M: %{customdata}<extra></extra>"))  # fmt: skip
    if not (status == "OPTIMAL").all() or worse.any():
        key = "filled: proven best; hollow: best found in the time allowed; square: first plan only"
        if worse.any():
            key += "; red ring: worse than today"
        fig.add_annotation(text=wrap(key, 70), x=0, y=1.02, xref="paper", yref="paper", showarrow=False,
                           xanchor="left", yanchor="bottom", align="left",
                           font={"size": 12, "color": NHS_DARK_GREY})  # fmt: skip
    if current_budget:
        fig.add_vline(x=current_budget / 1e6, line={"color": NHS_DARK_GREY, "dash": "dash"},
                      annotation_text="this plan's budget", annotation_position="bottom right")  # fmt: skip
    fig.update_layout(
        xaxis={"title": {"text": "Revenue budget (£ million a year)"}},
        yaxis={"title": {"text": "Out-of-area bed-days a year", "font": {"color": NHS_BLUE}}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "Admissions a year", "font": {"color": NHS_RED}}, "overlaying": "y",
                "side": "right", "showgrid": False, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    return _layout(fig, height=420, margin={"l": 10, "r": 10, "t": 50, "b": 10})


def compare_chart(cards: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                  roles: Mapping[str, str] | None = None) -> go.Figure:  # fmt: skip
    """Headline KPIs of several plans: for each measure the largest value is the full bar,
    and every bar is labelled with its value. ``roles`` (plan name -> ``current`` or
    ``optimised``) give each plan its colour, as on the Results page."""
    names = list(cards)
    colours = plan_colours([(roles or {}).get(n, "optimised") for n in names])
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
                             cliponaxis=False, marker_color=colours[i],
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


# --------------------------------------------------------------------------- drawn once


class DrawnOnce:
    """The last few answers of a page's drawing callback, by the inputs they were drawn from.

    The maps are the app's slowest answers (a thousand areas' outlines and hover texts,
    then plotly's checks) and every session of one scenario asks for the same ones. An
    answer is kept as plain JSON data (what the browser receives), so sessions share it
    and nothing can change it; ``key`` must hold every input the answer depends on.
    """

    def __init__(self, size: int = 32):
        import threading
        from collections import OrderedDict

        self.size, self.lock, self.kept = size, threading.Lock(), OrderedDict()

    def get(self, key: Any, draw: Callable[[], Any]) -> Any:
        import hashlib
        import json

        from plotly.io.json import to_json_plotly

        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        with self.lock:
            if digest in self.kept:
                self.kept.move_to_end(digest)
                return self.kept[digest]
        answer = json.loads(to_json_plotly(draw()))  # outside the lock: others keep answering
        with self.lock:
            self.kept[digest] = answer
            while len(self.kept) > self.size:
                self.kept.popitem(last=False)
        return answer


#: Shared by the pages' map callbacks (a few MB at most).
DRAWN = DrawnOnce()


__all__ = [
    "BLUES", "DEPRIVATION", "DRAWN", "GREYS", "TRAFFIC", "DrawnOnce", "area_map", "capacity_chart", "compare_chart",
    "empty_figure", "equity_chart", "fit_view", "frontier_chart", "scorecard_chart", "site_traces",
]  # fmt: skip


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def oap_days_chart(runs: Mapping[str, Mapping[str, Any]] | None, dates: Sequence[str] | None = None,
                   reps: int | None = None) -> go.Figure:  # fmt: skip
    """People out of area on each day of a simulated year: today and the plan.

    ``runs``: ``{"today": {"daily": {"mean": [...], "min": [...], "max": [...]}}, "plan":
    {...}}`` (from :func:`dashapp.simulation.compact`). Each plan's mean over the
    simulated years is a line, and the band runs from its quietest to its busiest
    simulated year on that day: what a single year can look like, not only the average.
    """
    if not runs:
        return empty_figure("Simulate to see how many people are out of area on each day.")
    fig = go.Figure()
    names = {"today": ("Today", "current"), "plan": ("Plan", "optimised")}
    for key, (label, role) in names.items():
        daily = (runs.get(key) or {}).get("daily")
        if not daily or not daily.get("mean"):
            continue
        colour = plan_colours([role])[0]
        n = len(daily["mean"])
        x = list(dates[:n]) if dates is not None else list(range(n))
        lo, hi = daily.get("min") or [], daily.get("max") or []
        if len(lo) == n and len(hi) == n:
            fig.add_trace(go.Scatter(x=x + x[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                                     line={"width": 0}, fillcolor=_rgba(colour, 0.25), hoverinfo="skip",
                                     name=f"{label}: quietest to busiest year"))  # fmt: skip
            fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line={"width": 0}, showlegend=False,
                                     hovertemplate="%{x|%d %b}: %{y:.0f} in the busiest year<extra>"
                                     + label + "</extra>"))  # fmt: skip
        fig.add_trace(go.Scatter(x=x, y=daily["mean"], mode="lines", name=f"{label}: mean",
                                 line={"color": colour, "width": 3},
                                 hovertemplate="%{x|%d %b}: %{y:.1f} people out of area on average<extra>"
                                 + label + "</extra>"))  # fmt: skip
    if not fig.data:
        return empty_figure("Simulate to see how many people are out of area on each day.")
    years = f", {reps} simulated years" if reps else ""
    fig.update_layout(
        xaxis={"title": {"text": f"Day of the year, from 1 April{years}"}, "tickformat": "%b"},
        yaxis={"title": {"text": "People in out-of-area beds"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    return _layout(fig, height=400, margin={"l": 10, "r": 10, "t": 30, "b": 10})
