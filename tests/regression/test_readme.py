"""The README's code blocks run as written.

The commands are read from README.md itself, so the test follows the README:

* the ``python`` block under "## Python" is run in a subprocess from the repository
  root, exactly as written; it must exit 0 and print what it says;
* each ``pathways ...`` line of the bash block under "## Command line" is run from the
  repository root with the ``pathways`` command installed by ``pip install -e .``, in
  README order, except ``pathways app`` (a server) and the ``--dask tcp://host:8786``
  line (it needs a cluster). Each must exit 0 and produce the files the README names.

Where the README writes under ``out/``, each argument starting with ``out/`` is
rewritten to the same path under one temporary folder for the module (so
``--out out/sussex`` becomes ``--out <tmp>/out/sussex`` and the later
``--plan out/sussex/plan.yaml`` reads the plan the optimise line wrote); nothing else
in a line is changed. Lines that optimise (``optimise``, ``frontier``, ``batch``) or
read what an optimise line wrote, and the Python block (it optimises for up to 60 s),
are marked ``slow``: they run with the README's own arguments and take minutes.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
SLOW_COMMANDS = ("optimise", "frontier", "batch", "simulate", "validate")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _block(section: str, lang: str) -> str:
    match = re.search(rf"^```{lang}\n(.*?)^```", _section(section), re.M | re.S)
    assert match, f"README section '{section}' has no ```{lang} block"
    return match.group(1)


def _command_lines() -> list[list[str]]:
    """The README's ``pathways`` command lines, as argument lists (comments dropped)."""
    lines = []
    for raw in _block("Command line", "bash").splitlines():
        words = shlex.split(raw, comments=True)
        if not words or words[0] != "pathways":
            continue
        if words[1:2] == ["app"] or "--dask" in words:
            continue  # a server, and a line that needs a Dask cluster
        lines.append(words)
    return lines


COMMANDS = _command_lines()


def _options(words: list[str]) -> dict[str, str]:
    return {
        w: words[i + 1]
        for i, w in enumerate(words[:-1])
        if w.startswith("--") and not words[i + 1].startswith("--")
    }


def _pathways() -> list[str]:
    exe = Path(sys.executable).parent / "pathways"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("pathways")
    return [found] if found else [sys.executable, "-m", "pathways.cli"]


def _params():
    for i, words in enumerate(COMMANDS):
        slow = words[1] in SLOW_COMMANDS or "--plan" in words
        yield pytest.param(
            words, id=f"{i}: {shlex.join(words[1:])}", marks=[pytest.mark.slow] if slow else []
        )


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_readme_lists_the_commands_it_documents():
    subcommands = {words[1] for words in COMMANDS}
    assert {"info", "evaluate", "optimise", "frontier", "batch", "bench"} <= subcommands
    assert any("--plan" in words for words in COMMANDS)


@pytest.mark.parametrize("words", list(_params()))
def test_readme_command_runs(words: list[str], out_root: Path):
    args = [str(out_root / w) if w.startswith("out/") else w for w in words[1:]]
    run = subprocess.run(
        [*_pathways(), *args], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    line = shlex.join(words)
    assert run.returncode == 0, f"{line}\nexit {run.returncode}\n{run.stderr[-3000:]}"
    sub, opts = words[1], _options(words)

    if "--json" in words:
        data = json.loads(run.stdout)
        if sub == "evaluate":
            assert data["kpis"]["admissions_per_year"] > 0
        assert data, line
    if sub == "optimise":  # the README's next line reads <out>/plan.yaml
        plan = yaml.safe_load((out_root / opts["--out"] / "plan.yaml").read_text())
        assert plan["sites"], line
    if "--xlsx" in opts:
        import openpyxl

        book = openpyxl.load_workbook(out_root / opts["--xlsx"], read_only=True)
        # a scorecard, or a simulation's KPIs with their intervals
        assert ("KPIs" if sub == "simulate" else "Scorecard") in book.sheetnames
    if sub == "frontier":
        _check_frontier(out_root / opts["--out"], opts["--budgets"])
    if sub == "batch":
        _check_batch(out_root / opts["--out"], REPO / words[2])


def _check_frontier(out: Path, budgets: str) -> None:
    """One row per budget of the README's range, each with a plan; a frontier that moves."""
    start, stop, step = (float(x) for x in budgets.split(":"))
    expected = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    assert (out / "frontier.html").exists()
    df = pd.read_csv(out / "frontier.csv")
    assert df["budget_gbp_per_year"].tolist() == pytest.approx(expected)
    assert df["oap_bed_days_per_year"].notna().all(), df[["budget_gbp_per_year", "status"]]
    # more money never buys a worse plan, and across the range it buys a better one (cells
    # hidden by small-number suppression, "[c]", are left out of the comparison)
    obj = pd.to_numeric(df["objective"], errors="coerce").dropna().to_numpy()
    assert len(obj) >= 2, df
    assert all(b <= a * (1 + 1e-6) + 1e-6 for a, b in zip(obj, obj[1:], strict=False))
    assert obj[-1] < obj[0] * (1 - 1e-3), "every budget of the README's range gives the same plan"
    cost = pd.to_numeric(df["total_cost_gbp_per_year"], errors="coerce")
    assert (cost.dropna() <= df["budget_gbp_per_year"][cost.notna()] * (1 + 1e-6)).all()


def _check_batch(out: Path, spec_path: Path) -> None:
    """The spec's grid of cases, each answered, and the summary; a plan per optimised case."""
    spec = yaml.safe_load(spec_path.read_text())
    n = 1
    for values in spec.get("grid", {}).values():
        n *= len(values)
    assert (out / "summary.md").exists()
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == n
    assert (results["status"] == "ok").all(), results[["case_id", "status", "error"]]
    if spec.get("run") in ("optimise", "frontier"):
        assert len(list((out / "plans").glob("*.yaml"))) == n
    if spec.get("run") == "simulate":  # means with their 95% intervals
        assert (results["oap_bed_days_per_year_ci_low"] <= results["oap_bed_days_per_year"]).all()


@pytest.mark.slow
def test_readme_python_block_runs():
    code = _block("Python", "python")
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # print(today OAP bed-days, optimised OAP bed-days), then print(status, gap)
    lines = run.stdout.splitlines()
    today, better = (float(x) for x in lines[0].split())
    assert today > 0 and better >= 0
    status, gap = lines[1].split()
    assert status in ("OPTIMAL", "TIME_LIMIT", "HEURISTIC"), run.stdout
    assert 0 <= float(gap) < 1
