"""Command line: ``pathways info | evaluate | simulate | validate | optimise | frontier | bench | batch | app``.

Errors in user input print a clear message (file, row, field, or the option) and exit
with status 2; they never print a traceback. Arguments are checked by their ``type=``
functions before any work starts; files and folders are checked before the work that
needs them. Any other failure prints one line and exits with status 1 (``-v`` or
``PATHWAYS_DEBUG=1`` adds the traceback). Infeasible: 3; no plan in time: 4.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import traceback
from pathlib import Path

from pathways.atomic import write_text_atomic
from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError, Problem

log = logging.getLogger("pathways")

DEBUG_ENV = "PATHWAYS_DEBUG"
"""Set to 1 to print the traceback of an unexpected failure (as ``-v`` does)."""

MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
MAX_NODE_LIMIT = 10**9
MAX_WORKERS = 1024
MAX_SEED = 2**31 - 1
MAX_BUDGET_GBP = 1e11
MAX_OAP_TARGET = 1e8
MAX_FRONTIER_BUDGETS = 200


# --------------------------------------------------------------------------- arguments
# Each ``type=`` below refuses a bad value before any work starts; argparse names the
# option ("argument --time-limit: ...") and the parser prints it on one line.


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def _g(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) and abs(value) < 1e16 else f"{value:g}"


def _bounded_float(low: float, high: float, what: str, low_open: bool = False):
    def check(text: str) -> float:
        value = _number(text)
        if (value <= low if low_open else value < low) or value > high:
            above = f"above {_g(low)}" if low_open else f"at least {_g(low)}"
            raise argparse.ArgumentTypeError(
                f"expected {what}, {above} and at most {_g(high)}; got '{text}'"
            )
        return value

    return check


def _bounded_int(low: int, high: int, what: str):
    def check(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected {what}, a whole number from {_g(low)} to {_g(high)}; got '{text}'"
            )
        return value

    return check


seconds = _bounded_float(0, MAX_TIME_LIMIT_S, "seconds", low_open=True)
gap = _bounded_float(0, 1, "a relative gap (0.005 = 0.5%)")
node_limit = _bounded_int(1, MAX_NODE_LIMIT, "branch-and-bound nodes")
workers = _bounded_int(0, MAX_WORKERS, "a number of workers (0 = all cores)")
app_threads = _bounded_int(1, MAX_WORKERS, "a number of threads")
seed = _bounded_int(0, MAX_SEED, "a seed")
budget = _bounded_float(0, MAX_BUDGET_GBP, "GBP per year")
oap_target = _bounded_float(0, MAX_OAP_TARGET, "OAP bed-days per year")
port = _bounded_int(1, 65_535, "a port")
MAX_REPS = 100_000
reps = _bounded_int(1, MAX_REPS, "a number of replications")
sim_years = _bounded_float(0, 100, "years", low_open=True)
warmup_days = _bounded_float(0, 3650, "days")
repatriation_days = _bounded_float(0, 365, "days")
seasonal_amplitude = _bounded_float(0, 0.99, "a share of the yearly mean (0.1 = 10%)")


def positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got '{text}'")
    return value


def budgets(text: str) -> str:
    """``a:b:step`` in GBP per year; kept as text for the optimiser to expand."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            f"expected a:b:step in GBP per year (e.g. 80e6:100e6:5e6), got '{text}'"
        )
    try:
        a, b, step = (float(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers a:b:step in GBP per year (e.g. 80e6:100e6:5e6), got '{text}'"
        ) from None
    if not all(math.isfinite(v) for v in (a, b, step)):
        raise argparse.ArgumentTypeError(f"expected finite numbers a:b:step, got '{text}'")
    if not 0 <= a <= b <= MAX_BUDGET_GBP or step <= 0:
        raise argparse.ArgumentTypeError(
            f"expected 0 <= a <= b <= {_g(MAX_BUDGET_GBP)} and step > 0, got '{text}'"
        )
    count = math.floor((b - a) / step + 1e-9) + 1
    if count > MAX_FRONTIER_BUDGETS:
        raise argparse.ArgumentTypeError(
            f"'{text}' gives {count:,} budgets; at most {MAX_FRONTIER_BUDGETS} are allowed "
            "(use a larger step)"
        )
    return text


_ADDRESS = re.compile(
    r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]+):(?P<port>\d+)/?"
)


def dask_address(text: str) -> str:
    """``local:N`` (1 to 1,024 workers) or a scheduler address ``[tcp://]HOST:PORT``."""
    if text.startswith("local:"):
        n = text.split(":", 1)[1]
        if not n.isdigit() or not 1 <= int(n) <= MAX_WORKERS:
            raise argparse.ArgumentTypeError(
                f"expected local:N with N from 1 to {MAX_WORKERS:,} workers, got '{text}'"
            )
        return text
    m = _ADDRESS.fullmatch(text)
    if not m or not 1 <= int(m["port"]) <= 65_535:
        raise argparse.ArgumentTypeError(
            f"expected local:N or a Dask scheduler address such as tcp://HOST:8786, got '{text}'"
        )
    return text


def input_file(text: str) -> str:
    """A file that exists and is not a folder."""
    p = Path(text)
    try:
        if not p.exists():
            raise argparse.ArgumentTypeError(f"{text}: file not found")
        if p.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a folder; expected a file")
        if not p.is_file():  # a pipe or a device: reading might never end
            raise argparse.ArgumentTypeError(f"{text}: is not a regular file; expected a file")
    except OSError as err:  # a name too long, say
        raise argparse.ArgumentTypeError(f"{text}: cannot be read ({_reason(err)})") from None
    return text


class Parser(argparse.ArgumentParser):
    """Reports a bad argument on one line, ``error: argument --x: ...``, with status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- files


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _problem(where: str, message: str) -> InputError:
    return InputError(Problem(where, None, None, message))


def _output_folder(path: str, option: str = "--out") -> Path:
    """Make the output folder now, so a bad ``--out`` is refused before any work."""
    out = Path(path)
    where = f"{option} {path}"
    if out.exists() and not out.is_dir():
        raise _problem(where, "is a file; expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _problem(where, "a part of this path is a file, not a folder") from None
    except OSError as err:
        raise _problem(where, f"cannot make this folder ({_reason(err)})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise _problem(where, "cannot write in this folder (permission denied)")
    return out


def _output_file(path: str, option: str) -> None:
    """Refuse an output file that cannot be written (a folder, a missing folder)."""
    p = Path(path)
    where = f"{option} {path}"
    if p.is_dir():
        raise _problem(where, "is a folder; expected a file name")
    parent = p.parent
    if not parent.exists():
        raise _problem(where, f"the folder {parent} does not exist")
    if not parent.is_dir():
        raise _problem(where, f"{parent} is a file, not a folder")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as err:
        raise _problem(where, f"cannot write this file ({_reason(err)})") from None
    if not existed:
        p.unlink(missing_ok=True)


def _check_store(url: str | None) -> None:
    """Refuse a ``--store`` URL that cannot be used, before any work."""
    if not url:
        return
    if "://" not in url:  # a file name: a SQLite store
        _store_folder(Path(url).expanduser().parent, f"--store {url}")
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _problem(
            "--store",
            "expected a database URL such as sqlite:////path/runs.db or "
            "postgresql+psycopg2://user@host:5432/db",
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        create_engine(parsed).dispose()
    except NoSuchModuleError:
        raise _problem(
            f"--store {shown}", f"unknown kind of database '{parsed.drivername}'"
        ) from None
    except ImportError as err:
        raise _problem(
            f"--store {shown}",
            f"the database driver '{err.name or parsed.drivername}' is not installed",
        ) from None
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        _store_folder(Path(database).expanduser().parent, f"--store {shown}")


def _store_folder(folder: Path, where: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise _problem(where, f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _problem(where, f"a part of {folder} is a file, not a folder") from None
    except OSError as err:
        raise _problem(where, f"cannot make the folder {folder} ({_reason(err)})") from None


def _check_scheduler(address: str | None) -> None:
    """Refuse a Dask scheduler address nothing listens on (quickly, before any work)."""
    if not address or address.startswith("local:"):
        return
    m = _ADDRESS.fullmatch(address)
    if not m or (m["scheme"] or "tcp") not in ("tcp", "tls"):
        return
    import socket

    host = m["host"].strip("[]")
    try:
        socket.create_connection((host, int(m["port"])), timeout=10).close()
    except OSError as err:
        reason = _reason(err) if not isinstance(err, TimeoutError) else "no answer in 10 s"
        raise _problem(
            f"--dask {address}", f"cannot reach a Dask scheduler there ({reason})"
        ) from None


def _scenario_or_icb(arg: str):
    """A scenario file, or an ICB (code or name) built from the bundled data.

    An ICB's scenario starts from published beds and assumed other capacities (see
    ``pathways.icb.make_icb_scenario``); a note on stderr says so.
    """
    from pathways.geography import resolve_icb
    from pathways.scenario import load_scenario

    p = Path(arg)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        return load_scenario(p)
    try:
        code = resolve_icb(arg)
    except InputError as err:
        suggestion = re.search(r"did you mean .*\?", err.problems[0].message)
        raise InputError(
            Problem(
                arg,
                None,
                None,
                "is neither a scenario file nor an ICB we know"
                + (f" ({suggestion[0]})" if suggestion else "")
                + ". Give a scenario YAML (for example data/scenarios/sussex.yaml) or an ICB's "
                'code or name (for example E54000032 or "Kent and Medway")',
            )
        ) from None
    from pathways.icb import make_icb_scenario

    scenario = make_icb_scenario(code)
    print(
        f"note: {scenario.name}: inpatient beds from published NHS figures (KH03); other "
        "capacities are assumptions (pathways scenario new writes them to a file to check and "
        "edit)",
        file=sys.stderr,
    )
    return scenario


def cmd_scenario_new(args: argparse.Namespace) -> int:
    from pathways.geography import resolve_icb
    from pathways.icb import make_icb_scenario
    from pathways.provenance import annotated_yaml

    code = resolve_icb(args.icb)
    out = Path(args.out)
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise _problem(f"--out {args.out}", "expected a file name ending .yaml")
    _output_file(args.out, "--out")
    if out.exists() and not args.force:
        raise _problem(f"--out {args.out}", "already exists; give another name, or --force to "
                       "replace it")  # fmt: skip
    scenario = make_icb_scenario(code)
    write_text_atomic(out, annotated_yaml(scenario))
    beds = sum(s.capacity.inpatient_beds for s in scenario.sites)
    print(
        f"wrote {out}: {scenario.name}, {len(scenario.sites)} sites, {beds} adult acute beds "
        "(published, KH03); the comments say which figures are published, calibrated or "
        f"assumed. Next: pathways evaluate {out}"
    )
    return 0


def cmd_scenario_list(args: argparse.Namespace) -> int:
    from pathways.geography import icb_ods_codes, list_icbs
    from pathways.icb import icb_trust_beds

    icbs = list_icbs()
    codes = icb_ods_codes()
    beds = icb_trust_beds().groupby("icb_cd")["beds_available"].sum()
    rows = [
        {
            "icb": r.icb_short,
            "code": r.icb_cd,
            "ods_code": codes.get(r.icb_cd, ""),
            "population_mid_2015": int(r.pop_total),
            "mental_illness_beds_kh03": round(float(beds.get(r.icb_cd, 0.0))),
        }
        for r in icbs.sort_values("icb_short").itertuples()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["icb"]) for r in rows)
    print(f"{'ICB':<{width}}  code       ODS  population  MI beds (KH03)")
    for r in rows:
        print(f"{r['icb']:<{width}}  {r['code']}  {r['ods_code']:<3}  "
              f"{r['population_mid_2015']:>10,}  {r['mental_illness_beds_kh03']:>14,}")  # fmt: skip
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from pathways.instance import load_areas_for

    scenario = _scenario_or_icb(args.target)
    areas = load_areas_for(scenario.footprint, scenario.base_dir)
    pop = areas["pop_total"]
    quint = areas.groupby("imd_quintile")["pop_total"].sum().reindex(range(1, 6), fill_value=0)
    sites = [
        {
            "site_id": s.site_id,
            "name": s.name,
            "status": s.status,
            "services": list(s.services),
            **{k: v for k, v in s.capacity.model_dump().items() if v},
        }
        for s in scenario.sites
    ]
    info = {
        "scenario": scenario.name,
        "footprint": scenario.footprint.icb or scenario.footprint.areas_file,
        "areas": int(len(areas)),
        "population": int(pop.sum()),
        "rural_population_share": float(pop[areas["rural"]].sum() / pop.sum())
        if pop.sum()
        else 0.0,
        "imd_quintile_population": {str(q): int(v) for q, v in quint.items()},
        "imd_quintile_share": {str(q): float(v / pop.sum()) for q, v in quint.items()},
        "sites": sites,
        "existing_sites": sum(s.status == "existing" for s in scenario.sites),
        "candidate_sites": sum(s.status == "candidate" for s in scenario.sites),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['scenario']}: {info['areas']:,} areas, population {info['population']:,}")
    print(f"rural population share: {info['rural_population_share']:.1%}")
    print("IMD quintile (1 = most deprived):  population   share")
    for q in range(1, 6):
        print(
            f"  {q}                               {info['imd_quintile_population'][str(q)]:>10,}  {info['imd_quintile_share'][str(q)]:6.1%}"
        )
    if sites:
        print(f"sites: {info['existing_sites']} existing, {info['candidate_sites']} candidate")
        print(f"  {'site_id':<14}{'status':<11}{'services':<45}capacity")
        for s in sites:
            capacity = ", ".join(
                f"{k}={v}"
                for k, v in s.items()
                if k.endswith(("beds", "places", "teams", "suites"))
            )
            print(f"  {s['site_id']:<14}{s['status']:<11}{','.join(s['services']):<45}{capacity}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathways import io
    from pathways.disclosure import ALL, FOOTPRINT, GAP, PER_100K
    from pathways.kpis import HEADLINE_KPIS, evaluate
    from pathways.plan import load_plan

    for option, path in (("--csv", args.csv), ("--xlsx", args.xlsx)):
        if path:
            _output_file(path, option)
    scenario = _scenario_or_icb(args.scenario)
    plan = load_plan(args.plan) if args.plan else None
    card = evaluate(scenario, plan)
    suppress = not args.no_suppress
    name = card.plan_name
    # one protection for every output of this run: they all hide the same cells
    disc = io.protection({name: card}, suppress)
    if args.csv:
        io.write_csv(card, args.csv, suppress=suppress, disc=disc)
        print(f"wrote {args.csv}")
    if args.xlsx:
        io.write_xlsx(scenario, {name: card}, args.xlsx, plan=plan, suppress=suppress, disc=disc)
        print(f"wrote {args.xlsx}")
    if args.json:
        print(io.scorecard_json(card, suppress=suppress, disc=disc))
    elif not (args.csv or args.xlsx):
        print(f"{scenario.name} - plan '{name}' (population {card.population:,.0f})")
        print(f"{'KPI':<42}{'value':>16}{'per 100k':>14}{'IMD gap Q1-Q5':>16}")
        for k in HEADLINE_KPIS:
            cells = [
                (card.kpis[k], k, 16),
                (card.per_100k.get(k), PER_100K + k, 14),
                (card.imd_gap.get(k), GAP + k, 16),
            ]
            print(
                f"{k:<42}"
                + "".join(
                    io.masked(_fmt(v), io.is_hidden(disc, (name, FOOTPRINT, ALL, m)), w)
                    if v is not None
                    else " " * w
                    for v, m, w in cells
                )
            )
        print(io.suppression_note(suppress))
    return 0


def _fmt(v: float) -> str:
    if v is None:
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    return f"{v:.3f}"


def _simulation_inputs(args: argparse.Namespace):
    from pathways.plan import load_plan

    for option, path in (("--json", getattr(args, "json", None)),
                         ("--xlsx", getattr(args, "xlsx", None))):  # fmt: skip
        if path:
            _output_file(path, option)
    _check_scheduler(args.dask)
    scenario = _scenario_or_icb(args.scenario)
    plan = load_plan(args.plan) if args.plan else None
    return scenario, plan


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathways.simulate.report import simulate_cli

    return simulate_cli(args, *_simulation_inputs(args))


def cmd_validate(args: argparse.Namespace) -> int:
    from pathways.simulate.report import validate_cli

    return validate_cli(args, *_simulation_inputs(args))


def _simulation_options(s: argparse.ArgumentParser, default_reps: int) -> None:
    s.add_argument("scenario", help="scenario YAML, ICB code (E54...) or name")
    s.add_argument("--plan", type=input_file, help="plan YAML written by 'pathways optimise'")
    s.add_argument("--reps", type=reps, default=default_reps,
                   help=f"replications (default {default_reps})")  # fmt: skip
    s.add_argument("--seed", type=seed, default=0, help="root seed (default 0)")
    s.add_argument("--years", type=sim_years, help="measured years per replication (default 1)")
    s.add_argument("--warmup-days", type=warmup_days, help="days discarded first (default 60)")
    s.add_argument("--analytic", action="store_true",
                   help="the analytic model's assumptions: no season, exponential stays, "
                   "no repatriation")  # fmt: skip
    s.add_argument("--los", choices=["lognormal", "exponential", "fixed"],
                   help="law of lengths of stay (default lognormal)")  # fmt: skip
    s.add_argument("--repatriation", choices=["after_days", "never"],
                   help="out-of-area placements come back to a freed local bed (default "
                   "after_days)")  # fmt: skip
    s.add_argument("--repatriation-days", type=repatriation_days,
                   help="days away before coming back (default 7)")  # fmt: skip
    s.add_argument("--seasonal-amplitude", type=seasonal_amplitude,
                   help="winter peak above the yearly mean, 0 to 0.99 (default 0.1)")  # fmt: skip
    s.add_argument("--workers", type=workers, default=1,
                   help="local processes (default 1; 0 = all cores)")  # fmt: skip
    s.add_argument("--dask", type=dask_address,
                   help="run replications on Dask: scheduler address, or local:N")  # fmt: skip
    s.add_argument("--json", metavar="OUT", help="write every KPI, replication and day as JSON")


def cmd_optimise(args: argparse.Namespace) -> int:
    from pathways.optimise.run import optimise_cli

    scenario = _scenario_or_icb(args.scenario)
    _output_folder(args.out)
    return optimise_cli(args, scenario)


def cmd_frontier(args: argparse.Namespace) -> int:
    from pathways.optimise.run import frontier_cli

    scenario = _scenario_or_icb(args.scenario)
    if args.out:
        _output_folder(args.out)
    return frontier_cli(args, scenario)


def cmd_bench(args: argparse.Namespace) -> int:
    from pathways.optimise.orlib import bench_orlib, format_result

    result = bench_orlib(args.file, capacity=args.capacity, time_limit_s=args.time_limit)
    print(json.dumps(result.to_json()) if args.json else format_result(result))
    return 0 if result.status == "OPTIMAL" else 1


def cmd_batch(args: argparse.Namespace) -> int:
    from pathways.batch import batch_cli, load_batch_spec

    load_batch_spec(args.spec)  # a spec with mistakes is refused before anything else
    _check_store(args.store)
    _check_scheduler(args.dask)
    _output_folder(args.out)
    return batch_cli(args)


def cmd_app(args: argparse.Namespace) -> int:
    try:
        from dashapp.app import run
    except ImportError as err:  # the library never needs the app; the CLI can start it
        print(f"The web app is not installed: {err}", file=sys.stderr)
        return 2
    run(host=args.host, port=args.port, debug=args.debug, workers=args.workers,
        login=True if args.login else None)  # fmt: skip
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from dashapp.auth import users_cli

    _check_store(args.store)
    return users_cli(args)


def build_parser() -> argparse.ArgumentParser:
    from pathways import __version__

    p = Parser(prog="pathways", description="Crisis pathway planner")
    p.add_argument("--version", action="version", version=f"pathways {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="footprint summary of a scenario or ICB")
    s.add_argument("target", help="scenario YAML, ICB code (E54...) or name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("evaluate", help="scorecard of a plan (default: today's capacity)")
    s.add_argument("scenario", help="scenario YAML, ICB code (E54...) or name")
    s.add_argument("--plan", type=input_file, help="plan YAML written by 'pathways optimise'")
    s.add_argument("--json", action="store_true")
    s.add_argument("--csv", metavar="OUT")
    s.add_argument("--xlsx", metavar="OUT")
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("simulate", help="simulate a plan's pathway: KPIs with 95% intervals")
    _simulation_options(s, 20)
    s.add_argument("--xlsx", metavar="OUT", help="write the tables as an Excel workbook")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("validate", help="analytic against simulated KPIs, and why they differ")
    _simulation_options(s, 10)
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("optimise", help="suggest capacity and sites")
    s.add_argument("scenario")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--mode", choices=["min_weighted", "min_cost"], help="override the scenario's objective"
    )
    s.add_argument("--budget", type=budget, help="revenue budget, GBP per year")
    s.add_argument("--oap-target", type=oap_target,
                   help="min_cost mode: OAP bed-days per year at most")  # fmt: skip
    s.add_argument("--time-limit", type=seconds, default=60.0, help="seconds (default 60)")
    s.add_argument(
        "--gap", type=gap, default=0.005, help="relative gap to stop at, 0 to 1 (default 0.005)"
    )
    s.add_argument(
        "--node-limit",
        type=node_limit,
        help="branch-and-bound nodes per round: a work limit that gives the same plan on a "
        "quiet or busy machine (the time limit is then a safety net)",
    )
    s.add_argument("--workers", type=workers, default=0, help="solver threads (0 = all cores)")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.set_defaults(func=cmd_optimise)

    s = sub.add_parser("frontier", help="optimise over a range of budgets")
    s.add_argument("scenario")
    s.add_argument(
        "--budgets", required=True, type=budgets,
        help=f"a:b:step in GBP per year (e.g. 80e6:100e6:5e6), at most {MAX_FRONTIER_BUDGETS} "
        "budgets",
    )  # fmt: skip
    s.add_argument("--out", help="folder for frontier.csv and frontier.html")
    s.add_argument("--time-limit", type=seconds, default=60.0)
    s.add_argument("--gap", type=gap, default=0.005)
    s.add_argument("--node-limit", type=node_limit,
                   help="branch-and-bound nodes per round (see optimise)")  # fmt: skip
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.add_argument("--workers", type=workers, default=0)
    s.set_defaults(func=cmd_frontier)

    s = sub.add_parser("scenario", help="start a scenario for your own ICB")
    ssub = s.add_subparsers(dest="scenario_command", required=True)
    n = ssub.add_parser(
        "new",
        help="write an editable scenario for an ICB: published beds, assumed other capacities",
    )
    n.add_argument("icb", help='ICB name (e.g. "Kent and Medway"), ONS code (E54...) or ODS code')
    n.add_argument("--out", required=True, help="scenario file to write (.yaml)")
    n.add_argument("--force", action="store_true", help="replace the file if it exists")
    n.set_defaults(func=cmd_scenario_new)
    ls = ssub.add_parser("list", help="the 42 ICBs with their codes, population and beds")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_scenario_list)

    s = sub.add_parser("bench", help="public benchmarks")
    bsub = s.add_subparsers(dest="bench", required=True)
    b = bsub.add_parser("orlib", help="solve an OR-Library capXX or pmedXX instance")
    b.add_argument("file", type=input_file)
    b.add_argument("--capacity", type=positive_number,
                   help="capacity for files that leave it symbolic")  # fmt: skip
    b.add_argument("--time-limit", type=seconds, default=300.0)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("batch", help="run a batch spec (sweeps, Monte Carlo, many ICBs)")
    s.add_argument("spec")
    s.add_argument("--out", required=True)
    s.add_argument("--dask", type=dask_address,
                   help="scheduler address, or local:N for an in-process cluster")  # fmt: skip
    s.add_argument("--workers", type=workers, default=0, help="local processes (0 = all cores)")
    s.add_argument("--store", help="run store URL (default: sqlite file in --out)")
    s.add_argument(
        "--retry-failed", action="store_true",
        help="also run again cases that failed (cases with no plan in time always run again)",
    )  # fmt: skip
    s.set_defaults(func=cmd_batch)

    s = sub.add_parser("app", help="start the web app")
    s.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only, no sign-in); any "
        "other address, e.g. 0.0.0.0, requires sign-in (see docs/deploy.md)",
    )  # fmt: skip
    s.add_argument("--port", type=port, default=8050)
    s.add_argument("--debug", action="store_true")
    s.add_argument(
        "--workers", type=app_threads,
        help="serve with waitress and this many threads (default on a shared address: 4)",
    )  # fmt: skip
    s.add_argument("--login", action="store_true", help="require sign-in even on 127.0.0.1")
    s.set_defaults(func=cmd_app)

    try:  # the users of a shared web app; the library never needs the app
        from dashapp.auth import add_users_parser
    except ImportError:
        pass
    else:
        add_users_parser(sub)
        sub.choices["users"].set_defaults(func=cmd_users)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except InfeasibleError as err:
        print(f"infeasible: {err}", file=sys.stderr)
        return 3
    except NoPlanInTimeError as err:
        print(f"time limit: {err}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (head, less)
        sys.stderr.close()
        return 0
    except OSError as err:  # a file that cannot be read or written, a network problem
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{_reason(err)}", file=sys.stderr)
        _details(args)
        return 2 if err.filename else 1
    except Exception as err:  # noqa: BLE001 - the last resort: one line, never a traceback
        if type(err).__name__ == "StatusNotOk":  # OR-Tools refused the model it was given
            what = getattr(args, "scenario", None) or getattr(args, "file", None) or "the input"
            print(
                f"error: {what}: the solver refused the model built from this input and "
                f"these options ({_one_line(err)})",
                file=sys.stderr,
            )
            _details(args)
            return 2
        more = "" if _details(args) else "; run with -v for details"
        print(
            f"error: unexpected problem ({type(err).__name__}): {_one_line(err)}{more}",
            file=sys.stderr,
        )
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or "no message"


def _details(args: argparse.Namespace) -> bool:
    """Print the traceback of the exception being handled with -v or PATHWAYS_DEBUG=1.

    True when it was printed.
    """
    if getattr(args, "verbose", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exc(file=sys.stderr)
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
