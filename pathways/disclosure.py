"""Small-number suppression that cannot be undone by arithmetic on the published figures.

Every export (CSV, Excel, GeoPackage, the printable report, the JSON scorecards, the
optimiser's summary and plan file, the terminal table) publishes one or more
scorecards as tables whose cells are tied together: quintiles add up to the footprint,
areas add up to their quintile, a rate is a count over a published population, a cost
is a count times a published unit cost. Hiding a count below 5 on its own is not
enough: the footprint total minus the other quintiles gives it back. This module
decides, for everything an export may publish from a set of scorecards, which cells
to hide so that no hidden count can be worked out from the cells shown.

The rule (docs/disclosure.md explains it for readers of the exports):

1. **Primary suppression.** A count strictly between 0 and 5 is hidden. Zeros are
   shown: they disclose nothing, and a zero is never used to protect another cell.
2. **Tied cells stand or fall together.** Cells that are fixed multiples of one
   another are one unknown to a reader, so they are hidden together:

   * a count and its rate per 100,000 (the population is published);
   * a measure and another measure that is a constant multiple of it in every row of
     the same plan, found from the figures themselves: OAP bed-days = placements x
     the OAP length of stay; OAP cost = bed-days x the cost per bed-day; placements =
     admissions x the inpatient blocked share; veterans = episodes x the veterans
     share; crisis-line abandoned calls = calls x the abandonment share, and so on;
   * a measure that is the same rate per head in every row (section 136 detentions
     turned away and crisis-line calls are shared out by population): all of its
     rows, since any one row shown gives the rate and so every other row;
   * mobile responses within the standard = mobile episodes x the within-standard
     share published beside them (by area).
3. **Derived cells of a hidden cell are hidden:** the Q1-Q5 gap when quintile 1 or 5
   is hidden, the plan-versus-today change, the footprint's total cost when its OAP
   cost is hidden (the rest of the total is published capacity x published unit
   cost), the inpatient occupancy and blocked share when the admissions are hidden
   (occupancy x beds = admissions x (1 - blocked share) x length of stay / 365), and a
   site's occupancy, blocked share, busy share and utilisation when its arrivals are
   hidden.
4. **Complementary (secondary) suppression.** For every additive relation published
   (quintiles -> footprint, areas -> quintile, areas -> footprint, mobile arrivals by
   site -> footprint, for counts and costs) the cells are audited as an attacker
   would: hidden cells are unknowns at least 0, shown cells are known, and every
   relation is solved for its unknowns, alone and together (bounds tightened across
   relations until nothing changes, and a rank test for exact solutions). If any
   hidden count could be pinned to a range narrower than 5 (the width of "<5"
   itself) or solved exactly, the next-smallest non-zero shown cell of the nearest
   relation is hidden too, and the audit runs again.

It is deterministic: the same scorecards always hide the same cells. All exports
built from the same scorecards apply the same hidden set, so combining them
discloses nothing more. Every hidden cell is shown with one marker, ``[c]``: a
separate marker for complementary cells would tell a reader which hidden cells are
below 5 and so narrow them.

What the rule does not cover: the figures are modelled expected values computed from
open data and the assumptions published with them, so anyone can re-run the model;
relations that need the model itself (the routing fractions that tie admissions to
episodes and crisis-house stays, or the loss formulas that tie a blocked share to its
load) are outside the arithmetic audited here; the figures they give are hidden with
their counts where rule 3 says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pathways.kpis import COUNT_KPIS, RATE_KPIS

if TYPE_CHECKING:
    from pathways.kpis import Scorecard

THRESHOLD = 5.0
"""Counts strictly between 0 and this are hidden."""
PROTECTION_WIDTH = 5.0
"""The narrowest range, in the count's own units, a reader may pin a hidden count to."""
MARKER = "[c]"
"""What a hidden cell shows (Government Statistical Service symbol for confidential)."""

FOOTPRINT = "footprint"
QUINTILE = "quintile"
AREA = "area"
SITE = "site"
ALL = "all"
"""Row key of the footprint row."""

PER_100K = "per_100k:"
GAP = "gap:"
CHANGE = "change:"

Cell = tuple[str, str, Hashable, str]
"""(plan, level, row, measure): one number an export may publish."""

#: Counts that are not scorecard KPIs but appear in the by-area and by-site tables.
EXTRA_COUNTS: frozenset[str] = frozenset(
    {
        "mobile_within_standard_per_year",
        "crisis_house_arrivals_per_year",
        "mobile_arrivals_per_year",
    }
)
#: Per-site figures that are functions of that site's arrivals (queueing formulas with
#: the site's published capacity): hidden with the arrivals.
SITE_DERIVED: dict[str, str] = {
    "crisis_house_blocked_share": "crisis_house_arrivals_per_year",
    "crisis_house_occupancy": "crisis_house_arrivals_per_year",
    "mobile_all_busy_share": "mobile_arrivals_per_year",
    "mobile_peak_utilisation": "mobile_arrivals_per_year",
}
#: Footprint figures that are functions of the footprint's admissions (with the published
#: beds and length of stay): hidden with them, in every row they are printed. Occupancy is
#: arithmetic - occupancy x beds = admissions x (1 - blocked share) x length of stay / 365,
#: with the blocked share printed beside it - and the blocked share is the loss formula
#: of the same load, as a site's blocked share is of its arrivals.
ADMISSIONS_DERIVED: tuple[str, ...] = ("inpatient_occupancy", "inpatient_blocked_share")
_NOT_COUNTS = ("gbp", "share", "hours", "mins", "occupancy", "utilisation", "level")


def base_measure(measure: str) -> str:
    """``per_100k:oap_cost_gbp_per_year`` -> ``oap_cost_gbp_per_year``."""
    for prefix in (PER_100K, GAP, CHANGE):
        if measure.startswith(prefix):
            return measure[len(prefix) :]
    return measure


def is_count(measure: str) -> bool:
    """Does ``measure`` count people or events (and so fall under the threshold)?

    Scorecard counts (:data:`pathways.kpis.COUNT_KPIS`), the by-area and by-site counts,
    and any other ``..._per_year`` column that is not money, a share, hours or minutes.
    Rates, gaps and changes are not counts themselves (they are derived cells).
    """
    if ":" in measure:
        return False
    if measure in COUNT_KPIS or measure in EXTRA_COUNTS:
        return True
    return measure.endswith("_per_year") and not any(w in measure for w in _NOT_COUNTS)


def is_cost(measure: str) -> bool:
    return "gbp" in measure and ":" not in measure


def is_additive(measure: str) -> bool:
    """Counts and costs add up over areas and quintiles."""
    return is_count(measure) or is_cost(measure)


def is_nonnegative(measure: str) -> bool:
    return is_additive(measure) or measure.startswith(PER_100K)


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Disclosure:
    """Which cells of a set of scorecards an export must hide.

    ``hidden`` holds every hidden cell; ``primary`` the counts below the threshold
    among them. Cells are ``(plan, level, row, measure)`` with level one of
    ``footprint`` (row ``"all"``), ``quintile`` (row 1-5), ``area`` (area code) or
    ``site`` (site id), and measure a KPI or column name, or ``per_100k:<kpi>``,
    ``gap:<kpi>`` or ``change:<kpi>``.
    """

    hidden: frozenset[Cell]
    primary: frozenset[Cell]
    detail: str
    base: str | None
    secondary: bool = True
    values: Mapping[Cell, float] = field(default_factory=dict, repr=False, compare=False)

    def hides(self, plan: str, level: str, row: Hashable, measure: str) -> bool:
        return (plan, level, _row_key(level, row), measure) in self.hidden

    def mask(self, plan: str, level: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Booleans shaped like ``frame`` (rows of ``level``, columns are measures): True = hide."""
        out = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        if not self.hidden:
            return out
        for j, col in enumerate(frame.columns):
            for i, row in enumerate(frame.index):
                if (plan, level, _row_key(level, row), str(col)) in self.hidden:
                    out.iat[i, j] = True
        return out


def _row_key(level: str, row: Hashable) -> Hashable:
    if level == QUINTILE:
        return int(row)  # type: ignore[arg-type]
    if level == FOOTPRINT:
        return ALL
    return str(row)


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Derived:
    """A cell computed from others: ``cell = sum(coefficient x source) + a constant a reader
    knows`` when ``linear``, else some other function of the sources (hidden with them)."""

    cell: Cell
    sources: dict[Cell, float]
    linear: bool = True


@dataclass
class _Universe:
    """Every cell an export may publish, with the relations between them."""

    values: dict[Cell, float] = field(default_factory=dict)
    links: list[tuple[Cell, Cell]] = field(default_factory=list)
    sums: list[tuple[Cell, list[Cell]]] = field(default_factory=list)
    derived: list[_Derived] = field(default_factory=list)

    def add(self, cell: Cell, value: Any) -> None:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return
        if np.isfinite(v):
            self.values[cell] = v

    def add_sum(self, total: Cell, parts: list[Cell]) -> None:
        if total not in self.values:
            return
        parts = [p for p in parts if p in self.values]
        if not parts:
            return
        s = sum(self.values[p] for p in parts)
        t = self.values[total]
        scale = max(1.0, abs(t), sum(abs(self.values[p]) for p in parts))
        if abs(s - t) <= 1e-6 * scale:  # only relations that hold are relations
            self.sums.append((total, parts))


def _rows(card: Scorecard, plan: str, detail: bool) -> dict[str, pd.DataFrame]:
    """The plan's tables by level, each with rows as index and measures as columns."""
    foot = dict(card.kpis)
    foot["population"] = card.population
    tables = {
        FOOTPRINT: pd.DataFrame([foot], index=pd.Index([ALL])),
        QUINTILE: card.by_quintile.copy(),
    }
    tables[QUINTILE].index = [int(q) for q in tables[QUINTILE].index]
    if detail:
        area = card.by_area.copy()
        area.index = [str(a) for a in area.index]
        tables[AREA] = area
        site = card.by_site.copy()
        site.index = [str(s) for s in site.index]
        tables[SITE] = site
    return tables


def build_universe(
    cards: Mapping[str, Scorecard], detail: str | None = None, base: str | None = None
) -> _Universe:
    """Cells and relations for everything the exports publish from ``cards``.

    Every plan: footprint KPIs, per 100k, quintiles (and their per 100k), the gap and,
    against ``base``, the change. The ``detail`` plan (default: the last) also has its
    areas and sites.
    """
    names = list(cards)
    detail = detail if detail is not None else names[-1]
    u = _Universe()
    for plan, card in cards.items():
        tables = _rows(card, plan, plan == detail)
        for level, frame in tables.items():
            numeric = frame.select_dtypes(include=[np.number])  # not text, not booleans
            for col in numeric.columns:
                for row, v in numeric[col].items():
                    u.add((plan, level, row, str(col)), v)
        _per_100k(u, plan, card, tables)
        _gaps(u, plan, card)
        if base is not None and plan != base and base in cards:
            for k, v in card.kpis.items():
                cell = (plan, FOOTPRINT, ALL, CHANGE + k)
                u.add(cell, v - cards[base].kpis.get(k, np.nan))
                if cell in u.values:
                    src = {(plan, FOOTPRINT, ALL, k): 1.0, (base, FOOTPRINT, ALL, k): -1.0}
                    u.derived.append(_Derived(cell, src))
        _sums(u, plan, tables)
        _proportional(u, plan, tables)
        _row_links(u, plan, tables)
        _cost_and_site_derived(u, plan, tables)
    return u


def _per_100k(u: _Universe, plan: str, card: Scorecard, tables: dict[str, pd.DataFrame]) -> None:
    for k, v in card.per_100k.items():
        cell = (plan, FOOTPRINT, ALL, PER_100K + k)
        u.add(cell, v)
        src = (plan, FOOTPRINT, ALL, k)
        if cell in u.values and src in u.values:
            u.links.append((src, cell))
    bq = tables[QUINTILE]
    if "population" not in bq.columns:
        return
    for k in bq.columns:
        if k not in RATE_KPIS:
            continue
        for q, pop in bq["population"].items():
            if pop and np.isfinite(pop):
                cell = (plan, QUINTILE, q, PER_100K + k)
                u.add(cell, bq.at[q, k] / pop * 1e5)
                if cell in u.values and (plan, QUINTILE, q, k) in u.values:
                    u.links.append(((plan, QUINTILE, q, k), cell))


def _gaps(u: _Universe, plan: str, card: Scorecard) -> None:
    bq = card.by_quintile
    for k, g in card.imd_gap.items():
        cell = (plan, FOOTPRINT, ALL, GAP + k)
        u.add(cell, g)
        if cell not in u.values or k not in bq.columns or not {1, 5} <= set(bq.index):
            continue
        if k in RATE_KPIS:
            p1, p5 = bq.at[1, "population"], bq.at[5, "population"]
            c1, c5 = 1e5 / p1 if p1 else np.nan, -1e5 / p5 if p5 else np.nan
        else:
            c1, c5 = 1.0, -1.0
        src = {(plan, QUINTILE, 1, k): c1, (plan, QUINTILE, 5, k): c5}
        u.derived.append(_Derived(cell, src, all(np.isfinite(c) for c in src.values())))


def _sums(u: _Universe, plan: str, tables: dict[str, pd.DataFrame]) -> None:
    foot, bq = tables[FOOTPRINT], tables[QUINTILE]
    for k in bq.columns:
        if is_additive(k) and k in foot.columns:
            u.add_sum((plan, FOOTPRINT, ALL, k), [(plan, QUINTILE, q, k) for q in bq.index])
    area = tables.get(AREA)
    if area is not None:
        quint = area["imd_quintile"] if "imd_quintile" in area.columns else None
        for k in area.columns:
            if not is_additive(k):
                continue
            if k in foot.columns:
                u.add_sum((plan, FOOTPRINT, ALL, k), [(plan, AREA, a, k) for a in area.index])
            if quint is not None and k in bq.columns:
                for q in bq.index:
                    members = [(plan, AREA, a, k) for a in area.index[quint.to_numpy() == q]]
                    u.add_sum((plan, QUINTILE, q, k), members)
    site = tables.get(SITE)
    if site is not None and "mobile_arrivals_per_year" in site.columns:
        u.add_sum(
            (plan, FOOTPRINT, ALL, "mobile_episodes_per_year"),
            [(plan, SITE, s, "mobile_arrivals_per_year") for s in site.index],
        )


#: Pairs the model makes proportional with a constant published in the Assumptions
#: sheet or beside them; linked on one row's evidence. Other pairs are linked only when
#: two or more quintile or area rows show the same ratio.
KNOWN_MULTIPLES: frozenset[tuple[str, str]] = frozenset(
    {
        ("oap_placements_per_year", "oap_bed_days_per_year"),  # x OAP length of stay
        ("oap_bed_days_per_year", "oap_cost_gbp_per_year"),  # x cost per bed-day
        ("admissions_per_year", "oap_placements_per_year"),  # x inpatient blocked share
        ("episodes_per_year", "veteran_episodes_per_year"),  # x veterans share
        ("hub_calls_per_year", "population"),  # shared out by population
        ("population", "s136_turned_away_per_year"),  # shared out by population
    }
)


def _proportional(u: _Universe, plan: str, tables: dict[str, pd.DataFrame]) -> None:
    """Link measures that are a constant multiple of one another, or of population, in every row.

    The constant is then known to a reader (it is an assumption, or any row gives it),
    so each row's cells are one unknown; a measure proportional to population is one
    unknown across all its rows.
    """
    levels = [lv for lv in (FOOTPRINT, QUINTILE, AREA) if lv in tables]
    measures = sorted(
        {str(c) for lv in levels for c in tables[lv].columns if is_additive(str(c))}
        | {"population"}
    )
    rows: list[tuple[str, Hashable]] = []
    data = []
    for lv in levels:
        frame = tables[lv].reindex(columns=measures)
        rows.extend((lv, r) for r in frame.index)
        data.append(frame.to_numpy(dtype=float))
    m = np.vstack(data)
    # the footprint row is the sum of the others: it is no evidence of proportionality
    below = np.array([lv != FOOTPRINT for lv, _ in rows])
    per_head = {
        mi for mi in measures if mi != "population" and _proportional_pair(m, measures, mi, below)
    }
    for i, mi in enumerate(measures):
        a = m[:, i]
        for j in range(i + 1, len(measures)):
            mj = measures[j]
            if mi in per_head and mj in per_head:
                # two measures shared out by population: each is hidden as a whole on
                # its own, and the ratio of their rates is not published
                continue
            idx = _proportional_rows(a, m[:, j], below, _known_pair(mi, mj))
            if idx is None:
                continue
            if "population" in (mi, mj):
                meas = mj if mi == "population" else mi
                cells = [(plan, *rows[t], meas) for t in idx]
                u.links.extend(zip(cells[:-1], cells[1:], strict=True))
            else:
                u.links.extend(((plan, *rows[t], mi), (plan, *rows[t], mj)) for t in idx)


def _known_pair(a: str, b: str) -> bool:
    return (a, b) in KNOWN_MULTIPLES or (b, a) in KNOWN_MULTIPLES


def _proportional_rows(
    a: np.ndarray, b: np.ndarray, below: np.ndarray, known: bool
) -> np.ndarray | None:
    """Rows where ``b`` is the same non-zero multiple of ``a`` (None: not proportional)."""
    both = np.isfinite(a) & np.isfinite(b)
    nz_a, nz_b = both & (a != 0), both & (b != 0)
    if not nz_a.any() or not np.array_equal(nz_a, nz_b):
        return None
    if not known and (nz_a & below).sum() < 2:
        return None
    ratio = b[nz_a] / a[nz_a]
    if np.ptp(ratio) > 1e-9 * np.max(np.abs(ratio)):
        return None
    return np.flatnonzero(nz_a)


def _proportional_pair(m: np.ndarray, measures: list[str], measure: str, below: np.ndarray) -> bool:
    a = m[:, measures.index("population")]
    b = m[:, measures.index(measure)]
    return _proportional_rows(a, b, below, _known_pair("population", measure)) is not None


def _row_links(u: _Universe, plan: str, tables: dict[str, pd.DataFrame]) -> None:
    """A count equal to another count times a share published in the same row."""
    area = tables.get(AREA)
    pairs = [
        ("mobile_within_standard_per_year", "mobile_episodes_per_year",
         "mobile_response_within_standard_share"),
    ]  # fmt: skip
    if area is None:
        return
    for a, b, share in pairs:
        if not {a, b, share} <= set(area.columns):
            continue
        for r in area.index:
            va, vb, s = area.at[r, a], area.at[r, b], area.at[r, share]
            if va and vb and np.isfinite(s) and abs(va - s * vb) <= 1e-6 * max(1.0, abs(va)):
                u.links.append(((plan, AREA, r, a), (plan, AREA, r, b)))


def _cost_and_site_derived(u: _Universe, plan: str, tables: dict[str, pd.DataFrame]) -> None:
    total = (plan, FOOTPRINT, ALL, "total_cost_gbp_per_year")
    oap = (plan, FOOTPRINT, ALL, "oap_cost_gbp_per_year")
    if total in u.values and oap in u.values:
        # the rest of the revenue cost is published capacity x published unit costs
        u.derived.append(_Derived(total, {oap: 1.0}))
    admissions = (plan, FOOTPRINT, ALL, "admissions_per_year")
    if admissions in u.values:
        for level in (FOOTPRINT, QUINTILE):
            for col in ADMISSIONS_DERIVED:
                for row in tables[level].index if col in tables[level].columns else ():
                    cell = (plan, level, _row_key(level, row), col)
                    if cell in u.values:
                        u.derived.append(_Derived(cell, {admissions: 1.0}, linear=False))
    site = tables.get(SITE)
    if site is None:
        return
    for col, src in SITE_DERIVED.items():
        if col in site.columns and src in site.columns:
            for s in site.index:
                cell = (plan, SITE, s, col)
                if cell in u.values:
                    u.derived.append(_Derived(cell, {(plan, SITE, s, src): 1.0}, linear=False))


# --------------------------------------------------------------------------- solving


class _Groups:
    """Union-find over cells that are fixed multiples of one another."""

    def __init__(self, cells: Iterable[Cell]):
        self.parent: dict[Cell, Cell] = {c: c for c in cells}

    def find(self, c: Cell) -> Cell:
        root = c
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[c] != root:
            self.parent[c], c = root, self.parent[c]
        return root

    def union(self, a: Cell, b: Cell) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


@dataclass
class _Problem:
    u: _Universe
    order: dict[Cell, int]
    root: dict[Cell, Cell]
    members: dict[Cell, list[Cell]]
    equations: list[tuple[dict[Cell, float], bool]]  # cell coefficients, is a sum relation
    eq_of_group: dict[Cell, list[int]]


def _problem(u: _Universe) -> _Problem:
    order = {c: i for i, c in enumerate(u.values)}
    groups = _Groups(u.values)
    for a, b in u.links:
        if a in u.values and b in u.values and u.values[a] != 0 and u.values[b] != 0:
            groups.union(a, b)
    root = {c: groups.find(c) for c in u.values}
    members: dict[Cell, list[Cell]] = defaultdict(list)
    for c in u.values:
        members[root[c]].append(c)
    equations: list[tuple[dict[Cell, float], bool]] = []
    for total, parts in u.sums:
        coeffs: dict[Cell, float] = defaultdict(float)
        coeffs[total] -= 1.0
        for p in parts:
            coeffs[p] += 1.0
        equations.append((dict(coeffs), True))
    for d in u.derived:
        if d.linear:
            coeffs = {d.cell: 1.0}
            for s, a in d.sources.items():
                if s in u.values:
                    coeffs[s] = coeffs.get(s, 0.0) - a
            equations.append((coeffs, False))
    eq_of_group: dict[Cell, list[int]] = defaultdict(list)
    for e, (coeffs, _) in enumerate(equations):
        for g in dict.fromkeys(root[c] for c in coeffs):
            eq_of_group[g].append(e)
    return _Problem(u, order, root, dict(members), equations, dict(eq_of_group))


def protect(
    cards: Mapping[str, Scorecard],
    detail: str | None = None,
    base: str | None = None,
    secondary: bool = True,
) -> Disclosure:
    """Decide which cells of ``cards`` the exports hide.

    Parameters
    ----------
    cards
        Scorecards by plan name, in the order the exports show them.
    detail
        The plan whose areas and sites are published (default: the last).
    base
        The plan changes are measured against (default: ``"current"`` when present).
    secondary
        False: primary suppression only (counts below 5), which a reader can undo;
        for tests and for comparing.
    """
    names = list(cards)
    detail = detail if detail is not None else (names[-1] if names else "")
    base = base if base is not None else ("current" if "current" in cards else None)
    u = build_universe(cards, detail, base)
    primary = {c for c, v in u.values.items() if is_count(c[3]) and 0 < v < THRESHOLD}
    if not secondary:
        return Disclosure(frozenset(primary), frozenset(primary), detail, base, False, u.values)
    prob = _problem(u)
    hidden_groups: set[Cell] = {prob.root[c] for c in primary}
    while True:
        _close(prob, hidden_groups)
        failing = _audit(prob, hidden_groups)
        if not failing:
            break
        added = False
        for g in failing:
            c = _complement(prob, hidden_groups, g)
            if c is not None:
                hidden_groups.add(prob.root[c])
                added = True
                break  # re-audit: one complement often protects several cells
        if not added:
            break  # nothing left to hide near the failing cells
    hidden = {c for c in u.values if prob.root[c] in hidden_groups and _hideable(u, c)}
    return Disclosure(frozenset(hidden), frozenset(primary), detail, base, True, u.values)


def _hideable(u: _Universe, c: Cell) -> bool:
    # zeros stay shown: a zero in a hidden group can only come from a derived cell
    return u.values[c] != 0 or not is_additive(c[3])


def _close(prob: _Problem, hidden: set[Cell]) -> None:
    """Hide derived cells of hidden cells until nothing changes."""
    changed = True
    while changed:
        changed = False
        for d in prob.u.derived:
            g = prob.root[d.cell]
            if g in hidden:
                continue
            if any(s in prob.root and prob.root[s] in hidden for s in d.sources):
                hidden.add(g)
                changed = True


def _unknown_system(
    prob: _Problem, hidden: set[Cell]
) -> tuple[list[Cell], list[tuple[dict[int, float], float]]]:
    """Equations in the hidden groups' values (variable units: the group's first cell)."""
    vals = prob.u.values
    groups = sorted(hidden, key=prob.order.__getitem__)
    index = {g: i for i, g in enumerate(groups)}
    system = []
    for coeffs, _ in prob.equations:
        terms: dict[int, float] = defaultdict(float)
        gross: dict[int, float] = defaultdict(float)
        rhs = 0.0
        for c, a in coeffs.items():
            g = prob.root[c]
            if g in index:
                gv = vals[g]
                factor = vals[c] / gv if gv != 0 else 1.0
                terms[index[g]] += a * factor
                gross[index[g]] += abs(a * factor)
                rhs += a * vals[c]
        # cells of one group can cancel (a measure shared out by population sums to its
        # total whatever the rate): such a term tells nothing
        terms = {i: a for i, a in terms.items() if abs(a) > 1e-9 * gross[i]}
        if terms:
            system.append((terms, rhs))
    return groups, system


def _audit(prob: _Problem, hidden: set[Cell]) -> list[Cell]:
    """Hidden groups a reader could solve exactly or pin to less than the protection width."""
    vals = prob.u.values
    groups, system = _unknown_system(prob, hidden)
    if not groups:
        return []
    n = len(groups)
    nonneg = np.array([is_nonnegative(g[3]) for g in groups])
    lo = np.where(nonneg, 0.0, -np.inf)
    hi = np.full(n, np.inf)
    _propagate(system, lo, hi)
    determined = _determined(system, n)
    failing = []
    for i, g in enumerate(groups):
        # only counts need protecting: a gap or change that a reader can pin (the gap of
        # a measure shared out by population is always 0) tells nothing more about them
        scales = [abs(vals[c] / vals[g]) for c in prob.members[g] if is_count(c[3]) and vals[g]]
        if scales and (determined[i] or (hi[i] - lo[i]) * min(scales) < PROTECTION_WIDTH):
            failing.append(g)
    return failing


def _propagate(system: list[tuple[dict[int, float], float]], lo: np.ndarray, hi: np.ndarray,
               passes: int = 60) -> None:  # fmt: skip
    """Tighten bounds from each equation in turn (what a reader with a calculator does)."""
    for _ in range(passes):
        moved = False
        for terms, rhs in system:
            items = list(terms.items())
            tmin = [a * (lo[i] if a > 0 else hi[i]) for i, a in items]
            tmax = [a * (hi[i] if a > 0 else lo[i]) for i, a in items]
            smin_f = sum(t for t in tmin if np.isfinite(t))
            smax_f = sum(t for t in tmax if np.isfinite(t))
            nmin = sum(1 for t in tmin if not np.isfinite(t))
            nmax = sum(1 for t in tmax if not np.isfinite(t))
            for k, (i, a) in enumerate(items):
                # range of the other terms
                if np.isfinite(tmin[k]):
                    omin = smin_f - tmin[k] if nmin == 0 else -np.inf
                else:
                    omin = smin_f if nmin == 1 else -np.inf
                if np.isfinite(tmax[k]):
                    omax = smax_f - tmax[k] if nmax == 0 else np.inf
                else:
                    omax = smax_f if nmax == 1 else np.inf
                a_lo, a_hi = rhs - omax, rhs - omin  # range of a * x_i
                new_lo, new_hi = (a_lo / a, a_hi / a) if a > 0 else (a_hi / a, a_lo / a)
                tol = 1e-9 * max(1.0, abs(new_lo) if np.isfinite(new_lo) else 1.0)
                if new_lo > lo[i] + tol:
                    lo[i] = new_lo
                    moved = True
                if new_hi < hi[i] - tol:
                    hi[i] = new_hi
                    moved = True
        if not moved:
            return


def _determined(system: list[tuple[dict[int, float], float]], n: int) -> np.ndarray:
    """Which unknowns the equations fix exactly (the unit vector lies in their row space)."""
    out = np.zeros(n, dtype=bool)
    # connected components of unknowns through the equations
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for terms, _ in system:
        idx = list(terms)
        for j in idx[1:]:
            ri, rj = find(idx[0]), find(j)
            if ri != rj:
                parent[rj] = ri
    comp_eqs: dict[int, list[int]] = defaultdict(list)
    for e, (terms, _) in enumerate(system):
        comp_eqs[find(next(iter(terms)))].append(e)
    for eqs in comp_eqs.values():
        cols = sorted({i for e in eqs for i in system[e][0]})
        pos = {c: k for k, c in enumerate(cols)}
        a = np.zeros((len(eqs), len(cols)))
        for r, e in enumerate(eqs):
            for i, coef in system[e][0].items():
                a[r, pos[i]] = coef
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        a /= np.maximum(np.linalg.norm(a, axis=0, keepdims=True), 1e-300)
        _, s, vt = np.linalg.svd(a, full_matrices=False)
        rank = int((s > 1e-9 * max(s.max(initial=0.0), 1e-300)).sum())
        lev = (vt[:rank] ** 2).sum(axis=0)
        for c, k in pos.items():
            if lev[k] > 1 - 1e-7:
                out[c] = True
    return out


def _complement(prob: _Problem, hidden: set[Cell], group: Cell) -> Cell | None:
    """The next-smallest shown, non-zero cell of the relation nearest to ``group``.

    Relations are visited outwards from the group (its own first); among the relations
    at the same distance, the one with fewest hidden cells and then the smallest
    hidden total is protected first.
    """
    vals = prob.u.values
    seen_groups = {group}
    seen_eqs: set[int] = set()
    frontier = [group]
    while frontier:
        eqs = sorted(
            {e for g in frontier for e in prob.eq_of_group.get(g, []) if e not in seen_eqs}
        )
        seen_eqs.update(eqs)
        best: tuple[Any, Cell] | None = None
        for e in eqs:
            coeffs, is_sum = prob.equations[e]
            if not is_sum:
                continue
            cells = list(coeffs)
            shown = [c for c in cells if prob.root[c] not in hidden and vals[c] != 0]
            if not shown:
                continue
            hid = [c for c in cells if prob.root[c] in hidden]
            residual = sum(abs(vals[c]) for c in hid)
            pick = min(shown, key=lambda c: (abs(vals[c]), prob.order[c]))
            key = (len({prob.root[c] for c in hid}), residual, e)
            if best is None or key < best[0]:
                best = (key, pick)
        if best is not None:
            return best[1]
        nxt = []
        for e in eqs:
            for c in prob.equations[e][0]:
                g = prob.root[c]
                if g in hidden and g not in seen_groups:
                    seen_groups.add(g)
                    nxt.append(g)
        frontier = sorted(nxt, key=prob.order.__getitem__)
    return None


def frame_mask(
    disclosure: Disclosure | None, plan: str, level: str, frame: pd.DataFrame
) -> pd.DataFrame:
    """``disclosure.mask`` that is all False when nothing is suppressed."""
    if disclosure is None:
        return pd.DataFrame(False, index=frame.index, columns=frame.columns)
    return disclosure.mask(plan, level, frame)
