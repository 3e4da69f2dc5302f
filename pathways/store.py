"""The run store: saved scenarios, saved plans and every batch case, with provenance.

One database holds these tables:

``saved_scenarios``
    named scenarios (their YAML text and fingerprint), saved from the web app or CLI;
``saved_plans``
    named plans for a scenario, with the scorecard they were judged by;
``batches``
    one row per batch spec (the same spec text always maps to the same batch, so a
    re-run resumes it);
``runs``
    one row per batch case: its inputs, KPIs, solver report, seed and provenance
    (package and data versions, user, host, start and finish times);
``teams`` and ``users``
    who may sign in to a shared web app, and the team (workspace) each belongs to.

Workspaces: every saved scenario, plan and batch belongs to one team. Names are unique
within a team (two teams may both have a "base case"), and each saved scenario and plan
also has an unguessable ``token`` (``secrets.token_urlsafe``): the web app refers to saved
work by token and checks the team on every read, write and delete (see
:meth:`RunStore.open_saved`). Work saved "shared with all teams" can be read, not
changed, by other teams. Work saved without a team (the CLI, a laptop without sign-in)
belongs to the team ``local``.

Stores written before workspaces existed (tables ``scenarios`` and ``plans``) are moved
into the new tables, as team ``local``, the first time a newer version opens them; the
old tables are left in place, empty.

The store is a SQLite file by default (``~/.pathways/store.db``, or the URL in the
``PATHWAYS_STORE_URL`` environment variable) and any SQLAlchemy URL otherwise, e.g.
``postgresql+psycopg2://user:password@host/db`` for a shared store. SQLite files run
in WAL mode with a busy timeout so several processes can write to one file, and with
``synchronous = FULL``: a save that has returned is on disk.

Every write is one transaction: a write that fails, or a process killed part way,
leaves earlier rows untouched. A SQLite file that is damaged (not a database) or held
locked by another program gives an :class:`~pathways.errors.InputError` saying so, when
the store is opened and on any later read or write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import logging
import math
import os
import platform
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from pathways._paths import data_dir
from pathways.errors import InputError, Problem
from pathways.plan import Plan
from pathways.scenario import Scenario, dump_scenario, scenario_from_dict

log = logging.getLogger(__name__)

STORE_URL_ENV = "PATHWAYS_STORE_URL"
DEFAULT_STORE_FILE = Path("~/.pathways/store.db")
MAX_NAME_CHARS = 100
#: The team of work saved without one: the CLI, and the web app on a laptop without sign-in.
LOCAL_TEAM = "local"
#: Length of the random part of a saved entry's token (``secrets.token_urlsafe``).
TOKEN_BYTES = 16
SQLITE_BUSY_TIMEOUT_MS = 60_000

# Run statuses written by the batch runner.
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INFEASIBLE = "infeasible"
"""The optimiser proved no plan meets the case's limits: an answer, not a failure."""
STATUS_NO_PLAN_IN_TIME = "no_plan_in_time"
"""The optimiser stopped on the clock before any plan: retried on resume, like a failure."""

# Column names of :meth:`RunStore.runs_frame` (before the input and KPI columns).
RUN_COLUMNS: tuple[str, ...] = (
    "case_id",
    "case_hash",
    "status",
    "error",
    "solver_status",
    "gap",
    "objective",
    "seconds",
    "solver_seconds",
    "seed",
    "scenario_hash",
    "package_version",
    "data_version",
    "user",
    "host",
    "started_at",
    "finished_at",
)

metadata = MetaData()

scenarios_table = Table(
    "saved_scenarios",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("team", String(MAX_NAME_CHARS), nullable=False, index=True),
    Column("name", String(MAX_NAME_CHARS), nullable=False),
    Column("footprint", String(400), nullable=True),
    Column("yaml", Text, nullable=False),
    Column("base_dir", Text, nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user", String(200), nullable=True),
    Column("shared", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=1),
    UniqueConstraint("team", "name", name="uq_saved_scenarios_team_name"),
)

plans_table = Table(
    "saved_plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("team", String(MAX_NAME_CHARS), nullable=False, index=True),
    Column("name", String(MAX_NAME_CHARS), nullable=False),
    Column("scenario_name", String(MAX_NAME_CHARS), nullable=False, index=True),
    Column("plan", Text, nullable=False),
    Column("scorecard", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user", String(200), nullable=True),
    Column("shared", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=1),
    UniqueConstraint("team", "name", name="uq_saved_plans_team_name"),
)

teams_table = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME_CHARS), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users_table = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("team", String(MAX_NAME_CHARS), nullable=False, index=True),
    # werkzeug.security hash; None: signs in only through a trusted single sign-on header
    Column("password_hash", Text, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Tables of stores written before workspaces: their rows move to the tables above.
LEGACY_TABLES = {"scenarios": scenarios_table, "plans": plans_table}

batches_table = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=True),
    Column("spec", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user", String(200), nullable=True),
    Column("package_version", String(50), nullable=True),
    Column("data_version", String(50), nullable=True),
    # added with workspaces: older stores get the column (empty = team "local") on opening
    Column("team", String(MAX_NAME_CHARS), nullable=True),
)

runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False, index=True),
    Column("case_id", String(100), nullable=False),
    Column("case_hash", String(64), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("kpis", Text, nullable=True),
    Column("plan", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("solver_status", String(50), nullable=True),
    Column("gap", Float, nullable=True),
    Column("objective", Float, nullable=True),
    Column("seconds", Float, nullable=True),
    Column("solver_seconds", Float, nullable=True),
    Column("seed", String(40), nullable=True),
    Column("scenario_hash", String(64), nullable=True),
    Column("package_version", String(50), nullable=True),
    Column("data_version", String(50), nullable=True),
    Column("user", String(200), nullable=True),
    Column("host", String(200), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("batch_id", "case_hash", name="uq_runs_batch_case"),
)

# JSON is kept as text: PostgreSQL's JSON type rejects NaN, which scorecards may hold.


# --------------------------------------------------------------------------- helpers


def default_url() -> str:
    """``PATHWAYS_STORE_URL`` if set, else a SQLite file under ``~/.pathways``."""
    env = os.environ.get(STORE_URL_ENV)
    if env:
        return env
    path = DEFAULT_STORE_FILE.expanduser()
    return f"sqlite:///{path}"


def package_version() -> str:
    from pathways import __version__

    return __version__


def data_version() -> str:
    """The bundled data's ``data_version`` (from ``data/build_info.json``), or ``unknown``."""
    try:
        info = json.loads((data_dir() / "build_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    return str(info.get("data_version", "unknown"))


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def to_json(value: Any) -> str:
    """JSON text with sorted keys (NaN kept as ``NaN``, which :func:`json.loads` reads)."""
    return json.dumps(value, sort_keys=True, default=_json_default)


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def validate_name(name: Any, what: str = "name") -> str:
    """A store name: a non-empty string of at most 100 characters, without control characters."""
    if not isinstance(name, str):
        raise InputError(Problem("store", None, what, f"expected text, got {type(name).__name__}"))
    clean = name.strip()
    if not clean:
        raise InputError(Problem("store", None, what, "a name is required (it is empty)"))
    if len(clean) > MAX_NAME_CHARS:
        raise InputError(
            Problem(
                "store",
                None,
                what,
                f"names are at most {MAX_NAME_CHARS} characters (this one has {len(clean)})",
            )
        )
    if any(ord(ch) < 32 for ch in clean):
        raise InputError(Problem("store", None, what, "names may not contain control characters"))
    return clean


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only used for display
        return "<url>"


def _float_or_none(x: Any) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _not_found(what: str, name: str) -> InputError:
    return InputError(Problem("store", None, "name", f"no {what} named '{name}' in the store"))


def validate_team(team: Any) -> str:
    """A team name: the rules of :func:`validate_name`."""
    return validate_name(team, "team")


def new_token() -> str:
    """An unguessable id for a saved entry, safe to show to a browser."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _not_visible() -> InputError:
    # The same words whether the entry does not exist or belongs to another team, so a
    # guessed or replayed id tells nothing about other teams' work.
    return InputError(
        Problem(
            "store", None, "id",
            "that saved plan is not in your team's workspace (it may have been deleted); "
            "refresh the list of saved plans",
        )
    )  # fmt: skip


def _visible_to(table: Table, team: str):
    """Rows a team may read: its own and those shared with all teams."""
    return (table.c.team == team) | (table.c.shared.is_(True))


# --------------------------------------------------------------------------- store


class RunStore:
    """Scenarios, plans and batch runs in one database.

    Parameters
    ----------
    url
        SQLAlchemy URL. ``None``: ``PATHWAYS_STORE_URL`` or ``sqlite:///~/.pathways/store.db``.
        A plain file path (no ``://``) is taken as a SQLite file.
    busy_timeout_s
        SQLite: how long a write waits for another process's write to finish before
        saying the store is locked (default 60 s).

    Raises
    ------
    InputError
        A SQLite file that is not a readable database, is locked by another program, or
        cannot be opened (here or on any later call).

    Examples
    --------
    >>> store = RunStore("sqlite:///runs.db")            # doctest: +SKIP
    >>> store.save_scenario("sussex-base", scenario)    # doctest: +SKIP
    >>> store.load_scenario("sussex-base") == scenario  # doctest: +SKIP
    True
    """

    def __init__(
        self, url: str | os.PathLike[str] | None = None, busy_timeout_s: float | None = None
    ):
        if url is None:
            url = default_url()
        url = str(url)
        if "://" not in url:
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.where = _safe_url(url)
        if busy_timeout_s is None:
            busy_timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        self.busy_timeout_s = float(busy_timeout_s)
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                self.where = str(Path(db).expanduser())
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": self.busy_timeout_s}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            timeout_ms = max(0, round(self.busy_timeout_s * 1000))
            event.listen(
                self.engine, "connect",
                lambda conn, record: _sqlite_on_connect(conn, record, timeout_ms),
            )  # fmt: skip
            event.listen(self.engine, "handle_error", self._explain_sqlite_error)
        self._create_tables()

    def _explain_sqlite_error(self, context: Any) -> None:
        """Turn a damaged, locked or unopenable SQLite file into an :class:`InputError`.

        Called by SQLAlchemy for every database error (also when connecting); other
        errors (a duplicate name, say) are left as they are.
        """
        problem = sqlite_problem(self.where, context.original_exception)
        if problem is not None:
            raise InputError(problem) from context.original_exception

    def _create_tables(self, attempts: int = 5) -> None:
        # Two processes opening a new store at once may both try to create a table or
        # move the same old rows; the loser sees "already exists" and simply checks again.
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                self._add_missing_columns()
                self._move_legacy_rows()
                return
            except DBAPIError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _add_missing_columns(self) -> None:
        """Give a store written by an older version the columns added since (nullable)."""
        have = {c["name"] for c in inspect(self.engine).get_columns(batches_table.name)}
        if "team" not in have:
            with self.engine.begin() as conn:
                conn.execute(
                    text(
                        f"ALTER TABLE {batches_table.name} ADD COLUMN team VARCHAR({MAX_NAME_CHARS})"
                    )
                )

    def _move_legacy_rows(self) -> None:
        """Move scenarios and plans saved before workspaces into team ``local``.

        Each row gets a token; a row whose name the local team already uses in the new
        table (saved there meanwhile) stays in the old table, untouched.
        """
        existing = set(inspect(self.engine).get_table_names())
        for old_name, new_table in LEGACY_TABLES.items():
            if old_name not in existing:
                continue
            old = Table(old_name, MetaData(), autoload_with=self.engine)
            with self.engine.begin() as conn:
                rows = conn.execute(select(old)).mappings().all()
                if not rows:
                    continue
                taken = set(
                    conn.execute(
                        select(new_table.c.name).where(new_table.c.team == LOCAL_TEAM)
                    ).scalars()
                )
                keep = {c.name for c in new_table.columns} - {
                    "id",
                    "token",
                    "team",
                    "shared",
                    "version",
                }
                for row in rows:
                    if row["name"] in taken:
                        log.warning(
                            "kept old saved %s '%s': the name is in use", old_name, row["name"]
                        )
                        continue
                    values = {k: v for k, v in row.items() if k in keep}
                    conn.execute(insert(new_table).values(
                        **values, token=new_token(), team=LOCAL_TEAM, shared=False, version=1))  # fmt: skip
                    conn.execute(delete(old).where(old.c.id == row["id"]))
                log.info("moved %d saved %s to the local team's workspace", len(rows), old_name)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({_safe_url(self.url)!r})"

    def provenance(self) -> dict[str, Any]:
        """Who and what wrote to the store: versions, user, host and the store URL."""
        return {
            "package_version": package_version(),
            "data_version": data_version(),
            "user": current_user(),
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "store_url": _safe_url(self.url),
        }

    # ------------------------------------------------------------------ scenarios

    def save_scenario(
        self,
        name: str,
        scenario: Scenario,
        user: str | None = None,
        overwrite: bool = True,
        *,
        team: str = LOCAL_TEAM,
        shared: bool = False,
        expect_version: int | None = None,
    ) -> str:
        """Save ``scenario`` as ``name`` in ``team``'s workspace; returns its token.

        A scenario of that name in the team is replaced if ``overwrite`` (keeping its
        token, with its version one higher), else an :class:`InputError` says the name is
        taken. ``expect_version``: replace only that version (see :meth:`save_plan`).
        """
        name = validate_name(name)
        fp = scenario.footprint
        row = {
            "name": name,
            "team": validate_team(team),
            "footprint": fp.icb or fp.areas_file,
            "yaml": dump_scenario(scenario),
            "base_dir": scenario.base_dir,
            "fingerprint": scenario.fingerprint(),
            "created_at": _now(),
            "user": user or current_user(),
            "shared": bool(shared),
        }
        return self._upsert(scenarios_table, row, overwrite, "scenario", expect_version)

    def list_scenarios(self, team: str | None = None) -> list[dict[str, Any]]:
        """Saved scenarios (name, footprint, fingerprint, created_at, user, team, shared,
        token), by name: every team's when ``team`` is None, else those ``team`` may read."""
        t = scenarios_table
        cols = (t.c.name, t.c.footprint, t.c.fingerprint, t.c.created_at, t.c.user, t.c.team,
                t.c.shared, t.c.token)  # fmt: skip
        query = select(*cols).order_by(t.c.name, t.c.team)
        if team is not None:
            query = query.where(_visible_to(t, team))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {**r, "shared": bool(r["shared"]), "created_at": _iso(r["created_at"])} for r in rows
        ]

    def load_scenario(self, name: str, team: str = LOCAL_TEAM) -> Scenario:
        """The scenario saved as ``name`` by ``team`` (re-validated)."""
        name = validate_name(name)
        t = scenarios_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.yaml, t.c.base_dir).where((t.c.name == name) & (t.c.team == team))
            ).first()
        if row is None:
            raise _not_found("scenario", name)
        return _scenario_of(row, name)

    def delete_scenario(
        self, name: str, delete_plans: bool = False, team: str = LOCAL_TEAM
    ) -> None:
        """Delete a scenario ``team`` saved.

        Its saved plans are deleted too when ``delete_plans``; otherwise a scenario that
        still has plans is kept and an :class:`InputError` names them.
        """
        name = validate_name(name)
        s, p = scenarios_table, plans_table
        mine_s = (s.c.name == name) & (s.c.team == team)
        mine_p = (p.c.scenario_name == name) & (p.c.team == team)
        with self.engine.begin() as conn:
            if conn.execute(select(s.c.id).where(mine_s)).first() is None:
                raise _not_found("scenario", name)
            plans = conn.execute(select(p.c.name).where(mine_p)).scalars().all()
            if plans and not delete_plans:
                raise InputError(
                    Problem(
                        "store",
                        None,
                        "name",
                        f"scenario '{name}' still has saved plans {sorted(plans)}; delete them "
                        "first or pass delete_plans=True",
                    )
                )
            conn.execute(delete(p).where(mine_p))
            conn.execute(delete(s).where(mine_s))

    # ------------------------------------------------------------------ plans

    def save_plan(
        self,
        name: str,
        scenario_name: str,
        plan: Plan,
        scorecard: Mapping[str, Any] | None = None,
        user: str | None = None,
        overwrite: bool = True,
        *,
        team: str = LOCAL_TEAM,
        shared: bool = False,
        expect_version: int | None = None,
    ) -> str:
        """Save ``plan`` (and optionally its scorecard, e.g. ``Scorecard.to_dict()``) in
        ``team``'s workspace; returns its token.

        ``expect_version``: when replacing, replace only if the saved plan is still that
        version (the one the user was asked about); otherwise nothing is saved and an
        :class:`InputError` says it changed meanwhile.
        """
        name = validate_name(name)
        scenario_name = validate_name(scenario_name, "scenario_name")
        row = {
            "name": name,
            "team": validate_team(team),
            "scenario_name": scenario_name,
            "plan": to_json(plan.model_dump(mode="json")),
            "scorecard": None if scorecard is None else to_json(dict(scorecard)),
            "created_at": _now(),
            "user": user or current_user(),
            "shared": bool(shared),
        }
        return self._upsert(plans_table, row, overwrite, "plan", expect_version)

    def list_plans(
        self, scenario_name: str | None = None, team: str | None = None
    ) -> list[dict[str, Any]]:
        """Saved plans (name, scenario_name, has_scorecard, created_at, user, team, shared,
        token, version), by name: every team's when ``team`` is None, else those ``team``
        may read (its own and shared ones)."""
        t = plans_table
        query = select(
            t.c.name, t.c.scenario_name, t.c.scorecard.is_not(None).label("has_scorecard"),
            t.c.created_at, t.c.user, t.c.team, t.c.shared, t.c.token, t.c.version,
        ).order_by(t.c.name, t.c.team)  # fmt: skip
        if scenario_name is not None:
            query = query.where(t.c.scenario_name == scenario_name)
        if team is not None:
            query = query.where(_visible_to(t, team))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_plan_entry(r) for r in rows]

    def load_plan(self, name: str, team: str = LOCAL_TEAM) -> tuple[Plan, dict[str, Any] | None]:
        """The plan ``team`` saved as ``name`` and its scorecard (``None`` if none was saved)."""
        name = validate_name(name)
        t = plans_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.plan, t.c.scorecard).where((t.c.name == name) & (t.c.team == team))
            ).first()
        if row is None:
            raise _not_found("plan", name)
        return Plan.model_validate(json.loads(row.plan)), _from_json(row.scorecard)

    def delete_plan(self, name: str, team: str = LOCAL_TEAM) -> None:
        """Delete the plan ``team`` saved as ``name``."""
        name = validate_name(name)
        t = plans_table
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t).where((t.c.name == name) & (t.c.team == team))).rowcount
        if not gone:
            raise _not_found("plan", name)

    # ------------------------------------------------------------------ saved work by token

    def find_plan(self, name: str, team: str) -> dict[str, Any] | None:
        """The entry of ``team``'s own plan called ``name`` (see :meth:`list_plans`), if any."""
        name = validate_name(name)
        t = plans_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    t.c.name, t.c.scenario_name, t.c.scorecard.is_not(None).label("has_scorecard"),
                    t.c.created_at, t.c.user, t.c.team, t.c.shared, t.c.token, t.c.version,
                ).where((t.c.name == name) & (t.c.team == team))
            ).mappings().first()  # fmt: skip
        return None if row is None else _plan_entry(row)

    def open_saved(
        self, token: Any, team: str
    ) -> tuple[dict[str, Any], Scenario, Plan, dict | None]:
        """A saved plan by its token, if ``team`` may read it: (entry, scenario, plan, scorecard).

        The team is checked here, on the server: a token of another team's unshared plan
        (guessed, or replayed from another browser) is refused with the same message as
        a token that never existed.
        """
        if not isinstance(token, str) or not token:
            raise _not_visible()
        p, s = plans_table, scenarios_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(p).where((p.c.token == token) & _visible_to(p, team))
            ).mappings().first()  # fmt: skip
            if row is None:
                raise _not_visible()
            scen = conn.execute(
                select(s.c.yaml, s.c.base_dir).where(
                    (s.c.name == row["scenario_name"]) & (s.c.team == row["team"])
                )
            ).first()
        if scen is None:
            raise _not_found("scenario", row["scenario_name"])
        entry = _plan_entry({**row, "has_scorecard": row["scorecard"] is not None})
        plan = Plan.model_validate(json.loads(row["plan"]))
        return entry, _scenario_of(scen, row["scenario_name"]), plan, _from_json(row["scorecard"])

    def delete_saved(self, token: Any, team: str) -> str:
        """Delete ``team``'s own saved plan by token (and its scenario, when no other plan of
        the team uses it); returns the plan's name.

        Only the team that saved a plan may delete it, even when it is shared.
        """
        if not isinstance(token, str) or not token:
            raise _not_visible()
        p, s = plans_table, scenarios_table
        with self.engine.begin() as conn:
            row = conn.execute(
                select(p.c.id, p.c.name, p.c.team, p.c.scenario_name).where(
                    (p.c.token == token) & _visible_to(p, team)
                )
            ).first()
            if row is None:
                raise _not_visible()
            if row.team != team:
                raise InputError(Problem(
                    "store", None, "id",
                    f"'{row.name}' is shared by another team: only that team can delete it",
                ))  # fmt: skip
            conn.execute(delete(p).where(p.c.id == row.id))
            others = conn.execute(
                select(p.c.id).where((p.c.team == team) & (p.c.scenario_name == row.scenario_name))
            ).first()
            if others is None:
                conn.execute(delete(s).where((s.c.team == team) & (s.c.name == row.scenario_name)))
        return str(row.name)

    def move_team_work(self, from_team: str, to_team: str) -> int:
        """Give every scenario, plan and batch of ``from_team`` to ``to_team`` (e.g. work
        saved on a laptop, team ``local``, to a team of a shared app); returns how many
        saved plans and scenarios moved. Names ``to_team`` already uses are refused."""
        from_team, to_team = validate_team(from_team), validate_team(to_team)
        moved = 0
        try:
            with self.engine.begin() as conn:
                for t in (scenarios_table, plans_table):
                    moved += int(conn.execute(
                        update(t).where(t.c.team == from_team).values(team=to_team)
                    ).rowcount or 0)  # fmt: skip
                b = batches_table
                where = b.c.team == from_team
                if from_team == LOCAL_TEAM:
                    where = where | b.c.team.is_(None)
                conn.execute(update(b).where(where).values(team=to_team))
        except IntegrityError:
            raise InputError(Problem(
                "store", None, "team",
                f"team '{to_team}' already has saved work with some of the same names; "
                "rename or delete those first",
            )) from None  # fmt: skip
        return moved

    def _upsert(
        self, table: Table, row: dict[str, Any], overwrite: bool, what: str,
        expect_version: int | None = None,
    ) -> str:  # fmt: skip
        name, team = row["name"], row["team"]
        where = (table.c.name == name) & (table.c.team == team)
        taken = InputError(
            Problem("store", None, "name", f"a {what} named '{name}' already exists")
        )
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    exists = conn.execute(
                        select(table.c.id, table.c.token, table.c.version).where(where)
                    ).first()
                    if exists is not None and not overwrite:
                        raise taken
                    if exists is None:
                        token = new_token()
                        conn.execute(insert(table).values(**row, token=token, version=1))
                        return token
                    if expect_version is not None and exists.version != expect_version:
                        raise InputError(Problem(
                            "store", None, "name",
                            f"the saved {what} '{name}' was changed by someone else since you were "
                            "asked; nothing was replaced: save again to see the latest version",
                        ))  # fmt: skip
                    conn.execute(
                        update(table).where(table.c.id == exists.id)
                        .values(**row, version=exists.version + 1)
                    )  # fmt: skip
                    return str(exists.token)
            except IntegrityError:
                # Another process inserted the same name between our select and insert.
                if not overwrite:
                    raise taken from None
        raise RuntimeError(f"could not save {what} '{name}' after 3 attempts")

    # ------------------------------------------------------------------ users and teams

    def add_team(self, name: str) -> str:
        """Register a team (nothing happens if it exists); returns its name."""
        name = validate_team(name)
        t = teams_table
        with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
            if conn.execute(select(t.c.id).where(t.c.name == name)).first() is None:
                conn.execute(insert(t).values(name=name, created_at=_now()))
        return name

    def list_teams(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(teams_table.c.name).order_by(teams_table.c.name)).scalars()
            )

    def add_user(
        self, name: str, team: str, password_hash: str | None, replace: bool = False
    ) -> None:
        """Register a user in ``team`` (created if new) with a password hash from
        :func:`werkzeug.security.generate_password_hash` (``None``: single sign-on only).

        An existing user is refused unless ``replace`` (which sets the team and hash and
        re-activates the user)."""
        name = validate_name(name, "user")
        team = self.add_team(team)
        u = users_table
        values = {"team": team, "password_hash": password_hash, "active": True}
        with self.engine.begin() as conn:
            found = conn.execute(select(u.c.id).where(u.c.name == name)).first()
            if found is not None and not replace:
                raise InputError(Problem("store", None, "user", f"user '{name}' already exists"))
            if found is None:
                conn.execute(insert(u).values(name=name, created_at=_now(), **values))
            else:
                conn.execute(update(u).where(u.c.id == found.id).values(**values))

    def get_user(self, name: Any) -> dict[str, Any] | None:
        """A user's record (name, team, password_hash, active), or ``None``."""
        if not isinstance(name, str) or not name:
            return None
        u = users_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(u.c.name, u.c.team, u.c.password_hash, u.c.active).where(u.c.name == name)
            ).mappings().first()  # fmt: skip
        return None if row is None else {**row, "active": bool(row["active"])}

    def list_users(self) -> list[dict[str, Any]]:
        """Users (name, team, active, has_password, created_at), by name; no hashes."""
        u = users_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(u.c.name, u.c.team, u.c.active, u.c.password_hash.is_not(None),
                       u.c.created_at).order_by(u.c.name)
            ).all()  # fmt: skip
        return [{"name": r[0], "team": r[1], "active": bool(r[2]), "has_password": bool(r[3]),
                 "created_at": _iso(r[4])} for r in rows]  # fmt: skip

    def set_user_active(self, name: str, active: bool) -> None:
        """Let a user sign in again, or stop them (their saved work stays with the team)."""
        u = users_table
        with self.engine.begin() as conn:
            gone = conn.execute(
                update(u).where(u.c.name == name).values(active=bool(active))
            ).rowcount
        if not gone:
            raise _not_found("user", name)

    def remove_user(self, name: str) -> None:
        """Remove a user (their team's saved work stays)."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(users_table).where(users_table.c.name == name)).rowcount
        if not gone:
            raise _not_found("user", name)

    # ------------------------------------------------------------------ batches

    def start_batch(
        self,
        spec_text: str,
        name: str | None = None,
        spec_hash: str | None = None,
        user: str | None = None,
        team: str = LOCAL_TEAM,
    ) -> int:
        """The id of the batch for this spec, creating it on first use (owned by ``team``).

        The same spec (same ``spec_hash``, by default the SHA-256 of ``spec_text``)
        always gives the same id, so re-running a batch resumes it.
        """
        team = validate_team(team)
        spec_hash = spec_hash or hashlib.sha256(spec_text.encode()).hexdigest()
        t = batches_table
        for _attempt in range(3):
            with self.engine.connect() as conn:
                found = conn.execute(select(t.c.id).where(t.c.spec_hash == spec_hash)).first()
            if found is not None:
                return int(found.id)
            try:
                with self.engine.begin() as conn:
                    result = conn.execute(
                        insert(t).values(
                            name=name,
                            spec=spec_text,
                            spec_hash=spec_hash,
                            created_at=_now(),
                            user=user or current_user(),
                            package_version=package_version(),
                            data_version=data_version(),
                            team=team,
                        )
                    )
                    return int(result.inserted_primary_key[0])
            except IntegrityError:  # started by another process at the same moment
                continue
        raise RuntimeError("could not register the batch")

    def list_batches(self, team: str | None = None) -> list[dict[str, Any]]:
        """Registered batches with their number of recorded runs and owner team: every
        team's when ``team`` is None (batches registered before workspaces are ``local``)."""
        t = batches_table
        owner = func.coalesce(t.c.team, LOCAL_TEAM).label("team")
        query = select(t.c.id, t.c.name, t.c.spec_hash, t.c.created_at, t.c.user, owner)
        if team is not None:
            query = query.where(owner == team)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id)).all()
            counts = dict(
                conn.execute(
                    select(runs_table.c.batch_id, func.count(runs_table.c.id)).group_by(
                        runs_table.c.batch_id
                    )
                ).all()
            )
        return [
            {
                "id": r.id,
                "name": r.name,
                "spec_hash": r.spec_hash,
                "created_at": _iso(r.created_at),
                "user": r.user,
                "team": r.team,
                "runs": int(counts.get(r.id, 0)),
            }
            for r in rows
        ]

    def batch_spec(self, batch_id: int) -> str:
        with self.engine.connect() as conn:
            text = conn.execute(
                select(batches_table.c.spec).where(batches_table.c.id == batch_id)
            ).scalar()
        if text is None:
            raise KeyError(batch_id)
        return text

    def record_run(
        self,
        batch_id: int,
        case_id: str,
        *,
        inputs: Mapping[str, Any],
        status: str,
        case_hash: str | None = None,
        kpis: Mapping[str, Any] | None = None,
        plan: Mapping[str, Any] | None = None,
        error: str | None = None,
        solver_status: str | None = None,
        gap: float | None = None,
        objective: float | None = None,
        seconds: float | None = None,
        solver_seconds: float | None = None,
        seed: int | None = None,
        scenario_hash: str | None = None,
        started_at: dt.datetime | None = None,
        finished_at: dt.datetime | None = None,
        user: str | None = None,
        host: str | None = None,
    ) -> None:
        """Record one case, in one transaction (replacing an earlier record of the case).

        ``case_hash`` defaults to ``case_id``. If the write fails, the earlier record
        (if any) is kept as it was.
        """
        case_hash = case_hash or case_id
        row = {
            "batch_id": int(batch_id),
            "case_id": str(case_id),
            "case_hash": str(case_hash),
            "inputs": to_json(dict(inputs)),
            "kpis": None if kpis is None else to_json(dict(kpis)),
            "plan": None if plan is None else to_json(dict(plan)),
            "status": str(status),
            "error": error,
            "solver_status": solver_status,
            "gap": _float_or_none(gap),
            "objective": _float_or_none(objective),
            "seconds": _float_or_none(seconds),
            "solver_seconds": _float_or_none(solver_seconds),
            "seed": None if seed is None else str(int(seed)),
            "scenario_hash": scenario_hash,
            "package_version": package_version(),
            "data_version": data_version(),
            "user": user or current_user(),
            "host": host or socket.gethostname(),
            "started_at": started_at,
            "finished_at": finished_at or _now(),
        }
        t = runs_table
        with self.engine.begin() as conn:
            conn.execute(
                delete(t).where((t.c.batch_id == row["batch_id"]) & (t.c.case_hash == case_hash))
            )
            conn.execute(insert(t).values(**row))

    def finished_cases(self, batch_id: int, statuses: Iterable[str] | None = None) -> set[str]:
        """Case ids already recorded for the batch (any status, or only ``statuses``)."""
        t = runs_table
        query = select(t.c.case_id).where(t.c.batch_id == int(batch_id))
        if statuses is not None:
            query = query.where(t.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars().all())

    def delete_runs(self, batch_id: int, case_ids: Iterable[str] | None = None) -> int:
        """Forget recorded cases (all of the batch's when ``case_ids`` is None); returns how many."""
        t = runs_table
        query = delete(t).where(t.c.batch_id == int(batch_id))
        if case_ids is not None:
            query = query.where(t.c.case_id.in_(list(case_ids)))
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount or 0)

    def run_plans(self, batch_id: int) -> dict[str, dict[str, Any]]:
        """Plans recorded with the batch's runs, by case id (optimise runs only)."""
        t = runs_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.case_id, t.c.plan).where(
                    (t.c.batch_id == int(batch_id)) & t.c.plan.is_not(None)
                )
            ).all()
        plans = {}
        for r in rows:
            try:
                plans[r.case_id] = json.loads(r.plan)
            except ValueError:  # left out: the batch runs the case again
                log.warning("the recorded plan of case %s cannot be read", r.case_id)
        return plans

    def runs_frame(self, batch_id: int, expand: bool = True) -> pd.DataFrame:
        """The batch's recorded runs, one row per case, ordered by case id.

        With ``expand`` each input becomes a column (named by its key, e.g.
        ``demand.growth_factor``), followed by one column per KPI; otherwise ``inputs``
        and ``kpis`` are dict columns.
        """
        t = runs_table
        cols = [t.c[c] for c in RUN_COLUMNS] + [t.c.inputs, t.c.kpis]
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(*cols).where(t.c.batch_id == int(batch_id)).order_by(t.c.case_id)
                )
                .mappings()
                .all()
            )
        records = []
        for r in rows:
            rec = {c: r[c] for c in RUN_COLUMNS}
            rec["seed"] = None if rec["seed"] is None else int(rec["seed"])
            for c in ("started_at", "finished_at"):
                v = rec[c]
                if v is not None and v.tzinfo is None:
                    rec[c] = v.replace(tzinfo=dt.UTC)
            rec["inputs"] = json.loads(r["inputs"])
            rec["kpis"] = _from_json(r["kpis"]) or {}
            records.append(rec)
        frame = pd.DataFrame.from_records(records, columns=[*RUN_COLUMNS, "inputs", "kpis"])
        if not expand or frame.empty:
            return frame
        inputs = pd.DataFrame.from_records(list(frame["inputs"]), index=frame.index)
        kpis = pd.DataFrame.from_records(list(frame["kpis"]), index=frame.index)
        kpis = kpis[[c for c in kpis.columns if c not in inputs.columns and c not in RUN_COLUMNS]]
        inputs = inputs[[c for c in inputs.columns if c not in RUN_COLUMNS]]
        return pd.concat([frame.drop(columns=["inputs", "kpis"]), inputs, kpis], axis=1)


def _plan_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A saved plan's listing entry (no plan or scorecard text)."""
    return {
        "name": row["name"],
        "scenario_name": row["scenario_name"],
        "has_scorecard": bool(row["has_scorecard"]),
        "created_at": _iso(row["created_at"]),
        "user": row["user"],
        "team": row["team"],
        "shared": bool(row["shared"]),
        "token": row["token"],
        "version": int(row["version"]),
    }


def _scenario_of(row: Any, name: str) -> Scenario:
    """The scenario of a ``(yaml, base_dir)`` row, re-validated."""
    return scenario_from_dict(
        yaml.safe_load(row.yaml), file=f"store:scenario '{name}'", text=row.yaml,
        base_dir=row.base_dir,
    )  # fmt: skip


def _sqlite_on_connect(
    dbapi_conn: Any, _record: Any, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    # synchronous = FULL: a transaction that has returned is on disk, so a saved plan or
    # a recorded case survives the process being killed and the machine losing power.
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _set_wal(cur, busy_timeout_ms)
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


def _set_wal(cur: Any, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode, waiting up to ``busy_timeout_ms`` for other programs.

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is
    locked" at once, without calling the busy handler, when another connection is
    opening or converting the same new file (two batch workers starting together, say).
    The mode is stored in the file, so once any connection has set it the others only
    read it back; until then, retry with a short back-off.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode")
            row = cur.fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


_LOCKED = ("database is locked", "database table is locked", "database schema is locked")
_DAMAGED = (
    "file is not a database", "database disk image is malformed", "file is encrypted",
    "not a database", "malformed database schema", "disk i/o error",
)  # fmt: skip


def sqlite_problem(where: str, err: BaseException) -> Problem | None:
    """What is wrong with the SQLite run store at ``where``, in plain words (or ``None``
    when ``err`` is not about the file itself: a duplicate name, say)."""
    import sqlite3

    if not isinstance(err, sqlite3.Error) or isinstance(err, sqlite3.IntegrityError):
        return None
    detail = str(err).strip() or type(err).__name__
    low = detail.lower()
    if any(m in low for m in _LOCKED):
        message = (
            f"the run store at {where} is locked by another program; try again (close the "
            "other program, or wait for it to finish writing)"
        )
    elif any(m in low for m in _DAMAGED):
        message = (
            f"the run store at {where} is not a readable database: {detail}. Restore it from "
            "a backup, or use another store file (--store or PATHWAYS_STORE_URL)"
        )
    elif "unable to open database file" in low:
        message = (
            f"the run store at {where} cannot be opened: {detail} (check that the folder "
            "exists and that you may write to it)"
        )
    elif "readonly database" in low or "read-only" in low:
        message = f"the run store at {where} cannot be written: {detail} (the file is read-only)"
    else:
        return None
    return Problem("store", None, None, message)
