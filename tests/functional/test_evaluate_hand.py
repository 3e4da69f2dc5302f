"""``evaluate`` on a two-area, two-site footprint worked out by hand.

The footprint is written to ``tmp_path``: an areas CSV (two areas, no age bands, so
the weighted population is the population) and a long travel matrix, so nothing comes
from the bundled tables or the travel model. Every expected number below is computed
in the test from the formulas of ``docs/model.md`` (Erlang B by its recursion, the
routing shares multiplied out), not by calling the library's own helpers.

    area  population  IMD decile   to S1   to S2
    A1       100,000           5   10 min  40 min
    A2       200,000           5   50 min  20 min

S1 has 40 beds, a 3-place crisis house, one mobile team and one place-of-safety suite;
S2 has a 4-place crisis house. The crisis line has one handler on each shift.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from pathways.kpis import evaluate
from pathways.plan import Plan, SitePlan, baseline_plan
from pathways.scenario import Capacity, load_scenario, with_changes

POP = {"A1": 100_000, "A2": 200_000}
MINUTES = {("A1", "S1"): 10, ("A1", "S2"): 40, ("A2", "S1"): 50, ("A2", "S2"): 20}
BEDS, PLACES, TEAMS, SUITES = 40, {"S1": 3, "S2": 4}, 1, 1
HANDLERS = 3  # one on each of the three shifts

# Defaults (docs/parameters.md) the hand calculation uses.
RATE = 1000.0  # episodes per 100k a year (set in the scenario)
FC = {"mobile_team": 0.40, "place_of_safety": 0.45, "crisis_house": 0.15}
MOB = {"crisis_house": 0.12, "inpatient": 0.08}
POS = {"crisis_house": 0.06, "inpatient": 0.12}
CH_TO_INPATIENT = 0.12
FULL_TO_INPATIENT = 0.5
CH_LOS, BED_LOS, OAP_LOS, POS_LOS = 7.0, 33.0, 40.0, 0.5
S136_PER_100K = 52.0
COST = {"bed": 151_840.0, "place": 175_200.0, "team": 620_000.0, "handler": 68_000.0,
        "suite": 480_000.0, "oap_day": 620.0}  # fmt: skip

# Deprivation multiplier of decile 5: exp(beta (5.5 - 5)) / mean over deciles of
# exp(beta (5.5 - d)), beta = ln(3.5) / 9 (docs/model.md, section 1).
_BETA = math.log(3.5) / 9
DEP5 = math.exp(_BETA * 0.5) / (sum(math.exp(_BETA * (5.5 - d)) for d in range(1, 11)) / 10)


def erlang_b(load: float, servers: int) -> float:
    """B(E, 0) = 1; B(E, c) = E B(E, c-1) / (c + E B(E, c-1))."""
    b = 1.0
    for c in range(1, servers + 1):
        b = load * b / (c + load * b)
    return b


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("hand")
    (d / "areas.csv").write_text(
        "area_code,name,population,imd_decile,rural,x,y\n"
        "A1,Area one,100000,5,false,530000,105000\n"
        "A2,Area two,200000,5,false,540000,110000\n"
    )
    (d / "minutes.csv").write_text(
        "area_code,site_id,minutes\n" + "".join(f"{a},{s},{m}\n" for (a, s), m in MINUTES.items())
    )
    spec = {
        "name": "hand",
        "footprint": {"areas_file": "areas.csv", "travel_matrix_file": "minutes.csv"},
        "sites": [
            {"site_id": "S1", "name": "Site one", "x_m": 531000, "y_m": 105000,
             "status": "existing",
             "services": ["inpatient", "crisis_house", "mobile_team", "place_of_safety"],
             "capacity": {"inpatient_beds": BEDS, "crisis_house_places": PLACES["S1"],
                          "mobile_teams": TEAMS, "place_of_safety_suites": SUITES}},
            {"site_id": "S2", "name": "Site two", "x_m": 541000, "y_m": 110000,
             "status": "existing", "services": ["crisis_house"],
             "capacity": {"crisis_house_places": PLACES["S2"]}},
        ],
        "hub": {"night": 1, "day": 1, "evening": 1},
        "demand": {"episodes_per_100k_per_year": RATE},
    }  # fmt: skip
    (d / "hand.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_scenario(d / "hand.yaml")


def by_hand(beds: int = BEDS, places: dict[str, int] = PLACES) -> dict[str, float]:
    """The scorecard's headline counts, occupancy and cost, from the model's formulas."""
    # (1) demand: decile 5 everywhere and no age bands, so episodes = rate x population
    # x the decile-5 deprivation multiplier (docs/model.md, section 1)
    episodes = {a: RATE / 1e5 * p * DEP5 for a, p in POP.items()}
    # (2) routing: share of episodes referred to a crisis house, admitted directly
    to_ch = (
        FC["crisis_house"]
        + FC["mobile_team"] * MOB["crisis_house"]
        + FC["place_of_safety"] * POS["crisis_house"]
    )
    assert to_ch == pytest.approx(0.225)
    direct = FC["mobile_team"] * MOB["inpatient"] + FC["place_of_safety"] * POS["inpatient"]
    assert direct == pytest.approx(0.086)
    # (3) crisis houses: each area's quickest house (A1 -> S1, A2 -> S2), a loss system each
    house = {"A1": "S1", "A2": "S2"}
    referrals = {a: episodes[a] * to_ch for a in POP}
    blocked = {a: erlang_b(referrals[a] / 365 * CH_LOS, places[house[a]]) for a in POP}
    served = {a: referrals[a] * (1 - blocked[a]) for a in POP}
    turned = {a: referrals[a] * blocked[a] for a in POP}
    admissions = sum(
        episodes[a] * direct + served[a] * CH_TO_INPATIENT + turned[a] * FULL_TO_INPATIENT
        for a in POP
    )
    # (4) the pooled beds: Erlang B (peakedness 1), blocked admissions are OAPs
    load = admissions / 365 * BED_LOS
    b = erlang_b(load, beds)
    oap = admissions * b
    oap_days = oap * OAP_LOS
    # (7) places of safety: one suite
    s136 = S136_PER_100K / 1e5 * sum(POP.values())
    s136_turned = s136 * erlang_b(s136 / 365 * POS_LOS, SUITES)
    # (8) costs
    total = (
        beds * COST["bed"]
        + sum(places.values()) * COST["place"]
        + TEAMS * COST["team"]
        + HANDLERS * COST["handler"]
        + SUITES * COST["suite"]
        + oap_days * COST["oap_day"]
    )
    return {
        "episodes_per_year": sum(episodes.values()),
        "crisis_house_episodes_per_year": sum(served.values()),
        "crisis_house_turned_away_per_year": sum(turned.values()),
        "admissions_per_year": admissions,
        "inpatient_blocked_share": b,
        "oap_placements_per_year": oap,
        "oap_bed_days_per_year": oap_days,
        "oap_cost_gbp_per_year": oap_days * COST["oap_day"],
        "inpatient_occupancy": load * (1 - b) / beds,
        "s136_turned_away_per_year": s136_turned,
        "hub_calls_per_year": 4286 / 1e5 * sum(POP.values()),
        "total_cost_gbp_per_year": total,
        "capital_cost_gbp": 0.0,
    }


def test_the_hand_instance_is_not_trivial():
    """The numbers exercise every formula: houses turn people away, beds overflow."""
    h = by_hand()
    assert (
        0.05
        < h["crisis_house_turned_away_per_year"]
        / (h["crisis_house_turned_away_per_year"] + h["crisis_house_episodes_per_year"])
        < 0.95
    )
    assert 0.01 < h["inpatient_blocked_share"] < 0.5
    # the recursion itself, on values in any Erlang table
    assert erlang_b(2.0, 2) == pytest.approx(0.4)
    assert erlang_b(1.0, 1) == pytest.approx(0.5)
    assert erlang_b(3.0, 0) == 1.0


def test_evaluate_agrees_with_the_hand_calculation(scenario):
    card = evaluate(scenario)
    for k, v in by_hand().items():
        assert card.kpis[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert card.population == sum(POP.values())
    # per 100k and the cost breakdown
    assert card.per_100k["admissions_per_year"] == pytest.approx(
        by_hand()["admissions_per_year"] / 3
    )
    assert card.cost_breakdown["inpatient"] == BEDS * COST["bed"]
    assert card.cost_breakdown["crisis_house"] == 7 * COST["place"]
    assert card.cost_breakdown["hub"] == HANDLERS * COST["handler"]


def test_the_site_table_shows_each_house_on_its_own(scenario):
    card = evaluate(scenario)
    for area, site in (("A1", "S1"), ("A2", "S2")):
        arrivals = RATE / 1e5 * POP[area] * DEP5 * 0.225
        row = card.by_site.loc[site]
        assert row["crisis_house_arrivals_per_year"] == pytest.approx(arrivals)
        assert row["crisis_house_blocked_share"] == pytest.approx(
            erlang_b(arrivals / 365 * CH_LOS, PLACES[site])
        )


def test_a_plan_with_other_capacity_agrees_too(scenario):
    """More beds, one house larger and one closed: A2 can still reach S1 (50 < 60 minutes)."""
    base = baseline_plan(scenario)
    sites = (
        SitePlan(site_id="S1", capacity=Capacity(inpatient_beds=46, crisis_house_places=8,
                                                 mobile_teams=1, place_of_safety_suites=1)),
        SitePlan(site_id="S2", capacity=Capacity()),
    )  # fmt: skip
    plan = Plan(name="other", sites=sites, hub=base.hub)
    card = evaluate(scenario, plan)
    # both areas now use S1's house, one loss system with both areas' referrals
    episodes = RATE / 1e5 * 300_000 * DEP5
    referrals = episodes * 0.225
    b_house = erlang_b(referrals / 365 * CH_LOS, 8)
    admissions = (
        episodes * 0.086
        + referrals * (1 - b_house) * CH_TO_INPATIENT
        + referrals * b_house * FULL_TO_INPATIENT
    )
    b_beds = erlang_b(admissions / 365 * BED_LOS, 46)
    assert card.kpis["admissions_per_year"] == pytest.approx(admissions, rel=1e-9)
    assert card.kpis["oap_bed_days_per_year"] == pytest.approx(
        admissions * b_beds * OAP_LOS, rel=1e-9
    )
    assert card.kpis["total_cost_gbp_per_year"] == pytest.approx(
        46 * COST["bed"] + 8 * COST["place"] + COST["team"] + 3 * COST["handler"]
        + COST["suite"] + admissions * b_beds * OAP_LOS * COST["oap_day"],
        rel=1e-9,
    )  # fmt: skip


def test_a_house_out_of_reach_admits_half_of_its_referrals(scenario):
    """With the reach cut to 30 minutes A2 (20 min to S2) keeps its house; close S2 and
    A2 (50 min to S1) has none: every A2 referral is turned away and half are admitted."""
    s = with_changes(scenario, {"pathway.crisis_house_max_travel_mins": 30.0})
    base = baseline_plan(s)
    sites = tuple(
        SitePlan(site_id=sp.site_id, capacity=Capacity()) if sp.site_id == "S2" else sp
        for sp in base.sites
    )
    card = evaluate(s, base.model_copy(update={"sites": sites}))
    ref = {a: RATE / 1e5 * p * DEP5 * 0.225 for a, p in POP.items()}
    b1 = erlang_b(ref["A1"] / 365 * CH_LOS, PLACES["S1"])
    assert card.kpis["crisis_house_turned_away_per_year"] == pytest.approx(
        ref["A1"] * b1 + ref["A2"], rel=1e-9
    )
    assert card.kpis["crisis_house_episodes_per_year"] == pytest.approx(
        ref["A1"] * (1 - b1), rel=1e-9
    )
