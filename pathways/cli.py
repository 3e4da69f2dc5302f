"""Command line: ``pathways info | evaluate | optimise | frontier | bench | batch | app``.

Errors in user input print a clear message (file, row, field) and exit with
status 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError, Problem

log = logging.getLogger("pathways")


def _scenario_or_icb(arg: str):
    """A scenario file, or an ICB (code or name) built from the bundled data.

    An ICB's scenario holds modelled capacities (see ``pathways.batch.make_icb_scenario``);
    a note on stderr says so, so nobody mistakes them for published figures.
    """
    from pathways.geography import resolve_icb
    from pathways.scenario import load_scenario

    p = Path(arg)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        return load_scenario(p)
    try:
        code = resolve_icb(arg)
    except InputError as err:
        raise InputError(
            Problem(
                arg,
                None,
                None,
                f"is neither a scenario file nor an ICB we know ({err.problems[0].message}). "
                "Give a scenario YAML (for example data/scenarios/sussex.yaml) or an ICB's "
                'code or name (for example E54000032 or "Kent and Medway")',
            )
        ) from None
    from pathways.batch import make_icb_scenario

    scenario = make_icb_scenario(code)
    print(
        f"note: {scenario.name} is built from bundled open data; its capacities are modelled "
        "estimates, not published figures",
        file=sys.stderr,
    )
    return scenario


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


def cmd_optimise(args: argparse.Namespace) -> int:
    from pathways.optimise.run import optimise_cli

    return optimise_cli(args, _scenario_or_icb(args.scenario))


def cmd_frontier(args: argparse.Namespace) -> int:
    from pathways.optimise.run import frontier_cli

    return frontier_cli(args, _scenario_or_icb(args.scenario))


def cmd_bench(args: argparse.Namespace) -> int:
    from pathways.optimise.orlib import bench_orlib, format_result

    result = bench_orlib(args.file, capacity=args.capacity, time_limit_s=args.time_limit)
    print(json.dumps(result.to_json()) if args.json else format_result(result))
    return 0 if result.status == "OPTIMAL" else 1


def cmd_batch(args: argparse.Namespace) -> int:
    from pathways.batch import batch_cli

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

    return users_cli(args)


def build_parser() -> argparse.ArgumentParser:
    from pathways import __version__

    p = argparse.ArgumentParser(prog="pathways", description="Crisis pathway planner")
    p.add_argument("--version", action="version", version=f"pathways {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="footprint summary of a scenario or ICB")
    s.add_argument("target", help="scenario YAML, ICB code (E54...) or name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("evaluate", help="scorecard of a plan (default: today's capacity)")
    s.add_argument("scenario", help="scenario YAML, ICB code (E54...) or name")
    s.add_argument("--plan", help="plan YAML written by 'pathways optimise'")
    s.add_argument("--json", action="store_true")
    s.add_argument("--csv", metavar="OUT")
    s.add_argument("--xlsx", metavar="OUT")
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("optimise", help="suggest capacity and sites")
    s.add_argument("scenario")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--mode", choices=["min_weighted", "min_cost"], help="override the scenario's objective"
    )
    s.add_argument("--budget", type=float, help="revenue budget, GBP per year")
    s.add_argument("--oap-target", type=float, help="min_cost mode: OAP bed-days per year at most")
    s.add_argument("--time-limit", type=float, default=60.0, help="seconds (default 60)")
    s.add_argument(
        "--gap", type=float, default=0.005, help="relative gap to stop at (default 0.005)"
    )
    s.add_argument(
        "--node-limit",
        type=int,
        help="branch-and-bound nodes per round: a work limit that gives the same plan on a "
        "quiet or busy machine (the time limit is then a safety net)",
    )
    s.add_argument("--workers", type=int, default=0, help="solver threads (0 = all cores)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.set_defaults(func=cmd_optimise)

    s = sub.add_parser("frontier", help="optimise over a range of budgets")
    s.add_argument("scenario")
    s.add_argument(
        "--budgets", required=True, help="a:b:step in GBP per year (e.g. 80e6:100e6:5e6)"
    )
    s.add_argument("--out", help="folder for frontier.csv and frontier.html")
    s.add_argument("--time-limit", type=float, default=60.0)
    s.add_argument("--gap", type=float, default=0.005)
    s.add_argument("--node-limit", type=int, help="branch-and-bound nodes per round (see optimise)")
    s.add_argument("--no-suppress", action="store_true", help="do not suppress counts below 5")
    s.add_argument("--workers", type=int, default=0)
    s.set_defaults(func=cmd_frontier)

    s = sub.add_parser("bench", help="public benchmarks")
    bsub = s.add_subparsers(dest="bench", required=True)
    b = bsub.add_parser("orlib", help="solve an OR-Library capXX or pmedXX instance")
    b.add_argument("file")
    b.add_argument("--capacity", type=float, help="capacity for files that leave it symbolic")
    b.add_argument("--time-limit", type=float, default=300.0)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("batch", help="run a batch spec (sweeps, Monte Carlo, many ICBs)")
    s.add_argument("spec")
    s.add_argument("--out", required=True)
    s.add_argument("--dask", help="scheduler address, or local:N for an in-process cluster")
    s.add_argument("--workers", type=int, default=0, help="local processes (0 = all cores)")
    s.add_argument("--store", help="run store URL (default: sqlite file in --out)")
    s.set_defaults(func=cmd_batch)

    s = sub.add_parser("app", help="start the web app")
    s.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only, no sign-in); any "
        "other address, e.g. 0.0.0.0, requires sign-in (see docs/deploy.md)",
    )  # fmt: skip
    s.add_argument("--port", type=int, default=8050)
    s.add_argument("--debug", action="store_true")
    s.add_argument(
        "--workers", type=int,
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


if __name__ == "__main__":
    sys.exit(main())
