"""Files a commissioner takes away: Excel, CSV, GeoPackage and a printable HTML report.

Each function returns the file's bytes (or text) so the Export page can hand them to
``dcc.Download``; nothing is kept on the server. Text a spreadsheet would run as a
formula (a site called ``=HYPERLINK(...)``) is written with a leading apostrophe in the
CSV and Excel files (:func:`pathways.io.neutralise_text`); the HTML report escapes all
text, so a name like ``<script>`` shows as text. Small numbers are suppressed unless
the caller asks otherwise: :func:`pathways.disclosure.protect` decides which cells to
hide, once for all the files of the same scorecards, so that no hidden count can be
worked out from the cells shown (in any one file or all of them together).
"""

from __future__ import annotations

import datetime as dt
import html
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from dashapp.components import (
    NHS_BLUE,
    NHS_DARK_BLUE,
    NHS_GREEN,
    NHS_LIGHT_GREY,
    NHS_MID_GREY,
    NHS_RED,
    SERVICE_NAMES,
    fmt_change,
    fmt_value,
    kpi_label,
    verdict,
)
from dashapp.state import footprint_areas, footprint_label, plan_from_result, result_is_fresh
from pathways import disclosure, io
from pathways.disclosure import ALL, AREA, FOOTPRINT, QUINTILE, SITE, Disclosure
from pathways.kpis import HEADLINE_KPIS, HIGHER_IS_BETTER, Scorecard, evaluate
from pathways.plan import Plan, baseline_plan
from pathways.scenario import SERVICES, Scenario, parameter_table

SITES_LAYER = "sites"
AREAS_LAYER = "areas"
#: Suffix of the GeoPackage column that flags a suppressed (null) value.
FLAG_SUFFIX = "_suppressed"


def export_cards(
    scenario: Scenario, result: Mapping[str, Any] | None
) -> tuple[dict[str, Scorecard], Plan]:
    """Scorecards to export (today, and the optimised plan when it fits the scenario) and the plan."""
    cards = {"current": evaluate(scenario)}
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    if plan is not None:
        cards["optimised"] = evaluate(scenario, plan)
        return cards, plan
    return cards, baseline_plan(scenario)


def file_stem(scenario: Scenario) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in scenario.name.lower()).strip("-")
    while "--" in safe:
        safe = safe.replace("--", "-")
    return f"{safe or 'scenario'}-{dt.date.today():%Y%m%d}"


def excel_bytes(
    scenario: Scenario, cards: Mapping[str, Scorecard], plan: Plan, suppress: bool = True
) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.xlsx"
        io.write_xlsx(scenario, dict(cards), path, plan=plan, suppress=suppress)
        return path.read_bytes()


def scorecard_csv(cards: Mapping[str, Scorecard], suppress: bool = True) -> str:
    """Every KPI (rows, first column ``measure``) for each plan, plus per 100k and by IMD quintile of the last plan."""
    return io.safe_cells(io.scorecard_frame(cards, suppress=suppress)).to_csv()


def sites_table(scenario: Scenario, plan: Plan, card: Scorecard) -> pd.DataFrame:
    """Each site: today's and the plan's capacity per service, and the change."""
    rows = []
    for s in scenario.sites:
        cap = plan.capacity(s.site_id)
        row = {"site_id": s.site_id, "name": s.name, "status": s.status, "services": ";".join(s.services),
               "x_m": s.x_m, "y_m": s.y_m}  # fmt: skip
        for svc in SERVICES:
            row[f"{svc}_today"] = s.capacity.of(svc)
            row[f"{svc}_plan"] = cap.of(svc)
            row[f"{svc}_change"] = cap.of(svc) - s.capacity.of(svc)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("site_id")
    extra = [c for c in ("crisis_house_occupancy", "crisis_house_blocked_share", "mobile_all_busy_share",
                         "mobile_peak_utilisation") if c in card.by_site.columns]  # fmt: skip
    return df.join(card.by_site[extra])


def _protect_one(card: Scorecard, suppress: bool) -> Disclosure | None:
    """Hidden cells of one plan's exports (the same for that plan as with today's card beside it)."""
    return io.protection({card.plan_name: card}, suppress)


def sites_csv(scenario: Scenario, plan: Plan, card: Scorecard, suppress: bool = True) -> str:
    """Capacity by site; a site's occupancy and busy shares are hidden with its small arrivals."""
    table = sites_table(scenario, plan, card).astype(object)
    mask = disclosure.frame_mask(_protect_one(card, suppress), card.plan_name, SITE, table)
    table[mask] = io.SUPPRESSED
    return io.safe_cells(table).to_csv()


def _null_and_flag(frame: pd.DataFrame, mask: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Hidden cells become null; each protectable column gets a ``<col>_suppressed`` flag.

    Columns stay numeric, so GIS tools can still shade them; every protectable column
    has its flag whether or not anything is hidden, so the layer's schema is stable.
    """
    out = frame.copy()
    for c in columns:
        hide = mask[c].to_numpy(dtype=bool) if c in mask.columns else np.zeros(len(out), bool)
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float).where(~hide, np.nan)
        out[c + FLAG_SUFFIX] = hide
    return out


def geopackage_bytes(
    scenario: Scenario, plan: Plan, card: Scorecard, suppress: bool = True
) -> bytes:
    """GeoPackage (EPSG:27700) with layers ``sites`` (points) and ``areas`` (the plan's KPIs by area).

    Suppressed values are null, with a boolean ``<column>_suppressed`` beside each
    count, cost or per-site share column.
    """
    disc = _protect_one(card, suppress)
    table = sites_table(scenario, plan, card)
    site_cols = [c for c in table.columns if c in disclosure.SITE_DERIVED]
    table = _null_and_flag(
        table, disclosure.frame_mask(disc, card.plan_name, SITE, table), site_cols
    ).reset_index()
    sites = gpd.GeoDataFrame(
        table, geometry=gpd.points_from_xy(table["x_m"], table["y_m"]), crs="EPSG:27700"
    )
    areas = footprint_areas(scenario)[["area_name", "geometry"]]
    by_area = card.by_area.drop(
        columns=[c for c in ("imd_quintile", "rural") if c in card.by_area.columns]
    )
    mask = disclosure.frame_mask(disc, card.plan_name, AREA, by_area)
    protectable = [c for c in by_area.columns if disclosure.is_additive(str(c))]
    by_area = _null_and_flag(by_area, mask, protectable)
    joined = areas.join(by_area, how="left")
    for c in joined.columns:
        if c != "geometry" and joined[c].dtype == object:
            joined[c] = joined[c].astype(str)
    joined = gpd.GeoDataFrame(joined.reset_index(), geometry="geometry", crs=areas.crs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.gpkg"
        sites.to_file(path, layer=SITES_LAYER, driver="GPKG")
        joined.to_file(path, layer=AREAS_LAYER, driver="GPKG")
        return path.read_bytes()


# --------------------------------------------------------------------------- report

_CSS = f"""
body {{ font-family: Arial, Helvetica, sans-serif; color: #212b32; max-width: 980px; margin: 2rem auto;
       line-height: 1.45; padding: 0 1rem; }}
h1 {{ color: {NHS_DARK_BLUE}; border-bottom: 4px solid {NHS_BLUE}; padding-bottom: .3rem; }}
h2 {{ color: {NHS_DARK_BLUE}; margin-top: 2rem; }}
table {{ border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .92rem; }}
th {{ background: {NHS_DARK_BLUE}; color: #fff; text-align: left; padding: 6px 8px; }}
td {{ border-bottom: 1px solid {NHS_LIGHT_GREY}; padding: 5px 8px; vertical-align: top; }}
td.num {{ text-align: right; white-space: nowrap; }}
.better {{ color: {NHS_GREEN}; font-weight: bold; }} .worse {{ color: {NHS_RED}; font-weight: bold; }}
.note {{ background: {NHS_LIGHT_GREY}; padding: .6rem .8rem; border-left: 4px solid {NHS_BLUE}; }}
.bar {{ display: inline-block; height: .8rem; background: {NHS_BLUE}; vertical-align: middle; }}
.bar.today {{ background: {NHS_MID_GREY}; }}
.muted {{ color: #425563; font-size: .85rem; }}
@media print {{ body {{ margin: 0; max-width: none; }} h2 {{ page-break-after: avoid; }}
               table {{ page-break-inside: auto; }} tr {{ page-break-inside: avoid; }} }}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(
    header: list[str],
    rows: list[list[str]],
    num_from: int = 1,
    classes: list[list[str]] | None = None,
) -> str:
    out = ["<table><thead><tr>", *[f"<th>{_e(h)}</th>" for h in header], "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cells = []
        for j, v in enumerate(r):
            cls = "num" if j >= num_from else ""
            if classes and classes[i][j]:
                cls += " " + classes[i][j]
            cells.append(f'<td class="{cls.strip()}">{_e(v)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _shown(disc: Disclosure | None, cell: tuple, value: Any) -> str:
    """A footprint figure as the report prints it, or the suppression marker."""
    if disc is not None and cell in disc.hidden:
        return io.SUPPRESSED
    return fmt_value(disclosure.base_measure(cell[3]), value)


def report_html(
    scenario: Scenario, cards: Mapping[str, Scorecard], plan: Plan, suppress: bool = True
) -> str:
    """A self-contained printable report (no scripts, no network): scorecard, equity, changes, assumptions."""
    names = list(cards)
    today = cards["current"]
    main_name = names[-1]
    main = cards[main_name]
    has_plan = main_name != "current"
    disc = io.protection(cards, suppress)
    hidden = disc.hidden if disc is not None else frozenset()
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(scenario.name)} - crisis "
             f"pathway plan</title><style>{_CSS}</style></head><body>"]  # fmt: skip
    parts.append(f"<h1>{_e(scenario.name)}</h1>")
    parts.append(f"<p><strong>Footprint:</strong> {_e(footprint_label(scenario))}. "
                 f"<strong>Population:</strong> {today.population:,.0f}. "
                 f"<strong>Prepared:</strong> {dt.date.today():%d %B %Y}.</p>")  # fmt: skip
    if scenario.description:
        parts.append(f"<p class='muted'>{_e(scenario.description)}</p>")
    parts.append("<p class='note'>Modelled expected values per year, not observed counts. "
                 + (_e(io.SUPPRESSION_NOTE) if suppress else "Small numbers are NOT suppressed.")
                 + (" The plan was suggested by the optimiser and judged by the same model as today's capacity."
                    if has_plan else " No optimised plan: figures describe today's capacity.")
                 + "</p>")  # fmt: skip

    parts.append("<h2>Balanced scorecard</h2>")
    header = ["Measure", *[{"current": "Today", "optimised": "Plan"}.get(n, n) for n in names]]
    rows, classes = [], []
    if has_plan:
        header += ["Change"]
    for k in HEADLINE_KPIS:
        r = [kpi_label(k),
             *[_shown(disc, (n, FOOTPRINT, ALL, k), cards[n].kpis.get(k)) for n in names]]  # fmt: skip
        c = [""] * len(r)
        if has_plan:
            if (main_name, FOOTPRINT, ALL, disclosure.CHANGE + k) in hidden:
                r.append(io.SUPPRESSED)
                c.append("")
            else:
                v = verdict(k, main.kpis.get(k), today.kpis.get(k), HIGHER_IS_BETTER)
                r.append(fmt_change(k, main.kpis.get(k), today.kpis.get(k)))
                c.append(v if v in ("better", "worse") else "")
        rows.append(r)
        classes.append(c)
    parts.append(_table(header, rows, classes=classes))

    parts.append("<h2>Per 100,000 people</h2>")
    per_keys = [k for k in HEADLINE_KPIS if k in main.per_100k]
    parts.append(
        _table(
            ["Measure", *header[1 : len(names) + 1]],
            [
                [
                    kpi_label(k),
                    *[
                        _shown(
                            disc,
                            (n, FOOTPRINT, ALL, disclosure.PER_100K + k),
                            cards[n].per_100k.get(k),
                        )
                        for n in names
                    ],
                ]  # fmt: skip
                for k in per_keys
            ],
        )
    )

    parts.append("<h2>Equity: admissions per 100,000 by deprivation quintile</h2>")
    parts.append(
        "<p class='muted'>Quintile 1 is the most deprived fifth of areas in England (IMD 2019).</p>"
    )
    rate = disclosure.PER_100K + "admissions_per_year"
    qrows = []
    values: dict[str, dict[int, float]] = {}
    for n in names:
        bq = cards[n].by_quintile
        per = (bq["admissions_per_year"] / bq["population"].replace(0, np.nan) * 1e5).to_dict()
        # a hidden rate is left out everywhere, the bars' scale included
        values[n] = {int(q): (np.nan if (n, QUINTILE, int(q), rate) in hidden else v)
                     for q, v in per.items()}  # fmt: skip
    peak = max((v for per in values.values() for v in per.values() if np.isfinite(v)), default=0.0)
    for q in range(1, 6):
        cells = [
            f"Q{q}" + (" (most deprived)" if q == 1 else " (least deprived)" if q == 5 else "")
        ]
        for n in names:
            v = values[n].get(q, np.nan)
            if (n, QUINTILE, q, rate) in hidden:
                cells.append(io.SUPPRESSED)
            else:
                cells.append(f"{v:,.1f}" if np.isfinite(v) else "–")
        qrows.append(cells)
    table = _table(["Quintile", *header[1 : len(names) + 1]], qrows)
    bars = []
    for q in range(1, 6):
        line = [f"<div>Q{q} "]
        for n in names:
            v = values[n].get(q, np.nan)
            w = 0 if not np.isfinite(v) or peak <= 0 else 300 * v / peak
            line.append(f"<span class='bar {'today' if n == 'current' else ''}' style='width:{w:.0f}px' "
                        f"title='{_e(n)}'></span> ")  # fmt: skip
        line.append("</div>")
        bars.append("".join(line))
    parts.append(table + "<div class='muted'>grey: today; blue: plan</div>" + "".join(bars))

    if has_plan:
        parts.append("<h2>What changes, site by site</h2>")
        changes = []
        for s in scenario.sites:
            cap = plan.capacity(s.site_id)
            for svc in SERVICES:
                a, b = s.capacity.of(svc), cap.of(svc)
                if a != b:
                    changes.append(
                        [s.site_id, s.name, SERVICE_NAMES[svc], str(a), str(b), f"{b - a:+d}"]
                    )
        for shift in ("night", "day", "evening"):
            a, b = scenario.hub.of(shift), plan.hub.of(shift)
            if a != b:
                changes.append(["hub", f"Crisis-line handlers, {shift} shift", "Crisis line", str(a), str(b),
                                f"{b - a:+d}"])  # fmt: skip
        parts.append(_table(["Site", "Name", "Service", "Today", "Plan", "Change"], changes, num_from=3)
                     if changes else "<p>The plan keeps today's capacity.</p>")  # fmt: skip

    parts.append("<h2>Assumptions changed from the defaults</h2>")
    data = scenario.model_dump(mode="json")
    changed = []
    for p in parameter_table():
        node: Any = data
        for part in p["path"].split("."):
            node = node.get(part) if isinstance(node, dict) else None
        default = p["default"]
        if (
            isinstance(default, int | float)
            and isinstance(node, int | float)
            and abs(node - default) > 1e-12
        ):
            changed.append([p["path"], f"{node:g}", f"{default:g}", p["unit"]])
        elif not isinstance(default, int | float) and str(node) != str(
            default if not isinstance(default, tuple) else list(default)
        ):
            changed.append([p["path"], "changed (see the Excel workbook)", "", p["unit"]])
    parts.append(_table(["Parameter", "Value", "Default", "Unit"], changed, num_from=9)
                 if changed else "<p>All parameters are at their documented defaults.</p>")  # fmt: skip
    parts.append("<p class='muted'>Produced by the crisis pathway planner. Boundaries: ONS (contains OS data "
                 "© Crown copyright and database right); deprivation: IMD 2019 (MHCLG); Open Government "
                 "Licence.</p></body></html>")  # fmt: skip
    return "".join(parts)
