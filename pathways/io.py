"""Exports a commissioner can open: CSV and Excel, with small numbers protected.

Every table is written with commissioners' labels (the KPI key stays in a ``kpi``
column for joining), rounded as people read it (counts to 0.1, shares as percentages
to 0.1, money to whole pounds) and, by default, with small-number suppression from
:mod:`pathways.disclosure`: counts below 5 are hidden, and so is every other cell that
would let a reader work one out (totals minus the other parts, gaps, rates, costs).
Hidden cells show ``[c]``. All the tables of one export, and all the exports of the
same scorecards, hide the same cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pathways import disclosure
from pathways.disclosure import ALL, FOOTPRINT, QUINTILE, SITE, Disclosure
from pathways.kpis import COUNT_KPIS, RATE_KPIS, Scorecard
from pathways.scenario import Scenario, iter_parameters

if TYPE_CHECKING:
    from pathways.plan import Plan

__all__ = ["COUNT_KPIS", "KPI_FORMAT", "KPI_LABELS", "SUPPRESSED", "SUPPRESSION_THRESHOLD"]

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


# --------------------------------------------------------------------------- suppression


def protection(cards: Mapping[str, Scorecard], suppress: bool = True) -> Disclosure | None:
    """The hidden cells for exports of ``cards`` (None: nothing hidden)."""
    return disclosure.protect(cards) if suppress else None


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


def scorecard_frame(cards: Mapping[str, Scorecard], suppress: bool = True) -> pd.DataFrame:
    """The scorecard CSV: every KPI for each plan, then the last plan's per 100k, quintiles and gap.

    Rows are labelled KPIs (first column ``measure``), one column per plan, and the KPI
    key in the last column ``kpi``.
    """
    disc = protection(cards, suppress)
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
        rows.append(
            {
                "parameter": p["path"],
                "value": _short(value),
                "default": _short(p["default"]),
                "unit": p["unit"],
                "source": p["source"],
            }
        )
    return pd.DataFrame(rows)


def _short(v) -> str:
    text = str(v)
    return text if len(text) < 200 else text[:197] + "..."


def write_scorecard_csv(
    cards: Mapping[str, Scorecard], path: str | Path, suppress: bool = True
) -> Path:
    """``scorecard.csv``: :func:`scorecard_frame` of ``cards``."""
    path = Path(path)
    scorecard_frame(cards, suppress).to_csv(path)
    return path


def write_csv(card: Scorecard, path: str | Path, suppress: bool = True) -> Path:
    """One plan's scorecard as CSV (``pathways evaluate --csv``)."""
    return write_scorecard_csv({card.plan_name: card}, path, suppress)


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
) -> Path:
    """Excel workbook: scorecard (each plan), plan by site, KPIs by area and by IMD quintile, assumptions."""
    path = Path(path)
    disc = protection(cards, suppress)
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
        notes = pd.DataFrame({"note": about_notes(scenario.name, main_name, suppress)})
        notes.to_excel(xl, sheet_name="About", index=False)
    return path


def about_notes(scenario_name: str, main_name: str, suppress: bool) -> list[str]:
    return [
        f"Scenario: {scenario_name}",
        f"Plan shown in detail: {main_name}",
        SUPPRESSION_NOTE if suppress else "Small numbers NOT suppressed.",
        "Figures are modelled expected values per year, not observed counts.",
        "Counts are rounded to 0.1, shares are percentages to 0.1, money is in whole pounds.",
    ]


SUPPRESSION_NOTE = (
    f"{SUPPRESSED} = suppressed: a count below 5, or a figure hidden so that no count below 5 "
    "can be worked out from totals, the Q1-Q5 gap, rates per 100,000 or costs "
    "(docs/disclosure.md). Zeros are shown."
)


def finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
