"""Which figures are published, calibrated or assumed, in the library, app and exports."""

from __future__ import annotations

import sys
import types

import openpyxl
import pytest

from dashapp import state
from pathways.icb import make_icb_scenario
from pathways.io import assumptions_table, write_xlsx
from pathways.kpis import evaluate
from pathways.provenance import basis, figure_sources
from pathways.scenario import dump_scenario, load_scenario, with_changes
from tests.dash_text import component_text as _text

SUSSEX = "data/scenarios/sussex.yaml"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("calibrated: England adult acute admissions implied by ...", "calibrated"),
        ("assumption: crisis-house stays are typically up to a week", "assumed"),
        ("10 WTE at about GBP 62k per WTE (Agenda for Change; assumption)", "assumed"),
        ("1 h urban: commonly used, not confirmed by a published standard", "assumed"),
        ("Grant Thornton OAP analysis: 77% of OAPs last 15+ nights", "published"),
        ("published: KH03 mental illness beds", "published"),
        ("user setting", "setting"),
        ("setting: changed from the default in this scenario", "setting"),
    ],
)
def test_a_source_is_reduced_to_its_basis(source, expected):
    assert basis(source) == expected


def _by_path(scenario):
    return figure_sources(scenario).set_index("path")


def test_icb_beds_are_published_and_the_stay_calibrated_the_rest_assumed():
    src = _by_path(make_icb_scenario("Kent and Medway"))
    assert src.loc["inpatient_beds", "basis"] == "published"
    assert "KH03" in src.loc["inpatient_beds", "source"]
    assert src.loc["queues.inpatient_los_days", "basis"] == "calibrated"
    assert "KH03 occupancy" in src.loc["queues.inpatient_los_days", "source"]
    for key in ("crisis_house_places", "mobile_teams", "place_of_safety_suites", "hub_handlers"):
        assert src.loc[key, "basis"] == "assumed"


def test_the_demo_capacities_are_assumed_and_an_edited_rate_is_a_setting():
    sc = load_scenario(SUSSEX)
    src = _by_path(sc)
    assert (src.loc[["inpatient_beds", "mobile_teams"], "basis"] == "assumed").all()
    assert src.loc["queues.oap_los_days", "basis"] == "published"
    edited = _by_path(with_changes(sc, {"queues.oap_los_days": 50.0}))
    assert edited.loc["queues.oap_los_days", "basis"] == "setting"


def test_provenance_survives_a_scenario_file(tmp_path):
    sc = make_icb_scenario("Dorset")
    path = tmp_path / "dorset.yaml"
    dump_scenario(sc, path)
    again = load_scenario(path)
    assert again.provenance == sc.provenance and "inpatient_beds" in again.provenance


def test_the_workbook_says_what_is_published_and_what_assumed(tmp_path):
    sc = make_icb_scenario("Dorset")
    out = write_xlsx(sc, {"current": evaluate(sc)}, tmp_path / "x.xlsx")
    book = openpyxl.load_workbook(out)
    rows = list(book["Published or assumed"].values)
    assert rows[0] == ("Figure", "Path", "Basis", "Source")
    bases = {r[1]: r[2] for r in rows[1:]}
    assert bases["inpatient_beds"] == "published" and bases["mobile_teams"] == "assumed"
    assert (
        assumptions_table(sc).set_index("parameter").loc["queues.inpatient_los_days", "basis"]
        == "calibrated"
    )


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    from dashapp.app import create_app

    if "dashapp.pages.results" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    return types.SimpleNamespace(
        services=sys.modules["dashapp.pages.services"],
        assumptions=sys.modules["dashapp.pages.assumptions"],
    )


def test_the_services_page_shows_where_each_capacity_comes_from(pages):
    store = state.scenario_to_store(make_icb_scenario("Dorset"))
    _fig, _key, panel = pages.services.on_render(store)
    text = " ".join(_text(panel).split())
    assert "Where today's capacities come from" in text
    assert "Published Inpatient beds : KH03" in text
    assert "Assumed Mobile crisis teams" in text


def test_the_assumptions_page_tags_each_rate(pages):
    sc = make_icb_scenario("Dorset")
    rows = {r["path"]: r for r in pages.assumptions.parameter_rows(sc)}
    assert basis(rows["queues.inpatient_los_days"]["source"]) == "calibrated"
    field = pages.assumptions._field(rows["queues.inpatient_los_days"])
    assert "Calibrated" in _text(field)


def test_an_icb_scenario_file_carries_every_figures_provenance_and_reads_back(tmp_path):
    from pathways.provenance import annotated_yaml

    sc = make_icb_scenario("Dorset")
    text = annotated_yaml(sc)
    assert "# Where today's capacities come from:" in text
    assert "#   Inpatient beds: published: KH03" in text
    los = next(
        line for line in text.splitlines() if line.lstrip().startswith("inpatient_los_days:")
    )
    assert "# calibrated: today's beds occupied" in los
    oap = next(line for line in text.splitlines() if line.lstrip().startswith("oap_los_days:"))
    assert "# published: Grant Thornton" in oap
    path = tmp_path / "dorset.yaml"
    path.write_text(text)
    again = load_scenario(path)
    assert again.model_dump(exclude={"base_dir"}) == sc.model_dump(exclude={"base_dir"})
