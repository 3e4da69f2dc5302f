"""Uploads: size limit, patient-level data refused, nothing raw kept, safe names, clear
messages for every malformed file, and a fuzz of the parsers.

The fuzz runs ``PATHWAYS_FUZZ_EXAMPLES`` examples per strategy (default 200; a nightly
run sets 10,000 or more), deterministically (``derandomize``), with no deadline: the
only exception any upload parser may raise is :class:`pathways.errors.InputError`, and
its problems must name the file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import sys
import time
import types
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from dash import no_update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashapp import state
from pathways import geography, travel, uploads
from pathways.errors import InputError
from tests.dash_text import component_text as _text

SUSSEX = "E54000053"
FUZZ_EXAMPLES = int(os.environ.get("PATHWAYS_FUZZ_EXAMPLES", "200"))
AREAS_CSV = "area_code,population,x,y,imd_decile,rural\nA1,1000,530000,110000,3,no\nA2,2000,540000,112000,5,yes\n"
SITES_CSV = "site_id,name,x,y,services,inpatient_beds\nS1,One,530000,110000,inpatient,10\nS2,Two,540000,112000,mobile_team,\n"
MATRIX_CSV = "area_code,site_id,minutes\nA1,S1,10\nA1,S2,20\nA2,S1,15\nA2,S2,5\n"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page modules (they register themselves with the app that runs them)."""
    from dashapp.app import create_app

    if "dashapp.pages.footprint" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    names = ("footprint", "services")
    return types.SimpleNamespace(**{n: sys.modules[f"dashapp.pages.{n}"] for n in names})


@pytest.fixture
def config(tmp_path, monkeypatch) -> state.AppConfig:
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv(state.ENV_STORE_URL, f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.delenv(uploads.ENV_MAX_UPLOAD_MB, raising=False)
    return state.resolve_config()


@pytest.fixture
def demo() -> dict:
    return state.scenario_to_store(state.demo_scenario())


def _payload(data: bytes | str, mime: str = "text/csv") -> str:
    raw = data.encode() if isinstance(data, str) else data
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _nhs_number(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _patients_csv(n: int = 2000, seed: int = 1) -> str:
    """One person per row: NHS number, postcode, date of birth (synthetic), as 'areas'."""
    rng = random.Random(seed)
    rows = ["nhs_number,postcode,date_of_birth,area_code,population,x,y"]
    for i in range(n):
        postcode = f"BN{rng.randint(1, 45)} {rng.randint(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}"
        dob = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/19{rng.randint(30, 99)}"
        rows.append(f"{_nhs_number(rng)},{postcode},{dob},P{i},1,"
                    f"{530000 + rng.randint(0, 20000)},{105000 + rng.randint(0, 10000)}")  # fmt: skip
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- size limit


def test_the_default_limit_is_20_mb(monkeypatch):
    monkeypatch.delenv(uploads.ENV_MAX_UPLOAD_MB, raising=False)
    assert uploads.max_upload_bytes() == 20_000_000


@pytest.mark.parametrize("value, expected", [("5", 5_000_000), ("0.5", 500_000), ("0", 20_000_000),
                                             ("-3", 20_000_000), ("lots", 20_000_000),
                                             ("inf", 20_000_000), ("nan", 20_000_000)])  # fmt: skip
def test_the_limit_comes_from_the_environment_and_a_bad_value_keeps_the_default(
    monkeypatch, value, expected
):
    monkeypatch.setenv(uploads.ENV_MAX_UPLOAD_MB, value)
    assert uploads.max_upload_bytes() == expected


def test_a_large_upload_is_refused_before_it_is_decoded(monkeypatch):
    monkeypatch.setenv(uploads.ENV_MAX_UPLOAD_MB, "0.01")  # 10 KB
    decoded = []
    monkeypatch.setattr(state.base64, "b64decode", lambda *a, **k: decoded.append(1) or b"")
    with pytest.raises(InputError) as err:
        state.decode_upload(_payload("x" * 20_000), "big.csv")
    assert decoded == []
    problem = err.value.problems[0]
    assert problem.file == "big.csv"
    assert "20 KB" in problem.message and "10 KB" in problem.message
    assert uploads.ENV_MAX_UPLOAD_MB in problem.message


def test_a_file_at_the_limit_is_accepted(monkeypatch):
    monkeypatch.setenv(uploads.ENV_MAX_UPLOAD_MB, "0.01")
    name, raw = state.decode_upload(_payload(b"x" * 10_000), "ok.csv")
    assert name == "ok.csv" and len(raw) == 10_000


def test_the_areas_page_refuses_a_large_file_and_keeps_nothing(pages, demo, config, monkeypatch):
    monkeypatch.setenv(uploads.ENV_MAX_UPLOAD_MB, "0.001")
    big = AREAS_CSV + "".join(f"B{i},1,530000,110000,3,no\n" for i in range(200))
    out = pages.footprint.choose("footprint-upload", SUSSEX, _payload(big), "areas.csv", demo)
    assert out[0] is no_update
    text = _text(out[4])
    assert "areas.csv" in text and "more than the 1 KB" in text
    assert _files(config.upload_dir) == []


def test_upload_boxes_state_the_limit_and_stop_far_larger_files_in_the_browser(pages, config):
    for layout, upload_id in ((pages.footprint.layout(), "footprint-upload"),
                              (pages.services.layout(), "services-upload")):  # fmt: skip
        box = _find(layout, upload_id)
        assert box.max_size == 3 * uploads.max_upload_bytes()
        assert "Files up to 20 MB." in _text(layout)


def _find(component, wanted: str):
    if getattr(component, "id", None) == wanted:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, wanted)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- nothing raw kept


def test_an_accepted_area_upload_keeps_only_the_validated_copy(pages, demo, config):
    csv = "area_code,population,x,y\nA1,1000,530000,110000\nA2,2000,540000,112000\n"
    scenario, *_ = pages.footprint.choose(
        "footprint-upload", SUSSEX, _payload(csv), "mine.csv", demo
    )
    kept = _files(config.upload_dir)
    assert [p.relative_to(config.upload_dir).parts[0] for p in kept] == ["areas"]
    assert kept[0].suffix == ".gpkg"
    assert state.scenario_from_store(scenario).footprint.areas_file == str(kept[0])


@pytest.mark.parametrize("csv", [AREAS_CSV.replace("1000", "-1"), _patients_csv(20)])
def test_a_refused_area_upload_leaves_nothing_on_disk(pages, demo, config, csv):
    out = pages.footprint.choose("footprint-upload", SUSSEX, _payload(csv), "areas.csv", demo)
    assert out[0] is no_update
    assert _files(config.upload_dir) == []


def test_sites_uploads_leave_nothing_on_disk(pages, demo, config):
    rows = state.site_rows(state.scenario_from_store(demo))
    good = "site_id,name,x,y,services,crisis_house_places\nN1,New,530000,110000,crisis_house,6\n"
    for csv in (good, good.replace(",6", ",-6")):
        pages.services.update_sites("services-upload", rows, None, _payload(csv), "s.csv", demo)
    assert _files(config.upload_dir) == []


def test_the_file_is_deleted_even_when_reading_it_fails_unexpectedly(tmp_path):
    seen = []
    with (
        pytest.raises(RuntimeError),
        state.received_upload(_payload(AREAS_CSV), "a.csv", tmp_path) as path,
    ):
        seen.append(path)
        assert path.read_text() == AREAS_CSV
        raise RuntimeError("parser broke")
    assert not seen[0].exists() and _files(tmp_path) == []


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)


def test_stale_raw_uploads_are_cleaned_but_saved_work_is_kept(config):
    from pathways.store import RunStore

    up = config.upload_dir
    stale, saved, fresh = up / "0123456789abcdef", up / "fedcba9876543210", up / "00000000aaaaaaaa"
    other_team = up / "1111111122222222"
    for folder in (stale, saved, fresh, other_team):
        folder.mkdir(parents=True)
        (folder / "areas.geojson").write_text("{}")
    leftover = up / state.INCOMING / "tmpleft"
    leftover.mkdir(parents=True)
    (leftover / "x.csv").write_text("a")
    areas = up / "areas"
    areas.mkdir()
    (areas / "old-0123456789abcdef.gpkg").write_text("validated copy")
    for folder in (stale, saved, leftover, areas, other_team):
        _age(folder, 3 * state.RAW_UPLOAD_RETENTION_S)
    # a saved scenario names a file in one old folder
    scenario = state.with_sections(
        state.demo_scenario(), footprint={"icb": None, "areas_file": str(saved / "areas.geojson")}
    )
    with RunStore(config.store_url) as store:
        store.save_scenario("kept", scenario)
        # another team's saved scenario is read as that team's and its file kept too
        theirs = state.with_sections(
            state.demo_scenario(),
            footprint={"icb": None, "areas_file": str(other_team / "areas.geojson")},
        )
        store.save_scenario("kept", theirs, team="east")

    removed = state.purge_stale_uploads(up, keep=lambda: state.saved_scenario_files(config))
    assert sorted(removed) == sorted([stale, leftover])
    assert not stale.exists() and not leftover.exists()
    assert saved.exists() and fresh.exists() and (areas / "old-0123456789abcdef.gpkg").exists()
    assert other_team.exists()


def test_nothing_is_cleaned_when_the_saved_scenarios_cannot_be_read(tmp_path):
    old = tmp_path / "0123456789abcdef"
    old.mkdir()
    (old / "a.csv").write_text("a")
    _age(old, 3 * state.RAW_UPLOAD_RETENTION_S)

    def broken():
        raise OSError("store unavailable")

    assert state.purge_stale_uploads(tmp_path, keep=broken) == [] and old.exists()


def test_cleaning_does_not_follow_links_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.csv").write_text("keep me")
    up = tmp_path / "uploads"
    up.mkdir()
    (up / "0123456789abcdef").symlink_to(outside, target_is_directory=True)
    _age(outside, 3 * state.RAW_UPLOAD_RETENTION_S)
    assert state.purge_stale_uploads(up, keep=set) == []
    assert (outside / "precious.csv").read_text() == "keep me"


# --------------------------------------------------------------------------- file names


HOSTILE_NAMES = [
    "../../etc/passwd.csv",
    "/etc/cron.d/areas.csv",
    "..\\..\\windows\\areas.csv",
    "areas\x00.csv",
    "a\x00/../../b.csv",
    ".hidden.csv",
    "....csv",
    "<script>alert(1)</script>.csv",
    "áreas £ ünïcode.csv",
    "con.csv",
    "a" * 400 + ".csv",
    " spaced .csv",
    "$(rm -rf ~).csv",
    "areas.csv\n.exe",
]


@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_an_upload_is_written_inside_the_upload_folder_under_a_safe_name(tmp_path, filename):
    folder = tmp_path / "uploads"
    try:
        with state.received_upload(_payload(AREAS_CSV), filename, folder) as path:
            assert path.resolve().is_relative_to((folder / state.INCOMING).resolve())
            assert path.parent.parent == folder / state.INCOMING  # one generated folder deep
            assert path.read_text() == AREAS_CSV
            assert set(path.name) <= set(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._ ()-"
            )
            assert not path.name.startswith(".") and len(path.name) <= uploads.MAX_NAME_LENGTH
    except InputError as err:  # a name whose type is not one the app reads
        assert "unsupported file type" in str(err)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert all(p.is_relative_to(folder) for p in tmp_path.rglob("*"))


def test_safe_names_keep_what_the_user_will_recognise():
    assert uploads.safe_file_name("Sussex areas (2024).csv") == "Sussex areas (2024).csv"
    assert uploads.safe_file_name("../../etc/passwd.csv") == "passwd.csv"
    assert uploads.safe_file_name("..") == "upload"
    assert uploads.safe_file_name(None, "areas") == "areas"
    long = uploads.safe_file_name("a" * 400 + ".geojson")
    assert long.endswith(".geojson") and len(long) == uploads.MAX_NAME_LENGTH


def test_a_file_is_never_written_through_a_link(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("precious")
    link = tmp_path / "link.csv"
    link.symlink_to(outside)
    with pytest.raises(OSError):
        state._write_new(link, b"overwritten")
    assert outside.read_text() == "precious"


def test_an_incoming_folder_that_links_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / state.INCOMING).symlink_to(outside, target_is_directory=True)
    with (
        pytest.raises(InputError, match="could not be stored"),
        state.received_upload(_payload(AREAS_CSV), "a.csv", folder),
    ):
        pytest.fail("the upload was written outside the folder")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("source", ["../../x.csv", "a\x00b.csv", "/abs/areas.geojson", "<b>.csv"])
def test_validated_copies_of_areas_get_safe_names_inside_their_folder(sussex, tmp_path, source):
    areas = sussex.head(3)
    path = state.store_areas(areas, tmp_path / "areas", source)
    assert path.parent == tmp_path / "areas" and path.exists()
    assert "\x00" not in path.name and "<" not in path.name


@pytest.mark.parametrize("contents", [None, "", "no comma here", "data:text/csv;base64,@@@notbase64",
                                      "data:text/csv;base64,"])  # fmt: skip
def test_a_broken_payload_is_refused_with_a_message(contents):
    with pytest.raises(InputError) as err:
        state.decode_upload(contents, "a.csv")
    assert err.value.problems[0].file == "a.csv"


@pytest.mark.parametrize("name", ["areas.xlsx", "sites.xls", "sites.ods", "a.xlsm"])
def test_a_spreadsheet_is_refused_with_how_to_save_it_as_csv(name):
    with pytest.raises(InputError, match="Save As") as err:
        state.decode_upload(_payload(b"PK\x03\x04"), name)
    assert err.value.problems[0].file == name


# --------------------------------------------------------------------------- patient-level data


@pytest.mark.parametrize("number, valid", [("9434765919", True), ("943 476 5919", True),
                                           ("943-476-5919", True), ("9434765918", False),
                                           ("4010232137", True), ("123456789", False),
                                           ("12345678901", False), ("١٢٣٤٥٦٧٨٩٠", False),
                                           ("abcdefghij", False), ("", False)])  # fmt: skip
def test_nhs_numbers_are_recognised_by_their_check_digit(number, valid):
    assert uploads.is_nhs_number(number) is valid


@pytest.mark.parametrize("code, full", [("BN1 1AA", True), ("bn11aa", True), ("SW1A 2AA", True),
                                        ("M1 1AE", True), ("BN1", False), ("BN1 1", False),
                                        ("E01000001", False)])  # fmt: skip
def test_full_postcodes_are_told_from_districts_and_sectors(code, full):
    assert uploads.is_full_postcode(code) is full


def test_the_patient_level_file_is_refused_at_the_door(pages, demo, config):
    out = pages.footprint.choose(
        "footprint-upload", SUSSEX, _payload(_patients_csv()), "patients.csv", demo
    )
    assert out[0] is no_update
    text = _text(out[4])
    for words in ("patients.csv", "nhs_number", "postcode", "date_of_birth", "patient-level",
                  "only aggregate data may be uploaded", "deleted from the server"):  # fmt: skip
        assert words in text, words
    assert _files(config.upload_dir) == []


def _refusal(csv: str, what: str = "areas", name: str = "p.csv") -> list:
    import pandas as pd

    table = pd.read_csv(io.StringIO(csv), dtype=str, keep_default_na=False)
    table.columns = [c.lower() for c in table.columns]
    try:
        uploads.check_aggregate_only(table, name, what)
    except InputError as err:
        return err.problems
    return []


def test_a_column_of_nhs_numbers_is_found_whatever_it_is_called():
    rng = random.Random(3)
    csv = "id,population\n" + "".join(f"{_nhs_number(rng)},1\n" for _ in range(30))
    (problem,) = _refusal(csv)
    assert problem.field == "id" and problem.row == 2 and "NHS numbers" in problem.message


@pytest.mark.parametrize("column", ["NHS Number", "nhs_no", "DOB", "Date of Birth", "birth_date"])
def test_columns_named_for_people_are_refused_in_sites_too(column):
    problems = _refusal(f"site_id,{column}\nS1,x\n", "sites")
    assert [p.field for p in problems] == [column.lower()]


def test_dates_and_postcodes_per_row_are_refused_in_areas():
    csv = "area_code,when,pc,population\nA1,1950-03-02,BN1 1AA,1\nA2,1961-11-20,BN2 4GH,1\nA3,1978-07-14,BN3 7QP,1\n"
    assert {p.field for p in _refusal(csv)} == {"when", "pc"}


def test_aggregate_files_are_not_mistaken_for_patient_data():
    # a site's postcode is its address; one date repeated is when the table was made;
    # district postcodes, area codes and counts are aggregate
    sites = "site_id,name,postcode\nS1,A,BN1 1AA\nS2,B,BN2 4GH\n"
    areas = ("area_code,district,updated,population,phone\nA1,BN1,2024-01-01,1500,01273000000\n"
             "A2,BN2,2024-01-01,1600,01273000001\n")  # fmt: skip
    assert _refusal(sites, "sites") == [] and _refusal(areas) == []


def test_the_sussex_lsoas_are_not_mistaken_for_patient_data(sussex):
    table = sussex.drop(columns="geometry").reset_index().astype(str)
    assert uploads.personal_columns(table, "areas") == []


def test_a_geojson_of_people_is_refused_too(tmp_path):
    rng = random.Random(5)
    gdf = gpd.GeoDataFrame(
        {"area_code": [f"P{i}" for i in range(5)], "population": [1] * 5,
         "nhsno": [_nhs_number(rng) for _ in range(5)]},
        geometry=[shapely.Point(530000 + i, 110000) for i in range(5)], crs=27700,
    )  # fmt: skip
    path = tmp_path / "people.geojson"
    gdf.to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match="patient-level") as err:
        geography.load_areas(path)
    assert err.value.problems[0].field == "nhsno" and err.value.problems[0].row == 1


# --------------------------------------------------------------------------- malformed files


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _spatial(tmp_path: Path, filename: str, geoms, crs=27700, **columns) -> bytes:
    """A GeoJSON, GeoPackage or zipped Shapefile (by ``filename``'s suffix), as bytes."""
    gdf = gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs)
    path = tmp_path / "build" / filename
    path.parent.mkdir(exist_ok=True)
    if filename.endswith(".zip"):
        shp = tmp_path / "build" / "shp"
        shp.mkdir(exist_ok=True)
        gdf.to_file(shp / "areas.shp")
        return _zip({p.name: p.read_bytes() for p in shp.iterdir()})
    gdf.to_file(path, driver="GeoJSON" if filename.endswith("json") else "GPKG")
    return path.read_bytes()


BOX = shapely.box(530000, 110000, 531000, 111000)
BOWTIE = shapely.Polygon([(530000, 110000), (531000, 111000), (531000, 110000), (530000, 111000)])

#: (input class, kind, file name, content builder, expected words, row, field)
MALFORMED = [
    ("text where a number should be", "areas", "a.csv",
     "area_code,population,x,y\nA1,lots,530000,110000\n", "'lots' is not a number", 2, "population"),
    ("missing required column", "areas", "a.csv",
     "code,population,x,y\nA1,1,530000,110000\n", "required column is missing", None, "area_code"),
    ("duplicated area codes", "areas", "a.csv",
     "area_code,population,x,y\nA1,1,530000,110000\nA1,2,530000,110000\n", "duplicate code 'A1'", 3, "area_code"),
    ("duplicated site ids", "sites", "s.csv",
     "site_id,name,x,y\nS1,a,530000,110000\nS1,b,531000,110000\n", "duplicate code 'S1'", 3, "site_id"),
    ("NaN population", "areas", "a.csv",
     "area_code,population,x,y\nA1,NaN,530000,110000\n", "'NaN' is not a number", 2, "population"),
    ("infinite coordinate", "areas", "a.csv",
     "area_code,population,x,y\nA1,1,inf,110000\n", "'inf' is not a number", 2, "x"),
    ("negative population", "areas", "a.csv",
     "area_code,population,x,y\nA1,-4,530000,110000\n", "is negative", 2, "population"),
    ("absurd population (1e9)", "areas", "a.csv",
     "area_code,population,x,y\nA1,1e9,530000,110000\n", "more than 10,000,000 people", 2, "population"),
    ("absurd beds (1e9)", "sites", "s.csv",
     "site_id,name,x,y,inpatient_beds\nS1,a,530000,110000,1e9\n", "more than 5,000 inpatient beds", 2, "inpatient_beds"),
    ("fractional capacity", "sites", "s.csv",
     "site_id,name,x,y,mobile_teams\nS1,a,530000,110000,2.5\n", "not a whole number", 2, "mobile_teams"),
    ("unknown service", "sites", "s.csv",
     "site_id,name,x,y,services\nS1,a,530000,110000,spa\n", "unknown service 'spa'", 2, "services"),
    ("missing site name", "sites", "s.csv",
     "site_id,name,x,y\nS1,,530000,110000\n", "name is missing", 2, "name"),
    ("longitude/latitude in x,y", "areas", "a.csv",
     "area_code,population,x,y\nA1,1,-0.1,50.8\n", "look like longitude/latitude", 2, "x"),
    ("metres in lon,lat", "sites", "s.csv",
     "site_id,name,lon,lat\nS1,a,530000,110000\n", "look like metres", 2, "lon"),
    ("no coordinates", "areas", "a.csv",
     "area_code,population\nA1,1\n", "no coordinate columns", None, "x, y"),
    ("outside the footprint (Wales)", "sites", "s.csv",
     "site_id,name,x,y\nS1,a,318000,176000\n", "lies outside the Sussex footprint", 2, "x"),
    ("outside Great Britain", "sites", "s.csv",
     "site_id,name,x,y\nS1,a,900000,110000\n", "outside Great Britain", 2, "x"),
    ("NUL byte in a CSV", "areas", "a.csv",
     b"area_code,population,x,y\nA1,1,530000,11\x000000\n", "NUL byte", 2, None),
    ("Excel workbook saved as .csv", "areas", "a.csv",
     b"PK\x03\x04\x14\x00rest", "Excel workbook", None, None),
    ("empty file", "areas", "a.csv", b"", "the file is empty", None, None),
    ("header only", "sites", "s.csv", "site_id,name,x,y\n", "no rows", None, None),
    ("ragged CSV", "areas", "a.csv",
     "area_code,population,x,y\nA1,1,530000,110000,9,9,9\n", "the row has 7 values", 2, None),
    ("column twice (case ignored)", "areas", "a.csv",
     "area_code,Population,population,x,y\nA1,1,1,530000,110000\n", "more than once", None, "population"),
    ("GeoJSON that is not JSON", "areas", "a.geojson", b"{not json", "could not read the file as GeoJSON", None, None),
    ("GeoPackage that is not one", "areas", "a.gpkg", b"SQLite format 3\x00junk", "could not read the file as GeoPackage", None, None),
    ("zip that is not one", "areas", "a.zip", b"PK\x03\x04junk", "not a readable zip file", None, None),
    ("zip without a Shapefile", "areas", "a.zip", _zip({"readme.txt": b"x"}), "holds no Shapefile", None, None),
    ("zip bomb", "areas", "a.zip", _zip({"big.shp": b"\0" * 120_000_000}), "unpacks to 120 MB", None, None),
    ("zip naming ../", "areas", "a.zip", _zip({"../evil.shp": b"x"}), "holds a file outside itself", None, None),
]  # fmt: skip

SPATIAL = [
    ("empty geometry (GeoJSON)", "areas", "a.geojson",
     lambda t: _spatial(t, "a.geojson", [shapely.Polygon()], area_code=["A1"], population=[5]),
     "geometry is empty", 1, "geometry"),
    ("self-intersecting polygon (GeoPackage)", "areas", "a.gpkg",
     lambda t: _spatial(t, "a.gpkg", [BOWTIE], area_code=["A1"], population=[5]),
     "the polygon crosses itself", 1, "geometry"),
    ("wrong CRS (metres labelled WGS84)", "areas", "a.gpkg",
     lambda t: _spatial(t, "a.gpkg", [BOX], crs=4326, area_code=["A1"], population=[5]),
     "look like metres", None, "geometry"),
    ("lines instead of polygons", "areas", "a.geojson",
     lambda t: _spatial(t, "a.geojson", [shapely.LineString([(530000, 110000), (531000, 111000)])],
                        area_code=["A1"], population=[5]),
     "geometry is a LineString", 1, "geometry"),
    ("polygons as sites (zipped Shapefile)", "sites", "s.zip",
     lambda t: _spatial(t, "s.zip", [BOX], site_id=["S1"], name=["a"]),
     "geometry is a Polygon", 1, "geometry"),
    ("negative population (zipped Shapefile)", "areas", "a.zip",
     lambda t: _spatial(t, "a.zip", [BOX], area_code=["A1"], population=[-5]),
     "is negative", 1, "population"),
    ("duplicated codes (GeoPackage)", "areas", "a.gpkg",
     lambda t: _spatial(t, "a.gpkg", [BOX, BOX], area_code=["A1", "A1"], population=[5, 6]),
     "duplicate code 'A1'", 2, "area_code"),
]  # fmt: skip


def _load(kind: str, path: Path, footprint) -> None:
    (geography.load_areas if kind == "areas" else geography.load_sites)(path, footprint=footprint)


@pytest.mark.parametrize("label, kind, name, content, words, row, field", MALFORMED + SPATIAL,
                         ids=[c[0] for c in MALFORMED + SPATIAL])  # fmt: skip
def test_every_malformed_upload_names_file_row_and_field(
    tmp_path, sussex_footprint, label, kind, name, content, words, row, field
):
    data = content(tmp_path) if callable(content) else content
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError) as err:
            _load(kind, path, sussex_footprint)
    matching = [p for p in err.value.problems if words in p.message]
    assert matching, [str(p) for p in err.value.problems]
    assert all(p.file == name for p in err.value.problems)
    assert (matching[0].row, matching[0].field) == (row, field)
    assert "Traceback" not in str(err.value) and str(tmp_path) not in str(err.value)


@pytest.mark.parametrize(
    "label, data",
    [
        (
            "latin-1",
            "area_code,population,x,y,name\nA1,1,530000,110000,Caf\xe9\x81\n".encode("latin-1"),
        ),
        (
            "Windows-1252",
            "area_code,population,x,y,name\nA1,1,530000,110000,Caf\xe9 \u2019\n".encode("cp1252"),
        ),
        (
            "UTF-8 with BOM",
            "\ufeffarea_code,population,x,y,name\nA1,1,530000,110000,Café\n".encode(),
        ),
        (
            "UTF-16 with BOM",
            "area_code,population,x,y,name\nA1,1,530000,110000,Café\n".encode("utf-16"),
        ),
    ],
)
def test_csv_text_encodings_are_read(tmp_path, sussex_footprint, label, data):
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    areas = geography.load_areas(path, footprint=sussex_footprint)
    assert list(areas.index) == ["A1"] and areas["area_name"].iloc[0].startswith("Caf")


def test_places_outside_england_are_refused_without_a_footprint(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("area_code,population,x,y,imd_decile,rural\nA1,1,325000,673000,3,no\n"
                    "A2,1,530000,110000,3,no\n")  # fmt: skip
    with pytest.raises(InputError) as err:
        geography.load_areas(path)
    (problem,) = err.value.problems
    assert (problem.row, problem.field) == (2, "x") and "outside England" in problem.message


def test_an_unknown_icb_is_refused_in_words(pages, demo):
    with pytest.raises(InputError, match="unknown ICB 'E54999999'"):
        pages.footprint.choose("footprint-icb", "E54999999", None, None, demo)


def test_the_areas_page_shows_problems_not_a_traceback(pages, demo, config):
    out = pages.footprint.choose(
        "footprint-upload", SUSSEX, _payload(b"\x00\x01\x02"), "x.csv", demo
    )
    text = _text(out[4])
    assert "x.csv" in text and "NUL byte" in text and "Traceback" not in text


# --------------------------------------------------------------------------- fuzz

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_COUNTER = iter(range(10**9))


def _parse(target: str, data: bytes, suffix: str, folder: Path) -> None:
    """Parse ``data`` as an upload; anything but InputError fails the test."""
    name = f"fuzz{next(_COUNTER)}{suffix}"
    path = folder / name
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if target == "matrix":
                travel.load_matrix(path, ["A1", "A2"], ["S1", "S2"])
            elif target == "sites":
                geography.load_sites(path)
            else:
                geography.load_areas(path)
    except InputError as err:
        assert err.problems
        assert all(p.file in (name, str(path)) for p in err.problems), err.problems
    finally:
        path.unlink()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(
    data=st.binary(max_size=3000),
    suffix=st.sampled_from([".csv", ".geojson", ".gpkg", ".zip"]),
    target=st.sampled_from(["areas", "sites", "matrix"]),
)
def test_fuzz_random_bytes(fuzz_dir, data, suffix, target):
    _parse(target, data, ".csv" if target == "matrix" else suffix, fuzz_dir)


_PIECES = [*",\n\r\"';\x00\t -+.e", "nan", "inf", "-inf", "1e308", "1e9", "\ufeff", "é", "\xff",
           "NaN", "", "0x10", "1,000", "9434765919", "01/02/1960", "BN1 1AA", "=SUM(1,1)"]  # fmt: skip


@FUZZ
@given(
    target=st.sampled_from(["areas", "sites", "matrix"]),
    edits=st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 5), st.sampled_from(_PIECES)), max_size=8
    ),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_fuzz_mutated_valid_csvs(fuzz_dir, target, edits, encoding):
    text = {"areas": AREAS_CSV, "sites": SITES_CSV, "matrix": MATRIX_CSV}[target]
    for pos, length, piece in edits:
        pos %= len(text) + 1
        text = text[:pos] + piece + text[pos + length :]
    _parse(target, text.encode(encoding, errors="replace"), ".csv", fuzz_dir)


_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12),
    st.text(max_size=5), st.none(),
)  # fmt: skip


@FUZZ
@given(
    target=st.sampled_from(["areas", "sites"]),
    features=st.lists(
        st.tuples(
            _NUMBER,
            _NUMBER,
            _NUMBER,
            st.sampled_from(["Point", "Polygon", "LineString", "MultiPolygon", "Bogus"]),
        ),
        max_size=4,
    ),  # fmt: skip
    crs=st.one_of(st.none(), st.sampled_from(["EPSG:27700", "EPSG:4326", "EPSG:3857", "bogus"])),
)
def test_fuzz_geojson_documents(fuzz_dir, target, features, crs):
    docs = []
    for k, (a, b, value, kind) in enumerate(features):
        ring = [[a, b], [b, a], [a, a], [a, b]]
        coords = {"Point": [a, b], "Polygon": [ring], "MultiPolygon": [[ring]]}.get(kind, ring[:2])
        docs.append({"type": "Feature", "geometry": {"type": kind, "coordinates": coords},
                     "properties": {"area_code": f"A{k}", "site_id": f"S{k}", "name": "n",
                                    "population": value, "inpatient_beds": value}})  # fmt: skip
    doc: dict = {"type": "FeatureCollection", "features": docs}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    _parse(target, json.dumps(doc, default=str).encode(), ".geojson", fuzz_dir)


@pytest.fixture(scope="module")
def valid_binaries(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("valid")
    return {
        ".gpkg": _spatial(folder, "a.gpkg", [BOX], area_code=["A1"], population=[5]),
        ".zip": _spatial(folder, "a.zip", [BOX], area_code=["A1"], population=[5]),
    }


@FUZZ
@given(
    suffix=st.sampled_from([".gpkg", ".zip"]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_damaged_geopackages_and_shapefiles(fuzz_dir, valid_binaries, suffix, flips, cut):
    data = bytearray(valid_binaries[suffix])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _parse("areas", bytes(data), suffix, fuzz_dir)
