"""Results' simulated years: bands today vs the plan, OAPs by day, cached per plan, run as a job."""

from __future__ import annotations

import sys
import types

import pytest
from dash import no_update

from dashapp import simulation as sim
from dashapp import state
from pathways.simulate import SimParams, simulate
from tests.dash_text import component_text as _text
from tests.unit.test_dashapp_pages import _fresh_result


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    from dashapp.app import create_app

    if "dashapp.pages.results" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    return types.SimpleNamespace(results=sys.modules["dashapp.pages.results"])


@pytest.fixture
def config(tmp_path, monkeypatch) -> state.AppConfig:
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    return state.resolve_config()


@pytest.fixture
def quick(monkeypatch):
    """Simulate 30 days after a 10-day warm-up (instead of a year after 60 days)."""
    monkeypatch.setattr(sim, "SimParams", lambda: SimParams(years=30 / 365, warmup_days=10))


@pytest.fixture
def demo() -> dict:
    return state.scenario_to_store(state.demo_scenario())


def test_today_only_then_with_the_plan(config, demo, quick):
    steps = []
    store, status = sim.run_simulation(demo, None, "2", lambda pct, text: steps.append((pct, text)))
    assert set(store["runs"]) == {"today"} and store["reps"] == 2
    assert status["kind"] == "success" and "Run the optimiser" in _text(status)
    assert steps[-1][0] == pytest.approx(100) and "year 2 of 2" in steps[-1][1]
    # the page's numbers are the library's: the same seed and settings give the same means
    direct = simulate(state.scenario_from_store(demo), reps=2, seed=sim.SIM_SEED,
                      params=SimParams(years=30 / 365, warmup_days=10))  # fmt: skip
    got = store["runs"]["today"]["kpis"]["oap_bed_days_per_year"]
    assert got["mean"] == pytest.approx(direct.mean("oap_bed_days_per_year"), rel=1e-6)
    assert got["low"] <= got["mean"] <= got["high"]
    assert len(store["runs"]["today"]["daily"]["mean"]) == 30

    scenario = state.scenario_from_store(demo)
    result = _fresh_result(scenario)
    with_plan, status = sim.run_simulation(demo, result, 2)
    assert set(with_plan["runs"]) == {"today", "plan"}
    assert "Run the optimiser" not in _text(status)
    # the plan has more beds: fewer people out of area on average over the window
    mean = lambda name: sum(with_plan["runs"][name]["daily"]["mean"])  # noqa: E731
    assert mean("plan") < mean("today")
    rows = sim.band_rows(with_plan)
    by = {r["kpi"]: r for r in rows}
    assert "Days with someone out of area" in by and by["Admissions a year"]["plan"] != ""
    assert " to " in by["Out-of-area bed-days a year"]["today"]


def test_a_plan_simulated_before_comes_from_the_cache(config, demo, quick, monkeypatch):
    first, _ = sim.run_simulation(demo, None, 2)
    class Simulated(Exception):
        pass

    def no_simulation(*_a, **_k):
        raise Simulated

    monkeypatch.setattr(sim, "simulate", no_simulation)
    again, status = sim.run_simulation(demo, None, 2)  # would raise if it simulated
    assert again == first
    assert "from the cache" in _text(status)
    with pytest.raises(Simulated):  # other inputs are another simulation: the cache misses
        sim.run_simulation(demo, None, 3)


def test_years_out_of_bounds_are_refused(pages, demo):
    request, job, status = pages.results.request_simulation("1", demo, None)
    assert request is no_update and job is no_update
    assert status["kind"] == "error" and "Simulated years" in _text(status)
    request, job, status = pages.results.request_simulation("ten", demo, None)
    assert request is no_update and "not a number" in _text(status)


def test_the_view_only_shows_a_simulation_of_this_scenario_and_plan(pages, config, demo, quick):
    store, _ = sim.run_simulation(demo, None, 2)
    note, rows, fig = pages.results.simulation_view(demo, None, store)
    assert rows and len(fig.data) == 3  # band (and its hover line), mean
    assert "2 simulated years" in _text(note)
    # an optimised plan arrived since: the today-only simulation no longer answers
    result = _fresh_result(state.scenario_from_store(demo))
    note, rows, fig = pages.results.simulation_view(demo, result, store)
    assert rows == [] and "simulate again" in _text(note)
    # another scenario: the same
    other = state.scenario_to_store(
        state.scenario_from_store(demo).model_copy(update={"name": "other"})
    )
    note, rows, _ = pages.results.simulation_view(other, None, store)
    assert rows == []
    note, rows, _ = pages.results.simulation_view(demo, None, None)
    assert rows == [] and "press Simulate" in _text(note)


def test_the_job_runs_through_the_job_board(pages, config, demo, quick):
    request, job, status = pages.results.request_simulation("2", demo, None)
    assert status is None and job["kind"] == "simulate"
    seen = []
    out_status, store, job_after = pages.results.on_simulate(seen.append, request)
    assert out_status["kind"] == "success" and set(store["runs"]) == {"today"}
    assert job_after is None and seen and seen[-1][0]["pct"] == pytest.approx(100)
    with state.job_board() as board:
        assert board.get(request["job_id"])["state"] == "done"


def test_intervals_stay_within_what_the_measure_can_hold():
    store = {"runs": {"today": {"kpis": {
        "inpatient_occupancy": {"mean": 0.95, "low": 0.79, "high": 1.11, "model": 0.94},
        "oap_any_day_share": {"mean": 0.6, "low": -0.1, "high": 1.3, "model": None},
        "oap_placements_per_year": {"mean": 700.0, "low": -20.0, "high": 1400.0, "model": 75.5},
    }, "daily": {}}}}  # fmt: skip
    by = {r["kpi"]: r for r in sim.band_rows(store)}
    assert by["Inpatient bed occupancy"]["today"] == "95.0% (79.0% to 100.0%)"
    assert by["Days with someone out of area"]["today"] == "60.0% (0.0% to 100.0%)"
    assert by["Out-of-area placements a year"]["today"] == "700 (0.0 to 1,400)"
    assert by["Out-of-area placements a year"]["today_model"] == "75.5"
    assert by["Out-of-area placements a year"]["plan"] == ""  # no plan simulated
