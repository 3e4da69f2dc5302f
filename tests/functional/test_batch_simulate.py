"""Batch ``run: simulate``: each case simulated, means with 95% intervals, common random numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pathways.batch import CI_HIGH, CI_LOW, batch_spec_from_dict, expand_cases, run_batch
from pathways.errors import InputError
from pathways.scenario import load_scenario, with_changes
from pathways.simulate import SimParams, simulate

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
#: a quarter-year window and a short warm-up keep each replication well under a second
SETTINGS = {"years": 0.25, "warmup_days": 20}
SPEC = {
    "name": "sim",
    "base": str(SUSSEX),
    "run": "simulate",
    "grid": {"demand.growth_factor": [1.0, 1.1]},
    "simulation": {"reps": 3, "settings": SETTINGS},
}


def spec_problems(change: dict) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        batch_spec_from_dict({**SPEC, **change}, "spec.yaml")
    return {p.field: p.message for p in info.value.problems}


def test_simulation_settings_are_checked_by_name():
    bad = spec_problems({"simulation": {"reps": 3, "settings": {"yeras": 1}}})
    assert "'yeras' is not a simulation setting" in bad["simulation.settings"]
    assert "years" in bad["simulation.settings"]  # lists what there is
    bad = spec_problems({"simulation": {"reps": 3, "settings": {"years": -1}}})
    assert "years" in bad["simulation.settings"]
    bad = spec_problems({"simulation": {"reps": 0}})
    assert "simulation.reps" in bad


def test_cases_share_random_numbers_across_grid_points():
    cases = expand_cases(batch_spec_from_dict(SPEC))
    assert len(cases) == 2 and cases[0].seed == cases[1].seed
    # the simulation settings are part of each case's identity (a resumed batch re-runs them)
    other = expand_cases(batch_spec_from_dict({**SPEC, "simulation": {"reps": 4, "settings": SETTINGS}}))
    assert {c.case_id for c in cases}.isdisjoint(c.case_id for c in other)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("simbatch")
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return run_batch(path, out / "out", workers=2), path


def test_each_row_is_that_case_simulated(sim_run):
    result, path = sim_run
    frame = pd.read_parquet(result.files["results"])
    assert len(frame) == 2 and (frame["status"] == "ok").all()
    cases = {c.case_id: c for c in expand_cases(batch_spec_from_dict(SPEC))}
    row = frame.iloc[1]
    case = cases[row["case_id"]]
    direct = simulate(with_changes(load_scenario(SUSSEX), case.changes), reps=3, seed=case.seed,
                      params=SimParams().with_changes(**SETTINGS))  # fmt: skip
    for kpi in ("oap_bed_days_per_year", "admissions_per_year", "oap_any_day_share",
                "hub_service_level"):  # fmt: skip
        assert row[kpi] == pytest.approx(direct.mean(kpi), rel=1e-12)
        lo, hi = direct.ci(kpi)
        assert row[kpi + CI_LOW] == pytest.approx(lo, rel=1e-12)
        assert row[kpi + CI_HIGH] == pytest.approx(hi, rel=1e-12)
        assert row[kpi + CI_LOW] <= row[kpi] <= row[kpi + CI_HIGH]
    # keyed KPIs (by hour, by month) stay out of the table
    assert not [c for c in frame.columns if "[" in c]
    # more demand, same random numbers: more admissions
    by = frame.set_index("demand.growth_factor")["admissions_per_year"]
    assert by[1.1] > by[1.0]
    md = result.files["summary_md"].read_text()
    assert "Run: **simulate**" in md and "3 replications" in md and CI_LOW in md
    assert "plans/" not in md


def test_resumed_simulate_batch_runs_nothing_again(sim_run, tmp_path):
    result, path = sim_run
    again = run_batch(path, result.files["results"].parent)
    assert again.ran == 0 and again.skipped == 2
