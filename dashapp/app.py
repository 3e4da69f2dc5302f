"""The crisis pathway planner web app: ``create_app()`` builds it, ``run()`` serves it.

Pages live in ``dashapp/pages`` (one file each, registered with ``dash.register_page``).
Each browser session keeps its scenario and results in ``dcc.Store`` components of the
shell layout below; the server keeps nothing between requests except memoised bundled
data. Optimisations run as background callbacks (one process per job, results in a
disk cache), so several users can work at once without blocking each other.

Settings (argument, else environment variable):

- ``store_url`` / ``PATHWAYS_STORE_URL``: where saved scenarios and plans live
  (SQLAlchemy URL or SQLite file; default ``~/.pathways/store.db``);
- ``cache_dir`` / ``PATHWAYS_CACHE_DIR``: background-job cache and uploaded files
  (default ``~/.pathways/app-cache``);
- ``tile_url`` / ``PATHWAYS_TILE_URL``: optional raster tiles (``.../{z}/{x}/{y}.png``)
  under the maps; without it maps draw boundaries only and need no network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dash
import diskcache
from dash import (
    Dash,
    DiskcacheManager,
    Input,
    Output,
    State,
    _callback,
    dcc,
    html,
    no_update,
    set_props,
)

from dashapp.auth import install_auth, is_loopback, login_needed
from dashapp.components import job_state, message, message_data
from dashapp.payloads import install_payload_guard
from dashapp.security import QuietRequestHandler, check_debug_host, install_security
from dashapp.slots import max_jobs
from dashapp.state import (
    CONFIG_KEY,
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    JOB_PARTS,
    JOB_RESULT_STORE,
    JOBS,
    AppConfig,
    demo_scenario,
    error_lines,
    footprint_label,
    job_board,
    job_watch,
    resolve_config,
    result_is_fresh,
    scenario_from_store,
    scenario_to_store,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
TITLE = "Crisis pathway planner"
#: Background jobs' results are kept this long in the disk cache (seconds).
JOB_EXPIRE_S = 6 * 3600
#: How often a reloaded page asks the job board about a job it did not start itself.
JOB_POLL_MS = 1000
JOB_WORDS = {"optimise": "optimisation", "frontier": "budget frontier", "simulate": "simulation"}


def report_callback_error(err: Exception) -> None:
    """Last line of defence: log the traceback, show the user a clear message instead."""
    log.error("callback failed", exc_info=err)
    head, lines = error_lines(err)
    set_props("app-alert", {"children": message(head, "error", lines)})


def shell() -> html.Div:
    """The frame around every page: header, step navigation, session stores, alerts."""
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    nav = [
        dcc.Link(
            [html.Span(f"{k}", className="step-number"), page["name"]],
            href=page["relative_path"], id=f"app-nav-{page['module'].rsplit('.', 1)[-1]}",
            className="nav-link",
        )
        for k, page in enumerate(pages, start=1)
    ]  # fmt: skip
    return html.Div(
        [
            dcc.Store(
                id="app-scenario", storage_type="session", data=scenario_to_store(demo_scenario())
            ),
            dcc.Store(id="app-result", storage_type="session"),
            dcc.Store(id="app-frontier", storage_type="session"),
            dcc.Store(id="app-simulation", storage_type="session"),
            # settings of runs (time limits), kept like the scenario
            dcc.Store(id="app-options", storage_type="session", data={}),
            # background jobs (see pages/optimise.py): kept in the shell so they outlive a page;
            # ``app-<job>-job`` (the job's id on the job board) also outlives a reload
            *[dcc.Store(id=f"app-{job}-{part}") for job in JOBS for part in JOB_PARTS],
            *[dcc.Store(id=f"app-{job}-job", storage_type="session") for job in JOBS],
            dcc.Interval(id="app-jobs-poll", interval=JOB_POLL_MS, disabled=True),
            html.A("Skip to main content", href="#main", className="skip-link"),
            html.Header(
                html.Div(
                    [
                        html.Div(
                            [
                                html.Span("NHS", className="nhs-logo", **{"aria-hidden": "true"}),
                                html.Span(TITLE, className="app-title"),
                            ],
                            className="brand",
                        ),
                        html.Div(id="app-badge", className="badge", **{"aria-live": "polite"}),
                    ],
                    className="header-inner",
                ),
                className="app-header",
            ),  # fmt: skip
            html.Nav(
                html.Div(nav, className="nav-inner"),
                className="app-nav",
                **{"aria-label": "Planning steps"},
            ),  # fmt: skip
            html.Main(
                [html.Div(id="app-alert", className="app-alert"), dash.page_container],
                id="main",
                className="app-main",
                tabIndex="-1",
            ),  # fmt: skip
            html.Footer(
                html.P(
                    "Modelled estimates of expected yearly activity, not observed counts. Capacities of "
                    "existing sites are assumptions until you replace them with your own figures. "
                    "Open data: ONS, MHCLG (IMD 2019), NHS (Open Government Licence)."
                ),
                className="app-footer",
            ),
        ]
    )


def _register_shell_callbacks(app: Dash) -> None:
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    ids = [f"app-nav-{p['module'].rsplit('.', 1)[-1]}" for p in pages]
    paths = [p["relative_path"] for p in pages]

    @app.callback([Output(i, "className") for i in ids], Input("_pages_location", "pathname"))
    def highlight_nav(pathname: str | None):
        return [f"nav-link{' active' if (pathname or '/') == p else ''}" for p in paths]

    @app.callback(Output("app-alert", "children"), Input("_pages_location", "pathname"))
    def clear_alert(_pathname: str | None):
        return None

    @app.callback(
        Output("app-badge", "children"),
        Input("app-scenario", "data"),
        Input("app-result", "data"),
        Input("app-optimise-running", "data"),
        Input("app-optimise-progress", "data"),
        Input("app-frontier-running", "data"),
        Input("app-optimise-watch", "data"),
        Input("app-frontier-watch", "data"),
        Input("app-simulate-running", "data"),
        Input("app-simulate-watch", "data"),
    )
    def show_badge(scenario_data, result, optimising, progress, frontier, watch, frontier_watch,
                   simulating, simulate_watch):  # fmt: skip
        busy, pct, _ = job_state(optimising, progress, watch)
        frontier_busy = job_state(frontier, None, frontier_watch)[0]
        sim_busy = job_state(simulating, None, simulate_watch)[0]
        return badge_text(scenario_data, result, busy, {"pct": pct}, frontier_busy, sim_busy)

    @app.callback(
        Output("app-jobs-poll", "disabled"),
        [Input(f"app-{job}-job", "data") for job in JOBS],
        [Input(f"app-{job}-request", "data") for job in JOBS],
    )
    def enable_poll(*args):
        jobs, requests = args[: len(JOBS)], args[len(JOBS) :]
        return not any(orphan(j, r) for j, r in zip(jobs, requests, strict=True))

    for job in JOBS:
        _register_poll(app, job)


def _register_poll(app: Dash, job: str) -> None:
    @app.callback(
        Output(f"app-{job}-watch", "data", allow_duplicate=True),
        Output(f"app-{job}-status", "data", allow_duplicate=True),
        Output(JOB_RESULT_STORE[job], "data", allow_duplicate=True),
        Output(f"app-{job}-job", "data", allow_duplicate=True),
        Input("app-jobs-poll", "n_intervals"),
        State(f"app-{job}-job", "data"),
        State(f"app-{job}-request", "data"),
        prevent_initial_call=True,
    )
    def poll(_n, session_job, request):
        try:
            return poll_job(job, session_job, request)
        except Exception:  # noqa: BLE001 - a poll must never break the page
            log.exception("job poll failed")
            return no_update, no_update, no_update, no_update


def orphan(session_job: dict | None, request: dict | None) -> bool:
    """Whether the session has a job that this page load did not start (it was reloaded)."""
    if not session_job or not session_job.get("id"):
        return False
    return (request or {}).get("job_id") != session_job["id"]


def poll_job(kind: str, session_job: dict | None, request: dict | None) -> tuple:
    """Follow a job this page load did not start: (watch, status, result, session job).

    While it runs, ``watch`` carries its progress; when it ends, its outcome is delivered
    as if this page had started it, and the session forgets the job.
    """
    if not orphan(session_job, request):
        return no_update, no_update, no_update, no_update
    words = JOB_WORDS.get(kind, kind)
    with job_board() as board:
        record = board.get(session_job["id"])
        watch = job_watch(record, board)
    state = watch["state"]
    if state == "running":
        return watch, no_update, no_update, no_update
    if state in (JOB_DONE, JOB_FAILED):
        outputs = record.get("outputs") or {}
        data = outputs.get("data")
        return None, outputs.get("status"), (no_update if data is None else data), None
    if state == JOB_CANCELLED:
        return (
            None,
            message_data(f"The {words} was cancelled: no result was produced.", "info"),
            no_update,
            None,
        )
    return None, message_data(
        f"The {words} started before the page was reloaded stopped without a result (the "
        "server may have restarted). Run it again.", "warning",
    ), no_update, None  # fmt: skip


def badge_text(
    scenario_data: dict | None, result: dict | None, optimising: bool | None = False,
    progress: dict | None = None, frontier: bool | None = False, simulating: bool | None = False,
) -> list:  # fmt: skip
    """The header's summary of the session: scenario, footprint, plan state and running jobs."""
    try:
        scenario = scenario_from_store(scenario_data)
    except Exception:  # a broken session store must not break the header
        return [html.Span("No valid scenario in this session", className="badge-item")]
    if result_is_fresh(result, scenario):
        plan = html.Span("plan: optimised", className="badge-item badge-good")
    elif result:
        plan = html.Span("plan: out of date", className="badge-item badge-warn")
    else:
        plan = html.Span("plan: today's capacity", className="badge-item")
    items = [
        html.Span(scenario.name, className="badge-item badge-name"),
        html.Span(footprint_label(scenario), className="badge-item"),
        plan,
    ]
    if optimising:
        pct = float((progress or {}).get("pct") or 0)
        items.append(dcc.Link(f"optimiser running {pct:.0f}%", href="/optimise",
                              className="badge-item badge-busy"))  # fmt: skip
    if frontier:
        items.append(
            dcc.Link("frontier running", href="/results", className="badge-item badge-busy")
        )
    if simulating:
        items.append(
            dcc.Link("simulation running", href="/results", className="badge-item badge-busy")
        )
    return items


def create_app(
    store_url: str | None = None,
    cache_dir: str | Path | None = None,
    tile_url: str | None = None,
    login: bool | None = None,
) -> Dash:
    """Build the Dash app.

    Parameters
    ----------
    store_url
        Run store for saved scenarios and plans (``PATHWAYS_STORE_URL``; default
        ``~/.pathways/store.db``).
    cache_dir
        Folder for background jobs and uploads (``PATHWAYS_CACHE_DIR``; default
        ``~/.pathways/app-cache``).
    tile_url
        Optional raster tile URL template for map backgrounds (``PATHWAYS_TILE_URL``).
    login
        Require sign-in (``None``: only if ``PATHWAYS_LOGIN=1`` or a single sign-on
        header is configured; see :mod:`dashapp.auth`).
    """
    config: AppConfig = resolve_config(store_url, cache_dir, tile_url)
    max_jobs()  # a wrong PATHWAYS_MAX_JOBS stops the app here, not at the first optimisation
    config.callback_dir.mkdir(parents=True, exist_ok=True)
    config.upload_dir.mkdir(parents=True, exist_ok=True)
    manager = DiskcacheManager(diskcache.Cache(str(config.callback_dir)), expire=JOB_EXPIRE_S)
    # Each app re-runs the page modules, which register their callbacks globally; drop any
    # left by an earlier app in this process that was never served (tests, notebooks).
    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_CALLBACK_MAP.clear()
    app = Dash(
        "dashapp",
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        background_callback_manager=manager,
        suppress_callback_exceptions=True,
        title=TITLE,
        update_title=None,
        on_error=report_callback_error,
    )
    app.server.config[CONFIG_KEY] = config
    install_security(app.server)
    install_payload_guard(app.server)
    install_auth(app.server, login)
    app.layout = shell
    _register_shell_callbacks(app)
    return app


def run(
    host: str = "127.0.0.1", port: int = 8050, debug: bool = False,
    workers: int | None = None, login: bool | None = None,
) -> None:  # fmt: skip
    """Serve the app (the bundled Sussex demo loads with no setup).

    On 127.0.0.1 without ``workers``: the development server, no sign-in (a laptop).
    On any other address, or with ``workers``: waitress with that many threads
    (:mod:`dashapp.serve`), and sign-in on any address other computers can reach.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    check_debug_host(host, debug)  # the debugger runs code for anyone who reaches it
    app = create_app(login=login_needed(host, login))
    if not debug and (workers is not None or not is_loopback(host)):
        from dashapp.serve import DEFAULT_THREADS, serve

        serve(app.server, host, port, workers or DEFAULT_THREADS)
        return
    log.info("crisis pathway planner on http://%s:%d", host, port)
    app.run(host=host, port=port, debug=debug, request_handler=QuietRequestHandler)


__all__ = ["create_app", "run", "badge_text", "orphan", "poll_job", "report_callback_error"]
