"""Bad command-line input gives one plain line and a non-zero status, never a traceback.

Every row is refused before any optimisation starts, so the tests take the same time on
a quiet or a busy machine.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pathways import cli

REPO = Path(__file__).resolve().parents[2]
SUSSEX = str(REPO / "data" / "scenarios" / "sussex.yaml")
ORLIB = REPO / "tests" / "fixtures" / "orlib"
PMED1 = str(ORLIB / "pmed1.txt")
CAP41 = str(ORLIB / "cap41.txt")


def _closed_port() -> int:
    """A local port nothing listens on (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Bad inputs of every kind, and a valid batch spec, in a fresh folder."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "bad.txt").write_text("1 2 3 4\n")
    spec = {"name": "errors", "base": SUSSEX, "run": "evaluate"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return {"tmp": str(tmp_path), "port": str(_closed_port())}


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``pathways ARGV`` in this process: (exit status, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse refuses an argument by exiting
        code = stop.code
    return int(code), capsys.readouterr().err


def assert_plain(err: str, pattern: str) -> None:
    assert "Traceback" not in err and 'File "' not in err, err
    assert err.startswith("error: "), err
    assert len(err.strip().splitlines()) == 1, err  # one line
    assert re.search(pattern, err), (pattern, err)


T = "{tmp}"
OPT = ["optimise", SUSSEX, "--out", f"{T}/out"]
FRONTIER = ["frontier", SUSSEX]
BATCH = ["batch", f"{T}/spec.yaml", "--out", f"{T}/batch"]

# fmt: off
# id, argv ({tmp} is the test's folder, {port} a closed local port), exit status, regex
CASES = [
    # scenario files (and ICB names)
    ("scenario is a folder", ["info", f"{T}/folder"], 2, r"folder: is a folder; expected a YAML"),
    ("scenario missing", ["info", f"{T}/missing.yaml"], 2, r"missing\.yaml: file not found"),
    ("scenario empty", ["evaluate", f"{T}/empty.yaml"], 2, r"empty\.yaml: the file is empty"),
    ("scenario is a list", ["info", f"{T}/list.yaml"], 2, r"list\.yaml: expected a mapping"),
    ("scenario is binary", ["info", f"{T}/binary.yaml"], 2, r"binary\.yaml: not a UTF-8 text"),
    ("unknown ICB", ["evaluate", "Narnia"], 2, r"Narnia: is neither a scenario file nor an ICB"),
    ("misspelt ICB", ["info", "Susex"], 2, r"Susex: .*did you mean 'Sussex'"),
    # evaluate: plan and output files
    ("plan is a folder", ["evaluate", SUSSEX, "--plan", f"{T}/folder"], 2,
     r"argument --plan: .*folder: is a folder"),
    ("plan missing", ["evaluate", SUSSEX, "--plan", f"{T}/nope.yaml"], 2,
     r"argument --plan: .*nope\.yaml: file not found"),
    ("xlsx into a folder", ["evaluate", SUSSEX, "--xlsx", f"{T}/folder"], 2,
     r"--xlsx .*folder: is a folder; expected a file name"),
    ("csv under a file", ["evaluate", SUSSEX, "--csv", f"{T}/afile/x.csv"], 2,
     r"--csv .*afile/x\.csv: .*afile is a file, not a folder"),
    ("csv in a missing folder", ["evaluate", SUSSEX, "--csv", f"{T}/nowhere/x.csv"], 2,
     r"--csv .*x\.csv: the folder .*nowhere does not exist"),
    # optimise: numbers
    ("time limit 0", [*OPT, "--time-limit", "0"], 2, r"argument --time-limit: expected seconds.*'0'"),
    ("time limit nan", [*OPT, "--time-limit", "nan"], 2,
     r"argument --time-limit: expected a finite number, got 'nan'"),
    ("time limit -1", [*OPT, "--time-limit", "-1"], 2, r"argument --time-limit: .*above 0.*'-1'"),
    ("time limit inf", [*OPT, "--time-limit", "inf"], 2, r"argument --time-limit: .*finite.*'inf'"),
    ("time limit 1e300", [*OPT, "--time-limit", "1e300"], 2,
     r"argument --time-limit: .*at most 604,800"),
    ("time limit text", [*OPT, "--time-limit", "soon"], 2,
     r"argument --time-limit: expected a number, got 'soon'"),
    ("gap -1", [*OPT, "--gap", "-1"], 2, r"argument --gap: .*at least 0 and at most 1; got '-1'"),
    ("gap nan", [*OPT, "--gap", "nan"], 2, r"argument --gap: expected a finite number"),
    ("node limit 0", [*OPT, "--node-limit", "0"], 2,
     r"argument --node-limit: .*whole number from 1 to 1,000,000,000; got '0'"),
    ("node limit fraction", [*OPT, "--node-limit", "2.5"], 2,
     r"argument --node-limit: expected a whole number, got '2\.5'"),
    ("workers -3", [*OPT, "--workers", "-3"], 2, r"argument --workers: .*from 0 to 1,024; got '-3'"),
    ("seed -1", [*OPT, "--seed", "-1"], 2, r"argument --seed: .*from 0 to 2,147,483,647"),
    ("budget nan", [*OPT, "--budget", "nan"], 2, r"argument --budget: expected a finite number"),
    ("budget negative", [*OPT, "--budget=-5"], 2, r"argument --budget: expected GBP per year"),
    ("oap target negative", [*OPT, "--oap-target=-5"], 2,
     r"argument --oap-target: expected OAP bed-days per year"),
    ("mode unknown", [*OPT, "--mode", "fastest"], 2, r"argument --mode: invalid choice: 'fastest'"),
    # optimise: output folder
    ("out under a file", ["optimise", SUSSEX, "--out", f"{T}/afile/o"], 2,
     r"--out .*afile/o: a part of this path is a file, not a folder"),
    ("out is a file", ["optimise", SUSSEX, "--out", f"{T}/afile"], 2,
     r"--out .*afile: is a file; expected a folder"),
    pytest.param("out in /proc", ["optimise", SUSSEX, "--out", "/proc/pathways-x"], 2,
                 r"--out /proc/pathways-x: cannot make this folder",
                 marks=pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc"),
                 id="out in /proc"),  # fmt: skip
    ("out missing", ["optimise", SUSSEX], 2, r"the following arguments are required: --out"),
    # frontier
    ("budgets nan", [*FRONTIER, "--budgets", "nan:1:1"], 2,
     r"argument --budgets: expected finite numbers a:b:step, got 'nan:1:1'"),
    ("budgets inf", [*FRONTIER, "--budgets", "1:inf:1"], 2, r"argument --budgets: .*finite"),
    ("budgets descending", [*FRONTIER, "--budgets", "5:1:1"], 2,
     r"argument --budgets: expected 0 <= a <= b .*step > 0, got '5:1:1'"),
    ("budgets step 0", [*FRONTIER, "--budgets", "1:5:0"], 2, r"argument --budgets: .*step > 0"),
    ("budgets text", [*FRONTIER, "--budgets", "abc"], 2,
     r"argument --budgets: expected a:b:step in GBP per year"),
    ("budgets two parts", [*FRONTIER, "--budgets", "1:2"], 2, r"argument --budgets: expected a:b:step"),
    ("budgets too many", [*FRONTIER, "--budgets", "0:1e10:1"], 2,
     r"argument --budgets: .*10,000,000,001 budgets; at most 200"),
    ("budgets negative", [*FRONTIER, "--budgets", "-5:1:1"], 2, r"argument --budgets"),
    ("frontier time limit 0", [*FRONTIER, "--budgets", "1e6:2e6:1e6", "--time-limit", "0"], 2,
     r"argument --time-limit"),
    ("frontier out under a file", [*FRONTIER, "--budgets", "58e6:58e6:1e6", "--out",
                                   f"{T}/afile/f"], 2, r"--out .*afile/f: a part of this path"),
    # bench orlib
    ("orlib folder", ["bench", "orlib", f"{T}/folder"], 2, r"argument file: .*folder: is a folder"),
    ("orlib missing", ["bench", "orlib", f"{T}/cap999.txt"], 2,
     r"argument file: .*cap999\.txt: file not found"),
    ("orlib binary", ["bench", "orlib", f"{T}/binary.yaml"], 2,
     r"binary\.yaml: not a text file; expected an OR-Library"),
    ("orlib empty", ["bench", "orlib", f"{T}/empty.yaml"], 2, r"empty\.yaml: file is empty"),
    ("orlib malformed", ["bench", "orlib", f"{T}/bad.txt"], 2,
     r"bad\.txt, row 1: cannot tell the problem"),
    ("orlib time limit 0", ["bench", "orlib", PMED1, "--time-limit", "0"], 2,
     r"argument --time-limit"),
    ("orlib time limit nan", ["bench", "orlib", PMED1, "--time-limit", "nan"], 2,
     r"argument --time-limit: expected a finite number"),
    ("orlib capacity -1", ["bench", "orlib", CAP41, "--capacity", "-1"], 2,
     r"argument --capacity: expected a number above 0"),
    # batch
    ("spec is a folder", ["batch", f"{T}/folder", "--out", f"{T}/b"], 2, r"folder: is a folder"),
    ("spec missing", ["batch", f"{T}/nope.yaml", "--out", f"{T}/b"], 2, r"nope\.yaml: file not found"),
    ("spec empty", ["batch", f"{T}/empty.yaml", "--out", f"{T}/b"], 2, r"empty\.yaml: the file is empty"),
    ("spec is a list", ["batch", f"{T}/list.yaml", "--out", f"{T}/b"], 2,
     r"list\.yaml: expected a mapping"),
    ("spec is binary", ["batch", f"{T}/binary.yaml", "--out", f"{T}/b"], 2, r"binary\.yaml: not a UTF-8"),
    ("batch workers -3", [*BATCH, "--workers", "-3"], 2, r"argument --workers: .*'-3'"),
    ("dask malformed", [*BATCH, "--dask", "garbage"], 2,
     r"argument --dask: expected local:N or a Dask scheduler address.*'garbage'"),
    ("dask local:0", [*BATCH, "--dask", "local:0"], 2, r"argument --dask: expected local:N with N from 1"),
    ("dask local:x", [*BATCH, "--dask", "local:x"], 2, r"argument --dask: .*'local:x'"),
    ("dask unreachable", [*BATCH, "--dask", "tcp://127.0.0.1:{port}"], 2,
     r"--dask tcp://127\.0\.0\.1:\d+: cannot reach a Dask scheduler there"),
    ("store unknown database", [*BATCH, "--store", "foo://x"], 2,
     r"--store foo://x: unknown kind of database 'foo'"),
    ("store under a file", [*BATCH, "--store", f"sqlite:///{T}/afile/runs.db"], 2,
     r"--store sqlite:///.*afile/runs\.db: .*afile is a file, not a folder"),
    ("store path under a file", [*BATCH, "--store", f"{T}/afile/runs.db"], 2,
     r"--store .*afile/runs\.db: .*afile is a file, not a folder"),
    ("batch out under a file", ["batch", f"{T}/spec.yaml", "--out", f"{T}/afile/b"], 2,
     r"--out .*afile/b: a part of this path is a file"),
    # app and commands
    ("app port 0", ["app", "--port", "0"], 2, r"argument --port: .*from 1 to 65,535; got '0'"),
    ("app port 99999", ["app", "--port", "99999"], 2, r"argument --port: .*got '99999'"),
    ("app workers 0", ["app", "--workers", "0"], 2, r"argument --workers: .*from 1 to 1,024"),
    ("unknown command", ["plan-it"], 2, r"argument command: invalid choice: 'plan-it'"),
]
# fmt: on


def _param(row):
    if hasattr(row, "marks"):  # already a pytest.param
        return row
    return pytest.param(*row, id=row[0])


@pytest.mark.parametrize(("name", "argv", "status", "pattern"), [_param(r) for r in CASES])
def test_bad_input_is_one_plain_line(name, argv, status, pattern, files, capsys):
    argv = [a.format(**files) for a in argv]
    code, err = run_main(argv, capsys)
    assert code == status, err
    assert_plain(err, pattern)


def test_nothing_is_written_for_a_refused_batch(files, capsys):
    code, err = run_main(
        [*[a.format(**files) for a in BATCH], "--dask", f"tcp://127.0.0.1:{files['port']}"], capsys
    )
    assert code == 2, err
    # the --out folder is made only after the other checks
    assert not Path(files["tmp"], "batch").exists()


def test_csv_check_leaves_no_file_behind(files, capsys):
    """Checking that --csv can be written does not leave an empty file if the run stops."""
    out = Path(files["tmp"], "s.csv")
    code, err = run_main(["evaluate", f"{files['tmp']}/missing.yaml", "--csv", str(out)], capsys)
    assert code == 2 and "missing.yaml" in err
    assert not out.exists()


# --------------------------------------------------------------------------- last resorts


def _fail_with(monkeypatch, exc: BaseException) -> None:
    import pathways.optimise.orlib as orlib

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(orlib, "bench_orlib", fail)


def test_an_unexpected_failure_is_one_line_and_the_traceback_needs_v(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    _fail_with(monkeypatch, RuntimeError("the wheels came off\nat line two"))
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 1
    assert_plain(
        err, r"^error: unexpected problem \(RuntimeError\): the wheels came off at line two; "
        r"run with -v for details$",
    )  # fmt: skip
    code, err = run_main(["-v", "bench", "orlib", PMED1], capsys)
    assert code == 1
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: unexpected")
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 1 and "Traceback" in err


def test_a_file_problem_deep_in_a_command_names_the_file(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    _fail_with(monkeypatch, PermissionError(13, "Permission denied", "/srv/out/scorecard.xlsx"))
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 2
    assert_plain(err, r"^error: /srv/out/scorecard\.xlsx: Permission denied$")


def test_a_model_the_solver_refuses_is_a_plain_error(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    StatusNotOk = type("StatusNotOk", (Exception,), {})  # as OR-Tools raises it  # noqa: N806
    _fail_with(monkeypatch, StatusNotOk("invalid model: lower bound is NaN"))
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 2
    assert_plain(err, r"pmed1\.txt: the solver refused the model .*lower bound is NaN")


def test_exit_statuses_3_and_4_are_kept(monkeypatch, capsys):
    from pathways.errors import InfeasibleError, NoPlanInTimeError

    _fail_with(monkeypatch, InfeasibleError(["the budget cannot fund the locked services"]))
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 3 and err.startswith("infeasible: ") and "Traceback" not in err
    _fail_with(monkeypatch, NoPlanInTimeError(5))
    code, err = run_main(["bench", "orlib", PMED1], capsys)
    assert code == 4 and err.startswith("time limit: ") and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["optimise", SUSSEX, "--out", "x", "--time-limit", "nan"], ["info", str(REPO / "data")]],
    ids=["time limit nan", "scenario is a folder"],
)
def test_the_installed_command_prints_no_traceback(argv):
    r = subprocess.run([sys.executable, "-m", "pathways.cli", *argv], capture_output=True,
                       text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr


# --------------------------------------------------------------------------- --retry-failed


def test_retry_failed_reaches_the_runner(monkeypatch, files, capsys):
    import pathways.batch as batch
    from pathways.errors import InputError, Problem

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("retry_failed"))
        raise InputError(Problem("spy", None, None, "stopped here"))

    monkeypatch.setattr(batch, "run_batch", spy)
    for extra in ([], ["--retry-failed"]):
        code, _ = run_main([*[a.format(**files) for a in BATCH], *extra], capsys)
        assert code == 2
    assert seen == [False, True]
    with pytest.raises(SystemExit):
        cli.main(["batch", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--retry-failed also run again cases that failed" in help_text


def test_a_failed_case_runs_again_only_with_retry_failed(tmp_path, capsys):
    spec = {
        "name": "one failing case",
        "base": SUSSEX,
        "grid": {"footprint.travel_matrix_file": ["no_such_matrix.csv"]},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    argv = ["batch", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]

    def ran(extra: list[str]) -> str:
        code, err = run_main([*argv, *extra], capsys)
        assert code == 1 and "Traceback" not in err  # the case fails every time
        return re.search(r"1 cases: (\d+) run now, (\d+) from an earlier run", err).groups()

    assert ran([]) == ("1", "0")
    assert ran([]) == ("0", "1")  # recorded as failed: not run again
    assert ran(["--retry-failed"]) == ("1", "0")
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(frame["status"]) == ["failed"]
