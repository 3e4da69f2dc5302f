"""Scenario files: validation messages, round trip, variants."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from pathways.errors import InputError
from pathways.scenario import (
    CRISIS_NOW_ROUTING,
    Scenario,
    apply_preset,
    dump_scenario,
    load_scenario,
    parameter_table,
    with_changes,
)

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


def minimal() -> dict:
    return {
        "name": "test",
        "footprint": {"icb": "E54000053"},
        "sites": [
            {
                "site_id": "A",
                "name": "Site A",
                "x_m": 530000,
                "y_m": 105000,
                "status": "existing",
                "services": ["inpatient"],
                "capacity": {"inpatient_beds": 20},
            },
        ],
    }


def write(tmp_path: Path, data, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def problem_of(tmp_path: Path, data) -> InputError:
    with pytest.raises(InputError) as info:
        load_scenario(write(tmp_path, data))
    return info.value


def test_sussex_loads_and_round_trips(tmp_path):
    s = load_scenario(SUSSEX)
    assert s.footprint.icb == "E54000053"
    assert sum(site.status == "candidate" for site in s.sites) >= 25
    out = tmp_path / "again.yaml"
    dump_scenario(s, out)
    again = load_scenario(out)
    assert again.model_dump(exclude={"base_dir"}) == s.model_dump(exclude={"base_dir"})
    assert again.fingerprint() == s.fingerprint()


def test_minimal_round_trip(tmp_path):
    s = load_scenario(write(tmp_path, minimal()))
    text = dump_scenario(s)
    s2 = load_scenario(write(tmp_path, text, "b.yaml"))
    assert s2 == s.model_copy(update={"base_dir": s2.base_dir})


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d.update(bogus=1), "bogus", "unknown field"),
        (lambda d: d.pop("name"), "name", "required field is missing"),
        (lambda d: d["footprint"].update(areas_file="x.geojson"), "footprint", "exactly one of"),
        (
            lambda d: d["sites"][0]["capacity"].update(inpatient_beds=-3),
            "sites[0].capacity.inpatient_beds",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["sites"][0]["capacity"].update(inpatient_beds="lots"),
            "sites[0].capacity.inpatient_beds",
            "valid integer",
        ),
        (lambda d: d["sites"][0].update(services=["helipad"]), "sites[0].services[0]", "inpatient"),
        (
            lambda d: d["sites"].append(dict(d["sites"][0])),
            "sites",
            "used by sites[0] and sites[1]",
        ),
        (lambda d: d["sites"][0].update(services=[]), "sites[0]", "not in services"),
        (lambda d: d["sites"][0].update(x_m=-5), "sites[0].x_m", "greater than or equal to 0"),
        (lambda d: d.update(demand={"growth_factor": 0}), "demand.growth_factor", "greater than 0"),
        (
            lambda d: d.update(demand={"hourly_profile": [1.0] * 23}),
            "demand.hourly_profile",
            "24 hourly values",
        ),
        (
            lambda d: d.update(
                pathway={
                    "routing": {
                        **CRISIS_NOW_ROUTING,
                        "crisis_house": {"resolved": 0.5, "inpatient": 0.2},
                    }
                }
            ),
            "pathway.routing",
            "sum to 0.7000",
        ),
        (
            lambda d: d.update(
                pathway={
                    "routing": {**CRISIS_NOW_ROUTING, "mobile_team": {"resolved": 0.5, "moon": 0.5}}
                }
            ),
            "pathway.routing",
            "cannot reach",
        ),
        (
            lambda d: d.update(costs={"wte_per_unit": {"inpatient": {"pilots": 1.0}}}),
            "costs.wte_per_unit",
            "unknown staff group",
        ),
        (
            lambda d: d.update(constraints={"mobile_within_standard_share_min": 1.5}),
            "constraints.mobile_within_standard_share_min",
            "less than or equal to 1",
        ),
        (
            lambda d: d.update(constraints={"workforce_caps_wte": {"wizards": 3}}),
            "constraints.workforce_caps_wte",
            "unknown staff group",
        ),
        (lambda d: d.update(objective={"mode": "maximise_fun"}), "objective.mode", "min_weighted"),
        (
            lambda d: d.update(budget={"revenue_gbp_per_year": -1}),
            "budget.revenue_gbp_per_year",
            "greater than or equal to 0",
        ),
    ],
)
def test_bad_scenarios_name_path_line_and_expectation(tmp_path, mutate, path, words):
    data = minimal()
    mutate(data)
    err = problem_of(tmp_path, data)
    text = str(err)
    assert "s.yaml" in text
    assert any(p.field == path for p in err.problems), [p.field for p in err.problems]
    assert words in text
    # the line number points into the file
    assert any(p.row is not None and p.row >= 1 for p in err.problems)


def test_invalid_yaml_reports_line(tmp_path):
    err = problem_of(tmp_path, "name: x\nfootprint: {icb: E54000053\nsites: []\n")
    assert err.problems[0].row is not None
    assert "not valid YAML" in str(err)


def test_empty_and_missing_files(tmp_path):
    assert "empty" in str(problem_of(tmp_path, ""))
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    assert "mapping" in str(problem_of(tmp_path, "- just\n- a list\n"))


def test_variants_revalidate_and_do_not_mutate(tmp_path):
    s = load_scenario(write(tmp_path, minimal()))
    s2 = with_changes(s, {"demand.growth_factor": 1.2})
    assert s2.demand.growth_factor == 1.2 and s.demand.growth_factor == 1.0
    with pytest.raises(InputError, match="greater than 0"):
        with_changes(s, {"demand.growth_factor": -1})
    with pytest.raises(InputError, match="no such field"):
        with_changes(s, {"demand.nonsense": 1})
    with pytest.raises(pydantic.ValidationError, match=r"(?s)growth_factor.*frozen") as frozen:
        s.demand.growth_factor = 3
    assert frozen.value.errors()[0]["loc"] == ("growth_factor",)
    assert s.demand.growth_factor == 1.0


def test_crisis_now_preset_changes_routing():
    s = Scenario.model_validate(minimal())
    p = apply_preset(s.pathway, "crisis_now")
    assert p.routing["first_contact"]["crisis_house"] == pytest.approx(0.54)
    assert p.preset == "crisis_now"


def test_every_parameter_has_unit_and_source():
    rows = parameter_table()
    assert len(rows) > 30
    for r in rows:
        assert r["unit"] and r["source"], r["path"]
