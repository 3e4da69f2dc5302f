"""The command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathways.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_info_reports_sussex_areas_and_population():
    r = run("info", str(SUSSEX), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["areas"] == 995
    assert info["population"] == 1_659_921
    assert sum(info["imd_quintile_population"].values()) == 1_659_921
    assert len(info["sites"]) == 34


def test_info_accepts_an_icb_name_and_prints_a_table():
    r = run("info", "Sussex")
    assert r.returncode == 0, r.stderr
    assert "995 areas" in r.stdout and "1,659,921" in r.stdout
    bad = run("info", "Atlantis")
    assert bad.returncode == 2
    assert "Atlantis" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_json_csv_and_xlsx(tmp_path):
    r = run("evaluate", str(SUSSEX), "--json")
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["kpis"]["admissions_per_year"] > 0
    csv = tmp_path / "s.csv"
    xlsx = tmp_path / "s.xlsx"
    r = run("evaluate", str(SUSSEX), "--csv", str(csv), "--xlsx", str(xlsx))
    assert r.returncode == 0, r.stderr
    assert "admissions_per_year" in csv.read_text()
    wb = openpyxl.load_workbook(xlsx)
    assert {"Scorecard", "Plan by site", "KPIs by area", "KPIs by IMD quintile", "Assumptions"} <= set(wb.sheetnames)
    # small numbers are suppressed in the area sheet
    ws = wb["KPIs by area"]
    values = [c.value for row in ws.iter_rows(min_row=2) for c in row]
    assert "[c]" in values


def test_bad_scenario_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfootprint: {icb: E54000053}\nsites:\n  - site_id: A\n    name: A\n    x_m: 1\n    y_m: 1\n"
                   "    capacity: {inpatient_beds: -1}\n")
    r = run("evaluate", str(bad))
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "sites[0].capacity.inpatient_beds" in r.stderr
    assert "Traceback" not in r.stderr


def test_bench_orlib_json():
    r = run("bench", "orlib", str(REPO / "tests" / "fixtures" / "orlib" / "pmed1.txt"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "OPTIMAL"
    assert out["objective"] == pytest.approx(5819)
    assert out["seconds"] > 0


@pytest.mark.slow
def test_frontier_table_and_plot(tmp_path):
    r = run("frontier", str(SUSSEX), "--budgets", "58e6:60e6:2e6", "--out", str(tmp_path), "--time-limit", "25",
            "--no-suppress", timeout=600)
    assert r.returncode == 0, r.stderr
    import pandas as pd

    df = pd.read_csv(tmp_path / "frontier.csv")
    assert list(df["budget_gbp_per_year"]) == [58e6, 60e6]
    assert (tmp_path / "frontier.html").exists()
    assert "marginal_gbp_per_oap_bed_day_avoided" in df.columns
    # more money never makes the plan worse (up to the proven gap of each solve)
    assert df["objective"].iloc[1] <= df["objective"].iloc[0] * (1 + df["gap"].iloc[0] + 1e-6)
