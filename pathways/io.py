"""Exports a commissioner can open: CSV and Excel, with small numbers protected.

Every table is written with commissioners' labels (the KPI key stays in a ``kpi``
column for joining), rounded as people read it (counts to 0.1, shares as percentages
to 0.1, money to whole pounds) and, by default, with small-number suppression from
:mod:`pathways.disclosure`: counts below 5 are hidden, and so is every other cell that
would let a reader work one out (totals minus the other parts, gaps, rates, costs).
Hidden cells show ``[c]``. All the tables of one export, and all the exports of the
same scorecards, hide the same cells: compute :func:`protection` once and pass it to
each writer. The JSON scorecards (:func:`scorecard_dict`) and the plan file
(:func:`plan_for_export`) apply the same hidden cells: a hidden value is ``null`` (or
left out of the plan's ``predicted`` block).

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or a
line break) as a formula, so a site called ``=HYPERLINK(...)`` could run in the
reader's Excel. Every text cell, index value and column heading written to CSV or Excel
here that starts with one of those gets a leading apostrophe (``'=HYPERLINK(...)``),
as the OWASP guidance on CSV injection advises (:func:`neutralise_text`); numbers,
and text that is just a number such as ``-5``, are written as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pathways import disclosure
from pathways.disclosure import ALL, FOOTPRINT, QUINTILE, SITE, Disclosure
from pathways.kpis import COUNT_KPIS, RATE_KPIS, Scorecard
from pathways.provenance import basis, figure_sources, parameter_source
from pathways.scenario import Scenario, iter_parameters

if TYPE_CHECKING:
    from pathways.plan import Plan

__all__ = [
    "COUNT_KPIS", "FORMULA_TRIGGERS", "KPI_FORMAT", "KPI_LABELS", "SUPPRESSED",
    "SUPPRESSION_THRESHOLD", "neutralise_text", "neutralise_workbook", "safe_cells",
]  # fmt: skip

SUPPRESSION_THRESHOLD = disclosure.THRESHOLD
SUPPRESSED = disclosure.MARKER

#: Every measure in commissioners' words (the web app uses the same table).
KPI_LABELS: dict[str, str] = {
    "admissions_per_year": "Admissions a year",
    "oap_placements_per_year": "Out-of-area placements a year",
    "oap_bed_days_per_year": "Out-of-area bed-days a year",
    "oap_cost_gbp_per_year": "Out-of-area cost (£ a year)",
    "inpatient_occupancy": "Inpatient bed occupancy",
    "crisis_house_episodes_per_year": "Crisis-house stays a year",
    "mobile_response_within_standard_share": "Mobile responses within the standard",
    "hub_service_level": "Crisis-line calls answered within target",
    "mean_travel_mins": "Mean travel (minutes)",
    "p95_travel_mins": "Travel, 95th percentile (minutes)",
    "total_cost_gbp_per_year": "Total revenue cost (£ a year)",
    "episodes_per_year": "Crisis episodes a year",
    "capital_cost_gbp": "Capital cost (£, one-off)",
    "travel_burden_hours_per_year": "Travel burden (person-hours a year)",
    "inpatient_blocked_share": "Admissions finding no local bed",
    "crisis_house_turned_away_per_year": "Crisis-house referrals turned away a year",
    "mobile_episodes_per_year": "Mobile crisis team episodes a year",
    "hub_calls_per_year": "Crisis-line calls a year",
    "hub_abandoned_calls_per_year": "Crisis-line calls abandoned a year",
    "s136_turned_away_per_year": "Section 136 detentions turned away a year",
    "veteran_episodes_per_year": "Veterans' crisis episodes a year",
    "population": "Population",
    "imd_quintile": "IMD quintile (1 = most deprived)",
    "rural": "Rural",
    "mobile_within_standard_per_year": "Mobile responses within the standard a year",
    "mobile_travel_mins": "Mobile team drive (minutes)",
    "crisis_house_travel_mins": "Travel to the crisis house (minutes)",
    "crisis_house_reach_share": "Referrals with a crisis house in reach",
    "mobile_covered_share": "Episodes a mobile team reaches within the standard",
    "inpatient_beds": "Inpatient beds",
    "crisis_house_places": "Crisis-house places",
    "mobile_teams": "Mobile crisis teams",
    "place_of_safety_suites": "Place-of-safety suites",
    "inpatient": "Inpatient beds",
    "crisis_house": "Crisis-house places",
    "mobile_team": "Mobile crisis teams",
    "place_of_safety": "Place-of-safety suites",
    "crisis_house_arrivals_per_year": "Crisis-house referrals a year",
    "crisis_house_blocked_share": "Crisis-house referrals finding it full",
    "crisis_house_occupancy": "Crisis-house occupancy",
    "mobile_arrivals_per_year": "Mobile team episodes a year",
    "mobile_all_busy_share": "Episodes finding every team busy",
    "mobile_peak_utilisation": "Mobile teams' busiest-hour utilisation",
    # what only the simulation gives (pathways.simulate)
    "oap_any_day_share": "Days with someone out of area",
    "oap_active_p50": "People out of area on a typical day",
    "oap_active_p90": "People out of area, 1 day in 10 or more",
    "oap_active_max": "Most people out of area on one day",
    "oap_episode_days_mean": "Mean out-of-area placement (days)",
    "oap_repatriated_share": "Placements brought back to a local bed",
    "inpatient_peak_daily_occupancy": "Bed occupancy on the busiest day",
    "mobile_response_mins_p90": "Mobile response, 90th percentile (minutes)",
}
#: How each measure reads: ``pct`` (a share shown as %), ``gbp``, ``mins``, ``hours``;
#: anything else is a count.
KPI_FORMAT: dict[str, str] = {
    "inpatient_occupancy": "pct",
    "mobile_response_within_standard_share": "pct",
    "hub_service_level": "pct",
    "oap_cost_gbp_per_year": "gbp",
    "total_cost_gbp_per_year": "gbp",
    "capital_cost_gbp": "gbp",
    "mean_travel_mins": "mins",
    "p95_travel_mins": "mins",
    "inpatient_blocked_share": "pct",
    "travel_burden_hours_per_year": "hours",
    "oap_any_day_share": "pct",
    "oap_repatriated_share": "pct",
    "inpatient_peak_daily_occupancy": "pct",
    "mobile_response_mins_p90": "mins",
}
#: Whole-number columns: people and units of capacity.
_WHOLE = frozenset(
    {"population", "imd_quintile", "inpatient_beds", "crisis_house_places", "mobile_teams",
     "place_of_safety_suites", "inpatient", "crisis_house", "mobile_team", "place_of_safety"}
)  # fmt: skip
_QUINTILE_NAMES = {
    1: "IMD Q1 (most deprived)",
    2: "IMD Q2",
    3: "IMD Q3",
    4: "IMD Q4",
    5: "IMD Q5 (least deprived)",
}
PER_100K_LABEL = "Per 100,000 people"
GAP_LABEL = "Gap Q1 minus Q5"


def kpi_label(key: str) -> str:
    return KPI_LABELS.get(key, key.replace("_", " ").capitalize())


def measure_kind(key: str) -> str:
    """``pct``, ``gbp``, ``mins``, ``hours``, ``whole`` or ``count``."""
    if key in KPI_FORMAT:
        return KPI_FORMAT[key]
    if key in _WHOLE:
        return "whole"
    if "gbp" in key:
        return "gbp"
    if key.endswith("_share") or any(w in key for w in ("occupancy", "utilisation", "level")):
        return "pct"
    if key.endswith("_mins"):
        return "mins"
    if "hours" in key:
        return "hours"
    return "count"


def column_label(key: str) -> str:
    """A column heading: the label, with ``(%)`` for shares shown as percentages."""
    label = kpi_label(key)
    return f"{label} (%)" if measure_kind(key) == "pct" and "%" not in label else label


def round_value(kind: str, value: Any) -> Any:
    """A number as exported: percentages and counts to 0.1, money and whole units to 1."""
    if value is None or isinstance(value, bool | np.bool_):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        return value
    if not math.isfinite(v):
        return None
    if kind == "pct":
        return round(v * 100, 1)
    if kind in ("gbp", "whole"):
        return int(round(v))
    return round(v, 1)


def _rate_kind(key: str) -> str:
    """How the per-100k figure and the Q1-Q5 gap of ``key`` read."""
    kind = measure_kind(key)
    return "gbp" if kind == "gbp" else ("count" if key in RATE_KPIS else kind)


# --------------------------------------------------------------------------- formula injection

#: A text cell starting with one of these is read as a formula by spreadsheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d[\d,]*)?\.?\d+([eE][+-]?\d+)?%?$")


def neutralise_text(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell: text that a spreadsheet would run as a
    formula gets a leading ``'``; anything else (numbers, other text) is returned as is."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_TRIGGERS)
        and not _PLAIN_NUMBER.match(value)
    ):
        return "'" + value
    return value


def _safe_index(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(_csv_text(v) for v in t) for t in index],
            names=[_csv_text(n) for n in index.names],
        )
    if index.dtype == object or pd.api.types.is_string_dtype(index):
        return pd.Index([_csv_text(v) for v in index], name=_csv_text(index.name))
    return index.rename(_csv_text(index.name))


def _csv_text(value: Any) -> Any:
    """Text for a CSV cell: a carriage return becomes a line feed, which makes the CSV
    writer quote the cell (a bare carriage return is not quoted, and a spreadsheet would
    start a new row there, whose first cell could be a formula); then neutralised."""
    value = neutralise_text(value)
    if isinstance(value, str) and "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def safe_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` ready for ``to_csv``: every text cell, index value and heading
    neutralised (:func:`neutralise_text`) and without bare carriage returns; numeric
    columns keep their type."""
    out = frame.copy()
    for k in range(out.shape[1]):
        values = out.iloc[:, k]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            out.isetitem(k, values.map(_csv_text))
    out.index = _safe_index(out.index)
    out.columns = _safe_index(out.columns)
    return out


def neutralise_workbook(book: Any) -> Any:
    """Neutralise every text cell (and any formula) of an openpyxl workbook in place.

    The writers here never write formulas, so a cell openpyxl took for one (text that
    starts with ``=``) came from the data and is written as text.
    """
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    safe = neutralise_text(cell.value)
                    if safe is not cell.value:
                        cell.value = safe
    return book


# --------------------------------------------------------------------------- suppression


def protection(
    cards: Mapping[str, Scorecard], suppress: bool = True, disc: Disclosure | None = None
) -> Disclosure | None:
    """The hidden cells for exports of ``cards`` (None: nothing hidden).

    ``disc``: the hidden cells already worked out for the same ``cards`` (reused, so
    every export of one set of scorecards hides the same cells without recomputing).
    """
    if not suppress:
        return None
    return disc if disc is not None else disclosure.protect(cards)


def is_hidden(disc: Disclosure | None, cell: tuple) -> bool:
    """Does ``disc`` hide ``cell`` ``(plan, level, row, measure)``?"""
    return disc is not None and disc.hides(*cell)


def is_count_column(name: str) -> bool:
    return disclosure.is_count(str(name))


def suppress_small(
    df: pd.DataFrame, columns: list[str] | None = None, threshold: float = SUPPRESSION_THRESHOLD
) -> pd.DataFrame:
    """Replace counts in ``(0, threshold)`` by ``"<5"`` in one stand-alone table.

    Primary suppression only: a reader can undo it with any total or rate published
    beside the table. Exports use :func:`pathways.disclosure.protect` instead.
    """
    out = df.copy()
    cols = columns if columns is not None else [c for c in out.columns if is_count_column(str(c))]
    for c in cols:
        if c not in out.columns:
            continue
        vals = pd.to_numeric(out[c], errors="coerce")
        small = (vals > 0) & (vals < threshold)
        if small.any():
            out[c] = out[c].astype(object)
            out.loc[small, c] = f"<{threshold:g}"
    return out


def _cell(disc: Disclosure | None, cell: tuple, kind: str, value: Any) -> Any:
    if disc is not None and cell in disc.hidden:
        return SUPPRESSED
    return round_value(kind, value)


def _hidden_frame(
    frame: pd.DataFrame, disc: Disclosure | None, plan: str, level: str
) -> pd.DataFrame:
    """``frame`` rounded by column, hidden cells ``[c]``, with labelled columns."""
    mask = disclosure.frame_mask(disc, plan, level, frame)
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        kind = measure_kind(str(col))
        values = [round_value(kind, v) for v in frame[col].tolist()]
        hide = mask[col].to_numpy()
        out[column_label(str(col))] = [
            SUPPRESSED if h else v for v, h in zip(values, hide, strict=True)
        ]
    return out


# --------------------------------------------------------------------------- tables


def comparison_table(cards: dict[str, Scorecard]) -> pd.DataFrame:
    """Headline KPIs side by side, one column per plan (raw numbers, nothing hidden)."""
    return pd.DataFrame({name: pd.Series(card.kpis) for name, card in cards.items()})


def comparison_frame(
    cards: Mapping[str, Scorecard], disc: Disclosure | None = None
) -> pd.DataFrame:
    """Every KPI (rows, labelled) for each plan (columns), rounded and protected."""
    keys = list(dict.fromkeys(k for card in cards.values() for k in card.kpis))
    rows = []
    for k in keys:
        kind = measure_kind(k)
        row: dict[str, Any] = {"measure": kpi_label(k)}
        for name, card in cards.items():
            row[name] = _cell(disc, (name, FOOTPRINT, ALL, k), kind, card.kpis.get(k))
        row["kpi"] = k
        rows.append(row)
    return pd.DataFrame(rows).set_index("measure")


def detail_frame(
    card: Scorecard, plan: str, disc: Disclosure | None = None, value_label: str = "Value"
) -> pd.DataFrame:
    """Each KPI of one plan: value, per 100k, each IMD quintile and the Q1-Q5 gap."""
    bq = card.by_quintile
    rows = []
    for k, v in card.kpis.items():
        kind, rate = measure_kind(k), _rate_kind(k)
        row: dict[str, Any] = {"measure": kpi_label(k)}
        row[value_label] = _cell(disc, (plan, FOOTPRINT, ALL, k), kind, v)
        row[PER_100K_LABEL] = _cell(
            disc, (plan, FOOTPRINT, ALL, disclosure.PER_100K + k), rate, card.per_100k.get(k)
        )
        for q, label in _QUINTILE_NAMES.items():
            qv = bq.at[q, k] if k in bq.columns and q in bq.index else None
            row[label] = _cell(disc, (plan, QUINTILE, q, k), kind, qv)
        row[GAP_LABEL] = _cell(
            disc, (plan, FOOTPRINT, ALL, disclosure.GAP + k), rate, card.imd_gap.get(k)
        )
        row["kpi"] = k
        rows.append(row)
    return pd.DataFrame(rows).set_index("measure")


def scorecard_frame(
    cards: Mapping[str, Scorecard], suppress: bool = True, disc: Disclosure | None = None
) -> pd.DataFrame:
    """The scorecard CSV: every KPI for each plan, then the last plan's per 100k, quintiles and gap.

    Rows are labelled KPIs (first column ``measure``), one column per plan, and the KPI
    key in the last column ``kpi``.
    """
    disc = protection(cards, suppress, disc)
    comparison = comparison_frame(cards, disc)
    main = next(reversed(cards))
    detail = detail_frame(cards[main], main, disc).drop(columns=["Value", "kpi"])
    if len(cards) > 1:
        detail = detail.add_prefix(f"{main}: ")
    out = comparison.drop(columns=["kpi"]).join(detail)
    out["kpi"] = comparison["kpi"]
    return out


def scorecard_table(card: Scorecard, suppress: bool = True) -> pd.DataFrame:
    """KPIs as rows with value, per 100k, quintiles and gap, labelled, rounded and protected."""
    return detail_frame(card, card.plan_name, protection({card.plan_name: card}, suppress))


def assumptions_table(scenario: Scenario) -> pd.DataFrame:
    """Every parameter: value in this scenario, default, unit and source."""
    rows = []
    data = scenario.model_dump(mode="json")
    for p in iter_parameters():
        node = data
        for part in p["path"].split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        value = node if not isinstance(node, dict) or node else None
        source = parameter_source(scenario, p["path"], p["source"], p["default"])
        rows.append(
            {
                "parameter": p["path"],
                "value": _short(value),
                "default": _short(p["default"]),
                "unit": p["unit"],
                "basis": basis(source),
                "source": source,
            }
        )
    return pd.DataFrame(rows)


def _short(v) -> str:
    text = str(v)
    return text if len(text) < 200 else text[:197] + "..."


def write_scorecard_csv(
    cards: Mapping[str, Scorecard],
    path: str | Path,
    suppress: bool = True,
    disc: Disclosure | None = None,
) -> Path:
    """``scorecard.csv``: :func:`scorecard_frame` of ``cards``."""
    path = Path(path)
    safe_cells(scorecard_frame(cards, suppress, disc)).to_csv(path)
    return path


def write_csv(
    card: Scorecard, path: str | Path, suppress: bool = True, disc: Disclosure | None = None
) -> Path:
    """One plan's scorecard as CSV (``pathways evaluate --csv``)."""
    return write_scorecard_csv({card.plan_name: card}, path, suppress, disc)


def sites_frame(
    main: Scorecard, plan: Plan | None, name: str, disc: Disclosure | None
) -> pd.DataFrame:
    """The plan's capacity by site beside the scorecard's per-site figures."""
    by_site = main.by_site
    if plan is not None:
        capacity_cols = ("inpatient_beds", "crisis_house_places", "mobile_teams",
                         "place_of_safety_suites")  # fmt: skip
        sites = plan.capacity_table().join(
            by_site.drop(columns=[c for c in by_site.columns if c in capacity_cols])
        )
    else:
        sites = by_site
    sites.index = sites.index.astype(str)
    out = _hidden_frame(sites, disc, name, SITE)
    out.index.name = "Site"
    return out


def write_xlsx(
    scenario: Scenario,
    cards: dict[str, Scorecard],
    path: str | Path,
    plan: Plan | None = None,
    suppress: bool = True,
    disc: Disclosure | None = None,
) -> Path:
    """Excel workbook: scorecard (each plan), plan by site, KPIs by area and by IMD quintile, assumptions."""
    path = Path(path)
    disc = protection(cards, suppress, disc)
    main_name, main = next(reversed(cards.items()))
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        comparison_frame(cards, disc).rename_axis("Measure").to_excel(xl, sheet_name="Scorecard")
        detail_frame(main, main_name, disc).rename_axis("Measure").to_excel(
            xl, sheet_name="KPIs detail"
        )
        sites_frame(main, plan, main_name, disc).to_excel(xl, sheet_name="Plan by site")
        area = _hidden_frame(main.by_area, disc, main_name, disclosure.AREA)
        area.index.name = "Area code"
        area.to_excel(xl, sheet_name="KPIs by area")
        bq = main.by_quintile.copy()
        bq.index = [int(q) for q in bq.index]
        bq = _hidden_frame(bq, disc, main_name, QUINTILE)
        bq.index.name = "IMD quintile"
        bq.to_excel(xl, sheet_name="KPIs by IMD quintile")
        pd.DataFrame(
            {
                "Staff group": [g.replace("_", " ").capitalize() for g in main.workforce_wte],
                "Whole-time equivalents": [round(v, 1) for v in main.workforce_wte.values()],
            }
        ).to_excel(xl, sheet_name="Workforce", index=False)
        assumptions_table(scenario).to_excel(xl, sheet_name="Assumptions", index=False)
        figure_sources(scenario).rename(columns=str.capitalize).to_excel(
            xl, sheet_name="Published or assumed", index=False
        )
        notes = pd.DataFrame({"note": about_notes(scenario.name, main_name, suppress)})
        notes.to_excel(xl, sheet_name="About", index=False)
        # every sheet at once, headings and index included: no text runs as a formula
        neutralise_workbook(xl.book)
    return path


def about_notes(scenario_name: str, main_name: str, suppress: bool) -> list[str]:
    return [
        f"Scenario: {scenario_name}",
        f"Plan shown in detail: {main_name}",
        SUPPRESSION_NOTE if suppress else NOT_SUPPRESSED_NOTE,
        "Figures are modelled expected values per year, not observed counts.",
        "Counts are rounded to 0.1, shares are percentages to 0.1, money is in whole pounds.",
    ]


SUPPRESSION_NOTE = (
    f"{SUPPRESSED} = suppressed: a count below 5, or a figure hidden so that no count below 5 "
    "can be worked out from totals, the Q1-Q5 gap, rates per 100,000 or costs "
    "(docs/disclosure.md). Zeros are shown."
)


NOT_SUPPRESSED_NOTE = "Small numbers NOT suppressed."
JSON_SUPPRESSION_NOTE = (
    "Values whose paths are listed in 'suppressed' are null: a count below 5, or a figure "
    "hidden so that no count below 5 can be worked out from totals, the Q1-Q5 gap, rates per "
    "100,000 or costs (docs/disclosure.md). Zeros are shown."
)


def suppression_note(suppress: bool) -> str:
    """The line a text output ends with: what ``[c]`` means, or that nothing is hidden."""
    return SUPPRESSION_NOTE if suppress else NOT_SUPPRESSED_NOTE


def masked(text: str, hidden: bool, width: int = 0) -> str:
    """``text`` right-aligned in ``width``, or the marker when the cell is hidden."""
    return f"{SUPPRESSED if hidden else text:>{width}}"


# --------------------------------------------------------------------------- JSON


#: Figures in ``Scorecard.extra`` that give a scorecard cell back with a published
#: number: hidden with it. Detentions x the place-of-safety blocked share = detentions
#: turned away; the inpatient offered load = admissions x length of stay / 365.
EXTRA_TIES: dict[str, str] = {
    "s136_per_year": "s136_turned_away_per_year",
    "place_of_safety_blocked_share": "s136_turned_away_per_year",
    "inpatient_offered_load": "admissions_per_year",
}
#: Lines of ``Scorecard.cost_breakdown`` that are scorecard cells (the others are
#: published capacity x published unit costs).
COST_TIES: dict[str, str] = {"oap": "oap_cost_gbp_per_year", "capital": "capital_cost_gbp"}


def _json_cells(card: Scorecard, plan: str) -> dict[tuple[str, ...], tuple | None]:
    """The numbers of ``card.to_dict()`` that publish a scorecard cell, by path, with the cell.

    None: the number is no scorecard cell but a count below 5, hidden anyway.
    """
    f = (plan, FOOTPRINT, ALL)
    cells: dict[tuple[str, ...], tuple | None] = {}
    for k in card.kpis:
        cells[("kpis", k)] = (*f, k)
    for k in card.per_100k:
        cells[("per_100k", k)] = (*f, disclosure.PER_100K + k)
    for k in card.by_quintile.columns:
        for q in card.by_quintile.index:
            cells[("by_imd_quintile", str(k), str(q))] = (plan, QUINTILE, int(q), str(k))
    for k in card.imd_gap:
        cells[("imd_gap_q1_minus_q5", k)] = (*f, disclosure.GAP + k)
    for k, kpi in COST_TIES.items():
        cells[("cost_breakdown_gbp_per_year", k)] = (*f, kpi)
    for k, v in card.extra.items():
        if k in EXTRA_TIES:
            cells[("extra", k)] = (*f, EXTRA_TIES[k])
        if disclosure.is_count(k) and _small(v):
            cells[("extra", k)] = None
    return cells


def _small(v: Any) -> bool:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return False
    return 0 < x < SUPPRESSION_THRESHOLD


def scorecard_dict(
    card: Scorecard,
    suppress: bool = True,
    disc: Disclosure | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """``card.to_dict()`` as exported: hidden values ``None``, listed under ``suppressed``.

    The structure is :meth:`pathways.kpis.Scorecard.to_dict`'s (which stays the
    library's full, unsuppressed form) with two more keys: ``suppressed``, the paths
    (``"kpis.oap_placements_per_year"``, ``"by_imd_quintile.<kpi>.<quintile>"``) of
    the values set to null, and ``disclosure``, a note saying what they are. ``plan``
    names the card in ``disc`` (default: its plan name); ``disc`` defaults to the
    protection of this card alone.
    """
    plan = plan if plan is not None else card.plan_name
    disc = protection({plan: card}, suppress, disc)
    data = card.to_dict()
    suppressed = []
    if disc is not None:
        for path, cell in _json_cells(card, plan).items():
            node = data
            for part in path[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or path[-1] not in node or node[path[-1]] is None:
                continue
            if cell is None or disc.hides(*cell):
                node[path[-1]] = None
                suppressed.append(".".join(path))
    data["suppressed"] = suppressed
    data["disclosure"] = JSON_SUPPRESSION_NOTE if disc is not None else NOT_SUPPRESSED_NOTE
    return data


def scorecards_dict(
    cards: Mapping[str, Scorecard], suppress: bool = True, disc: Disclosure | None = None
) -> dict[str, dict[str, Any]]:
    """Each plan's :func:`scorecard_dict`, by plan name, hiding the cells of one protection."""
    disc = protection(cards, suppress, disc)
    return {name: scorecard_dict(card, suppress, disc, plan=name) for name, card in cards.items()}


def scorecard_json(
    card: Scorecard, suppress: bool = True, disc: Disclosure | None = None, indent: int = 2
) -> str:
    """One plan's scorecard as JSON (``pathways evaluate --json``)."""
    return json.dumps(scorecard_dict(card, suppress, disc), indent=indent)


def write_scorecard_json(
    cards: Mapping[str, Scorecard],
    path: str | Path,
    suppress: bool = True,
    disc: Disclosure | None = None,
) -> Path:
    """``scorecard.json`` of ``pathways optimise``: :func:`scorecards_dict` of ``cards``."""
    path = Path(path)
    path.write_text(json.dumps(scorecards_dict(cards, suppress, disc), indent=2))
    return path


# --------------------------------------------------------------------------- the plan file


def objective_cells(plan: str, mode: str, weights: Any) -> list[tuple]:
    """The scorecard cells the optimiser's objective is worked out from.

    As :func:`pathways.optimise.baselines.objective_value`: the total cost, or the
    weighted OAP bed-days, admissions and travel hours (the weights are published).
    """
    f = (plan, FOOTPRINT, ALL)
    if mode == "min_cost":
        return [(*f, "total_cost_gbp_per_year")]
    terms = (
        ("oap_bed_days_per_year", weights.oap_bed_day),
        ("admissions_per_year", weights.admission),
        ("travel_burden_hours_per_year", weights.travel_hour),
    )
    return [(*f, k) for k, w in terms if w]


def objective_hidden(disc: Disclosure | None, plan: str, mode: str, weights: Any) -> bool:
    """Would the plan's objective give back a hidden cell (it is hidden with them)?"""
    return any(is_hidden(disc, c) for c in objective_cells(plan, mode, weights))


def hidden_predictions(
    disc: Disclosure | None, plan: str, predicted: Mapping[str, float], mode: str, weights: Any
) -> set[str]:
    """Keys of the optimiser's ``predicted`` KPIs an export must leave out.

    A prediction is within about 1% of the scorecard's figure, so it is hidden where
    that figure is, and when it is itself a count below 5; the predicted objective is
    hidden when any figure it is worked out from is.
    """
    if disc is None:
        return set()
    out = {
        k
        for k, v in predicted.items()
        if k != "objective"
        and (is_hidden(disc, (plan, FOOTPRINT, ALL, k)) or (disclosure.is_count(k) and _small(v)))
    }
    if "objective" in predicted:
        parts = {c[3] for c in objective_cells(plan, mode, weights)}
        if parts & out or objective_hidden(disc, plan, mode, weights):
            out.add("objective")
    return out


def budget_hidden(disc: Disclosure | None, scenario: Scenario, base: str = "current") -> bool:
    """Is the revenue budget today's total cost (none set), and that cost hidden?"""
    return scenario.budget.revenue_gbp_per_year is None and is_hidden(
        disc, (base, FOOTPRINT, ALL, "total_cost_gbp_per_year")
    )


def plan_for_export(
    plan: Plan, disc: Disclosure | None, scenario: Scenario, card: str = "optimised"
) -> tuple[Plan, list[str]]:
    """``plan`` as ``plan.yaml`` publishes it, and what was left out of it.

    The optimiser's ``predicted`` KPIs that the scorecard hides are dropped; the
    solver's objective and bound go when the objective would give back a hidden cell;
    the budget in the solver's settings goes when it is today's hidden total cost.
    ``card`` names the plan's scorecard in ``disc``. The result still loads with
    :func:`pathways.plan.load_plan` and evaluates as before (none of this is read).
    """
    if disc is None:
        return plan, []
    mode, weights = scenario.objective.mode, scenario.objective.weights
    drop = hidden_predictions(disc, card, plan.predicted, mode, weights)
    left_out = [f"predicted.{k}" for k in plan.predicted if k in drop]
    update: dict[str, Any] = {
        "predicted": {k: v for k, v in plan.predicted.items() if k not in drop}
    }
    rep = plan.solver
    if rep is not None:
        fields: dict[str, Any] = {}
        if "objective" in drop or objective_hidden(disc, card, mode, weights):
            for name in ("objective", "best_bound"):
                if getattr(rep, name) is not None:
                    fields[name] = None
                    left_out.append(f"solver.{name}")
        if budget_hidden(disc, scenario) and rep.settings.get("budget_gbp") is not None:
            fields["settings"] = {**rep.settings, "budget_gbp": None}
            left_out.append("solver.settings.budget_gbp")
        if fields:
            update["solver"] = rep.model_copy(update=fields)
    return plan.model_copy(update=update), left_out


def write_plan_yaml(
    plan: Plan,
    path: str | Path,
    scenario: Scenario,
    suppress: bool = True,
    disc: Disclosure | None = None,
    cards: Mapping[str, Scorecard] | None = None,
    card: str = "optimised",
) -> Path:
    """``plan.yaml`` of ``pathways optimise``: :func:`plan_for_export`, with a note on top.

    ``disc`` (or, without it, the protection of ``cards``) gives the hidden cells.
    """
    from pathways.plan import dump_plan

    if suppress and disc is None and cards is None:
        raise ValueError("give the scorecards (or their protection) to suppress the plan")
    disc = protection(cards or {}, suppress, disc)
    shown, left_out = plan_for_export(plan, disc, scenario, card)
    if disc is None:
        head = [f"# {NOT_SUPPRESSED_NOTE}"]
    else:
        head = ["# Small numbers suppressed (docs/disclosure.md)" + ("." if not left_out else
                ": left out, or null, as the scorecard hides them: " + ", ".join(left_out))]  # fmt: skip
    path = Path(path)
    path.write_text("\n".join(head) + "\n" + dump_plan(shown), encoding="utf-8")
    return path


def finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
