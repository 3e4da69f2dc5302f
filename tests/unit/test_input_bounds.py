"""Bad input is refused at load with a message naming file, line and field.

YAML bombs, recursive aliases, deep nesting and duplicate keys; loose types (true as
a bed count, numbers in quotes); values beyond the documented limits; queue sizes the
model cannot compute; populations and costs that would overflow.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pathways import costs, demand, queues
from pathways.errors import InputError
from pathways.scenario import (
    MAX_SITES,
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    DemandParams,
    input_limits,
    load_scenario,
    load_yaml_text,
    read_yaml,
    scenario_from_dict,
)

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


@pytest.fixture(scope="module")
def sussex() -> dict:
    return yaml.safe_load(SUSSEX.read_text())


def _refused(text: str) -> InputError:
    with pytest.raises(InputError) as err:
        load_yaml_text(text, "bad.yaml")
    assert err.value.problems[0].file == "bad.yaml"
    return err.value


# ----------------------------------------------------------------------------- YAML


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text


def test_billion_laughs_is_refused_without_expanding():
    text = billion_laughs()
    assert len(text) < 1024
    err = _refused(text)
    assert f"more than {MAX_YAML_VALUES:,} values" in str(err)


def test_alias_count_is_limited():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    assert "aliases" in str(_refused(text))
    ok = "a: &a 1\nb: [" + ", ".join(["*a"] * 5) + "]\n"
    assert load_yaml_text(ok, "ok.yaml") == {"a": 1, "b": [1] * 5}


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &x\n  b: *x\n", "&r {k: [*r]}\n"])
def test_recursive_aliases_are_refused(text):
    assert "contains itself" in str(_refused(text))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "".join("  " * i + f"k{i}:\n" for i in range(MAX_YAML_DEPTH + 5)),
        "".join("  " * i + "-\n" for i in range(MAX_YAML_DEPTH + 5)),
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text):
    assert f"nested more than {MAX_YAML_DEPTH} levels" in str(_refused(text))


def test_duplicate_keys_name_both_lines():
    err = _refused("name: a\nx: 1\nfoo:\n  y: 2\nx: 3\n")
    assert err.problems[0].row == 5
    assert "field 'x' appears twice, on lines 2 and 5" in str(err)
    nested = _refused("a:\n  b: 1\n  b: 2\n")
    assert "field 'b' appears twice, on lines 2 and 3" in str(nested)
    # the same key in different mappings is fine, and so is a merge key
    assert load_yaml_text("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    merged = load_yaml_text("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n")
    assert merged["use"] == {"x": 1, "y": 2}


def test_large_files_are_refused(tmp_path, monkeypatch):
    import pathways.scenario as sc

    monkeypatch.setattr(sc, "MAX_YAML_BYTES", 1000)
    assert "larger than" in str(_refused("a: " + "x" * 2000))
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 2000)
    with pytest.raises(InputError, match="larger than"):
        read_yaml(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: \x00x\n", "NUL"),
        ("a: 1\n---\nb: 2\n", "another document"),
        ("!!python/object/apply:os.system ['true']", "constructor"),
        ("a: 2020-13-45\n", "month must be"),
        ("a: " + "9" * 5000 + "\n", "thousands of digits"),
        ("? [a, b]\n: 1\n", "unhashable"),
        ("a: [1, 2\n", "not valid YAML"),
    ],
)
def test_other_bad_yaml_is_an_input_error(text, words):
    err = _refused(text)
    assert words in str(err)
    assert "Traceback" not in str(err) and "sys." not in str(err)


def test_read_yaml_folder_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_yaml(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_yaml(tmp_path / "none.yaml")
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    with pytest.raises(InputError, match="values"):
        load_scenario(tmp_path / "bomb.yaml")


# ----------------------------------------------------------------------------- types


def _bad(data: dict, mutate) -> InputError:
    d = copy.deepcopy(data)
    mutate(d)
    with pytest.raises(InputError) as err:
        scenario_from_dict(d, "s.yaml")
    return err.value


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (
            lambda d: d["sites"][0]["capacity"].update(inpatient_beds=True),
            "sites[0].capacity.inpatient_beds",
            "true/false is not a number",
        ),
        (
            lambda d: d["sites"][0]["capacity"].update(inpatient_beds="12"),
            "sites[0].capacity.inpatient_beds",
            "without quotes",
        ),
        (
            lambda d: d.setdefault("demand", {}).update(growth_factor="1.1"),
            "demand.growth_factor",
            "without quotes",
        ),
        (
            lambda d: d.setdefault("demand", {}).update(growth_factor=False),
            "demand.growth_factor",
            "true/false",
        ),
        (
            lambda d: d.setdefault("costs", {}).update(
                capital_gbp_per_new_site={"inpatient": True}
            ),
            "costs.capital_gbp_per_new_site.inpatient",
            "true/false",
        ),
        (
            lambda d: d["sites"][0].update(can_close="no"),
            "sites[0].can_close",
            "true or false",
        ),
        (lambda d: d["sites"][0].update(name="Mill\x00View"), "sites[0].name", "control character"),
        (
            lambda d: d.setdefault("budget", {}).update(revenue_gbp_per_year=True),
            "budget.revenue_gbp_per_year",
            "true/false",
        ),
    ],
)
def test_loose_types_are_refused(sussex, mutate, field, words):
    err = _bad(sussex, mutate)
    assert err.problems[0].field == field
    assert words in err.problems[0].message


def test_numpy_numbers_are_still_numbers():
    p = DemandParams(growth_factor=np.float64(1.2), relative_rate_0_15=np.int64(1))
    assert p.growth_factor == 1.2


# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["sites"][0]["capacity"].update(inpatient_beds=10**6), "sites[0].capacity"),
        (lambda d: d.setdefault("costs", {}).update(oap_gbp_per_bed_day=math.inf), "costs"),
        (lambda d: d.setdefault("costs", {}).update(oap_gbp_per_bed_day=math.nan), "costs"),
        (lambda d: d.setdefault("costs", {}).update(mobile_team_gbp_per_year=1e300), "costs"),
        (
            lambda d: d.setdefault("costs", {}).update(capital_gbp_per_new_site={"inpatient": 2e9}),
            "costs.capital_gbp_per_new_site",
        ),
        (
            lambda d: d.setdefault("costs", {}).update(wte_per_unit={"hub": {"nurses": 1e6}}),
            "costs.wte_per_unit",
        ),
        (lambda d: d.setdefault("demand", {}).update(growth_factor=1e6), "demand.growth_factor"),
        (lambda d: d.setdefault("demand", {}).update(growth_factor=0), "demand.growth_factor"),
        (lambda d: d.setdefault("hub", {}).update(day=10**9), "hub.day"),
        (
            lambda d: d.setdefault("constraints", {}).update(workforce_caps_wte={"nurses": 1e308}),
            "constraints.workforce_caps_wte",
        ),
        (
            lambda d: d.setdefault("objective", {}).update(
                targets={"oap_bed_days_per_year_max": 1e300}
            ),
            "objective.targets.oap_bed_days_per_year_max",
        ),
        (
            lambda d: d.setdefault("constraints", {}).update(crisis_house_travel_mins=1e9),
            "constraints.crisis_house_travel_mins",
        ),
        (lambda d: d.update(sites=[d["sites"][0]] * (MAX_SITES + 1)), "sites"),
    ],
)
def test_values_beyond_the_limits_are_refused(sussex, mutate, field):
    err = _bad(sussex, mutate)
    assert err.problems[0].field.startswith(field)


def test_total_beds_must_fit_the_queueing_model(sussex):
    d = copy.deepcopy(sussex)
    template = d["sites"][0]
    d["sites"] = [
        {**template, "site_id": f"S{i}", "capacity": {"inpatient_beds": 5000}}
        for i in range(queues.MAX_SERVERS // 5000 + 1)
    ]
    with pytest.raises(InputError, match="the model can compute in one pool"):
        scenario_from_dict(d, "s.yaml")


def test_every_numeric_field_has_a_documented_upper_bound():
    doc = (REPO / "docs" / "input-limits.md").read_text()
    rows = input_limits()
    assert len(rows) > 50
    for row in rows:
        assert row["range"] != "unbounded", row["path"]
        assert f"`{row['path']}`" in doc, f"{row['path']} is not in docs/input-limits.md"
        assert row["range"] in doc, f"{row['path']}: range {row['range']} not in the doc"


# ----------------------------------------------------------------------------- queues


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (
            lambda: queues.erlang_a_metrics(60, 3e9, 300, 120, 20, service="crisis-line staff"),
            "crisis-line staff: 3,000,000,000 is more than the 100,000 the model can compute",
        ),
        (lambda: queues.erlang_b(1.0, 3e9), "beds or places: 3,000,000,000 is more than"),
        (lambda: queues.erlang_c(1.0, 1e12), "mobile crisis teams: 1,000,000,000,000 is more"),
        (lambda: queues.erlang_b(1e300, 3), "offered load (erlangs) of 1e+300 is more than"),
        (
            lambda: queues.erlang_b(np.ones((5000, 1)), np.ones((1, 5000))),
            "25,000,000 queues are more than",
        ),
        (
            lambda: queues.erlang_b(np.ones(3000), np.full(3000, 90_000.0)),
            "servers in all are more than the model can compute",
        ),
        (
            lambda: queues.erlang_a_metrics(60, 100, 1e-6, 7200, 20),
            "mean patience is too long",
        ),
        (lambda: queues.servers_for_blocking(1e9, 1e-6), "meeting the target needs more"),
        (lambda: queues.erlang_b("many", 1), "must be numbers"),
        (
            lambda: queues.abandonment_share(60, 3e9, 300, 120, service="the phone line"),
            "the phone line: 3,000,000,000",
        ),
        (lambda: queues.erlang_b(1.0, -1, service="inpatient beds"), "inpatient beds: number of"),
    ],
)
def test_queues_refuse_what_they_cannot_compute_in_the_users_words(call, words):
    with pytest.raises(InputError) as err:
        call()
    text = str(err.value)
    assert words in text
    assert "pathways." not in text and "erlang_" not in text


def test_queues_still_compute_large_real_sizes():
    assert 0 <= queues.erlang_b(18_000.0, 20_000) < 1e-9
    assert queues.erlang_a_metrics(600, 60, 600, 180, 20)["service_level"] > 0


# ----------------------------------------------------------------------------- demand and costs


def test_populations_that_would_overflow_are_refused():
    params = DemandParams()
    areas = pd.DataFrame({"pop_total": [1500.0, 1e300], "imd_decile": [3, 4]})
    with pytest.raises(InputError) as err:
        demand.episodes_per_year(areas, params)
    assert err.value.problems[0].field == "pop_total"
    assert "more than the 100,000,000 allowed" in str(err.value)
    with pytest.raises(InputError, match="row 2, field 'pop_total'"):
        demand.episodes_per_year(
            pd.DataFrame({"pop_total": [1.0, math.inf], "imd_decile": [3, 4]}), params
        )
    with pytest.raises(InputError, match="pop_60_plus"):
        demand.weighted_population(
            pd.DataFrame(
                {
                    "pop_total": [10.0],
                    "pop_0_15": [1.0],
                    "pop_16_59": [1.0],
                    "pop_60_plus": [-5.0],
                    "imd_decile": [1],
                }
            ),
            params,
        )
    with pytest.raises(InputError, match="population"):
        demand.calls_per_year(1e300, params)


def test_costs_never_report_infinity(sussex, monkeypatch):
    from pathways.kpis import baseline_plan

    scenario = scenario_from_dict(sussex, "s.yaml")
    plan = baseline_plan(scenario)
    assert math.isfinite(costs.plan_costs(scenario, plan, 100.0)["total"])
    with pytest.raises(InputError, match="oap cost is not a finite number"):
        costs.plan_costs(scenario, plan, math.inf)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_limit_s": float("nan")},
        {"time_limit_s": float("inf")},
        {"time_limit_s": 0.0},
        {"time_limit_s": 1e300},
        {"gap": -0.1},
        {"node_limit": 0},
        {"seed": -1},
        {"workers": -3},
        {"backend": "GUROBI"},
    ],
)
def test_solver_options_the_solver_cannot_honour_are_refused_in_words(kwargs):
    from pathways.errors import InputError
    from pathways.optimise import SolverOptions

    name = next(iter(kwargs))
    with pytest.raises(InputError, match=f"field '{name}': expected"):
        SolverOptions(**kwargs)


@pytest.mark.parametrize("text", ["nan:1:1", "1:inf:1", "-5:1:1", "0:1e12:1", "5:1:1", "a:b:c"])
def test_frontier_budget_ranges_are_checked_in_the_library(text):
    from pathways.errors import InputError
    from pathways.optimise.run import parse_budgets

    with pytest.raises(InputError, match="budgets"):
        parse_budgets(text)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"seed": "12"}, "seed"),
        ({"run": "optimise", "solver": {"time_limit_s": True}}, "solver.time_limit_s"),
        ({"run": "optimise", "solver": {"time_limit_s": 1e9}}, "solver.time_limit_s"),
        ({"run": "optimise", "solver": {"backend": "GUROBI"}}, "solver.backend"),
        ({"monte_carlo": {"samples": "10", "seed": 1, "parameters": {}}}, "monte_carlo.samples"),
    ],
)
def test_batch_spec_fields_are_as_strict_as_scenario_fields(extra, field):
    from pathways.batch import batch_spec_from_dict
    from pathways.errors import InputError

    spec = {"name": "x", "base": "data/scenarios/sussex.yaml", **extra}
    with pytest.raises(InputError, match=f"field '{field}"):
        batch_spec_from_dict(spec)
