"""Small-number suppression cannot be undone: every export, attacked.

The attacker below reads an export back from the file (CSV, Excel, GeoPackage, HTML,
the JSON scorecards, the terminal table of ``pathways evaluate``, and the optimiser's
``summary.txt`` and ``plan.yaml``), knows the populations (open data), the constants
of the Assumptions sheet, the objective's weights and the plans' capacities, and uses
every relation the exports publish: quintiles and areas
adding up to the footprint, the Q1-Q5 gap, rates per 100,000, OAP bed-days and cost
as fixed multiples, measures that are a constant multiple of another in every row
(placements = admissions x blocked share, veterans, mobile episodes, crisis-line calls
shared out by population), mobile responses within the standard = share x episodes,
the total cost = published capacity x unit cost + OAP cost, plan-minus-today
changes, inpatient occupancy x beds = admissions x (1 - blocked share) x length of
stay / 365, the optimiser's objective as weighted KPIs, a budget that is today's total
cost, and the optimiser's predictions (within about 1% of the scorecard) with their
printed relative difference. It solves each relation for a single unknown (chaining
the answers, from published estimates too) and tightens intervals across all
relations; a suppressed count is recovered when a solution lands within 0.5 of it or
its interval is at most 1 wide. The attacker is
independent of :mod:`pathways.disclosure`; it is shown able to recover cells when
complementary suppression is switched off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO, StringIO
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml
from lxml import html as lxml_html

from pathways import costs, disclosure, io
from pathways.kpis import COUNT_KPIS, HEADLINE_KPIS, RATE_KPIS, Scorecard, evaluate
from pathways.optimise import OptimiseResult, SolverOptions, optimise_with_baselines
from pathways.plan import Plan, SitePlan, baseline_plan, load_plan
from pathways.scenario import Capacity, Scenario, load_scenario

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
F, Q, A, S = "footprint", "quintile", "area", "site"
INF = math.inf

Key = tuple[str, str, object, str]

SMALL_AREAS = """area_code,population,x,y,imd_decile,rural
T1,400,527000,106000,1,0
T2,900,528500,107200,2,0
T3,1500,530000,108000,4,0
T4,2200,525000,104500,6,1
T5,3100,532000,110500,8,0
T6,650,534000,112000,10,1
T7,1800,521000,105000,3,0
"""
SMALL_SCENARIO = """name: Seven small areas
footprint: {{areas_file: {areas}}}
sites:
  - site_id: H1
    name: Hill Ward
    x_m: 527501
    y_m: 106200
    status: existing
    services: [inpatient, mobile_team, place_of_safety, crisis_house]
    capacity: {{inpatient_beds: 3, mobile_teams: 1, place_of_safety_suites: 1, crisis_house_places: 1}}
  - site_id: C1
    name: Candidate house
    x_m: 531000
    y_m: 109000
    status: candidate
    services: [crisis_house, mobile_team]
"""


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    path: Path
    scenario: Scenario
    plans: dict[str, Plan]
    cards: dict[str, Scorecard]
    result: OptimiseResult | None = None
    """The optimiser's run the command line writes (optimiser cases only)."""

    @property
    def main(self) -> Scorecard:
        """The plan shown in detail (the last)."""
        return list(self.cards.values())[-1]


def _bigger_plan(scenario: Scenario) -> Plan:
    """Today's plan with more beds at the first site and a crisis house opened at a candidate."""
    base = baseline_plan(scenario)
    first = scenario.sites[0]
    cand = next(s for s in scenario.sites if s.status == "candidate")
    sites = []
    for sp in base.sites:
        if sp.site_id == first.site_id:
            cap = sp.capacity.model_copy(update={"inpatient_beds": sp.capacity.inpatient_beds + 6})
            sp = SitePlan(site_id=sp.site_id, capacity=cap)
        elif sp.site_id == cand.site_id:
            sp = SitePlan(site_id=sp.site_id, capacity=Capacity(crisis_house_places=2))
        sites.append(sp)
    return Plan(name="optimised", sites=tuple(sites), hub=base.hub)


def _case(name: str, path: Path) -> Case:
    scenario = load_scenario(path)
    plans = {"current": baseline_plan(scenario), "optimised": _bigger_plan(scenario)}
    cards = {n: evaluate(scenario, p) for n, p in plans.items()}
    return Case(name, path, scenario, plans, cards)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    """The Sussex demo and seven small areas where most counts are below 5."""
    tmp = tmp_path_factory.mktemp("small")
    (tmp / "areas.csv").write_text(SMALL_AREAS)
    (tmp / "small.yaml").write_text(SMALL_SCENARIO.format(areas=tmp / "areas.csv"))
    return {"sussex": _case("sussex", SUSSEX), "small": _case("small", tmp / "small.yaml")}


SMALL_BUDGET = 2_500_000
"""A revenue budget for the seven areas above today's cost, so the plans differ."""


def _opt_case(name: str, path: Path, predicted: bool) -> Case:
    """The optimiser's run on ``path``, with today's, the baselines' and its plan.

    On footprints this small the first plan found is already the best, and it carries
    no prediction; with ``predicted``, the plan is given the prediction a solver's
    plan carries (within about 1% of the scorecard; 0.3% here).
    """
    scenario = load_scenario(path)
    result = optimise_with_baselines(scenario, SolverOptions(time_limit_s=10))
    if predicted:
        card = result.cards["optimised"]
        keys = ("admissions_per_year", "oap_placements_per_year", "oap_bed_days_per_year",
                "total_cost_gbp_per_year", "travel_burden_hours_per_year")  # fmt: skip
        pred = {k: card.kpis[k] * 1.003 for k in keys}
        pred["objective"] = result.objectives["optimised"] * 1.003
        result = dataclasses.replace(
            result, plan=result.plan.model_copy(update={"predicted": pred})
        )
    plans = {"current": baseline_plan(scenario), **result.baselines, "optimised": result.plan}
    assert list(plans) == list(result.cards)
    return Case(name, path, scenario, plans, dict(result.cards), result)


@pytest.fixture(scope="module")
def opt_cases(cases, tmp_path_factory) -> dict[str, Case]:
    """``pathways optimise`` on the seven small areas: without a budget (it is today's cost,
    so every plan is today's) and with one (the plans differ, with a prediction)."""
    small = cases["small"]
    tmp = tmp_path_factory.mktemp("opt")
    budget = tmp / "small_budget.yaml"
    budget.write_text(
        small.path.read_text() + f"budget: {{revenue_gbp_per_year: {SMALL_BUDGET}}}\n"
    )
    return {
        "small": _opt_case("small", small.path, predicted=False),
        "small-budget": _opt_case("small-budget", budget, predicted=True),
    }


# --------------------------------------------------------------------------- reading exports


@dataclass
class Publication:
    """What a reader sees: shown cells as intervals (rounding), suppressed cells, area quintiles.

    ``estimates``: figures published as close to a cell but not equal to it (the
    optimiser's predictions, within about 1% of the scorecard's figure).
    """

    shown: dict[Key, tuple[float, float]] = field(default_factory=dict)
    hidden: set[Key] = field(default_factory=set)
    area_quintile: dict[str, int] = field(default_factory=dict)
    detail: str | None = None
    estimates: dict[Key, float] = field(default_factory=dict)

    def put(self, key: Key, value: object, half: float | None) -> None:
        """``half``: half the rounding unit (None: ``value`` is text to read)."""
        if isinstance(value, str) and value.strip() == io.SUPPRESSED:
            self.hidden.add(key)
            return
        if value is None or (isinstance(value, str) and value.strip() in ("", "–")):
            return
        if isinstance(value, float) and math.isnan(value):
            return
        v = float(value)
        lo, hi = v - half, v + half
        if key in self.shown:  # the same cell twice: both are true
            plo, phi = self.shown[key]
            lo, hi = max(lo, plo), min(hi, phi)
        self.shown[key] = (lo, hi)

    def merge(self, other: Publication) -> None:
        for k, (lo, hi) in other.shown.items():
            self.put(k, (lo + hi) / 2, (hi - lo) / 2)
        self.hidden |= other.hidden
        self.area_quintile |= other.area_quintile
        self.detail = self.detail or other.detail
        for k, v in other.estimates.items():
            self.estimates.setdefault(k, v)


def _kind(measure: str) -> str:
    base = disclosure.base_measure(measure)
    kind = io.measure_kind(base)
    if measure.startswith(("per_100k:", "gap:")) and base in RATE_KPIS:
        return "gbp" if kind == "gbp" else "count"
    return kind


def _put_rounded(pub: Publication, key: Key, value: object) -> None:
    """A CSV or Excel number: counts to 0.1, percentages to 0.1, money and whole units to 1."""
    kind = _kind(key[3])
    if isinstance(value, str) and value.strip() not in ("", io.SUPPRESSED, "–"):
        value = float(value)
    if kind == "pct" and isinstance(value, int | float):
        pub.put(key, float(value) / 100, 0.0005)
    else:
        pub.put(key, value, 0.5 if kind in ("gbp", "whole") else 0.05)


def _label_keys(case: Case) -> dict[str, str]:
    keys = set(io.KPI_LABELS) | set(case.main.kpis)
    for card in case.cards.values():
        keys |= {
            str(c)
            for c in (*card.by_area.columns, *card.by_quintile.columns, *card.by_site.columns)
        }
    return {io.column_label(k): k for k in keys} | {io.kpi_label(k): k for k in keys}


_DETAIL = {
    io.PER_100K_LABEL: ("per", None),
    io.GAP_LABEL: ("gap", None),
    "IMD Q1 (most deprived)": ("q", 1),
    "IMD Q2": ("q", 2),
    "IMD Q3": ("q", 3),
    "IMD Q4": ("q", 4),
    "IMD Q5 (least deprived)": ("q", 5),
}


def _detail_key(plan: str, kpi: str, column: str) -> Key | None:
    what = _DETAIL.get(column)
    if what is None:
        return None
    if what[0] == "per":
        return (plan, F, "all", "per_100k:" + kpi)
    if what[0] == "gap":
        return (plan, F, "all", "gap:" + kpi)
    return (plan, Q, what[1], kpi)


def read_scorecard_rows(pub: Publication, frame: pd.DataFrame, value_plan: str | None) -> None:
    """A scorecard table: rows of KPIs (key in ``kpi``), plan columns, then detail columns."""
    cols = [c for c in frame.columns if c not in ("measure", "Measure", "kpi")]
    detail_cols = {}
    plans = []
    for c in cols:
        plan, _, bare = c.rpartition(": ") if ": " in c else ("", "", c)
        if bare in _DETAIL:
            detail_cols[c] = (plan or None, bare)
        else:
            plans.append(c)
    for _, row in frame.iterrows():
        kpi = row["kpi"]
        for p in plans:
            plan = value_plan if p == "Value" else p
            _put_rounded(pub, (plan, F, "all", kpi), row[p])
        for c, (plan, bare) in detail_cols.items():
            plan = plan or value_plan or plans[-1]
            key = _detail_key(plan, kpi, bare)
            _put_rounded(pub, key, row[c])


def read_csv(text: str) -> Publication:
    frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    assert frame.columns[0] == "measure" and frame.columns[-1] == "kpi"
    pub = Publication()
    plans = [c for c in frame.columns[1:-1] if c.rpartition(": ")[2] not in _DETAIL]
    read_scorecard_rows(pub, frame, plans[-1])
    return pub


def _sheet(wb, name: str) -> pd.DataFrame:
    rows = list(wb[name].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


def read_xlsx(data: bytes, case: Case) -> tuple[Publication, dict[str, float]]:
    """The workbook's cells and the constants of its Assumptions sheet."""
    wb = openpyxl.load_workbook(BytesIO(data), data_only=True)
    pub = Publication()
    about = [r[0] for r in wb["About"].iter_rows(min_row=2, values_only=True)]
    main = next(n.split(": ", 1)[1] for n in about if n.startswith("Plan shown in detail"))
    pub.detail = main
    read_scorecard_rows(pub, _sheet(wb, "Scorecard"), None)
    read_scorecard_rows(pub, _sheet(wb, "KPIs detail"), main)
    labels = _label_keys(case)
    for sheet, level, first in (("KPIs by area", A, "Area code"), ("KPIs by IMD quintile", Q, "IMD quintile"),
                                ("Plan by site", S, "Site")):  # fmt: skip
        frame = _sheet(wb, sheet)
        for _, row in frame.iterrows():
            r = int(row[first]) if level == Q else str(row[first])
            for col in frame.columns[1:]:
                key = labels[col]
                if level == A and key == "imd_quintile":
                    pub.area_quintile[r] = int(row[col])
                if key in ("rural", "imd_quintile"):
                    continue
                _put_rounded(pub, (main, level, r, key), row[col])
    constants = {}
    for parameter, value, *_ in wb["Assumptions"].iter_rows(min_row=2, values_only=True):
        with contextlib.suppress(TypeError, ValueError):
            constants[parameter] = float(value)
    return pub, constants


def read_gpkg(data: bytes, plan: str, tmp: Path) -> Publication:
    path = tmp / "export.gpkg"
    path.write_bytes(data)
    pub = Publication(detail=plan)
    for layer, level, id_col in (("areas", A, "area_code"), ("sites", S, "site_id")):
        frame = gpd.read_file(path, layer=layer)
        numeric = [c for c in frame.columns if c != id_col and not c.endswith("_suppressed")
                   and frame[c].dtype.kind in "if" and not c.endswith(("x_m", "y_m"))]  # fmt: skip
        for col in numeric:
            flag = (
                frame[col + "_suppressed"] if col + "_suppressed" in frame else [False] * len(frame)
            )
            for r, v, hide in zip(frame[id_col], frame[col], flag, strict=True):
                if hide:
                    pub.hidden.add((plan, level, str(r), col))
                elif np.isfinite(v):
                    pub.put((plan, level, str(r), col), v, 1e-9 * max(1.0, abs(v)))
    return pub


_NUMBER = re.compile(r"^([+−-]?)(£?)([\d,]*\.?\d*)(M?)(%?)( points)?$")


def _read_html_number(text: str) -> tuple[float, float] | None:
    """A figure as the report prints it: value and half its rounding unit."""
    m = _NUMBER.match(text.strip())
    if m is None or not m.group(3):
        return None
    sign, _, digits, mega, pct, points = m.groups()
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    v = float(digits.replace(",", ""))
    half = 0.5 * 10.0**-decimals
    if mega:
        v, half = v * 1e6, half * 1e6
    if pct or points:
        v, half = v / 100, half / 100
    return (-v if sign in ("−", "-") else v), half


def read_html(text: str, case: Case) -> Publication:
    doc = lxml_html.fromstring(text)
    pub = Publication(detail="optimised" if "What changes" in text else "current")
    names = {"Today": "current", "Plan": "optimised"}
    labels = {io.kpi_label(k): k for k in case.main.kpis}
    for h2 in doc.xpath("//h2"):
        title = h2.text_content()
        tables = h2.xpath("following-sibling::table[1]")
        if not tables:
            continue
        table = tables[0]
        header = [th.text_content() for th in table.xpath(".//thead//th")]
        for tr in table.xpath(".//tbody/tr"):
            cells = [td.text_content() for td in tr.xpath("./td")]
            for h, v in zip(header[1:], cells[1:], strict=True):
                if title.startswith("Balanced scorecard"):
                    kpi = labels[cells[0]]
                    key = (
                        ("optimised", F, "all", "change:" + kpi)
                        if h == "Change"
                        else (names[h], F, "all", kpi)
                    )
                elif title.startswith("Per 100,000"):
                    key = (names[h], F, "all", "per_100k:" + labels[cells[0]])
                elif title.startswith("Equity"):
                    key = (names[h], Q, int(cells[0][1]), "per_100k:admissions_per_year")
                else:
                    continue
                if v.strip() == io.SUPPRESSED:
                    pub.hidden.add(key)
                elif (num := _read_html_number(v)) is not None:
                    pub.put(key, num[0], num[1])
    return pub


def _exact(pub: Publication, key: Key, value: float) -> None:
    """A number printed in full (JSON, YAML): known to float precision."""
    pub.put(key, float(value), 1e-9 * max(1.0, abs(float(value))))


def read_json(data: dict, case: Case, plan: str | None = None) -> Publication:
    """One scorecard as JSON (``Scorecard.to_dict()`` with nulls listed under ``suppressed``).

    Besides the scorecard cells, a reader has the cost breakdown's OAP line (the OAP
    cost), the inpatient offered load (admissions x length of stay / 365) and section
    136 detentions x the place-of-safety blocked share (detentions turned away).
    """
    plan = plan or data["plan"]
    pub = Publication()
    hidden = set(data["suppressed"])

    def put(path: tuple[str, ...], key: Key, value: object) -> None:
        if ".".join(path) in hidden:
            pub.hidden.add(key)
        elif value is not None:
            _exact(pub, key, value)

    for k, v in data["kpis"].items():
        put(("kpis", k), (plan, F, "all", k), v)
    for k, v in data["per_100k"].items():
        put(("per_100k", k), (plan, F, "all", "per_100k:" + k), v)
    for k, v in data["imd_gap_q1_minus_q5"].items():
        put(("imd_gap_q1_minus_q5", k), (plan, F, "all", "gap:" + k), v)
    for k, column in data["by_imd_quintile"].items():
        if k != "population":
            for q, v in column.items():
                put(("by_imd_quintile", k, q), (plan, Q, int(q), k), v)
    oap = data["cost_breakdown_gbp_per_year"].get("oap")
    if oap is not None:
        _exact(pub, (plan, F, "all", "oap_cost_gbp_per_year"), oap)
    extra = data.get("extra", {})
    load = extra.get("inpatient_offered_load")
    if load is not None:
        los = case.scenario.queues.inpatient_los_days
        _exact(pub, (plan, F, "all", "admissions_per_year"), load * 365.0 / los)
    s136, blocked = extra.get("s136_per_year"), extra.get("place_of_safety_blocked_share")
    if s136 is not None and blocked is not None:
        _exact(pub, (plan, F, "all", "s136_turned_away_per_year"), s136 * blocked)
    return pub


def read_json_cards(data: dict, case: Case) -> Publication:
    """``scorecard.json`` of ``pathways optimise``: each plan's scorecard by name."""
    pub = Publication()
    for name, card in data.items():
        pub.merge(read_json(card, case, name))
    return pub


def _read_text_number(text: str) -> tuple[float, float] | None:
    """A figure as a text table prints it (``1,234``, ``12.3``, ``0.432``, ``0.31%``): value, half a unit."""
    text = text.strip()
    if not text or text == io.SUPPRESSED:
        return None
    pct = text.endswith("%")
    digits = text.rstrip("%").replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    v, half = float(digits), 0.5 * 10.0**-decimals
    return (v / 100, half / 100) if pct else (v, half)


def _put_text(pub: Publication, key: Key, text: str) -> None:
    if text.strip() == io.SUPPRESSED:
        pub.hidden.add(key)
    elif (num := _read_text_number(text)) is not None:
        pub.put(key, num[0], num[1])


def read_table(text: str, plan: str) -> Publication:
    """The table ``pathways evaluate`` prints: KPI, value, per 100k, IMD gap Q1-Q5."""
    pub = Publication()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("KPI"))
    for line in lines[start + 1 :]:
        k = line[:42].strip()
        if k not in HEADLINE_KPIS:
            break
        _put_text(pub, (plan, F, "all", k), line[42:58])
        _put_text(pub, (plan, F, "all", "per_100k:" + k), line[58:72])
        _put_text(pub, (plan, F, "all", "gap:" + k), line[72:88])
    return pub


def _budget_is_today(case: Case) -> bool:
    """No budget set: the optimiser's budget is today's total cost."""
    return case.scenario.budget.revenue_gbp_per_year is None


TODAY_COST: Key = ("current", F, "all", "total_cost_gbp_per_year")
MAIN = "optimised"


def read_summary(text: str, case: Case) -> Publication:
    """``summary.txt``: the budget, the solver's objective, every plan's KPIs, the prediction check."""
    pub = Publication()
    lines = text.splitlines()
    budget = re.search(r"budget GBP (\S+) a year", text)
    if budget and _budget_is_today(case):
        _put_text(pub, TODAY_COST, budget.group(1))
    solver = re.search(r"objective (.+?), best bound (.+?), gap (.+?), ", text)
    if solver:
        obj, bound, gap = (_read_text_number(g) for g in solver.groups())
        if obj is not None:
            pub.estimates[(MAIN, F, "all", "objective")] = obj[0]
        elif bound is not None and gap is not None and gap[0] < 1:
            pub.estimates[(MAIN, F, "all", "objective")] = bound[0] / (1 - gap[0])
    start = next(i for i, line in enumerate(lines) if line.startswith("KPI"))
    names = [lines[start][40 + 18 * i : 58 + 18 * i].strip() for i in range(len(case.cards))]
    assert names == list(case.cards), names
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        label = line[:40].strip()
        measure = {
            "objective": "objective",
            "equity gap: admissions per 100k Q1-Q5": "gap:admissions_per_year",
        }.get(label, label)
        for i, name in enumerate(names):
            _put_text(pub, (name, F, "all", measure), line[40 + 18 * i : 58 + 18 * i])
    after = lines[next(i for i, line in enumerate(lines) if line.startswith("Optimiser's")) + 1 :]
    for line in after:
        if not line.startswith("  "):
            break
        k, pred, kpi, diff = line[2:38].strip(), line[38:54], line[54:70], line[70:80]
        key = (MAIN, F, "all", k)
        _put_text(pub, key, kpi)
        if pred.strip() == io.SUPPRESSED:
            continue
        p, p_half = _read_text_number(pred)
        pub.estimates.setdefault(key, p)
        if (d := _read_text_number(diff)) is not None and p > 0:
            # |p - kpi| / kpi = d: kpi = p / (1 + d) or p / (1 - d)
            lo = (p - p_half) / (1 + d[0] + d[1])
            hi = (p + p_half) / (1 - d[0] - d[1])
            pub.put(key, (lo + hi) / 2, (hi - lo) / 2)
    return pub


def read_plan_yaml(text: str, case: Case) -> Publication:
    """``plan.yaml``: what its first line says is left out, the predictions, the solver's report."""
    pub = Publication()
    first = text.splitlines()[0]
    left_out = first.split("hides them: ", 1)[1].split(", ") if "hides them: " in first else []
    for item in left_out:
        if item.startswith("predicted."):
            pub.hidden.add((MAIN, F, "all", item.split(".", 1)[1]))
        elif item == "solver.objective":
            pub.hidden.add((MAIN, F, "all", "objective"))
        elif item == "solver.settings.budget_gbp" and _budget_is_today(case):
            pub.hidden.add(TODAY_COST)
    data = yaml.safe_load(text)
    for k, v in (data.get("predicted") or {}).items():
        pub.estimates[(MAIN, F, "all", k)] = float(v)
    rep = data.get("solver") or {}
    if rep.get("objective") is not None:
        pub.estimates.setdefault((MAIN, F, "all", "objective"), float(rep["objective"]))
    elif rep.get("best_bound") is not None and rep.get("gap") is not None and rep["gap"] < 1:
        pub.estimates.setdefault(
            (MAIN, F, "all", "objective"), rep["best_bound"] / (1 - rep["gap"])
        )
    budget = (rep.get("settings") or {}).get("budget_gbp")
    if budget is not None and _budget_is_today(case):
        _exact(pub, TODAY_COST, budget)
    return pub


# --------------------------------------------------------------------------- the attacker


def _is_count(measure: str) -> bool:
    return measure in COUNT_KPIS or (
        measure.endswith("_per_year")
        and not any(w in measure for w in ("gbp", "share", "hours", "mins"))
    )


def _additive(measure: str) -> bool:
    return ":" not in measure and (_is_count(measure) or "gbp" in measure)


@dataclass
class Lin:
    """sum(coef * cell) == const."""

    terms: list[tuple[Key, float]]
    const: float = 0.0

    def __post_init__(self) -> None:
        self.terms = [(k, a) for k, a in self.terms if a != 0]


@dataclass
class Ratio:
    """cell_b == k * a in every row, one k for all rows (a is a cell or a known number)."""

    rows: list[tuple[Key | float, Key]]
    k: tuple[float, float] = (0.0, INF)
    k_cell: Key | None = None  # a published multiplier


class Attack:
    def __init__(self, case: Case, pub: Publication, constants: dict[str, float]):
        self.case, self.pub = case, pub
        sc = case.scenario or Scenario(name="defaults", footprint={"icb": "E54000053"})
        self.los = constants.get("queues.oap_los_days", sc.queues.oap_los_days)
        self.per_day = constants.get("costs.oap_gbp_per_bed_day", sc.costs.oap_gbp_per_bed_day)
        self.veterans = constants.get("demand.veterans_share", sc.demand.veterans_share)
        self.inpatient_los = constants.get(
            "queues.inpatient_los_days", sc.queues.inpatient_los_days
        )
        self.bounds: dict[Key, list[float]] = {}
        for k, (lo, hi) in pub.shown.items():
            self.bounds[k] = [lo, hi]
        for k in (*pub.hidden, *pub.estimates):
            self.bounds.setdefault(k, self._prior(k))
        self.lins: list[Lin] = []
        self.ratios: list[Ratio] = []
        self.occupancy: list[tuple[Key, Key, Key, float]] = []
        self._relations()

    # ---- knowledge
    def pop(self, plan: str, level: str, row: object) -> float:
        card = self.case.cards[plan]
        if level == F:
            return card.population
        if level == Q:
            return float(card.by_quintile.at[row, "population"])
        return float(card.by_area.at[row, "population"])

    def _prior(self, key: Key) -> list[float]:
        return [-INF, INF] if key[3].startswith(("gap:", "change:")) else [0.0, INF]

    def ref(self, key: Key) -> Key:
        """A cell of a relation; unpublished cells are unknowns too."""
        if key not in self.bounds:
            self.bounds[key] = self._prior(key)
        return key

    def _relations(self) -> None:
        keys = set(self.bounds)
        plans = sorted({k[0] for k in keys})
        for p in plans:
            mine = [k for k in keys if k[0] == p]
            levels = {k[1] for k in mine}
            measures = {k[3] for k in mine}
            rows = {lv: sorted({k[2] for k in mine if k[1] == lv}, key=str) for lv in levels}
            base = {disclosure.base_measure(m) for m in measures}
            for m in sorted(b for b in base if _additive(b)):
                total = self.ref((p, F, "all", m))
                if any(k[1] == Q and k[3] == m for k in mine):
                    self.lins.append(
                        Lin([(total, -1.0)] + [(self.ref((p, Q, q, m)), 1.0) for q in range(1, 6)])
                    )
                if any(k[1] == A and k[3] == m for k in mine):
                    areas = rows[A]
                    self.lins.append(
                        Lin([(total, -1.0)] + [(self.ref((p, A, a, m)), 1.0) for a in areas])
                    )
                    if self.pub.area_quintile:
                        for q in range(1, 6):
                            members = [a for a in areas if self.pub.area_quintile.get(a) == q]
                            self.lins.append(Lin([(self.ref((p, Q, q, m)), -1.0)]
                                                 + [(self.ref((p, A, a, m)), 1.0) for a in members]))  # fmt: skip
            all_rows = [(lv, r) for lv in (F, Q, A) if lv in rows for r in rows[lv]]
            for k in mine:
                m = k[3]
                if m.startswith("per_100k:"):
                    count = self.ref((p, k[1], k[2], m.split(":", 1)[1]))
                    self.lins.append(Lin([(k, 1.0), (count, -1e5 / self.pop(p, k[1], k[2]))]))
                elif m.startswith("gap:"):
                    b = m.split(":", 1)[1]
                    c1 = 1e5 / self.pop(p, Q, 1) if b in RATE_KPIS else 1.0
                    c5 = 1e5 / self.pop(p, Q, 5) if b in RATE_KPIS else 1.0
                    self.lins.append(
                        Lin([(k, 1.0), (self.ref((p, Q, 1, b)), -c1), (self.ref((p, Q, 5, b)), c5)])
                    )
                elif m.startswith("change:") and "current" in self.case.cards:
                    b = m.split(":", 1)[1]
                    self.lins.append(Lin([(k, 1.0), (self.ref((p, F, "all", b)), -1.0),
                                          (self.ref(("current", F, "all", b)), 1.0)]))  # fmt: skip
            for lv, r in all_rows:
                cell = lambda m, p=p, lv=lv, r=r: (p, lv, r, m)  # noqa: E731
                if {cell("oap_placements_per_year"), cell("oap_bed_days_per_year")} & keys:
                    self.lins.append(Lin([(self.ref(cell("oap_bed_days_per_year")), 1.0),
                                          (self.ref(cell("oap_placements_per_year")), -self.los)]))  # fmt: skip
                if {cell("oap_cost_gbp_per_year"), cell("oap_bed_days_per_year")} & keys:
                    self.lins.append(Lin([(self.ref(cell("oap_cost_gbp_per_year")), 1.0),
                                          (self.ref(cell("oap_bed_days_per_year")), -self.per_day)]))  # fmt: skip
                if lv != A and cell("veteran_episodes_per_year") in keys:
                    self.lins.append(Lin([(self.ref(cell("veteran_episodes_per_year")), 1.0),
                                          (self.ref(cell("episodes_per_year")), -self.veterans)]))  # fmt: skip
                if lv == A and cell("mobile_within_standard_per_year") in keys:
                    self.ratios.append(Ratio([(self.ref(cell("mobile_episodes_per_year")),
                                               cell("mobile_within_standard_per_year"))], (0.0, 1.0),
                                             k_cell=cell("mobile_response_within_standard_share")))  # fmt: skip
            families = [("admissions_per_year", "oap_placements_per_year", "inpatient_blocked_share"),
                        ("episodes_per_year", "mobile_episodes_per_year", None),
                        ("hub_calls_per_year", "hub_abandoned_calls_per_year", None),
                        ("population", "s136_turned_away_per_year", None),
                        ("population", "hub_calls_per_year", None)]  # fmt: skip
            for a, b, k_cell in families:
                pairs = []
                for lv, r in all_rows:
                    if (p, lv, r, b) not in keys and (lv != F or not any(x[3] == b for x in mine)):
                        continue
                    left = self.pop(p, lv, r) if a == "population" else self.ref((p, lv, r, a))
                    pairs.append((left, self.ref((p, lv, r, b))))
                if pairs:
                    kc = (p, F, "all", k_cell) if k_cell and (p, F, "all", k_cell) in keys else None
                    self.ratios.append(Ratio(pairs, k_cell=kc))
            total, oap = (
                (p, F, "all", "total_cost_gbp_per_year"),
                (p, F, "all", "oap_cost_gbp_per_year"),
            )
            if total in keys and p in self.case.plans:
                fixed = costs.plan_costs(self.case.scenario, self.case.plans[p], 0.0)["total"]
                self.lins.append(Lin([(total, 1.0), (self.ref(oap), -1.0)], fixed))
            sites = [k for k in mine if k[1] == S and k[3] == "mobile_arrivals_per_year"]
            if sites:
                self.lins.append(Lin([(self.ref((p, F, "all", "mobile_episodes_per_year")), -1.0)]
                                     + [(k, 1.0) for k in sites]))  # fmt: skip
            objective = (p, F, "all", "objective")
            if objective in keys and self.case.scenario is not None:
                w = self.case.scenario.objective.weights
                terms = (
                    [("total_cost_gbp_per_year", 1.0)]
                    if self.case.scenario.objective.mode == "min_cost"
                    else [("oap_bed_days_per_year", w.oap_bed_day), ("admissions_per_year", w.admission),
                          ("travel_burden_hours_per_year", w.travel_hour)]
                )  # fmt: skip
                self.lins.append(Lin([(objective, 1.0)]
                                     + [(self.ref((p, F, "all", m)), -a) for m, a in terms]))  # fmt: skip
            # occupancy x beds = admissions x (1 - blocked share) x length of stay / 365 (every
            # quintile row repeats the footprint's occupancy and blocked share)
            beds = self.case.plans[p].total("inpatient") if p in self.case.plans else 0
            occ = [k for k in mine if k[3] == "inpatient_occupancy" and k[1] in (F, Q)]
            blocked = [k for k in mine if k[3] == "inpatient_blocked_share" and k[1] in (F, Q)]
            if beds > 0:
                admissions = self.ref((p, F, "all", "admissions_per_year"))
                for o in occ:
                    for b in blocked:
                        self.occupancy.append((o, b, admissions, beds * 365.0 / self.inpatient_los))

    # ---- interval arithmetic
    def _tighten(self, key: Key, lo: float, hi: float) -> bool:
        b = self.bounds[key]
        moved = False
        eps = 1e-9 * max(
            1.0,
            abs(b[0]) if math.isfinite(b[0]) else 1.0,
            abs(b[1]) if math.isfinite(b[1]) else 1.0,
        )
        if lo > b[0] + eps:
            b[0], moved = lo, True
        if hi < b[1] - eps:
            b[1], moved = hi, True
        return moved

    def _lin_pass(self, rel: Lin) -> bool:
        moved = False
        terms = [(k, a, self.bounds[k]) for k, a in rel.terms]
        lows = [a * (b[0] if a > 0 else b[1]) for _, a, b in terms]
        highs = [a * (b[1] if a > 0 else b[0]) for _, a, b in terms]
        lo_sum = sum(x for x in lows if math.isfinite(x))
        hi_sum = sum(x for x in highs if math.isfinite(x))
        lo_inf = sum(1 for x in lows if not math.isfinite(x))
        hi_inf = sum(1 for x in highs if not math.isfinite(x))
        for i, (k, a, _) in enumerate(terms):
            # the other terms' range: the sums without this term (infinite if another is)
            own_lo, own_hi = math.isfinite(lows[i]), math.isfinite(highs[i])
            olo = (lo_sum - lows[i] if own_lo else lo_sum) if lo_inf - (not own_lo) == 0 else -INF
            ohi = (hi_sum - highs[i] if own_hi else hi_sum) if hi_inf - (not own_hi) == 0 else INF
            lo, hi = (rel.const - ohi) / a, (rel.const - olo) / a
            if a < 0:
                lo, hi = hi, lo
            moved |= self._tighten(k, lo, hi)
        return moved

    def _ratio_pass(self, rel: Ratio) -> bool:
        moved = False
        k_lo, k_hi = rel.k
        if rel.k_cell is not None:
            k_lo, k_hi = (
                max(k_lo, self.bounds[rel.k_cell][0]),
                min(k_hi, self.bounds[rel.k_cell][1]),
            )
        for a, b in rel.rows:
            alo, ahi = (a, a) if isinstance(a, float) else self.bounds[a]
            blo, bhi = self.bounds[b]
            if alo > 0 and math.isfinite(bhi):
                k_lo, k_hi = max(k_lo, blo / ahi), min(k_hi, bhi / alo)
        for a, b in rel.rows:
            alo, ahi = (a, a) if isinstance(a, float) else self.bounds[a]
            moved |= self._tighten(b, k_lo * alo, k_hi * ahi if math.isfinite(ahi) else INF)
            if not isinstance(a, float) and k_lo > 0:
                blo, bhi = self.bounds[b]
                moved |= self._tighten(a, blo / k_hi if math.isfinite(k_hi) else 0.0, bhi / k_lo)
        return moved

    def _occupancy_pass(self) -> bool:
        moved = False
        for occ, blocked, admissions, scale in self.occupancy:
            (olo, ohi), (blo, bhi) = self.bounds[occ], self.bounds[blocked]
            if math.isfinite(ohi) and bhi < 1:
                moved |= self._tighten(admissions, olo * scale / (1 - blo), ohi * scale / (1 - bhi))
        return moved

    def intervals(self, passes: int = 80) -> dict[Key, list[float]]:
        for _ in range(passes):
            moved = self._occupancy_pass()
            for rel in self.lins:
                moved |= self._lin_pass(rel)
            for rel in self.ratios:
                moved |= self._ratio_pass(rel)
            if not moved:
                break
        return self.bounds

    # ---- solving relations one unknown at a time
    def solutions(self) -> dict[Key, float]:
        est = {k: (lo + hi) / 2 for k, (lo, hi) in self.pub.shown.items()}
        for k, v in self.pub.estimates.items():
            est.setdefault(k, v)
        progress = True
        while progress:
            progress = False
            for rel in self.lins:
                unknown = [(k, a) for k, a in rel.terms if k not in est]
                if len(unknown) == 1:
                    k, a = unknown[0]
                    est[k] = (rel.const - sum(a2 * est[k2] for k2, a2 in rel.terms if k2 != k)) / a
                    progress = True
            for rel in self.ratios:
                val = lambda a: a if isinstance(a, float) else est.get(a)  # noqa: E731
                ks = [est[rel.k_cell]] if rel.k_cell in est else []
                ks += [est[b] / val(a) for a, b in rel.rows if val(a) and b in est]
                if not ks:
                    continue
                for a, b in rel.rows:
                    if b not in est and val(a) is not None:
                        est[b], progress = ks[0] * val(a), True
                    elif not isinstance(a, float) and a not in est and b in est and ks[0]:
                        est[a], progress = est[b] / ks[0], True
        return est


def truth(case: Case, key: Key) -> float | None:
    plan, level, row, measure = key
    card = case.cards[plan]
    base = disclosure.base_measure(measure)
    try:
        if measure.startswith("change:"):
            return card.kpis[base] - case.cards["current"].kpis[base]
        if measure.startswith("gap:"):
            return card.imd_gap[base]
        if level == F:
            return card.per_100k[base] if measure != base else card.kpis[base]
        frame = {Q: card.by_quintile, A: card.by_area, S: card.by_site}[level]
        v = float(frame.at[row, base])
        if measure != base:
            v = v / float(frame.at[row, "population"]) * 1e5
        return v
    except KeyError:
        return None


def count_unit(attack: Attack, key: Key) -> float | None:
    """How wide one count is in this cell's units (None: not a count or a fixed multiple of one)."""
    plan, level, row, measure = key
    base = disclosure.base_measure(measure)
    if measure.startswith(("gap:", "change:")):
        return None
    if _is_count(base):
        unit = 1.0
    elif base == "oap_cost_gbp_per_year":
        unit = attack.per_day
    else:
        return None
    if measure.startswith("per_100k:"):
        unit *= 1e5 / attack.pop(plan, level, row)
    return unit


def recovered(case: Case, pub: Publication, constants: dict[str, float]) -> dict[Key, str]:
    """Suppressed counts the attacker pins down, with how; checks the attacker is never wrong."""
    attack = Attack(case, pub, constants)
    bounds = attack.intervals()
    est = attack.solutions()
    found: dict[Key, str] = {}
    for key in sorted(pub.hidden, key=str):
        true = truth(case, key)
        if true is None:
            continue
        lo, hi = bounds[key]
        tol = 1e-6 * max(1.0, abs(true))
        assert lo - tol <= true <= hi + tol, (
            f"attacker unsound on {key}: {true} not in [{lo}, {hi}]"
        )
        unit = count_unit(attack, key)
        if unit is None:
            continue
        if key in pub.shown:
            found[key] = "shown elsewhere in the same export"
        elif hi - lo <= unit:
            found[key] = f"interval [{lo:.4g}, {hi:.4g}] around {true:.4g}"
        elif key in est and abs(est[key] - true) <= 0.5 * unit:
            found[key] = f"solved as {est[key]:.4g} (true {true:.4g})"
    return found


# --------------------------------------------------------------------------- building exports


FORMATS = (
    "cli-csv",
    "cli-xlsx",
    "cli-json",
    "cli-table",
    "cli-all",
    "io-xlsx",
    "app-xlsx",
    "app-csv",
    "app-gpkg",
    "app-html",
    "app-all",
)
#: The files of one ``pathways optimise`` run, read back.
OPT_FORMATS = ("opt-json", "opt-summary", "opt-plan", "opt-csv", "opt-xlsx", "opt-all")


@contextlib.contextmanager
def secondary_off(monkeypatch) -> Iterator[None]:
    """Exports as before complementary suppression: counts below 5 hidden, nothing else."""
    real = disclosure.protect
    with monkeypatch.context() as m:
        m.setattr(
            disclosure,
            "protect",
            lambda cards, *a, **k: real(cards, *a, **{**k, "secondary": False}),
        )
        yield


def run_cli(args: list[str], in_process: bool) -> str:
    """``pathways ARGS``: its standard output.

    In a subprocess, as a user runs it; in process only where a test patches the library.
    """
    if in_process:
        from pathways.cli import main

        out = StringIO()
        with contextlib.redirect_stdout(out):
            assert main(args) == 0
        return out.getvalue()
    run = subprocess.run([sys.executable, "-m", "pathways.cli", *args], capture_output=True, text=True,
                         timeout=300, cwd=REPO)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


_CLI_RUNS: dict[tuple, object] = {}


@dataclass
class CliRun:
    csv: Path
    xlsx: Path
    json: str
    table: str


def _cli(case: Case, tmp: Path, in_process: bool, *extra: str) -> CliRun:
    """``pathways evaluate --csv --xlsx --json`` (one run serves the three) and the table plain
    ``pathways evaluate`` prints. Subprocess runs are kept for the session."""
    run_key = ("evaluate", str(case.path), extra)
    if not in_process and run_key in _CLI_RUNS:
        return _CLI_RUNS[run_key]  # type: ignore[return-value]
    tmp.mkdir(parents=True, exist_ok=True)
    csv, xlsx = tmp / "card.csv", tmp / "card.xlsx"
    args = ["evaluate", str(case.path), "--csv", str(csv), "--xlsx", str(xlsx), "--json", *extra]
    out = run_cli(args, in_process)
    run = CliRun(
        csv, xlsx, out[out.index("{") :], run_cli(["evaluate", str(case.path), *extra], in_process)
    )
    if not in_process:
        _CLI_RUNS[run_key] = run
    return run


#: Optimiser cases a subprocess reproduces (the others carry a prepared prediction).
OPT_AS_USER = frozenset({"small"})


def _opt(case: Case, tmp: Path, in_process: bool, *extra: str) -> Path:
    """``pathways optimise --out DIR``: the folder.

    In process, the optimiser's result is the case's own (``case.result``); in a
    subprocess, the command line optimises again and must find the same plan.
    """
    in_process = in_process or case.name not in OPT_AS_USER
    run_key = ("optimise", str(case.path), extra)
    if not in_process and run_key in _CLI_RUNS:
        return _CLI_RUNS[run_key]  # type: ignore[return-value]
    out = tmp / "opt"
    args = ["optimise", str(case.path), "--out", str(out), "--time-limit", "10", "--quiet", *extra]
    if in_process:
        import pathways.optimise.run as run_module

        with pytest.MonkeyPatch.context() as m:
            m.setattr(
                run_module, "optimise_with_baselines", lambda scenario, opts=None: case.result
            )
            run_cli(args, True)
    else:
        run_cli(args, False)
        written = load_plan(out / "plan.yaml")
        assert written.sites == case.result.plan.sites, "the command line found another plan"
        _CLI_RUNS[run_key] = out
    return out


def opt_publications(
    case: Case, tmp: Path, in_process: bool = False, suppress: bool = True
) -> tuple[dict[str, tuple[Publication, dict[str, float]]], Path]:
    """Each file of one optimiser run read back (and all of them together), and the folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = _opt(case, tmp, in_process, *([] if suppress else ["--no-suppress"]))
    xlsx, consts = read_xlsx((out / "scorecard.xlsx").read_bytes(), case)
    pubs = {
        "opt-json": (read_json_cards(json.loads((out / "scorecard.json").read_text()), case), {}),
        "opt-summary": (read_summary((out / "summary.txt").read_text(), case), {}),
        "opt-plan": (read_plan_yaml((out / "plan.yaml").read_text(), case), {}),
        "opt-csv": (read_csv((out / "scorecard.csv").read_text()), {}),
        "opt-xlsx": (xlsx, consts),
    }
    every = Publication()
    for pub, _ in pubs.values():
        every.merge(pub)
    pubs["opt-all"] = (every, consts)
    return pubs, out


def build(fmt: str, case: Case, tmp: Path, in_process: bool = False, suppress: bool = True):
    """(publication, constants, the scorecard CLI exports describe) for one export."""
    from dashapp import exports

    tmp.mkdir(parents=True, exist_ok=True)
    consts: dict[str, float] = {}
    cards, plan = case.cards, case.plans["optimised"]
    if fmt.startswith("cli"):
        run = _cli(case, tmp, in_process, *([] if suppress else ["--no-suppress"]))
        one = _case_view(case, {"current": case.cards["current"]})
        pubs = {
            "cli-csv": lambda: (read_csv(run.csv.read_text()), {}),
            "cli-xlsx": lambda: read_xlsx(run.xlsx.read_bytes(), one),
            "cli-json": lambda: (read_json(json.loads(run.json), one), {}),
            "cli-table": lambda: (read_table(run.table, "current"), {}),
        }
        if fmt == "cli-all":
            pub = Publication()
            for name in pubs:
                part, c = pubs[name]()
                pub.merge(part)
                consts |= c
            return pub, consts, one
        pub, consts = pubs[fmt]()
        return pub, consts, one
    if fmt == "io-xlsx":
        io.write_xlsx(case.scenario, dict(cards), tmp / "io.xlsx", plan=plan, suppress=suppress)
        pub, consts = read_xlsx((tmp / "io.xlsx").read_bytes(), case)
        return pub, consts, case
    parts = {
        "app-xlsx": lambda: read_xlsx(
            exports.excel_bytes(case.scenario, cards, plan, suppress), case
        ),
        "app-csv": lambda: (read_csv(exports.scorecard_csv(cards, suppress)), {}),
        "app-gpkg": lambda: (
            read_gpkg(
                exports.geopackage_bytes(case.scenario, plan, case.main, suppress), "optimised", tmp
            ),
            {},
        ),  # fmt: skip
        "app-html": lambda: (
            read_html(exports.report_html(case.scenario, cards, plan, suppress), case),
            {},
        ),
    }
    if fmt == "app-all":
        pub = Publication()
        for name in ("app-xlsx", "app-csv", "app-gpkg", "app-html"):
            one, c = parts[name]()
            pub.merge(one)
            consts |= c
        return pub, consts, case
    pub, consts = parts[fmt]()
    return pub, consts, case


def _case_view(case: Case, cards: dict[str, Scorecard]) -> Case:
    return Case(case.name, case.path, case.scenario, {n: case.plans[n] for n in cards}, cards)


# --------------------------------------------------------------------------- the tests


def assert_protected(
    pub: Publication, consts: dict[str, float], case: Case, must_hide: bool, what: str = ""
) -> None:
    """No count below 5 is shown, and the attacker recovers none of the hidden ones."""
    # (a count, not a rate or gap of one)
    small = [k for k, (lo, hi) in pub.shown.items() if _additive(k[3]) and _is_count(k[3])
             and 0 < (lo + hi) / 2 < 4.95]  # fmt: skip
    small += [k for k, v in pub.estimates.items() if _is_count(k[3]) and 0 < v < 4.95]
    assert not small, f"{what}: counts below 5 shown: {small[:5]}"
    if must_hide:
        assert pub.hidden, f"{what}: the export hides nothing: the attack would prove nothing"
    found = recovered(case, pub, consts)
    assert not found, (
        f"{what}: {len(found)} suppressed cells recovered, e.g. {list(found.items())[:5]}"
    )


def assert_same_hidden(pubs: dict[str, Publication]) -> None:
    """Cells two exports both publish are hidden in both or in neither."""
    seen = {fmt: (set(p.shown) | set(p.estimates)) - p.hidden for fmt, p in pubs.items()}
    for a, pa in pubs.items():
        for b in pubs:
            clash = pa.hidden & seen[b]
            assert not clash, f"hidden in {a}, shown in {b}: {sorted(clash, key=str)[:5]}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["sussex", "small"])
def test_no_suppressed_count_can_be_recovered(cases, name, fmt, tmp_path):
    pub, consts, case = build(fmt, cases[name], tmp_path)
    assert_protected(pub, consts, case, must_hide=name == "small", what=fmt)


@pytest.mark.parametrize("name", ["sussex", "small"])
def test_the_evaluate_outputs_hide_the_same_cells(cases, name, tmp_path):
    fmts = ("cli-csv", "cli-xlsx", "cli-json", "cli-table")
    assert_same_hidden({f: build(f, cases[name], tmp_path)[0] for f in fmts})


@pytest.mark.parametrize("name", ["small", "small-budget"])
def test_no_suppressed_count_can_be_recovered_from_the_optimiser_files(opt_cases, name, tmp_path):
    """scorecard.json, summary.txt, plan.yaml, scorecard.csv and .xlsx of one run, alone and together."""
    case = opt_cases[name]
    pubs, out = opt_publications(case, tmp_path)
    for fmt, (pub, consts) in pubs.items():
        assert_protected(pub, consts, case, must_hide=True, what=fmt)
    assert_same_hidden({fmt: pub for fmt, (pub, _) in pubs.items() if fmt != "opt-all"})
    # the sites file hides the blocked and busy shares the workbook hides
    sites = pd.read_csv(out / "plan_sites.csv", index_col="site_id", dtype=str)
    xlsx = pubs["opt-xlsx"][0]
    for col in ("crisis_house_blocked_share", "mobile_all_busy_share"):
        for site, v in sites[col].items():
            assert (v == io.SUPPRESSED) == ((MAIN, S, site, col) in xlsx.hidden), (site, col)
    geo = gpd.read_file(out / "plan_sites.geojson").set_index("site_id")
    assert (geo["mobile_all_busy_share"].isna() == (sites["mobile_all_busy_share"] == "[c]")).all()


def test_the_attack_recovers_cells_from_the_optimiser_files_without_complementary_suppression(
    opt_cases, tmp_path, monkeypatch
):
    found: dict[str, dict] = {fmt: {} for fmt in OPT_FORMATS}
    with secondary_off(monkeypatch):
        for name, case in opt_cases.items():
            pubs, _ = opt_publications(case, tmp_path / name, in_process=True)
            for fmt, (pub, consts) in pubs.items():
                found[fmt] |= {(name, *k): how for k, how in recovered(case, pub, consts).items()}
    # the plan file alone publishes no relation between its figures that pins a count
    missing = [fmt for fmt, f in found.items() if not f and fmt != "opt-plan"]
    assert not missing, f"with counts below 5 hidden alone, nothing recovered from {missing}"


def test_without_suppression_the_optimiser_files_give_the_hidden_counts_back_and_say_so(
    opt_cases, tmp_path
):
    given_back: dict[str, set] = {fmt: set() for fmt in OPT_FORMATS}
    for name, case in opt_cases.items():
        on_pubs, on_dir = opt_publications(case, tmp_path / name / "on")
        off_pubs, off_dir = opt_publications(case, tmp_path / name / "off", suppress=False)
        for fmt in OPT_FORMATS:
            (on, _), (off, consts) = on_pubs[fmt], off_pubs[fmt]
            assert not off.hidden, fmt
            assert set(on.shown) | on.hidden <= set(off.shown) | set(off.estimates), fmt
            if fmt != "opt-all":  # (together, unhidden cells narrow shown ones)
                assert {k: off.shown[k] for k in on.shown} == on.shown, fmt
            assert {k: off.estimates[k] for k in on.estimates} == on.estimates, fmt
            # a reader told which cells the protected files hide reads them all back
            told = Publication(dict(off.shown), set(on.hidden), estimates=dict(off.estimates))
            found = recovered(case, told, consts)
            attack = Attack(case, told, consts)
            counts = {k for k in on.hidden if truth(case, k) is not None
                      and count_unit(attack, k) is not None}  # fmt: skip
            assert counts <= set(found), (fmt, sorted(counts - set(found), key=str)[:5])
            given_back[fmt] |= {(name, *k) for k in counts}
        # and each file says whether small numbers are suppressed
        for folder, suppressed in ((on_dir, True), (off_dir, False)):
            for card in json.loads((folder / "scorecard.json").read_text()).values():
                note = io.JSON_SUPPRESSION_NOTE if suppressed else io.NOT_SUPPRESSED_NOTE
                assert card["disclosure"] == note and (bool(card["suppressed"]) == suppressed)
            summary = (folder / "summary.txt").read_text().splitlines()
            assert summary[-1] == io.suppression_note(suppressed)
            assert ("[c]" in "\n".join(summary[:-1])) == suppressed
            first = (folder / "plan.yaml").read_text().splitlines()[0]
            assert first.startswith("# Small numbers " + ("suppressed" if suppressed else "NOT"))
    assert all(given_back.values()), {f: len(v) for f, v in given_back.items()}


def test_the_plan_file_loads_evaluates_and_leaves_out_hidden_predictions(opt_cases, tmp_path):
    case = opt_cases["small-budget"]
    pubs, out = opt_publications(case, tmp_path / "on")
    plan = load_plan(out / "plan.yaml")
    assert plan.sites == case.plans[MAIN].sites and plan.allocation == case.plans[MAIN].allocation
    card = evaluate(case.scenario, plan)
    for k, v in case.cards[MAIN].kpis.items():
        assert card.kpis[k] == pytest.approx(v, rel=1e-12, abs=1e-12, nan_ok=True), k
    csv = pubs["opt-csv"][0]
    full = case.result.plan.predicted
    kept = {k for k in full if k != "objective" and (MAIN, F, "all", k) not in csv.hidden}
    assert set(plan.predicted) == kept and kept < set(full)
    assert all(plan.predicted[k] == full[k] for k in kept)
    assert plan.solver.objective is None and plan.solver.best_bound is None
    assert plan.solver.gap == case.result.plan.solver.gap
    # evaluate reads it as a user would
    text = run_cli(["evaluate", str(case.path), "--plan", str(out / "plan.yaml"), "--json"], True)
    assert json.loads(text)["plan"] == MAIN
    _, off = opt_publications(case, tmp_path / "off", suppress=False)
    assert load_plan(off / "plan.yaml").predicted == full
    # today's cost is the budget when none is set: hidden with it
    small = opt_cases["small"]
    _, out = opt_publications(small, tmp_path / "small")
    settings = load_plan(out / "plan.yaml").solver.settings
    assert settings["budget_gbp"] is None and "budget GBP [c]" in (out / "summary.txt").read_text()


def _walk(node: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, str(k)))
    else:
        yield path, node


@pytest.mark.parametrize("name", ["sussex", "small"])
def test_evaluate_json_is_the_scorecard_with_hidden_values_null_and_listed(cases, name, tmp_path):
    case = cases[name]
    full = case.cards["current"].to_dict()
    on = json.loads(_cli(case, tmp_path / "on", False).json)
    off = json.loads(_cli(case, tmp_path / "off", False, "--no-suppress").json)
    assert off == {**full, "suppressed": [], "disclosure": io.NOT_SUPPRESSED_NOTE}
    assert set(on) == set(full) | {"suppressed", "disclosure"}
    assert on["disclosure"] == io.JSON_SUPPRESSION_NOTE
    listed = set(on["suppressed"])
    values = dict(_walk({k: on[k] for k in full}))
    for path, v in _walk(full):
        dotted = ".".join(path)
        if dotted in listed:
            assert values[path] is None and v is not None, dotted
        else:
            assert values[path] == v, dotted
    assert listed <= {".".join(p) for p, _ in _walk(full)}
    expect = {
        "sussex": {"kpis.s136_turned_away_per_year", "extra.s136_per_year",
                   "extra.place_of_safety_blocked_share"},
        "small": {"kpis.oap_placements_per_year", "kpis.admissions_per_year",
                  "extra.inpatient_offered_load", "cost_breakdown_gbp_per_year.oap",
                  "kpis.inpatient_occupancy"},
    }[name]  # fmt: skip
    assert expect <= listed, expect - listed
    table = _cli(case, tmp_path / "on", False).table.splitlines()
    assert table[-1] == io.SUPPRESSION_NOTE
    assert _cli(case, tmp_path / "off", False, "--no-suppress").table.splitlines()[-1] == (
        io.NOT_SUPPRESSED_NOTE
    )


def test_json_extras_give_back_the_cells_they_are_tied_to_unless_hidden_with_them(
    cases, tmp_path, monkeypatch
):
    """Detentions x the place-of-safety blocked share = detentions turned away (Sussex)."""
    s136 = ("current", F, "all", "s136_turned_away_per_year")
    pub, consts, one = build("cli-json", cases["sussex"], tmp_path / "on")
    assert s136 in pub.hidden and not recovered(one, pub, consts)
    monkeypatch.setattr(io, "EXTRA_TIES", {})
    pub, consts, one = build("cli-json", cases["sussex"], tmp_path / "off", in_process=True)
    assert s136 in pub.hidden and s136 in recovered(one, pub, consts)


def test_occupancy_gives_back_hidden_admissions_unless_hidden_with_them(
    cases, tmp_path, monkeypatch
):
    """Occupancy x beds = admissions x (1 - blocked share) x length of stay / 365."""
    admissions = ("current", F, "all", "admissions_per_year")
    pub, consts, one = build("cli-csv", cases["small"], tmp_path / "on")
    assert admissions in pub.hidden and ("current", F, "all", "inpatient_occupancy") in pub.hidden
    monkeypatch.setattr(disclosure, "ADMISSIONS_DERIVED", ())
    pub, consts, one = build("cli-csv", cases["small"], tmp_path / "off", in_process=True)
    assert admissions in pub.hidden and admissions in recovered(one, pub, consts)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_attack_recovers_cells_without_complementary_suppression(
    cases, fmt, tmp_path, monkeypatch
):
    found = {}
    with secondary_off(monkeypatch):
        for name in ("sussex", "small"):
            pub, consts, case = build(fmt, cases[name], tmp_path / name, in_process=True)
            found |= {(name, *k): how for k, how in recovered(case, pub, consts).items()}
    assert found, "with counts below 5 hidden alone, the attacker should recover some of them"


def test_the_review_findings_are_recoverable_without_and_not_with_protection(
    cases, tmp_path, monkeypatch
):
    """Section 136 by quintile (shared out by population), OAP by area (cost / GBP 620 a bed-day)."""
    case = cases["sussex"]
    s136 = ("optimised", Q, 1, "s136_turned_away_per_year")
    oap_area = next(("optimised", A, a, "oap_bed_days_per_year") for a in case.main.by_area.index
                    if 0 < case.main.by_area.at[a, "oap_bed_days_per_year"] < 5)  # fmt: skip
    with secondary_off(monkeypatch):
        pub, consts, _ = build("io-xlsx", case, tmp_path / "off")
    before = recovered(case, pub, consts)
    assert s136 in before and oap_area in before
    pub, consts, _ = build("io-xlsx", case, tmp_path / "on")
    assert s136 in pub.hidden and oap_area in pub.hidden
    assert not recovered(case, pub, consts)


@pytest.mark.parametrize(
    "fmt",
    ["cli-csv", "cli-xlsx", "cli-json", "cli-table", "io-xlsx", "app-csv", "app-gpkg", "app-html"],
)
def test_suppression_only_hides_cells_it_never_changes_them(cases, fmt, tmp_path):
    for name, case in cases.items():
        on, _, _ = build(fmt, case, tmp_path / name / "on")
        off, _, _ = build(fmt, case, tmp_path / name / "off", suppress=False)
        assert not off.hidden
        assert set(on.shown) | on.hidden == set(off.shown), name
        changed = [k for k, v in on.shown.items() if v != off.shown[k]]
        assert not changed, (name, changed[:5])
        if name == "sussex" and fmt != "app-gpkg":
            # the Sussex headline totals are large: protection leaves them shown
            plan = "current" if fmt.startswith("cli") else "optimised"
            for k in ("admissions_per_year", "oap_bed_days_per_year", "total_cost_gbp_per_year"):
                assert (plan, F, "all", k) in on.shown, k


def test_geopackage_counts_stay_numeric_with_a_flag_per_column(cases, tmp_path):
    from dashapp import exports

    case = cases["small"]
    path = tmp_path / "small.gpkg"
    path.write_bytes(exports.geopackage_bytes(case.scenario, case.plans["optimised"], case.main))
    areas = gpd.read_file(path, layer="areas").set_index("area_code")
    raw = case.main.by_area
    protectable = [c for c in raw.columns if _additive(c)]
    assert protectable
    for col in protectable:
        flag = areas[col + "_suppressed"]
        assert areas[col].dtype.kind == "f" and flag.dtype == bool, col
        assert (areas[col].isna() == flag).all(), col
        shown = ~flag
        np.testing.assert_allclose(
            areas.loc[shown, col], raw.loc[areas.index[shown], col], rtol=1e-12
        )
    assert areas["oap_placements_per_year_suppressed"].all()  # every area has fewer than 5
    sites = gpd.read_file(path, layer="sites")
    assert (
        sites["mobile_all_busy_share"].dtype.kind == "f"
        and "mobile_all_busy_share_suppressed" in sites
    )


def test_scorecard_csvs_have_labels_a_named_first_column_and_rounding(cases, tmp_path):
    case = cases["sussex"]
    path = io.write_scorecard_csv(case.cards, tmp_path / "scorecard.csv")
    frame = pd.read_csv(path)
    assert (
        list(frame.columns[:3]) == ["measure", "current", "optimised"]
        and frame.columns[-1] == "kpi"
    )
    row = frame.set_index("kpi").loc["oap_cost_gbp_per_year"]
    assert row["measure"] == "Out-of-area cost (£ a year)"
    assert float(row["optimised"]) == round(case.main.kpis["oap_cost_gbp_per_year"])
    occ = frame.set_index("kpi").loc["inpatient_occupancy", "optimised"]
    assert float(occ) == round(case.main.kpis["inpatient_occupancy"] * 100, 1)
    wb = openpyxl.load_workbook(io.write_xlsx(case.scenario, dict(case.cards), tmp_path / "x.xlsx",
                                              plan=case.plans["optimised"]))  # fmt: skip
    header = [c.value for c in wb["KPIs by area"][1]]
    assert header[0] == "Area code" and "Out-of-area bed-days a year" in header
    assert not any(h and h.endswith("_per_year") for h in header)


# --------------------------------------------------------------------------- the rule itself


def _synthetic(
    values: dict[str, list[float]], pops: tuple[float, ...] = (1000.0,) * 5
) -> Scorecard:
    bq = pd.DataFrame(values, index=pd.Index([1, 2, 3, 4, 5], name="imd_quintile"))
    bq["population"] = pops
    kpis = {k: float(sum(v)) for k, v in values.items()}
    total = float(sum(pops))
    return Scorecard(
        kpis=kpis,
        per_100k={k: v / total * 1e5 for k, v in kpis.items()},
        by_quintile=bq,
        imd_gap={k: (v[0] / pops[0] - v[4] / pops[4]) * 1e5 for k, v in values.items()},
        by_site=pd.DataFrame(),
        by_area=pd.DataFrame(),
        by_hour=pd.DataFrame(),
        workforce_wte={},
        cost_breakdown={},
        population=total,
        plan_name="current",
    )


def _hidden_quintiles(values: list[float]) -> set[object]:
    card = _synthetic({"crisis_house_episodes_per_year": values,
                       "mobile_episodes_per_year": [50.0, 61.0, 73.0, 88.0, 97.0]})  # fmt: skip
    d = disclosure.protect({"current": card})
    m = "crisis_house_episodes_per_year"
    assert not any(
        c[3] == "mobile_episodes_per_year" for c in d.hidden
    )  # unrelated cells stay shown
    return {c[2] for c in d.hidden if c[3] == m}


def test_the_complement_is_the_next_smallest_non_zero_cell():
    assert _hidden_quintiles([3.0, 0.0, 40.0, 7.0, 90.0]) == {1, 4}


def test_a_zero_is_never_the_complement():
    assert _hidden_quintiles([3.0, 0.0, 0.0, 0.0, 10.0]) == {1, 5}


def test_two_small_cells_are_not_enough_protection_for_each_other():
    # 2 + 2.5 = 4.5: the footprint total would pin both within 4.5; hide the next one too
    assert _hidden_quintiles([2.0, 2.5, 300.0, 400.0, 500.0]) == {1, 2, 3}


@pytest.mark.parametrize("secondary", [False, True])
def test_a_total_minus_the_other_quintiles_and_the_gap(tmp_path, monkeypatch, secondary):
    """The review's first finding, on a scorecard CSV: one small quintile beside a published total."""
    m = "crisis_house_episodes_per_year"
    card = _synthetic({m: [3.0, 0.0, 40.0, 7.0, 90.0]})
    case = Case("synthetic", tmp_path, None, {}, {"current": card})  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        if not secondary:
            stack.enter_context(secondary_off(monkeypatch))
        pub = read_csv(io.write_csv(card, tmp_path / "card.csv").read_text())
    found = recovered(case, pub, {})
    if secondary:
        assert ("current", Q, 4, m) in pub.hidden and not found
    else:
        assert pub.hidden == {("current", Q, 1, m)}
        assert ("current", Q, 1, m) in found


def test_the_gap_and_rates_of_a_hidden_quintile_are_hidden():
    card = _synthetic({"crisis_house_episodes_per_year": [3.0, 0.0, 40.0, 7.0, 90.0]})
    d = disclosure.protect({"current": card})
    m = "crisis_house_episodes_per_year"
    assert ("current", F, "all", "gap:" + m) in d.hidden
    assert ("current", Q, 1, "per_100k:" + m) in d.hidden and (
        "current",
        Q,
        3,
        "per_100k:" + m,
    ) not in d.hidden
    shown = _synthetic({m: [30.0, 0.0, 40.0, 7.0, 90.0]})
    assert not disclosure.protect({"current": shown}).hidden


def test_protection_is_deterministic_and_primary_only_when_asked(cases):
    case = cases["small"]
    a, b = disclosure.protect(case.cards), disclosure.protect(dict(case.cards))
    assert a.hidden == b.hidden and a.primary == b.primary and a.hidden > a.primary
    off = disclosure.protect(case.cards, secondary=False)
    assert off.hidden == off.primary == a.primary
    values = off.values
    assert all(0 < values[c] < 5 for c in off.primary)
    assert all(values[c] != 0 for c in a.hidden if disclosure.is_additive(c[3]))
