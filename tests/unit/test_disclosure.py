"""Small-number suppression cannot be undone: every export, attacked.

The attacker below reads an export back from the file (CSV, Excel, GeoPackage, HTML),
knows the populations (open data), the constants of the Assumptions sheet and the
plans' capacities, and uses every relation the exports publish: quintiles and areas
adding up to the footprint, the Q1-Q5 gap, rates per 100,000, OAP bed-days and cost
as fixed multiples, measures that are a constant multiple of another in every row
(placements = admissions x blocked share, veterans, mobile episodes, crisis-line calls
shared out by population), mobile responses within the standard = share x episodes,
the total cost = published capacity x unit cost + OAP cost, and plan-minus-today
changes. It solves each relation for a single unknown (chaining the answers) and
tightens intervals across all relations; a suppressed count is recovered when a
solution lands within 0.5 of it or its interval is at most 1 wide. The attacker is
independent of :mod:`pathways.disclosure`; it is shown able to recover cells when
complementary suppression is switched off.
"""

from __future__ import annotations

import contextlib
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
from lxml import html as lxml_html

from pathways import costs, disclosure, io
from pathways.kpis import COUNT_KPIS, RATE_KPIS, Scorecard, evaluate
from pathways.plan import Plan, SitePlan, baseline_plan
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


# --------------------------------------------------------------------------- reading exports


@dataclass
class Publication:
    """What a reader sees: shown cells as intervals (rounding), suppressed cells, area quintiles."""

    shown: dict[Key, tuple[float, float]] = field(default_factory=dict)
    hidden: set[Key] = field(default_factory=set)
    area_quintile: dict[str, int] = field(default_factory=dict)
    detail: str | None = None

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
        self.bounds: dict[Key, list[float]] = {}
        for k, (lo, hi) in pub.shown.items():
            self.bounds[k] = [lo, hi]
        for k in pub.hidden:
            self.bounds[k] = self._prior(k)
        self.lins: list[Lin] = []
        self.ratios: list[Ratio] = []
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

    def intervals(self, passes: int = 80) -> dict[Key, list[float]]:
        for _ in range(passes):
            moved = False
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
    "io-xlsx",
    "app-xlsx",
    "app-csv",
    "app-gpkg",
    "app-html",
    "app-all",
)


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


_CLI_RUNS: dict[tuple, tuple[Path, Path]] = {}


def _cli(case: Case, tmp: Path, in_process: bool, *extra: str) -> tuple[Path, Path]:
    """``pathways evaluate --csv --xlsx``: one run serves both formats.

    In a subprocess, as a user runs it; in process only under :func:`secondary_off`.
    """
    run_key = (str(case.path), in_process, extra)
    if run_key in _CLI_RUNS:
        return _CLI_RUNS[run_key]
    csv, xlsx = tmp / "card.csv", tmp / "card.xlsx"
    args = ["evaluate", str(case.path), "--csv", str(csv), "--xlsx", str(xlsx), *extra]
    if in_process:
        from pathways.cli import main

        assert main(args) == 0
    else:
        run = subprocess.run([sys.executable, "-m", "pathways.cli", *args], capture_output=True, text=True,
                             timeout=300, cwd=REPO)  # fmt: skip
        assert run.returncode == 0, run.stderr
    _CLI_RUNS[run_key] = (csv, xlsx)
    return csv, xlsx


def build(fmt: str, case: Case, tmp: Path, in_process: bool = False, suppress: bool = True):
    """(publication, constants, the scorecard CLI exports describe) for one export."""
    from dashapp import exports

    tmp.mkdir(parents=True, exist_ok=True)
    consts: dict[str, float] = {}
    cards, plan = case.cards, case.plans["optimised"]
    if fmt.startswith("cli"):
        csv, xlsx = _cli(case, tmp, in_process, *([] if suppress else ["--no-suppress"]))
        one = _case_view(case, {"current": case.cards["current"]})
        if fmt == "cli-csv":
            return read_csv(csv.read_text()), consts, one
        pub, consts = read_xlsx(xlsx.read_bytes(), one)
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


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["sussex", "small"])
def test_no_suppressed_count_can_be_recovered(cases, name, fmt, tmp_path):
    pub, consts, case = build(fmt, cases[name], tmp_path)
    # (a count, not a rate or gap of one)
    small = [k for k, (lo, hi) in pub.shown.items() if _additive(k[3]) and _is_count(k[3])
             and 0 < (lo + hi) / 2 < 4.95]  # fmt: skip
    assert not small, f"counts below 5 shown: {small[:5]}"
    if name == "small":
        assert pub.hidden, "the export hides nothing: the attack would prove nothing"
    found = recovered(case, pub, consts)
    assert not found, f"{len(found)} suppressed cells recovered, e.g. {list(found.items())[:5]}"


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
    "fmt", ["cli-csv", "cli-xlsx", "io-xlsx", "app-csv", "app-gpkg", "app-html"]
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
