"""Exports a commissioner can open: CSV, Excel and GeoPackage, with small numbers suppressed.

Counts below ``SUPPRESSION_THRESHOLD`` (5) are replaced by the text ``"<5"`` in
exported tables by default, following NHS statistical disclosure practice for
aggregate outputs. Suppression applies to columns that count people or events.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pathways.kpis import COUNT_KPIS, Scorecard
from pathways.scenario import Scenario, iter_parameters

if TYPE_CHECKING:
    from pathways.plan import Plan

SUPPRESSION_THRESHOLD = 5
SUPPRESSED = "<5"


def is_count_column(name: str) -> bool:
    base = name.removeprefix("imd_q").lstrip("12345_")
    return (
        name in COUNT_KPIS
        or base in COUNT_KPIS
        or name.endswith("_per_year")
        and "gbp" not in name
        and "share" not in name
    )


def suppress_small(
    df: pd.DataFrame, columns: list[str] | None = None, threshold: float = SUPPRESSION_THRESHOLD
) -> pd.DataFrame:
    """Replace counts in ``(0, threshold)`` by ``"<5"`` (zeros are kept: they disclose nothing)."""
    out = df.copy()
    cols = columns if columns is not None else [c for c in out.columns if is_count_column(str(c))]
    for c in cols:
        if c not in out.columns:
            continue
        vals = pd.to_numeric(out[c], errors="coerce")
        small = (vals > 0) & (vals < threshold)
        if small.any():
            out[c] = out[c].astype(object)
            out.loc[small, c] = SUPPRESSED
    return out


def scorecard_table(card: Scorecard, suppress: bool = True) -> pd.DataFrame:
    """KPIs as rows with value, per 100k, quintiles and gap; count rows suppressed."""
    table = card.table()
    if suppress:
        count_rows = [k for k in table.index if k in COUNT_KPIS]
        value_cols = ["value", *[c for c in table.columns if c.startswith("imd_q")]]
        sub = table.loc[count_rows, value_cols].T
        sub = suppress_small(sub, columns=count_rows).T
        table = table.astype(object)
        table.loc[count_rows, value_cols] = sub
    return table


def comparison_table(cards: dict[str, Scorecard]) -> pd.DataFrame:
    """Headline KPIs side by side, one column per plan."""
    return pd.DataFrame({name: pd.Series(card.kpis) for name, card in cards.items()})


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


def write_csv(card: Scorecard, path: str | Path, suppress: bool = True) -> Path:
    path = Path(path)
    scorecard_table(card, suppress).to_csv(path)
    return path


def write_xlsx(
    scenario: Scenario,
    cards: dict[str, Scorecard],
    path: str | Path,
    plan: Plan | None = None,
    suppress: bool = True,
) -> Path:
    """Excel workbook: scorecard (each plan), plan by site, KPIs by area and by IMD quintile, assumptions."""
    path = Path(path)
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        comparison = comparison_table(cards)
        if suppress:
            comparison = suppress_small(
                comparison.T, columns=[k for k in comparison.index if k in COUNT_KPIS]
            ).T
        comparison.to_excel(xl, sheet_name="Scorecard")
        main_name, main = next(reversed(cards.items()))
        scorecard_table(main, suppress).to_excel(xl, sheet_name="KPIs detail")
        if plan is not None:
            sites = plan.capacity_table().join(
                main.by_site.drop(
                    columns=[
                        c
                        for c in main.by_site.columns
                        if c
                        in (
                            "inpatient_beds",
                            "crisis_house_places",
                            "mobile_teams",
                            "place_of_safety_suites",
                        )
                    ]
                )
            )
        else:
            sites = main.by_site
        sites.to_excel(xl, sheet_name="Plan by site")
        area = main.by_area.copy()
        area = suppress_small(area) if suppress else area
        area.to_excel(xl, sheet_name="KPIs by area")
        bq = main.by_quintile.copy()
        bq = suppress_small(bq) if suppress else bq
        bq.to_excel(xl, sheet_name="KPIs by IMD quintile")
        pd.DataFrame(
            {"staff_group": list(main.workforce_wte), "wte": list(main.workforce_wte.values())}
        ).to_excel(xl, sheet_name="Workforce", index=False)
        assumptions_table(scenario).to_excel(xl, sheet_name="Assumptions", index=False)
        notes = pd.DataFrame(
            {
                "note": [
                    f"Scenario: {scenario.name}",
                    f"Plan shown in detail: {main_name}",
                    "Counts below 5 are shown as '<5' (small-number suppression)."
                    if suppress
                    else "Small numbers NOT suppressed.",
                    "Figures are modelled expected values per year, not observed counts.",
                ]
            }
        )
        notes.to_excel(xl, sheet_name="About", index=False)
    return path


def finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
