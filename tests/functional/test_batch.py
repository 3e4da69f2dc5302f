"""Batch runs: spec validation, case expansion, local pool vs a real Dask cluster, resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pathways.batch import (
    BatchInterrupted,
    batch_key,
    batch_spec_from_dict,
    expand_cases,
    load_batch_spec,
    make_icb_scenario,
    min_max_regret,
    run_batch,
    sample_parameters,
)
from pathways.errors import InputError
from pathways.plan import load_plan
from pathways.store import RunStore

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
FIXTURES = REPO / "tests" / "fixtures" / "batch"

SMALL = {
    "name": "small",
    "base": str(SUSSEX),
    "run": "evaluate",
    "grid": {"demand.growth_factor": [1.0, 1.2]},
    "monte_carlo": {
        "samples": 3,
        "seed": 7,
        "parameters": {
            "queues.inpatient_los_days": {"dist": "lognormal", "median": 33, "sigma": 0.15,
                                          "unit": "days"},
            "demand.episodes_per_100k_per_year": {"dist": "triangular", "low": 1100,
                                                  "mode": 1376, "high": 1650,
                                                  "unit": "episodes per 100k per year"},
        },
    },
}  # fmt: skip
TIMING = ["seconds", "solver_seconds"]


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def problems_of(text: str, tmp_path: Path) -> list:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_batch_spec(path)
    return info.value.problems


# --------------------------------------------------------------------------- validation


BAD_SPEC = f"""name: bad
base: {SUSSEX}
grid:
  demand.growthfactor: [1.0, 1.1]
  demand.growth_factor: [1.0, -2]
monte_carlo:
  samples: 5
  seed: 1
  parameters:
    queues.inpatient_los_days: {{dist: beta, a: 2, unit: days}}
    queues.oap_los_days: {{dist: normal, mean: 40, sd: 5}}
    queues.crisis_house_los_days: {{dist: uniform, low: 9, high: 3, unit: days}}
"""


def test_spec_errors_name_the_yaml_path_and_line(tmp_path):
    problems = {p.field: p for p in problems_of(BAD_SPEC, tmp_path)}
    grid = problems["grid.demand.growthfactor"]
    assert grid.row == 4 and "unknown scenario field 'growthfactor' in demand" in grid.message
    assert "growth_factor" in grid.message  # lists what is there
    value = problems["grid.demand.growth_factor[1]"]
    assert value.row == 5 and "-2" in value.message
    dist = problems["monte_carlo.parameters.queues.inpatient_los_days"]
    assert dist.row == 10 and "unknown distribution 'beta'" in dist.message
    unit = problems["monte_carlo.parameters.queues.oap_los_days.unit"]
    assert unit.row == 11 and "needs a unit" in unit.message
    order = problems["monte_carlo.parameters.queues.crisis_house_los_days"]
    assert order.row == 12 and "low < high" in order.message
    assert len(problems) == 5
    assert str(tmp_path / "bad.yaml") in str(grid)


def test_unknown_icb_and_scenario_path_in_icb_batch(tmp_path):
    text = """name: icbs
icbs: [E54000053, "Kent and Medway", Narnia]
run: evaluate
grid:
  queues.no_such_thing: [1]
"""
    problems = {p.field: p for p in problems_of(text, tmp_path)}
    assert set(problems) == {"icbs[2]", "grid.queues.no_such_thing"}
    assert "unknown ICB 'Narnia'" in problems["icbs[2]"].message
    assert problems["icbs[2]"].row == 2
    assert problems["grid.queues.no_such_thing"].row == 5


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"icbs": ["E54000053"]}, "(top level)", "exactly one of 'base'"),
        ({"base": None}, "(top level)", "exactly one of 'base'"),
        ({"run": "simulation"}, "run", "simulate"),
        ({"simulation": {"reps": 2}}, "(top level)", "only for simulate runs"),
        ({"budgets": [1e8]}, "(top level)", "only for frontier"),
        ({"grid": {"demand.growth_factor": []}}, "grid", "lists no values"),
        ({"grid": {"demand": [1]}}, "grid.demand", "group of fields"),
        ({"monte_carlo": {"samples": 0, "seed": 1, "parameters": {}}}, "monte_carlo.samples", ""),
        ({"extra_key": 1}, "extra_key", "unknown field"),
        ({"base": "missing.yaml"}, "base", "file not found"),
    ],
)
def test_spec_errors(tmp_path, change, field, message):
    spec = {**SMALL, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(InputError) as info:
        batch_spec_from_dict(spec, "spec.yaml", spec_dir=str(tmp_path))
    fields = {p.field: p.message for p in info.value.problems}
    assert field in fields, fields
    assert message in fields[field]


def test_example_specs_are_valid():
    assert len(expand_cases(load_batch_spec(REPO / "data/batches/example_sweep.yaml"))) == 6
    assert len(expand_cases(load_batch_spec(REPO / "data/batches/example_montecarlo.yaml"))) == 100
    assert len(expand_cases(load_batch_spec(REPO / "data/batches/example_simulate.yaml"))) == 2
    cases = expand_cases(load_batch_spec(REPO / "data/batches/all_icbs.yaml"))
    assert len(cases) == 42 and len({c.footprint for c in cases}) == 42


# --------------------------------------------------------------------------- cases and seeds


def test_case_expansion_counts_and_seeds(tmp_path):
    spec = batch_spec_from_dict({**SMALL, "grid": {"demand.growth_factor": [1.0, 1.1, 1.2]}})
    cases = expand_cases(spec)
    assert len(cases) == 3 * 3
    assert len({c.case_id for c in cases}) == 9
    assert len({c.seed for c in cases}) == 9
    # Seeds come from SeedSequence(seed).spawn: first the sample streams, then one per case.
    root = np.random.SeedSequence(7)
    root.spawn(3)
    expected = [int(s.generate_state(1)[0] & 0x7FFFFFFF) for s in root.spawn(9)]
    assert [c.seed for c in cases] == expected
    # Same spec, same cases; samples are shared by grid points (common random numbers).
    again = expand_cases(batch_spec_from_dict(SMALL | {"grid": spec.grid}))
    assert [(c.case_id, c.changes) for c in again] == [(c.case_id, c.changes) for c in cases]
    los = [c.changes["queues.inpatient_los_days"] for c in cases]
    assert los[:3] == los[3:6] == los[6:]
    assert len(set(los[:3])) == 3
    tri = [c.changes["demand.episodes_per_100k_per_year"] for c in cases]
    assert all(1100 <= x <= 1650 for x in tri)
    # Another seed draws other values.
    other = SMALL | {"monte_carlo": SMALL["monte_carlo"] | {"seed": 8}}
    assert sample_parameters(batch_spec_from_dict(other).monte_carlo) != [
        {k: c.changes[k] for k in SMALL["monte_carlo"]["parameters"]} for c in cases[:3]
    ]


def test_distribution_samples_follow_their_parameters():
    spec = batch_spec_from_dict(
        SMALL
        | {
            "monte_carlo": {
                "samples": 4000,
                "seed": 3,
                "parameters": {
                    "queues.inpatient_los_days": {"dist": "lognormal", "median": 30,
                                                  "sigma": 0.2, "unit": "days"},
                    "queues.oap_los_days": {"dist": "normal", "mean": 40, "sd": 10, "low": 35,
                                            "unit": "days"},
                    "pathway.crisis_house_full_to_inpatient_share": {
                        "dist": "uniform", "low": 0.3, "high": 0.7, "unit": "share"},
                },
            }
        }
    )  # fmt: skip
    draws = pd.DataFrame(sample_parameters(spec.monte_carlo))
    assert np.median(draws["queues.inpatient_los_days"]) == pytest.approx(30, rel=0.02)
    assert np.std(np.log(draws["queues.inpatient_los_days"])) == pytest.approx(0.2, rel=0.05)
    assert draws["queues.oap_los_days"].min() >= 35
    share = draws["pathway.crisis_house_full_to_inpatient_share"]
    assert share.between(0.3, 0.7).all() and share.mean() == pytest.approx(0.5, abs=0.01)


def test_grid_numbers_written_as_yaml_text_are_numbers():
    # PyYAML reads 9.0e7 (no sign in the exponent) as text; the case holds the number.
    text = f"name: s\nbase: {SUSSEX}\ngrid:\n  budget.revenue_gbp_per_year: [9.0e7, 1.0e8]\n"
    cases = expand_cases(batch_spec_from_dict(yaml.safe_load(text), text=text))
    assert [c.changes["budget.revenue_gbp_per_year"] for c in cases] == [9.0e7, 1.0e8]


def test_icb_cases_and_demo_scenario():
    spec = batch_spec_from_dict(
        {"name": "i", "icbs": ["Kent and Medway", "E54000053"],
         "grid": {"demand.growth_factor": [1.0, 1.1]}}
    )  # fmt: skip
    cases = expand_cases(spec)
    assert [c.footprint for c in cases] == ["E54000032"] * 2 + ["E54000053"] * 2
    # Built like the hand-made Sussex demo, it lands close to it.
    from pathways.kpis import evaluate
    from pathways.scenario import load_scenario

    built, demo = make_icb_scenario("E54000053"), load_scenario(SUSSEX)
    beds = sum(s.capacity.inpatient_beds for s in built.sites)
    demo_beds = sum(s.capacity.inpatient_beds for s in demo.sites)
    assert beds == pytest.approx(demo_beds, rel=0.05)
    assert {
        s.site_id for s in demo.sites if s.status == "existing" and not s.site_id.startswith("CAND")
    } <= {s.site_id for s in built.sites}
    assert built.hub == demo.hub
    candidates = [s for s in built.sites if s.site_id.startswith("CAND")]
    assert len(candidates) == 27 and sum(s.capacity.crisis_house_places for s in candidates) == 6
    assert all(s.illustrative for s in candidates)
    hospitals = [s for s in built.sites if not s.site_id.startswith("CAND")]
    assert hospitals and not any(s.illustrative for s in hospitals)
    assert all("Beds PUBLISHED" in s.note for s in hospitals)
    cost = evaluate(built).kpis["total_cost_gbp_per_year"]
    assert cost < built.budget.revenue_gbp_per_year <= cost * 1.07 + 5e5
    # A more deprived, larger ICB gets more beds per head than Sussex.
    from pathways.geography import list_icbs

    pop = list_icbs().set_index("icb_cd")["pop_total"]
    manchester = make_icb_scenario("Greater Manchester")
    gm_beds = sum(s.capacity.inpatient_beds for s in manchester.sites)
    assert gm_beds / pop[manchester.footprint.icb] > beds / pop["E54000053"]


# --------------------------------------------------------------------------- running


def direct_kpis(case_changes: dict) -> dict:
    from pathways.kpis import evaluate
    from pathways.scenario import load_scenario, with_changes

    return evaluate(with_changes(load_scenario(SUSSEX), case_changes)).kpis


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    spec = write_spec(out, SMALL)
    seen = []
    result = run_batch(spec, out / "out", workers=2, progress=seen.append)
    return result, seen, spec


def test_local_pool_batch(local_run):
    result, seen, _ = local_run
    frame = pd.read_parquet(result.files["results"])
    assert len(frame) == 6 and result.ran == 6 and result.failed == 0
    assert (frame["status"] == "ok").all()
    for col in ("case_id", "footprint", "demand.growth_factor", "queues.inpatient_los_days",
                "sample", "seed", "solver_status", "gap", "seconds", "admissions_per_year",
                "oap_bed_days_per_year", "total_cost_gbp_per_year"):  # fmt: skip
        assert col in frame.columns, col
    # Every row is what evaluate gives for that case's scenario.
    cases = {c.case_id: c for c in expand_cases(load_batch_spec(local_run[2]))}
    row = frame.iloc[4]
    expected = direct_kpis(cases[row["case_id"]].changes)
    assert row["oap_bed_days_per_year"] == pytest.approx(expected["oap_bed_days_per_year"])
    assert row["admissions_per_year"] == pytest.approx(expected["admissions_per_year"])
    # Higher demand growth means more admissions for the same sample.
    by = frame.set_index(["sample", "demand.growth_factor"])["admissions_per_year"]
    assert all(by[(s, 1.2)] > by[(s, 1.0)] for s in range(3))
    # Progress was reported up to the total.
    assert seen[-1].done == seen[-1].total == 6 and seen[-1].failed == 0
    md = result.files["summary_md"].read_text()
    assert "p95" in md and "admissions_per_year" in md
    assert "plotly" in result.files["summary_html"].read_text()
    with RunStore(result.store_url) as store:
        runs = store.runs_frame(result.batch_id)
    assert len(runs) == 6 and runs["package_version"].notna().all()
    assert runs["host"].notna().all() and runs["started_at"].notna().all()


def test_dask_cluster_gives_the_same_results(local_run, dask_scheduler, tmp_path):
    result, _, spec = local_run
    on_dask = run_batch(spec, tmp_path / "dask", executor=dask_scheduler)
    local = pd.read_parquet(result.files["results"]).drop(columns=TIMING)
    dask = pd.read_parquet(on_dask.files["results"]).drop(columns=TIMING)
    pd.testing.assert_frame_equal(local, dask)
    with RunStore(on_dask.store_url) as store:
        hosts = set(store.runs_frame(on_dask.batch_id)["host"])
    assert hosts  # recorded by the Dask workers


def test_rerun_after_deleting_rows_runs_only_the_missing_cases(local_run, tmp_path):
    result, _, spec = local_run
    out = tmp_path / "again"
    first = run_batch(spec, out, workers=1)
    with RunStore(first.store_url) as store:
        before = store.runs_frame(first.batch_id).set_index("case_id")
        gone = list(before.index[[1, 4]])
        assert store.delete_runs(first.batch_id, gone) == 2
    second = run_batch(spec, out, workers=1)
    assert (second.ran, second.skipped) == (2, 4)
    with RunStore(second.store_url) as store:
        after = store.runs_frame(second.batch_id).set_index("case_id")
    kept = [c for c in before.index if c not in gone]
    # The other cases were not run again: their records are untouched.
    assert (after.loc[kept, "finished_at"] == before.loc[kept, "finished_at"]).all()
    assert (after.loc[gone, "finished_at"] > before.loc[gone, "finished_at"]).all()
    pd.testing.assert_frame_equal(
        pd.read_parquet(second.files["results"]).drop(columns=TIMING),
        pd.read_parquet(result.files["results"]).drop(columns=TIMING),
    )
    third = run_batch(spec, out, workers=1)
    assert (third.ran, third.skipped) == (0, 6)


def test_interrupt_records_finished_cases_and_resumes(local_run, tmp_path):
    _, _, spec = local_run
    out = tmp_path / "stop"

    def stop_after_two(p):
        if p.done - p.skipped >= 2:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as info:
        run_batch(spec, out, workers=1, progress=stop_after_two)
    partial = info.value.result
    # Cases the worker finished before the stop took effect are recorded too: how many
    # depends on the machine's speed, so only the lower bound is fixed.
    assert partial.interrupted and 2 <= partial.ran <= 6
    assert len(pd.read_parquet(out / "results.parquet")) == partial.ran
    resumed = run_batch(spec, out, workers=1)
    assert resumed.skipped == partial.ran and resumed.ran == 6 - partial.ran
    expected = sorted(c.case_id for c in expand_cases(load_batch_spec(spec)))
    assert sorted(resumed.results["case_id"]) == expected


def test_failing_case_is_recorded_and_the_rest_finish(tmp_path):
    spec = {
        "name": "with a failure",
        "base": str(SUSSEX),
        "grid": {
            "footprint.travel_matrix_file": [None, "no_such_matrix.csv"],
            "demand.growth_factor": [1.0, 1.1],
        },
    }
    path = write_spec(tmp_path, spec)
    from pathways.cli import main

    assert main(["batch", str(path), "--out", str(tmp_path / "out"), "--workers", "2"]) == 1
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(frame) == 4
    failed = frame[frame["status"] == "failed"]
    ok = frame[frame["status"] == "ok"]
    assert list(failed["footprint.travel_matrix_file"]) == ["no_such_matrix.csv"] * 2
    assert ok["footprint.travel_matrix_file"].isna().all()
    assert failed["error"].str.len().gt(10).all()
    assert failed["admissions_per_year"].isna().all()
    assert ok["admissions_per_year"].notna().all()
    assert "Failed cases" in (tmp_path / "out" / "summary.md").read_text()


def _recorded(db: Path) -> int:
    if not db.exists():  # sqlite3.connect would create it
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("select count(*) from runs").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_ctrl_c_on_the_command_line_then_resume(tmp_path):
    spec = write_spec(tmp_path, SMALL | {"monte_carlo": SMALL["monte_carlo"] | {"samples": 60}})
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pathways.cli", "batch", str(spec), "--out", str(out),
         "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True,
        env={**os.environ, "COLUMNS": "120"},
        # as from a terminal: a test run in the background (where the shell ignores
        # SIGINT, and children inherit that) must not make Ctrl-C a no-op
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while _recorded(out / "runs.db") == 0 and proc.poll() is None:
            assert time.monotonic() < deadline, "no case was recorded"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    message = err.decode()
    assert proc.returncode == 130, message
    assert "run the same command again to resume" in message.lower()
    done = _recorded(out / "runs.db")
    assert 0 < done <= 120  # chunks that finish while the batch stops are recorded too
    resumed = run_batch(spec, out, workers=2)
    assert resumed.skipped == done and resumed.ran == 120 - done
    assert len(resumed.results) == 120 and (resumed.results["status"] == "ok").all()


# --------------------------------------------------------------------------- optimise outputs


def test_min_max_regret_choice():
    objectives = np.array([[10.0, 30.0, 20.0], [12.0, 22.0, 24.0], [20.0, 20.0, 20.0]])
    best, regret = min_max_regret(objectives)
    assert regret.min(axis=0).tolist() == [0.0, 0.0, 0.0]
    assert regret.max(axis=1).tolist() == [10.0, 4.0, 10.0]
    assert best == 1


def plan_variant(scenario, beds: int, crisis_house: bool):
    """Today's plan with other beds at the first site and optionally a crisis house at CAND01."""
    from pathways.plan import SitePlan, baseline_plan

    plan = baseline_plan(scenario)
    sites = []
    for sp in plan.sites:
        cap = sp.capacity
        if sp.site_id == scenario.sites[0].site_id:
            cap = cap.model_copy(update={"inpatient_beds": beds})
        if sp.site_id == "CAND01" and crisis_house:
            cap = cap.model_copy(update={"crisis_house_places": 8})
        sites.append(SitePlan(site_id=sp.site_id, capacity=cap))
    return plan.model_copy(update={"name": f"{beds} beds", "sites": tuple(sites)})


def test_monte_carlo_optimise_outputs_from_recorded_plans(tmp_path):
    """Sample plans recorded by an earlier run give site selection and the robust plan."""
    from pathways.kpis import evaluate
    from pathways.optimise import objective_value
    from pathways.scenario import load_scenario, with_changes

    spec = batch_spec_from_dict(
        {
            "name": "robust",
            "base": str(SUSSEX),
            "run": "optimise",
            "monte_carlo": {
                "samples": 3,
                "seed": 11,
                "parameters": {
                    "demand.episodes_per_100k_per_year": {
                        "dist": "uniform", "low": 1000, "high": 1800, "unit": "per 100k"},
                },
            },
            "solver": {"time_limit_s": 5},
        }
    )  # fmt: skip
    cases = expand_cases(spec)
    base = load_scenario(SUSSEX)
    plans = [plan_variant(base, b, ch) for b, ch in ((60, True), (90, False), (130, False))]
    out = tmp_path / "out"
    out.mkdir()
    with RunStore(out / "runs.db") as store:
        batch = store.start_batch("recorded earlier", spec_hash=batch_key(spec))
        for case, plan in zip(cases, plans, strict=True):
            card = evaluate(with_changes(base, case.changes), plan)
            store.record_run(
                batch, case.case_id, case_hash=case.case_hash, inputs=case.inputs,
                status="ok", kpis=card.kpis, plan=plan.model_dump(mode="json"),
                solver_status="OPTIMAL", gap=0.0, seed=case.seed,
            )  # fmt: skip

    result = run_batch(spec, out, workers=1)
    assert (result.ran, result.skipped) == (0, 3)

    # The robust plan is the sample plan with the smallest maximum regret.
    scenarios = [with_changes(base, c.changes) for c in cases]
    obj = np.array(
        [
            [objective_value(evaluate(s, p), s.objective.mode, s.objective.weights)
             for s in scenarios]
            for p in plans
        ]
    )  # fmt: skip
    best, regret = min_max_regret(obj)
    robust = load_plan(out / "robust_plan.yaml")
    assert robust.sites == plans[best].sites
    card = pd.read_csv(out / "robust_scorecard.csv")
    assert list(card["case_id"]) == [c.case_id for c in cases]
    assert card["regret"].tolist() == pytest.approx(regret[best].tolist())
    expected = [evaluate(s, plans[best]).kpis["oap_bed_days_per_year"] for s in scenarios]
    assert card["oap_bed_days_per_year"].tolist() == pytest.approx(expected)

    selection = pd.read_csv(out / "site_selection.csv").set_index(["site_id", "service"])
    assert selection.loc[("CAND01", "crisis_house"), "times_chosen"] == 1
    assert selection.loc[("CAND01", "crisis_house"), "share_chosen"] == pytest.approx(1 / 3)
    first = (base.sites[0].site_id, "inpatient")
    assert selection.loc[first, "capacity_median"] == 90
    assert selection.loc[first, "times_chosen"] == 3
    assert sorted(p.stem for p in (out / "plans").iterdir()) == sorted(c.case_id for c in cases)


@pytest.mark.slow
def test_optimise_cases_record_a_plan_or_the_error(tmp_path):
    """Two short optimise cases: the demo budget solves, GBP 1M cannot fund the locked services.

    The solved case has its plan file and solver report, and its KPIs are those evaluate
    gives the plan; the infeasible case has its error, no plan file, and a line in the
    summary's failed cases.
    """
    from pathways.kpis import evaluate
    from pathways.plan import STATUSES
    from pathways.scenario import load_scenario, with_changes

    spec = write_spec(
        tmp_path,
        {"name": "opt", "base": str(SUSSEX), "run": "optimise",
         "grid": {"budget.revenue_gbp_per_year": [60e6, 1e6]},
         "solver": {"time_limit_s": 10, "gap": 0.01}},
    )  # fmt: skip
    out = tmp_path / "out"
    result = run_batch(spec, out, workers=1)
    rows = result.results.set_index("budget.revenue_gbp_per_year").to_dict("index")
    assert set(rows) == {60e6, 1e6}
    ok, bad = rows[60e6], rows[1e6]

    assert ok["status"] == "ok", ok["error"]
    assert ok["solver_status"] in STATUSES and ok["solver_seconds"] > 0
    plan = load_plan(out / "plans" / f"{ok['case_id']}.yaml")
    scenario = with_changes(load_scenario(SUSSEX), {"budget.revenue_gbp_per_year": 60e6})
    card = evaluate(scenario, plan)
    for k in ("oap_bed_days_per_year", "admissions_per_year", "total_cost_gbp_per_year"):
        assert ok[k] == pytest.approx(card.kpis[k]), k
    assert card.kpis["total_cost_gbp_per_year"] <= 60e6 * (1 + 1e-6)

    assert bad["status"] != "ok"
    assert "cannot fund the locked services" in bad["error"]
    assert not (out / "plans" / f"{bad['case_id']}.yaml").exists()
    failed = result.files["summary_md"].read_text().split("## Failed cases", 1)
    assert len(failed) == 2 and bad["case_id"] in failed[1] and ok["case_id"] not in failed[1]


# --------------------------------------------------------------------------- resuming after a crash


def record_cases(out: Path, spec, statuses: list[str], plans=None) -> list:
    """Record the spec's cases as an earlier run would have (with ``statuses``)."""
    from pathways.kpis import evaluate
    from pathways.scenario import load_scenario, with_changes

    cases = expand_cases(spec)
    base = load_scenario(SUSSEX)
    out.mkdir(parents=True, exist_ok=True)
    with RunStore(out / "runs.db") as store:
        batch = store.start_batch("recorded earlier", spec_hash=batch_key(spec))
        for i, (case, status) in enumerate(zip(cases, statuses, strict=True)):
            plan = plans[i] if plans is not None else None
            ok = status in ("ok", "infeasible")
            card = evaluate(with_changes(base, case.changes), plan) if status == "ok" else None
            store.record_run(
                batch, case.case_id, case_hash=case.case_hash, inputs=case.inputs,
                status=status, kpis=card.kpis if card else None,
                plan=plan.model_dump(mode="json") if plan is not None and ok else None,
                error=None if ok else f"{status} earlier", seed=case.seed,
            )  # fmt: skip
    return cases


def test_resume_reruns_cases_without_a_plan_in_time_and_failed_ones_only_when_asked(tmp_path):
    spec = batch_spec_from_dict(
        {"name": "retry", "base": str(SUSSEX), "grid": {"demand.growth_factor": [1.0, 1.1, 1.2, 1.3]}}
    )  # fmt: skip
    out = tmp_path / "out"
    statuses = ["ok", "no_plan_in_time", "failed", "infeasible"]
    cases = record_cases(out, spec, statuses)
    with RunStore(out / "runs.db") as store:
        before = store.runs_frame(store.start_batch("", spec_hash=batch_key(spec)))
    before = before.set_index("case_id")["finished_at"]

    # A case that stopped on the clock before any plan runs again; a failed one does not.
    first = run_batch(spec, out, workers=1)
    assert (first.ran, first.skipped) == (1, 3)
    status = first.results.set_index("case_id")["status"]
    assert status[cases[1].case_id] == "ok"
    assert status[cases[2].case_id] == "failed"
    assert first.failed == 1
    # With retry_failed the failed case runs again too; answers are never re-run.
    second = run_batch(spec, out, workers=1, retry_failed=True)
    assert (second.ran, second.skipped) == (1, 3)
    assert (second.results["status"] == ["ok", "ok", "ok", "infeasible"]).all()
    with RunStore(out / "runs.db") as store:
        after = store.runs_frame(second.batch_id).set_index("case_id")["finished_at"]
    for kept in (cases[0], cases[3]):
        assert after[kept.case_id] == before[kept.case_id]
    assert len(second.results) == 4 and second.results["case_id"].is_unique


def optimise_spec():
    return batch_spec_from_dict(
        {"name": "plans", "base": str(SUSSEX), "run": "optimise",
         "grid": {"budget.revenue_gbp_per_year": [60e6, 65e6]}, "solver": {"time_limit_s": 5}}
    )  # fmt: skip


def test_a_truncated_plan_file_is_written_again_on_resume(tmp_path, capsys):
    from pathways.cli import main
    from pathways.scenario import load_scenario

    spec = optimise_spec()
    base = load_scenario(SUSSEX)
    plans = [plan_variant(base, 90, False), plan_variant(base, 100, True)]
    out = tmp_path / "out"
    cases = record_cases(out, spec, ["ok", "ok"], plans)
    first = run_batch(spec, out, workers=1)
    assert (first.ran, first.skipped) == (0, 2)
    files = [out / "plans" / f"{c.case_id}.yaml" for c in cases]
    whole = [f.read_bytes() for f in files]
    # A plan file cut short (as a plan written in place by an older version, killed
    # part way, could be) is not taken as done: it is written again from the run store.
    files[1].write_bytes(whole[1][: len(whole[1]) // 2])
    with pytest.raises(InputError):
        load_plan(files[1])
    again = run_batch(spec, out, workers=1)
    assert (again.ran, again.skipped) == (0, 2)
    assert [f.read_bytes() for f in files] == whole
    assert load_plan(files[1]).sites == plans[1].sites
    assert len(again.results) == 2 and again.results["case_id"].is_unique
    assert main(["evaluate", str(SUSSEX), "--plan", str(files[1])]) == 0
    assert "admissions" in capsys.readouterr().out.lower()
    # Every output is whole: no temporary file is left next to them.
    assert not [p for p in out.rglob("*.tmp")]


def test_a_solved_case_whose_recorded_plan_cannot_be_read_runs_again(tmp_path):
    from pathways.batch import _cases_without_their_plan
    from pathways.scenario import load_scenario

    spec = optimise_spec()
    base = load_scenario(SUSSEX)
    out = tmp_path / "out"
    cases = record_cases(out, spec, ["ok", "ok"], [plan_variant(base, 90, False)] * 2)
    with RunStore(out / "runs.db") as store:
        batch = store.start_batch("", spec_hash=batch_key(spec))
        recorded = store.finished_cases(batch)
        assert _cases_without_their_plan(spec, store, batch, recorded) == set()
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "update runs set plan = substr(plan, 1, 40) where case_id = ?",
                (cases[1].case_id,),
            )
        assert _cases_without_their_plan(spec, store, batch, recorded) == {cases[1].case_id}
