"""Session-state helpers of the app: ICB scenarios, map geometry, the sites table, uploads."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from dashapp import state
from pathways.errors import InfeasibleError, InputError
from pathways.scenario import scenario_to_dict

SUSSEX = "E54000053"
DORSET = "E54000041"
GLOUCESTERSHIRE = "E54000043"  # no site of the 2014 list lies in it


def test_demo_is_sussex_and_round_trips_through_the_store():
    s = state.scenario_for_icb("Sussex")
    assert s.footprint.icb == SUSSEX
    assert state.scenario_from_store(state.scenario_to_store(s)) == s
    assert state.scenario_from_store(None) == state.demo_scenario()


def test_other_icb_gets_published_beds_at_its_hospital_sites_and_assumed_candidates():
    from pathways.icb import site_beds

    s = state.scenario_for_icb(DORSET)
    assert s.footprint.icb == DORSET
    hospitals = [x for x in s.sites if not x.site_id.startswith("CAND")]
    # the ICB's hospital sites with at least a ward's share of its published beds
    assert {x.site_id for x in hospitals} <= set(site_beds(DORSET)["site_id"])
    assert all(x.status == "existing" and x.capacity.inpatient_beds >= 10 for x in hospitals)
    assert all("Beds PUBLISHED" in x.note and not x.illustrative for x in hospitals)
    candidates = [x for x in s.sites if x.status == "candidate"]
    assert candidates and all(x.illustrative and "ASSUMED" in x.note for x in candidates)
    assert all(set(x.services) == {"crisis_house", "mobile_team"} for x in candidates)
    assert s.provenance["inpatient_beds"].startswith("published:")
    assert s.hub.day >= 1


def test_icb_without_listed_sites_still_has_an_inpatient_unit():
    s = state.scenario_for_icb(GLOUCESTERSHIRE)
    assert sum(x.capacity.inpatient_beds for x in s.sites) > 0


def test_unknown_icb_is_an_input_error():
    with pytest.raises(InputError, match="unknown ICB"):
        state.scenario_for_icb("Atlantis")


def test_icb_options_list_all_42():
    opts = state.icb_options()
    assert len(opts) == 42
    assert {"label", "value", "search"} <= set(opts[0])
    assert any(o["value"] == SUSSEX for o in opts)


def test_map_geometry_is_wgs84_rounded_and_keyed_by_area_code():
    s = state.demo_scenario()
    geo = state.footprint_geometry(s)
    assert geo.kind == "polygons" and len(geo.ids) == 995
    west, south, east, north = geo.bounds
    assert -1.5 < west < east < 1.0 and 50.5 < south < north < 51.5
    first = geo.geojson["features"][0]
    assert first["id"] == geo.ids[0]
    ring = np.asarray(first["geometry"]["coordinates"][0] if first["geometry"]["type"] == "Polygon"
                      else first["geometry"]["coordinates"][0][0])  # fmt: skip
    assert np.allclose(ring, np.round(ring, state.MAP_DECIMALS))


def test_area_table_and_summary():
    s = state.demo_scenario()
    table = state.area_table(s)
    assert len(table) == 995
    summary = state.area_summary(table)
    assert summary["population"] == pytest.approx(1_659_921)
    assert sum(summary[f"imd_q{q}_share"] for q in range(1, 6)) == pytest.approx(1.0)
    assert summary["episodes_per_year"] == pytest.approx(table["episodes_per_year"].sum())


def test_site_rows_round_trip_unchanged():
    s = state.demo_scenario()
    rows = state.site_rows(s)
    assert len(rows) == len(s.sites)
    assert state.rows_to_scenario(rows, s) == s


def test_editing_a_row_changes_only_that_site():
    s = state.demo_scenario()
    rows = state.site_rows(s)
    rows[0]["inpatient_beds"] = rows[0]["inpatient_beds"] + 5
    rows[0]["lock"] = "locked"
    new = state.rows_to_scenario(rows, s)
    assert new.sites[0].capacity.inpatient_beds == s.sites[0].capacity.inpatient_beds + 5
    assert (new.sites[0].can_shrink, new.sites[0].can_close) == (False, False)
    assert new.sites[0].x_m == s.sites[0].x_m  # not moved by the lat/lon round trip
    assert new.sites[1:] == s.sites[1:]


def test_bad_rows_name_the_row_and_column():
    s = state.demo_scenario()
    rows = state.site_rows(s)
    rows[1]["mobile_teams"] = "two"
    rows[2]["services"] = "inpatient, helicopter"
    rows[3]["lat"] = 12.0
    rows[4]["crisis_house_places"] = 3  # not among its services
    with pytest.raises(InputError) as info:
        state.rows_to_scenario(rows, s)
    where = {(p.row, p.field) for p in info.value.problems}
    # fields are named as the table's column headings
    assert {
        (2, "Mobile teams"),
        (3, "Services allowed"),
        (4, "Latitude"),
        (5, "Crisis-house places"),
    } <= where
    assert all(p.file == state.SITE_TABLE for p in info.value.problems)


def test_duplicate_site_ids_are_reported_by_row():
    s = state.demo_scenario()
    rows = state.site_rows(s)
    rows[3]["site_id"] = rows[0]["site_id"]
    with pytest.raises(InputError) as info:
        state.rows_to_scenario(rows, s)
    assert "sites" in str(info.value) or any(p.row for p in info.value.problems)


def test_new_rows_get_unique_ids_and_become_candidates():
    s = state.demo_scenario()
    rows = state.site_rows(s)
    lon, lat = state.bng_to_lonlat([530000.0], [110000.0])
    rows.append(state.new_site_row(rows, float(lon[0]), float(lat[0]), "New place"))
    rows.append(state.new_site_row(rows, float(lon[0]), float(lat[0]), "Another"))
    assert rows[-1]["site_id"] != rows[-2]["site_id"]
    new = state.rows_to_scenario(rows, s)
    added = new.sites[-1]
    assert added.status == "candidate" and set(added.services) == {"crisis_house", "mobile_team"}
    assert added.x_m == pytest.approx(530000.0, abs=2) and added.y_m == pytest.approx(
        110000.0, abs=2
    )


@pytest.mark.parametrize(
    ("text", "found", "unknown"),
    [("inpatient; crisis house", ["inpatient", "crisis_house"], []),
     ("Mobile team, place_of_safety", ["mobile_team", "place_of_safety"], []),
     ("beds and s136", ["inpatient", "place_of_safety"], []),
     ("", [], []), (None, [], []), ("zoo", [], ["zoo"])],
)  # fmt: skip
def test_parse_services(text, found, unknown):
    assert state.parse_services(text) == (found, unknown)


def test_merge_rows_replaces_by_site_id():
    rows = [
        {"orig_id": "A", "site_id": "A", "name": "old"},
        {"orig_id": "B", "site_id": "B", "name": "b"},
    ]
    out = state.merge_rows(rows, [{"site_id": "A", "name": "new"}, {"site_id": "C", "name": "c"}])
    assert [r["name"] for r in out] == ["new", "b", "c"]
    assert out[0]["orig_id"] == "A"


def test_save_upload_rejects_unknown_types_and_keeps_content(tmp_path: Path):
    payload = "data:text/csv;base64," + base64.b64encode(b"a,b\n1,2\n").decode()
    path = state.save_upload(payload, "sites.csv", tmp_path)
    assert path.read_bytes() == b"a,b\n1,2\n"
    assert state.save_upload(payload, "sites.csv", tmp_path) == path  # same content, same file
    with pytest.raises(InputError, match="unsupported file type"):
        state.save_upload(payload, "sites.exe", tmp_path)


def test_defaults_scenario_resets_parameters_but_keeps_sites():
    from pathways.scenario import with_changes

    s = with_changes(
        state.demo_scenario(), {"demand.growth_factor": 1.3, "queues.oap_los_days": 50.0}
    )
    reset = state.defaults_scenario(s)
    assert reset.demand.growth_factor == 1.0 and reset.queues.oap_los_days == 40.0
    assert reset.sites == s.sites and reset.constraints == s.constraints


def test_result_freshness_follows_the_scenario():
    from pathways.scenario import with_changes

    s = state.demo_scenario()
    result = {"scenario_fingerprint": s.fingerprint(), "plan": None}
    assert state.result_is_fresh(result, s)
    assert not state.result_is_fresh(result, with_changes(s, {"demand.growth_factor": 1.1}))
    assert not state.result_is_fresh(None, s)


def test_error_lines_speak_plainly():
    head, lines = state.error_lines(InfeasibleError(["the budget cannot fund the locked services"]))
    assert "constraints" in head and lines == ["the budget cannot fund the locked services"]
    head, lines = state.error_lines(ValueError("boom"))
    assert "logged" in head and "boom" in lines[0]


def test_config_arguments_win_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(state.ENV_STORE_URL, "sqlite:///env.db")
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "env"))
    monkeypatch.setenv(state.ENV_TILE_URL, "http://env/{z}/{x}/{y}.png")
    cfg = state.resolve_config()
    assert cfg.store_url == "sqlite:///env.db" and cfg.cache_dir == tmp_path / "env"
    assert cfg.tile_url.startswith("http://env")
    cfg = state.resolve_config(store_url="sqlite:///arg.db", cache_dir=tmp_path / "arg")
    assert cfg.store_url == "sqlite:///arg.db" and cfg.upload_dir == tmp_path / "arg" / "uploads"


def test_sites_frame_shows_plan_capacity_and_today():
    from pathways.plan import Plan, SitePlan
    from pathways.scenario import Capacity

    s = state.demo_scenario()
    first = s.sites[0]
    plan = Plan(
        sites=(
            SitePlan(site_id=first.site_id, capacity=Capacity(inpatient_beds=1, mobile_teams=1)),
        )
    )
    frame = state.sites_frame(s, plan)
    row = frame.set_index("site_id").loc[first.site_id]
    assert row["inpatient"] == 1 and row["inpatient_now"] == first.capacity.inpatient_beds
    assert -1.5 < row["lon"] < 1.0 and 50.5 < row["lat"] < 51.5


def test_store_keeps_scenario_as_plain_json():
    import json

    data = state.scenario_to_store(state.demo_scenario())
    assert json.loads(json.dumps(data)) == scenario_to_dict(state.demo_scenario())


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("typed", ["abc", "1e12", "-5", "nan", "inf"])
def test_a_typed_budget_out_of_bounds_is_refused_naming_the_field_and_unit(typed):
    bound, _scale = state.SETTING_BOUNDS["budget.revenue_gbp_per_year"]
    with pytest.raises(state.FieldError) as info:
        bound.read(typed)
    text = str(info.value)
    assert text.startswith("Revenue budget") and "£ million a year" in text
    assert "Traceback" not in text


def test_a_blank_budget_means_today_but_a_word_does_not():
    bound, _scale = state.SETTING_BOUNDS["budget.revenue_gbp_per_year"]
    assert bound.read("") is None and bound.read(None) is None
    assert bound.read("61.7") == pytest.approx(61.7) and bound.read("£61.7") == pytest.approx(61.7)


@pytest.mark.parametrize(
    ("path", "value", "label"),
    [("demand.growth_factor", 1e12, "Demand growth factor"),
     ("queues.inpatient_los_days", 1e12, "Inpatient length of stay"),
     ("costs.mobile_team_gbp_per_year", 1e12, "Cost of a mobile crisis team"),
     ("demand.growth_factor", -1, "Demand growth factor"),
     ("costs.capital_gbp_per_new_site", {"inpatient": 1e12}, "Capital cost of opening a service")],
)  # fmt: skip
def test_model_parameters_have_sane_bounds(path, value, label):
    with pytest.raises(state.FieldError, match=label):
        state.check_param(path, value)


def test_every_numeric_parameter_has_a_human_label_and_an_upper_bound():
    from pathways.scenario import parameter_table

    for p in parameter_table():
        if isinstance(p["default"], int | float) and not isinstance(p["default"], bool):
            bound = state.param_bound(p["path"], p["unit"])
            assert bound.hi is not None and bound.lo is not None, p["path"]
            assert bound.lo <= p["default"] <= bound.hi, p["path"]
            # the app never offers a value the library's model would refuse
            lib_lo, _, lib_hi = state._library_bounds(p["path"])
            assert lib_hi is None or bound.hi <= lib_hi, p["path"]
        assert "_" not in state.param_label(p["path"]), p["path"]
        assert ".md" not in state.human_source(p["source"]), p["path"]


@pytest.mark.parametrize("beds", [1e12, -5, 2.5, "ten"])
def test_site_capacity_out_of_bounds_names_the_column_as_the_table_shows_it(beds):
    s = state.demo_scenario()
    rows = state.site_rows(s)
    rows[0]["inpatient_beds"] = beds
    with pytest.raises(InputError) as info:
        state.rows_to_scenario(rows, s)
    (problem,) = info.value.problems
    assert (problem.row, problem.field) == (1, "Beds") and "0 and 1,000" in problem.message


def test_settings_are_applied_field_by_field():
    s = state.demo_scenario()
    new, errors = state.apply_settings(s, {
        "budget.revenue_gbp_per_year": "61.7",
        "constraints.mobile_within_standard_share_min": "150",
        "budget.capital_gbp": "",
    })  # fmt: skip
    assert new.budget.revenue_gbp_per_year == pytest.approx(61.7e6)
    assert new.budget.capital_gbp is None  # blank: no capital limit
    assert (
        new.constraints.mobile_within_standard_share_min
        == s.constraints.mobile_within_standard_share_min
    )
    assert list(errors) == ["constraints.mobile_within_standard_share_min"]
    assert state.setting_values(new)["budget.revenue_gbp_per_year"] == "61.7"


def test_a_time_out_and_an_infeasible_scenario_get_different_words():
    from pathways.errors import NoPlanInTimeError

    late, _ = state.error_lines(NoPlanInTimeError(30))
    none, _ = state.error_lines(InfeasibleError(["the budget cannot fund the locked services"]))
    assert late != none and "time" in late and "No plan meets" in none


# --------------------------------------------------------------------------- jobs


def test_job_board_follows_a_job_and_cancel_stops_its_process(tmp_path):
    import subprocess
    import sys

    with state.JobBoard(tmp_path) as board:
        board.start("a", "optimise", None)
        board.progress("a", 40, "solving")
        assert state.job_watch(board.get("a"), board) == {
            "state": "running",
            "pct": 40.0,
            "text": "solving",
        }
        assert board.finish("a", {"status": {"kind": "success"}, "data": {"x": 1}})
        assert board.get("a")["state"] == state.JOB_DONE and board.get("a")["outputs"]["data"] == {
            "x": 1
        }
        # a job of its own process: cancel stops the process, and its late result is dropped
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            board.start("b", "optimise", proc.pid)
            assert board.alive(board.get("b"))
            assert board.cancel("b")
            proc.wait(timeout=10)  # stopped well before its 60 s
            assert board.get("b")["state"] == state.JOB_CANCELLED and not board.alive(
                board.get("b")
            )
            assert not board.finish("b", {"status": None, "data": None})
        finally:
            proc.kill()
        assert state.job_watch(board.get("nobody"), board)["state"] == "missing"


def test_plan_settings_take_the_solver_record_first():
    from pathways.plan import SolverReport

    goals = type("G", (), {"settings": lambda self: {"mode": "min_weighted", "budget_gbp": 6e7,
                                                      "mobile_within_min": 0.8}})()  # fmt: skip
    report = SolverReport(
        status="TIME_LIMIT", gap=0.04, settings={"budget_gbp": 6.1e7, "gap_target": 0.005}
    )
    out = state.plan_settings(goals, report, time_limit_s=30)
    assert out["budget_gbp"] == 6.1e7 and out["mobile_within_min"] == 0.8
    assert out["time_limit_s"] == 30 and out["gap_target"] == 0.005
    assert (out["status"], out["gap"]) == ("TIME_LIMIT", 0.04)


# --------------------------------------------------------------------------- files a browser names


def _with_areas_file(name: str) -> dict:
    from dashapp.state import demo_scenario
    from pathways.scenario import scenario_to_dict

    data = scenario_to_dict(demo_scenario())
    data["footprint"] = {"areas_file": name}
    return data


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../../secrets.csv", "creds.csv", "/tmp/x\x00.csv", "UPLOAD/../../outside.gpkg"],
)
def test_a_scenario_naming_a_file_outside_the_uploads_is_refused(tmp_path, monkeypatch, name):
    from dashapp import state
    from pathways.errors import InputError

    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    name = name.replace("UPLOAD", str(tmp_path / "cache" / "uploads"))
    with pytest.raises(InputError, match="not uploaded through the app|control character") as err:
        state.scenario_from_store(_with_areas_file(name))
    assert err.value.problems[0].field == "footprint.areas_file"
    assert "exist" not in str(err.value)  # the message never says whether the file exists


def test_a_link_inside_the_uploads_pointing_out_is_refused(tmp_path, monkeypatch):
    from dashapp import state
    from pathways.errors import InputError

    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    uploads = tmp_path / "cache" / "uploads"
    uploads.mkdir(parents=True)
    outside = tmp_path / "private.csv"
    outside.write_text("username,password\nadmin,secret\n")
    (uploads / "areas.csv").symlink_to(outside)
    with pytest.raises(InputError, match="not uploaded through the app"):
        state.scenario_from_store(_with_areas_file(str(uploads / "areas.csv")))


def test_a_file_the_app_stored_is_accepted(tmp_path, monkeypatch):
    from dashapp import state

    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    stored = tmp_path / "cache" / "uploads" / "areas-0123456789abcdef.gpkg"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"")
    scenario = state.scenario_from_store(_with_areas_file(str(stored)))
    assert scenario.footprint.areas_file == str(stored)
