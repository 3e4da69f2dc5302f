"""``pathways simulate`` and ``pathways validate`` from the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from pathways import cli

REPO = Path(__file__).resolve().parents[2]
SUSSEX = str(REPO / "data" / "scenarios" / "sussex.yaml")
SHORT = ["--reps", "2", "--seed", "4", "--years", "0.05", "--warmup-days", "10"]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return int(code), out.out, out.err


def test_simulate_prints_a_table_with_intervals(capsys):
    code, out, err = run_main(["simulate", SUSSEX, *SHORT], capsys)
    assert code == 0, err
    assert "inpatient_blocked_share" in out and "95% CI" in out and "hub_service_level" in out
    assert "2/2 replications done" in err  # the progress display


def test_simulate_json_is_the_same_for_any_number_of_workers(tmp_path, capsys):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert run_main(["simulate", SUSSEX, *SHORT, "--json", str(one)], capsys)[0] == 0
    assert run_main(["simulate", SUSSEX, *SHORT, "--workers", "2", "--json", str(two)],
                    capsys)[0] == 0  # fmt: skip
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a == b
    assert a["reps"] == 2 and a["seed"] == 4 and a["params"]["repatriation"] == "after_days"
    k = a["kpis"]["inpatient_blocked_share"]
    assert set(k) == {"analytic", "mean", "ci_low", "ci_high", "agrees"}
    assert len(a["daily_oaps_by_replication"]) == 2


def test_simulate_on_dask_matches_the_local_run(tmp_path, capsys):
    pytest.importorskip("distributed")
    local, dask = tmp_path / "local.json", tmp_path / "dask.json"
    assert run_main(["simulate", SUSSEX, *SHORT, "--json", str(local)], capsys)[0] == 0
    code, _, err = run_main(["simulate", SUSSEX, *SHORT, "--dask", "local:2", "--json",
                             str(dask)], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(local.read_text()) == json.loads(dask.read_text())


def test_simulate_xlsx(tmp_path, capsys):
    out = tmp_path / "sim.xlsx"
    code, _, err = run_main(["simulate", SUSSEX, *SHORT, "--analytic", "--xlsx", str(out)],
                            capsys)  # fmt: skip
    assert code == 0, err
    wb = openpyxl.load_workbook(out, read_only=True)
    assert wb.sheetnames == ["KPIs", "Replications", "OAPs by day", "Crisis line by hour",
                             "Occupancy by month", "Settings"]  # fmt: skip


def test_validate_flags_and_explains(tmp_path, capsys):
    js = tmp_path / "v.json"
    code, out, err = run_main(["validate", SUSSEX, *SHORT, "--json", str(js)], capsys)
    assert code == 0, err
    assert "analytic model against" in out and "crisis line by hour" in out
    d = json.loads(js.read_text())
    assert list(d["steps"]) == ["time-varying load", "LOS shape", "seasonality", "repatriation"]
    for row in d["kpis"]:
        if row["agrees"] is False:
            assert row["explained_by"], row["kpi"]
            assert "explained by:" in out


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["simulate", SUSSEX, "--reps", "0"], r"--reps: expected a number of replications"),
        (["simulate", SUSSEX, "--reps", "many"], r"--reps: expected a whole number"),
        (["simulate", SUSSEX, "--seed", "-3"], r"--seed"),
        (["simulate", SUSSEX, "--years", "0"], r"--years"),
        (["simulate", SUSSEX, "--repatriation", "sometimes"], r"--repatriation"),
        (["simulate", SUSSEX, "--seasonal-amplitude", "1.5"], r"--seasonal-amplitude"),
        (["simulate", SUSSEX, "--dask", "nowhere"], r"--dask"),
        (["simulate", SUSSEX, "--json", "{tmp}"], r"--json .*is a folder"),
        (["simulate", SUSSEX, "--xlsx", "{tmp}/no/such/x.xlsx"], r"does not exist"),
        (["simulate", "{tmp}/missing.yaml"], r"missing\.yaml"),
        (["simulate", SUSSEX, "--plan", "{tmp}/noplan.yaml"], r"file not found"),
        (["validate", SUSSEX, "--reps", "-1"], r"--reps"),
        (["validate", SUSSEX, "--warmup-days", "nan"], r"--warmup-days"),
    ],
)
def test_bad_arguments_are_one_plain_line(argv, pattern, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_main(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and err.startswith("error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), (pattern, err)


def test_the_installed_command_prints_no_traceback():
    r = subprocess.run([sys.executable, "-m", "pathways.cli", "simulate", SUSSEX, "--reps", "x"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
