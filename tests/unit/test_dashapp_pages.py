"""Page callbacks, called directly: parse state -> call pathways -> figures and messages."""

from __future__ import annotations

import base64
import io
import sys
import types
from pathlib import Path

import openpyxl
import plotly.graph_objects as go
import pyogrio
import pytest
from dash import html, no_update

from dashapp import state
from pathways.errors import InfeasibleError
from pathways.kpis import evaluate
from pathways.plan import Plan, SitePlan, baseline_plan
from pathways.scenario import Capacity, with_changes
from tests.dash_text import component_text as _text

SUSSEX = "E54000053"
DORSET = "E54000041"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page modules (they register themselves with the app that runs them)."""
    from dashapp.app import create_app

    if "dashapp.pages.results" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    names = ("footprint", "services", "assumptions", "optimise", "results", "compare", "export")
    return types.SimpleNamespace(**{n: sys.modules[f"dashapp.pages.{n}"] for n in names})


@pytest.fixture
def config(tmp_path, monkeypatch) -> state.AppConfig:
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv(state.ENV_STORE_URL, f"sqlite:///{tmp_path / 'store.db'}")
    return state.resolve_config()


@pytest.fixture
def demo() -> dict:
    return state.scenario_to_store(state.demo_scenario())


def _upload(text: str, mime: str = "text/csv") -> str:
    return f"data:{mime};base64," + base64.b64encode(text.encode()).decode()


def _fresh_result(scenario) -> dict:
    """A stored optimisation result: today's plan with more beds and a crisis house opened."""
    base = baseline_plan(scenario)
    first, cand = scenario.sites[0], next(s for s in scenario.sites if s.status == "candidate")
    sites = []
    for sp in base.sites:
        if sp.site_id == first.site_id:
            sp = SitePlan(site_id=sp.site_id, capacity=sp.capacity.model_copy(
                update={"inpatient_beds": sp.capacity.inpatient_beds + 6}))  # fmt: skip
        elif sp.site_id == cand.site_id:
            sp = SitePlan(site_id=sp.site_id, capacity=Capacity(crisis_house_places=8))
        sites.append(sp)
    plan = Plan(name="optimised", sites=tuple(sites), hub=base.hub)
    cards = {
        "current": evaluate(scenario).to_dict(),
        "optimised": evaluate(scenario, plan).to_dict(),
    }
    return {"scenario_fingerprint": scenario.fingerprint(), "scenario_name": scenario.name,
            "plan": plan.model_dump(mode="json"), "baselines": {}, "cards": cards, "objectives": {},
            "budget_gbp": 6e7, "mode": "min_weighted", "seconds": 3.0}  # fmt: skip


# --------------------------------------------------------------------------- footprint


def test_footprint_first_view_shows_the_session_icb(pages, demo):
    out = pages.footprint.choose(None, None, None, None, demo)
    assert out[3] == SUSSEX and out[0] is no_update


def test_choosing_an_icb_replaces_the_scenario_and_clears_results(pages, demo):
    scenario, result, frontier, value, note = pages.footprint.choose(
        "footprint-icb", DORSET, None, None, demo
    )
    assert state.scenario_from_store(scenario).footprint.icb == DORSET
    assert result is None and frontier is None and value == DORSET
    assert "assumed capacities" in _text(note) or "ASSUMED" in _text(note)


def test_bad_area_upload_lists_problems_with_row_and_field(pages, demo, config):
    csv = "area_code,population,x,y\nA1,100,530000,110000\nA1,-5,530100,110100\n"
    out = pages.footprint.choose("footprint-upload", SUSSEX, _upload(csv), "areas.csv", demo)
    assert out[0] is no_update
    text = _text(out[4])
    assert "areas.csv" in text and "population" in text and "3" in text


def test_good_area_upload_switches_the_footprint(pages, demo, config):
    csv = "area_code,population,x,y\nA1,1000,530000,110000\nA2,2000,540000,112000\n"
    scenario, *_ = pages.footprint.choose(
        "footprint-upload", SUSSEX, _upload(csv), "mine.csv", demo
    )
    s = state.scenario_from_store(scenario)
    assert s.footprint.areas_file and Path(s.footprint.areas_file).exists()
    table = state.area_table(s)
    assert list(table.index) == ["A1", "A2"] and table["population"].sum() == 3000
    assert state.footprint_label(s) == "uploaded areas (mine)"  # no folders or digests
    assert table["imd_decile"].between(1, 10).all()  # taken from the ICB


@pytest.mark.parametrize("metric", ["population", "demand_per_100k", "imd_decile", "nonsense"])
def test_footprint_render(pages, demo, metric):
    fig, cards = pages.footprint.render(demo, metric, None)
    assert isinstance(fig, go.Figure) and len(fig.data[0].locations) == 995
    assert "1,659,921" in _text(cards)


# --------------------------------------------------------------------------- services


def test_services_first_view_fills_the_table(pages, demo):
    scenario, rows, note = pages.services.update_sites(None, None, None, None, None, demo)
    assert scenario is no_update and len(rows) == len(demo["sites"])


def test_editing_capacity_updates_the_scenario(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    rows[0]["mobile_teams"] = 5
    scenario, out_rows, note = pages.services.update_sites("edit", rows, None, None, None, demo)
    assert state.scenario_from_store(scenario).sites[0].capacity.mobile_teams == 5
    assert out_rows[0]["mobile_teams"] == 5 and "Saved" in _text(note)


def test_invalid_edit_keeps_the_scenario_and_explains(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    rows[2]["inpatient_beds"] = -3
    scenario, out_rows, note = pages.services.update_sites("edit", rows, None, None, None, demo)
    assert scenario is no_update
    assert out_rows[2]["inpatient_beds"] == -3  # the user's entry stays visible
    text = _text(note)
    # names the row and the column as the table shows them, and what is allowed; it is an
    # edit, not an upload
    assert "Beds" in text and " 3 " in text and "between 0 and 1,000" in text
    assert "upload" not in text.lower() and "Nothing was changed" in text


def test_clicking_an_area_adds_a_candidate_there(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    table = state.area_table(state.scenario_from_store(demo))
    code = table.index[10]
    click = {"points": [{"location": code}]}
    scenario, out_rows, _ = pages.services.update_sites(
        "services-map", rows, click, None, None, demo
    )
    s = state.scenario_from_store(scenario)
    assert len(s.sites) == len(rows) + 1
    new = s.sites[-1]
    assert new.status == "candidate" and table.at[code, "name"] in new.name
    assert new.x_m == pytest.approx(table.at[code, "x"], abs=2)


def test_clicking_a_site_marker_does_not_add_one(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    click = {"points": [{"customdata": "RX213"}]}
    scenario, out_rows, note = pages.services.update_sites(
        "services-map", rows, click, None, None, demo
    )
    assert scenario is no_update and "RX213" in _text(note)


def test_add_button_adds_a_row(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    scenario, out_rows, _ = pages.services.update_sites(
        "services-add", rows, None, None, None, demo
    )
    assert len(out_rows) == len(rows) + 1
    page = pages.services.page_showing_new_rows("services-add", rows, out_rows)
    assert page == len(rows) // pages.services.PAGE_SIZE
    assert pages.services.page_showing_new_rows("edit", rows, rows) is no_update


def test_bad_sites_upload_shows_file_row_and_field(pages, demo, config):
    csv = "site_id,name,x,y,inpatient_beds\nN1,Good,530000,110000,10\nN2,,530000,110000,ten\n"
    scenario, rows, note = pages.services.update_sites(
        "services-upload",
        state.site_rows(state.scenario_from_store(demo)),
        None,
        _upload(csv),
        "bad.csv",
        demo,
    )
    assert scenario is no_update and rows is no_update
    text = _text(note)
    assert (
        "bad.csv" in text and "inpatient_beds" in text and "name" in text and " 3 " in f" {text} "
    )


def test_good_sites_upload_adds_sites(pages, demo, config):
    csv = "site_id,name,x,y,services,crisis_house_places,status\nN1,New house,530000,110000,crisis_house,6,candidate\n"
    scenario, rows, note = pages.services.update_sites(
        "services-upload",
        state.site_rows(state.scenario_from_store(demo)),
        None,
        _upload(csv),
        "ok.csv",
        demo,
    )
    s = state.scenario_from_store(scenario)
    assert s.site("N1").capacity.crisis_house_places == 6 and s.site("N1").status == "candidate"


def test_map_hover_names_the_area(pages, demo):
    fig, _ = pages.footprint.render(demo, "population", None)
    table = state.area_table(state.scenario_from_store(demo))
    code = fig.data[0].locations[0]
    assert fig.data[0].hovertext[0].startswith(f"<b>{table.at[code, 'name']}</b> ({code})")
    assert table.at[code, "name"] != code


def test_services_map_has_sites(pages, demo):
    fig = pages.services.render(demo, None)
    assert any(t.name == "Inpatient beds" for t in fig.data)


# --------------------------------------------------------------------------- assumptions


def test_assumption_rows_cover_every_parameter(pages):
    from pathways.scenario import parameter_table

    rows = pages.assumptions.parameter_rows(state.demo_scenario())
    assert {r["path"] for r in rows} == {p["path"] for p in parameter_table()}
    assert all(r["tier"] != pages.assumptions.OTHER_TIER for r in rows)


def test_changing_an_assumption_applies_it(pages, demo):
    paths = ["demand.growth_factor", "queues.oap_los_days"]
    scenario, form, errors, tags, note = pages.assumptions.edit(
        {"type": "assumptions-num", "path": "demand.growth_factor"},
        {"demand.growth_factor": 1.2, "queues.oap_los_days": 40.0}, {}, paths, demo,
    )  # fmt: skip
    assert state.scenario_from_store(scenario).demand.growth_factor == 1.2
    assert errors == [None, None] and "1 change" in _text(note)
    assert tags == ["changed", None]


def test_invalid_assumption_is_explained_at_its_field(pages, demo):
    scenario, _, errors, _, note = pages.assumptions.edit(
        {"type": "assumptions-num", "path": "demand.growth_factor"},
        {"demand.growth_factor": -1, "queues.oap_los_days": 45.0},
        {"demand.hourly_profile": "[0.5, 0.5"}, ["demand.growth_factor", "demand.hourly_profile", "queues.oap_los_days"],
        demo,
    )  # fmt: skip
    assert "greater than 0" in errors[0]
    assert "JSON" in errors[1] and errors[2] is None
    assert (
        state.scenario_from_store(scenario).queues.oap_los_days == 45.0
    )  # the valid one still applied
    assert "could not be used" in _text(note)


def test_presets_and_reset(pages, demo):
    ids = ["demand.growth_factor", "pathway.routing"]
    scenario, form, errors, tags, _ = pages.assumptions.edit(
        "assumptions-preset-crisis-now", {}, {}, ids, demo
    )
    assert errors == [no_update] * 2 and tags == [no_update] * 2  # one value per wildcard output
    s = state.scenario_from_store(scenario)
    assert (
        s.pathway.preset == "crisis_now"
        and s.pathway.routing["place_of_safety"]["inpatient"] == 1.0
    )
    assert isinstance(form, list) and all(isinstance(d, html.Details) for d in form)
    changed = state.scenario_to_store(with_changes(s, {"demand.growth_factor": 1.5}))
    scenario, *_ = pages.assumptions.edit("assumptions-reset", {}, {}, [], changed)
    s = state.scenario_from_store(scenario)
    assert s.demand.growth_factor == 1.0 and s.pathway.preset == "nhs_default"


def test_page_render_calls_are_not_edits(pages, demo):
    scenario, form, errors, tags, note = pages.assumptions.edit(
        None, {"demand.growth_factor": 1.0}, {}, ["x"], demo
    )
    assert scenario is no_update and note is no_update


# --------------------------------------------------------------------------- optimise


def test_optimise_controls_round_trip(pages):
    s = state.demo_scenario()
    values = dict(zip(pages.optimise.SETTINGS, pages.optimise.control_values(s), strict=True))
    assert float(values["mobile-min"]) == pytest.approx(
        s.constraints.mobile_within_standard_share_min * 100
    )
    again, errors = pages.optimise.apply_controls(s, values)
    assert not errors
    assert (
        again.constraints == s.constraints
        and again.budget == s.budget
        and again.objective == s.objective
    )


def test_optimise_settings_validated(pages, demo):
    values = dict(
        zip(
            pages.optimise.SETTINGS,
            pages.optimise.control_values(state.demo_scenario()),
            strict=True,
        )
    )
    values["mobile-min"] = 150
    result, scenario, status = pages.optimise.run_optimisation(demo, values, 5)
    assert result is no_update and scenario is no_update
    assert "Mobile responses within the response standard must be between 0 and 100 (%)" in _text(
        status
    )


def test_run_optimisation_stores_a_fresh_result(pages, demo, monkeypatch):
    import pathways.optimise as opt

    def fake(scenario, options):
        options.progress("solving", 0.5)
        r = _fresh_result(scenario)
        plan = Plan.model_validate(r["plan"])
        cards = {"current": evaluate(scenario), "optimised": evaluate(scenario, plan)}
        return opt.OptimiseResult(plan=plan, baselines={}, cards=cards, objectives={"current": 1.0, "optimised": 0.5},
                                  goals=types.SimpleNamespace(budget_gbp=6e7, mode="min_weighted"))  # fmt: skip

    monkeypatch.setattr(opt, "optimise_with_baselines", fake)
    values = dict(
        zip(
            pages.optimise.SETTINGS,
            pages.optimise.control_values(state.demo_scenario()),
            strict=True,
        )
    )
    values["budget"] = 61.5
    result, scenario, status = pages.optimise.run_optimisation(demo, values, 5)
    s = state.scenario_from_store(scenario)
    assert s.budget.revenue_gbp_per_year == pytest.approx(61.5e6)
    assert state.result_is_fresh(result, s)
    assert set(result["cards"]) == {"current", "optimised"}
    assert status["link"] == "/results"
    # the result says what it was made under, and judges every plan against the limits:
    # this plan leaves mobile responses at today's 70%, below the scenario's 80% minimum
    assert result["settings"]["time_limit_s"] == 5 and result["settings"]["budget_gbp"] == 6e7
    assert any("mobile responses" in b for b in result["breaches"]["optimised"])
    assert status["kind"] == "warning" and "breaks a limit" in _text(status)


def test_infeasible_optimisation_explains_why(pages, demo, monkeypatch):
    import pathways.optimise as opt

    def fake(scenario, options):
        raise InfeasibleError(["the budget cannot fund the locked services"])

    monkeypatch.setattr(opt, "optimise_with_baselines", fake)
    values = dict(
        zip(
            pages.optimise.SETTINGS,
            pages.optimise.control_values(state.demo_scenario()),
            strict=True,
        )
    )
    result, scenario, status = pages.optimise.run_optimisation(demo, values, 5)
    assert result is no_update  # the last good result is kept (the badge shows it is out of date)
    assert "the budget cannot fund the locked services" in _text(status)


def test_unexpected_failure_is_a_message_not_a_traceback(pages, demo, monkeypatch):
    import pathways.optimise as opt

    monkeypatch.setattr(opt, "optimise_with_baselines", lambda s, o: 1 / 0)
    values = dict(
        zip(
            pages.optimise.SETTINGS,
            pages.optimise.control_values(state.demo_scenario()),
            strict=True,
        )
    )
    _, _, status = pages.optimise.run_optimisation(demo, values, 5)
    assert "Something went wrong" in _text(status) and "Traceback" not in _text(status)


# --------------------------------------------------------------------------- results


def test_results_without_a_plan_show_today(pages, demo):
    out = pages.results.build(demo, None, "mobile_response_mins", "admissions_per_year", None)
    status, fig, chart, rows, cols = out[:5]
    assert "today's capacity" in _text(status)
    assert [c["id"] for c in cols][:2] == ["kpi", "current"]
    assert out[9] == [] and "No plan yet" in _text(out[11])
    assert type(fig.data[0]).__name__ == "Choroplethmap"


def test_results_with_a_fresh_plan(pages, demo):
    s = state.scenario_from_store(demo)
    result = _fresh_result(s)
    out = pages.results.build(
        demo, result, "admissions_per_100k", "mobile_response_within_standard_share", None
    )
    status, fig, chart, rows, cols, styles, equity, q_rows, q_cols, changes, _, note = out
    assert "optimised plan" in _text(status)
    assert "optimised" in [c["id"] for c in cols] and "change" in [c["id"] for c in cols]
    # Six more beds and a crisis house: fewer admissions and OAPs, more crisis-house stays,
    # shorter journeys, a higher bill; mobile teams and the hub are untouched; occupancy
    # gets no verdict.
    from dashapp.components import kpi_label

    expected = {
        "admissions_per_year": "better",
        "oap_placements_per_year": "better",
        "oap_bed_days_per_year": "better",
        "oap_cost_gbp_per_year": "better",
        "inpatient_occupancy": "",
        "crisis_house_episodes_per_year": "better",
        "mobile_response_within_standard_share": "no change",
        "hub_service_level": "no change",
        "mean_travel_mins": "better",
        "p95_travel_mins": "better",
        "total_cost_gbp_per_year": "worse",
    }
    verdicts = {r["kpi"]: r["verdict"] for r in rows}
    assert verdicts == {kpi_label(k): v for k, v in expected.items()}
    assert {c["what"] for c in changes} == {"grows", "opens"}
    assert [t.name for t in equity.data] == ["Today", "Optimised"]
    assert len(q_rows) == 5


def test_results_with_a_stale_plan_warn(pages, demo):
    s = state.scenario_from_store(demo)
    result = _fresh_result(s)
    changed = state.scenario_to_store(with_changes(s, {"demand.growth_factor": 1.1}))
    out = pages.results.build(changed, result, None, None, None)
    assert "no longer applies" in _text(out[0]) and out[9] == []


def test_frontier_view_ignores_other_scenarios(pages, demo):
    fig = pages.results.frontier_view(demo, {"scenario_fingerprint": "other", "rows": []}, None)
    assert fig.layout.annotations
    s = state.scenario_from_store(demo)
    rows = [{"budget_gbp_per_year": 6e7, "oap_bed_days_per_year": 100.0, "admissions_per_year": 10.0},
            {"budget_gbp_per_year": 6.5e7, "oap_bed_days_per_year": 80.0, "admissions_per_year": 9.0}]  # fmt: skip
    fig = pages.results.frontier_view(
        demo, {"scenario_fingerprint": s.fingerprint(), "rows": rows}, None
    )
    assert list(fig.data[0].y) == [100.0, 80.0]


def test_frontier_budgets_span_from_today(pages):
    b = pages.results.frontier_budgets(100.0, 20, steps=4)
    assert b == pytest.approx([100, 105, 110, 115, 120])


# --------------------------------------------------------------------------- compare


def test_save_list_compare_open_delete(pages, demo, config):
    s = state.scenario_from_store(demo)
    note, saved = pages.compare.save("today", demo, None, config)
    assert saved and "today's capacity" in _text(note)
    note, saved = pages.compare.save("with plan", demo, _fresh_result(s), config)
    assert saved and "optimised plan" in _text(note)
    note, saved = pages.compare.save("  ", demo, None, config)
    assert not saved
    out = pages.compare.act(None, [], [], config)
    rows = out[0]
    assert [r["name"] for r in rows] == ["today", "with plan"]
    out = pages.compare.act("compare-run", rows, [0, 1], config)
    t_rows, t_cols, fig = out[2], out[3], out[4]
    assert [c["id"] for c in t_cols] == ["kpi", "today", "with plan"]
    assert len(t_rows) >= 10 and {t.name for t in fig.data} == {"today", "with plan"}
    out = pages.compare.act("compare-run", rows, [0], config)
    assert "two or more" in _text(out[5])
    out = pages.compare.act("compare-load", rows, [1], config)
    assert state.result_is_fresh(out[7], state.scenario_from_store(out[6]))
    out = pages.compare.act("compare-delete", rows, [0], config)
    assert [r["name"] for r in out[0]] == ["with plan"]


def test_saved_work_survives_a_new_store_connection(pages, demo, config):
    pages.compare.save("kept", demo, None, config)
    assert [r["name"] for r in pages.compare.saved_rows(state.resolve_config())] == ["kept"]


# --------------------------------------------------------------------------- export


def test_excel_export_has_the_sheets(pages, demo):
    s = state.scenario_from_store(demo)
    payload = pages.export.make_file("export-xlsx", demo, _fresh_result(s), True)
    assert payload["filename"].endswith(".xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(base64.b64decode(payload["content"])))
    assert {
        "Scorecard",
        "Plan by site",
        "KPIs by area",
        "KPIs by IMD quintile",
        "Assumptions",
    } <= set(wb.sheetnames)
    header = [c.value for c in wb["Scorecard"][1]]
    assert "current" in header and "optimised" in header


def test_geopackage_has_sites_and_areas_and_suppresses_small_counts(pages, demo, tmp_path):
    def layers(suppress: bool) -> Path:
        payload = pages.export.make_file("export-gpkg", demo, None, suppress)
        path = tmp_path / f"out-{suppress}.gpkg"
        path.write_bytes(base64.b64decode(payload["content"]))
        return path

    on = layers(True)
    assert {name for name, _ in pyogrio.list_layers(on)} == {"sites", "areas", "plan_settings"}
    import geopandas as gpd

    areas = gpd.read_file(on, layer="areas")
    assert len(areas) == 995 and areas.crs.to_epsg() == 27700
    # suppressed counts are null in a numeric column, flagged beside it
    assert areas["admissions_per_year"].dtype.kind == "f"
    flag = areas["admissions_per_year_suppressed"]
    assert flag.any() and (areas["admissions_per_year"].isna() == flag).all()
    raw = gpd.read_file(layers(False), layer="areas")
    assert (
        raw["admissions_per_year"].notna().all() and not raw["admissions_per_year_suppressed"].any()
    )
    sites = gpd.read_file(on, layer="sites")
    assert len(sites) == len(demo["sites"]) and "inpatient_plan" in sites.columns


def test_csv_and_report_exports(pages, demo):
    s = state.scenario_from_store(demo)
    result = _fresh_result(s)
    csv = pages.export.make_file("export-csv", demo, result, True)["content"]
    table = [line for line in csv.splitlines() if not line.startswith("#")]  # settings come first
    assert table[0].startswith("measure,current,optimised,")
    sites = pages.export.make_file("export-sites-csv", demo, result, True)["content"]
    assert (
        "inpatient_change" in [line for line in sites.splitlines() if not line.startswith("#")][0]
    )
    report = pages.export.make_file("export-html", demo, result, True)["content"]
    assert report.startswith("<!doctype html>") and "<script" not in report
    assert "Balanced scorecard" in report and "What changes, site by site" in report
    assert s.name in report


def test_exports_without_a_plan_describe_today(pages, demo):
    report = pages.export.make_file("export-html", demo, None, False)["content"]
    assert "No optimised plan" in report and "NOT suppressed" in report


def test_background_job_reads_the_request_and_reports_progress(pages, demo, monkeypatch):
    import pathways.optimise as opt

    def fake(scenario, options):
        options.progress("solving", 0.5)
        raise InfeasibleError(["the budget cannot fund the locked services"])

    monkeypatch.setattr(opt, "optimise_with_baselines", fake)
    values = dict(
        zip(
            pages.optimise.SETTINGS,
            pages.optimise.control_values(state.demo_scenario()),
            strict=True,
        )
    )
    request = pages.optimise.job_request(values, 5, demo)
    reported = []
    status, result, job = pages.optimise.on_run(reported.append, request)
    assert reported[0] == [{"pct": 0, "text": "starting"}]
    assert status["kind"] == "error" and "locked services" in _text(status)
    assert result is no_update and job is None  # the session forgets the finished job
    assert pages.optimise.on_run(reported.append, None) == (no_update, no_update, no_update)


def test_job_view_follows_the_shell_stores(pages):
    from dashapp.components import job_view, message_data, render_message

    running = job_view(True, {"pct": 40.0, "text": "solving"})
    assert running == (True, False, 40.0, "solving", "progress-wrap")
    idle = job_view(False, None)
    assert idle[:2] == (False, True) and idle[4].endswith("hidden")
    done = render_message(message_data("Done.", "success", link="/results", link_text="See"))
    assert "Done." in str(done.to_plotly_json()) and "/results" in str(done.to_plotly_json())
    assert render_message(None) is None
    assert pages.optimise.on_job_status(None) is None


def test_frontier_job_stores_rows_for_this_scenario(pages, demo, monkeypatch):
    import pandas as pd

    import pathways.optimise.run as run

    def fake_frontier(scenario, budgets, opts):
        rows = []
        for i, b in enumerate(budgets):
            opts.progress(f"budget {i + 1}/{len(budgets)}: GBP {b / 1e6:,.1f}M", i / len(budgets))
            rows.append({"budget_gbp_per_year": b, "status": "OPTIMAL", "gap": 0.0, "objective": 0.0,
                         "oap_bed_days_per_year": 1e9 / b, "admissions_per_year": 3000.0,
                         "total_cost_gbp_per_year": b})  # fmt: skip
        return pd.DataFrame(rows)

    monkeypatch.setattr(run, "frontier", fake_frontier)
    steps = []
    store, status = pages.results.compute_frontier(demo, 10, 3, lambda p, t: steps.append(t))
    assert len(store["rows"]) == len(steps) == pages.results.FRONTIER_STEPS + 1
    assert steps[0].startswith("budget 1/5: £")
    assert store["scenario_fingerprint"] == state.scenario_from_store(demo).fingerprint()
    assert status["kind"] == "success" and "every plan proven best" in _text(status)
    fig = pages.results.frontier_view(demo, store, None)
    assert list(fig.data[0].y) == sorted(fig.data[0].y, reverse=True)


# --------------------------------------------------------------------------- settings persist


def _controls(pages, scenario=None) -> dict:
    s = scenario or state.demo_scenario()
    return dict(zip(pages.optimise.SETTINGS, pages.optimise.control_values(s), strict=True))


def test_typed_optimise_settings_are_kept_in_the_scenario(pages, demo):
    values = _controls(pages)
    values["budget"] = "61.7"
    scenario, options, errors, limit_error = pages.optimise.settings_update(
        "optimise-budget", values, "45", demo, {}
    )
    s = state.scenario_from_store(scenario)
    assert s.budget.revenue_gbp_per_year == pytest.approx(61.7e6)
    assert options == {"time_limit_s": 45.0} and not any(errors) and limit_error is None
    # coming back to the page (or reloading it) shows what was typed
    shown = pages.optimise.on_init(True, scenario, options)
    assert (
        shown[pages.optimise.CONTROL_IDS.index("optimise-budget")] == "61.7" and shown[-1] == "45"
    )
    # a page render is not an edit
    assert pages.optimise.settings_update(None, values, "45", demo, {})[0] is no_update


def test_a_bad_optimise_setting_is_refused_at_its_field_and_blocks_the_run(pages, demo):
    values = _controls(pages)
    values["budget"] = "abc"
    values["mobile-min"] = "85"
    scenario, _opts, errors, _ = pages.optimise.settings_update(
        "optimise-budget", values, "30", demo, {}
    )
    s = state.scenario_from_store(scenario)
    assert s.budget.revenue_gbp_per_year == 60e6  # not today's spend, not changed
    assert s.constraints.mobile_within_standard_share_min == pytest.approx(
        0.85
    )  # the good one applies
    budget_error = errors[list(pages.optimise.NUMBER_FIELDS).index("budget")]
    assert budget_error.startswith("Revenue budget: 'abc' is not a number")
    request, job, _, note = pages.optimise.request_run(values, "30", demo)
    assert request is no_update and job is no_update
    assert note["kind"] == "error" and "Revenue budget" in _text(note)
    _, _, _, limit_error = pages.optimise.settings_update("optimise-time-limit", _controls(pages), "1e12",
                                                          demo, {})  # fmt: skip
    assert limit_error.startswith("Time limit must be between 2 and 900 (seconds)")


def _fake_optimiser(monkeypatch):
    import pathways.optimise as opt

    def fake(scenario, options):
        from pathways.plan import SolverReport

        options.progress("solving", 0.5)
        r = _fresh_result(scenario)
        plan = Plan.model_validate(r["plan"]).model_copy(
            update={"solver": SolverReport(status="TIME_LIMIT", gap=0.04, message="")}
        )
        cards = {"current": evaluate(scenario), "optimised": evaluate(scenario, plan)}
        return opt.OptimiseResult(plan=plan, baselines={}, cards=cards, objectives={},
                                  goals=types.SimpleNamespace(budget_gbp=6e7, mode="min_weighted"))  # fmt: skip

    monkeypatch.setattr(opt, "optimise_with_baselines", fake)


def test_a_reloaded_page_finds_its_running_job_and_its_result(pages, demo, monkeypatch):
    from dashapp import app as app_module

    _fake_optimiser(monkeypatch)
    request, job, _scenario, note = pages.optimise.request_run(_controls(pages), "5", demo)
    assert note is None and job["id"] == request["job_id"]
    # the page that started the job tracks it itself: the poll leaves it alone
    assert not app_module.orphan(job, request)
    assert app_module.poll_job("optimise", job, request) == (no_update,) * 4
    # after a reload the page has the session's job but not the request: it is followed
    assert app_module.orphan(job, None)
    with state.job_board() as board:
        board.progress(job["id"], 30, "solving")
    watch, status, result, kept = app_module.poll_job("optimise", job, None)
    assert watch["state"] == "running" and watch["pct"] == 30 and status is no_update
    from dashapp.components import job_state

    busy, pct, text = job_state(None, None, watch)
    assert busy and pct == 30 and "reloaded" in text
    assert pages.optimise.on_job_view(None, None, watch)[:2] == (True, False)  # Cancel is live
    # the job finishes while nobody tracks it; the reloaded page delivers its result
    status, data, cleared = pages.optimise.on_run(lambda p: None, request)
    watch, status2, result, kept = app_module.poll_job("optimise", job, None)
    assert watch is None and kept is None and status2 == status
    assert state.result_is_fresh(result, state.scenario_from_store(request["scenario"]))


def test_cancel_after_a_reload_stops_the_job(pages, demo):
    import subprocess
    import sys

    from dashapp import app as app_module

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = {"id": state.new_job_id(), "kind": "optimise"}
        with state.job_board() as board:
            board.start(job["id"], "optimise", proc.pid)
        token, session_job, watch, status = pages.optimise.cancel_job(job)
        proc.wait(timeout=10)  # stopped, not left burning a core
        assert token and session_job is None and watch is None and "cancelled" in _text(status)
        with state.job_board() as board:
            assert board.get(job["id"])["state"] == state.JOB_CANCELLED
        assert app_module.poll_job("optimise", job, None)[2] is no_update  # no result arrives
    finally:
        proc.kill()


def test_a_job_whose_process_died_is_reported_not_left_spinning(pages, demo):
    from dashapp import app as app_module

    job = {"id": state.new_job_id(), "kind": "frontier"}
    with state.job_board() as board:
        board.start(job["id"], "frontier", None)
        rec = board.get(job["id"])
        rec["updated"] -= state.JOB_SILENT_S + 1
        board._put(job["id"], rec)
    watch, status, data, kept = app_module.poll_job("frontier", job, None)
    assert (
        watch is None
        and kept is None
        and status["kind"] == "warning"
        and "Run it again" in _text(status)
    )


# --------------------------------------------------------------------------- bounds on other pages


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [("demand.growth_factor", 1e12, "Demand growth factor must be greater than 0 and at most 10"),
     ("queues.inpatient_los_days", 1e12, "Inpatient length of stay must be greater than 0 and at most 365"),
     ("costs.mobile_team_gbp_per_year", 1e12, "Cost of a mobile crisis team must be between 0 and 20,000,000")],
)  # fmt: skip
def test_assumptions_out_of_bounds_are_refused_naming_the_field(pages, demo, path, value, words):
    scenario, _, errors, _, note = pages.assumptions.edit(
        {"type": "assumptions-num", "path": path}, {path: value}, {}, [path], demo
    )
    assert scenario is no_update and errors[0].startswith(words)
    assert "could not be used" in _text(note)


def test_assumptions_show_human_labels_units_and_sources(pages):
    text = str(pages.assumptions.form(state.demo_scenario()))
    assert "Crisis-line call handling time" in text and "seconds per call" in text
    assert "Hub aht seconds" not in text and "PARAMETERS.md" not in text and "GBP" not in text


def test_services_edit_problems_are_not_called_an_upload(pages, demo):
    rows = state.site_rows(state.scenario_from_store(demo))
    rows[0]["inpatient_beds"] = 1e12
    scenario, _, note = pages.services.update_sites("edit", rows, None, None, None, demo)
    text = _text(note)
    assert scenario is no_update and "Beds must be between 0 and 1,000" in text
    assert "file could not be used" not in text and "upload" not in text.lower()


# --------------------------------------------------------------------------- settings shown


def _optimised_result(pages, demo, monkeypatch) -> dict:
    _fake_optimiser(monkeypatch)
    result, _, _ = pages.optimise.run_optimisation(demo, {}, 5)
    return result


def test_results_state_the_settings_and_mark_broken_limits(pages, demo, monkeypatch):
    result = _optimised_result(pages, demo, monkeypatch)
    out = pages.results.build(demo, result, None, None, None)
    status, cols, styles = _text(out[0]), out[4], out[5]
    assert "Settings used for this plan" in status
    assert "Revenue budget £60.00M a year" in status and "Time limit 5 seconds" in status
    assert "breaks 1 limit" in status and "below the minimum of 80.0%" in status
    names = {c["id"]: c["name"] for c in cols}
    assert names["optimised"] == "Optimised (breaks 1 limit)"
    assert [c["id"] for c in cols][:3] == ["kpi", "current", "optimised"]  # the plan comes first
    assert any(st.get("if", {}).get("column_id") == "optimised" for st in styles)
    # without a plan, today's capacity is judged against the same limits
    status = _text(pages.results.build(demo, None, None, None, None)[0])
    assert "judged against" in status and "70.2% of mobile responses" in status


def test_results_map_shows_areas_beyond_reach(pages, demo):
    out = pages.results.build(demo, None, "crisis_house_travel_mins", None, None)
    fig = out[1]
    beyond = next(t for t in fig.data if t.name == "Beyond reach of any open crisis house")
    table = state.area_table(state.scenario_from_store(demo))
    names = {table.at[c, "name"] for c in beyond.locations}
    assert {"Rother 002A"} <= names and beyond.showlegend
    bar = fig.data[0].colorbar
    assert bar.orientation == "h" and (bar.y, bar.yanchor) == (0, "top")  # under the map, not on it


def test_map_keys_explain_marker_sizes(pages, demo):
    key = _text(pages.results.map_key(demo, None))
    assert "Marker size shows capacity" in key and "beds" in key


def test_frontier_says_what_happened_at_each_budget(pages, demo):
    s = state.scenario_from_store(demo)
    rows = [
        {"budget_gbp_per_year": 6.0e7, "status": "INFEASIBLE", "message": "the budget cannot fund the locked services"},
        {"budget_gbp_per_year": 6.2e7, "status": "HEURISTIC", "gap": None, "objective": 150.0,
         "oap_bed_days_per_year": 3100.0, "admissions_per_year": 3200.0, "total_cost_gbp_per_year": 6.1e7},
        {"budget_gbp_per_year": 6.4e7, "status": "TIME_LIMIT", "gap": 0.05, "objective": 90.0,
         "oap_bed_days_per_year": 1500.0, "admissions_per_year": 2900.0, "total_cost_gbp_per_year": 6.4e7},
        {"budget_gbp_per_year": 6.6e7, "status": "NO_PLAN_IN_TIME", "message": "No plan was found within 15 s"},
        {"budget_gbp_per_year": 6.8e7, "status": "OPTIMAL", "gap": 0.001, "objective": 80.0,
         "oap_bed_days_per_year": 1200.0, "admissions_per_year": 2800.0, "total_cost_gbp_per_year": 6.8e7},
    ]  # fmt: skip
    summary = pages.results.frontier_summary(rows, today_objective=100.0)
    assert summary["kind"] == "warning" and "not every point is proven best" in summary["head"]
    store = {"scenario_fingerprint": s.fingerprint(), "today_objective": 100.0, "rows": rows}
    table = pages.results.frontier_table(demo, store)
    what = [r["what"] for r in table]
    assert what[0] == "no plan meets the standards at this budget"
    assert what[1].startswith("first plan meeting every limit")
    assert what[2] == "best plan found before the time limit (within 5.0% of the best possible)"
    assert what[3] == "no plan found in the time allowed" and what[4] == "best plan, proven"
    assert "worse than today" in table[1]["notes"] and "INFEASIBLE" not in str(table)
    fig = pages.results.frontier_view(demo, store, None)
    assert any(t.name == "No plan at this budget" for t in fig.data)
    ok = [dict(r, status="OPTIMAL", objective=50.0) for r in rows if r.get("oap_bed_days_per_year")]
    assert pages.results.frontier_summary(ok, 100.0)["kind"] == "success"
    assert pages.results.frontier_summary(rows[:1], 100.0)["kind"] == "error"
    _, _, note = pages.results.request_frontier("500", "15", demo)
    assert note["kind"] == "error" and "Frontier range must be between 1 and 100" in _text(note)


def test_saving_under_a_used_name_asks_first(pages, demo, config):
    note, saved, cls, text, pending = pages.compare.save_flow(
        "compare-save", "plan A", None, demo, None, config
    )
    assert saved and "hidden" in cls
    note, saved, cls, text, pending = pages.compare.save_flow(
        "compare-save", "plan A", None, demo, None, config
    )
    assert not saved and note is None and "hidden" not in cls
    assert "already exists" in text and "Replace it" in text and pending["name"] == "plan A"
    note, saved, cls, *_ = pages.compare.save_flow(
        "compare-keep", "plan A", pending, demo, None, config
    )
    assert not saved and "Nothing was replaced" in _text(note)
    note, saved, cls, *_ = pages.compare.save_flow(
        "compare-replace", "plan A", pending, demo, None, config
    )
    assert saved and "Replaced" in _text(note)
    assert pages.compare.save("plan A", demo, None, config)[1] is False  # never silently


def test_compare_states_settings_and_colours_plans_by_role(pages, demo, config, monkeypatch):
    from dashapp import figures

    result = _optimised_result(pages, demo, monkeypatch)
    pages.compare.save("a plan", demo, result, config)
    pages.compare.save("z today", demo, None, config)
    tokens = [r["token"] for r in pages.compare.saved_rows(config)]
    rows, cols, fig = pages.compare.compare(tokens, config)
    by_kpi = {r["kpi"]: r for r in rows}
    assert by_kpi["Revenue budget"]["a plan"] == "£60.00M a year"
    assert by_kpi["Time limit"]["a plan"] == "5 seconds" and by_kpi["Time limit"]["z today"] == "–"
    assert by_kpi["Limits"]["a plan"].startswith("Breaks 1 limit")
    colours = {t.name: t.marker.color for t in fig.data}
    assert colours == {"a plan": figures.PLAN_ROLE_COLOURS["optimised"],
                       "z today": figures.PLAN_ROLE_COLOURS["current"]}  # fmt: skip


def test_every_export_states_the_settings_and_marks_broken_limits(
    pages, demo, monkeypatch, tmp_path
):
    result = _optimised_result(pages, demo, monkeypatch)
    payload = pages.export.make_file("export-xlsx", demo, result, True)
    wb = openpyxl.load_workbook(io.BytesIO(base64.b64decode(payload["content"])))
    sheet = {r[0]: r[1] for r in wb["Plan settings"].iter_rows(values_only=True) if r and r[0]}
    assert sheet["Revenue budget"] == "£60.00M a year" and sheet["Time limit"] == "5 seconds"
    assert sheet["Limits: the optimised plan"].startswith("DOES NOT MEET 1 limit")
    for kind in ("export-csv", "export-sites-csv"):
        text = pages.export.make_file(kind, demo, result, True)["content"]
        head = [line for line in text.splitlines() if line.startswith("#")]
        assert "# Revenue budget: £60.00M a year" in head
        assert any(line.startswith("# Limits: the optimised plan: DOES NOT MEET") for line in head)
    report = pages.export.make_file("export-html", demo, result, True)["content"]
    assert "Settings used for this plan" in report and "does not meet 1 limit" in report
    path = tmp_path / "plan.gpkg"
    path.write_bytes(
        base64.b64decode(pages.export.make_file("export-gpkg", demo, result, True)["content"])
    )
    table = pyogrio.read_dataframe(path, layer="plan_settings")
    assert "Revenue budget" in set(table["setting"])
