"""Sign-in and team workspaces for a shared web app.

On a laptop (``pathways app``, listening on 127.0.0.1) nobody signs in: everything is
saved by the computer's user in the team ``local``, as before. When the app listens on
any other address, :func:`install_auth` requires sign-in for every request except the
sign-in page itself and ``/healthz``: Dash pages redirect to ``/login``; Dash's own
endpoints (``/_dash-update-component``, ``/_dash-layout``, ``/_dash-dependencies``,
component scripts), downloads (which come through callbacks) and ``/assets`` answer
``401`` without a session.

Users and teams live in the run store (:class:`pathways.store.RunStore`, tables
``users`` and ``teams``), with passwords hashed by :mod:`werkzeug.security` (scrypt).
Add them with ``pathways users add NAME --team TEAM`` (see :func:`users_cli`).

Settings (environment variables):

``PATHWAYS_SECRET_KEY``
    signs the session cookie; set it (e.g. ``python -c "import secrets;
    print(secrets.token_hex(32))"``) or a random key is made at start-up and everyone
    must sign in again after a restart;
``PATHWAYS_SESSION_HOURS``
    how long a sign-in lasts (default 8 hours, counted from signing in);
``PATHWAYS_LOGIN``
    ``1`` requires sign-in even on 127.0.0.1 (to try it out, or to test it);
``PATHWAYS_TRUSTED_USER_HEADER``
    the header an NHS single sign-on proxy sets to the signed-in user's name (e.g.
    ``X-Remote-User``). Only honoured when set, and only on requests from the
    addresses in ``PATHWAYS_TRUSTED_PROXIES`` (default ``127.0.0.1,::1``); the user must
    be registered (``pathways users add NAME --team TEAM --sso-only``).

The session cookie is HttpOnly, SameSite=Lax (so other sites cannot make a signed-in
browser send callbacks), and Secure when the request came over HTTPS. The sign-in and
sign-out forms carry a CSRF token kept in the session. Repeated wrong passwords for one
user name are slowed down: after :data:`MAX_FAILURES` in :data:`FAILURE_WINDOW_S`, that
name is refused until the window has passed (counted per server process).

Every request checks the store again: a disabled user is refused at their next request,
a moved user sees their new team's workspace, and a new password (``pathways users add
NAME --team TEAM --replace``) ends every session signed in with the old one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import hmac
import html
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pathways.errors import InputError, Problem

if TYPE_CHECKING:  # the store (pandas, SQLAlchemy) loads only when needed: the CLI stays quick
    from pathways.store import RunStore

log = logging.getLogger(__name__)

ENV_SECRET_KEY = "PATHWAYS_SECRET_KEY"
ENV_SESSION_HOURS = "PATHWAYS_SESSION_HOURS"
ENV_LOGIN = "PATHWAYS_LOGIN"
ENV_TRUSTED_USER_HEADER = "PATHWAYS_TRUSTED_USER_HEADER"
ENV_TRUSTED_PROXIES = "PATHWAYS_TRUSTED_PROXIES"
ENV_NEW_PASSWORD = "PATHWAYS_NEW_PASSWORD"

#: ``server.config`` key of the app's :class:`AuthSettings`.
AUTH_KEY = "PATHWAYS_AUTH"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_SESSION_HOURS = 8.0
MIN_PASSWORD_CHARS = 10
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
#: User names with recent wrong passwords kept per server process, at most.
MAX_TRACKED_NAMES = 10_000
COOKIE_NAME = "pathways_session"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
HEALTH_PATH = "/healthz"
#: Paths served without a session: the sign-in page and a health check for proxies.
OPEN_PATHS = frozenset({LOGIN_PATH, HEALTH_PATH})
_G_IDENTITY = "pathways_identity"


@dataclass(frozen=True)
class Identity:
    """Who is asking: the user name saved with their work, and the team whose workspace
    they see."""

    user: str
    team: str
    signed_in: bool = False


@dataclass(frozen=True)
class AuthSettings:
    """How a running app decides who is asking (see the module docstring)."""

    login: bool
    session_hours: float = DEFAULT_SESSION_HOURS
    trusted_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})


def _problem(file: str, field: str | None, message: str) -> InputError:
    return InputError(Problem(file, None, field, message))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this computer can reach."""
    return str(host).strip().strip("[]").lower() in LOOPBACK_HOSTS


def login_needed(host: str, login: bool | None = None) -> bool:
    """Whether an app listening on ``host`` requires sign-in.

    Always on any address other computers can reach; on 127.0.0.1 only when asked
    (``login=True`` or ``PATHWAYS_LOGIN=1``) or a single sign-on header is configured.
    There is deliberately no way to switch it off on a shared address.
    """
    if not is_loopback(host):
        return True
    if login is not None:
        return bool(login)
    return _truthy(os.environ.get(ENV_LOGIN)) or bool(os.environ.get(ENV_TRUSTED_USER_HEADER))


def resolve_settings(login: bool | None = None) -> AuthSettings:
    """Settings from the arguments, then the environment (see the module docstring)."""
    header = (os.environ.get(ENV_TRUSTED_USER_HEADER) or "").strip() or None
    if login is None:
        login = _truthy(os.environ.get(ENV_LOGIN)) or header is not None
    raw_hours = os.environ.get(ENV_SESSION_HOURS) or str(DEFAULT_SESSION_HOURS)
    try:
        hours = float(raw_hours)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= 24 * 30:
        raise _problem(
            "environment", ENV_SESSION_HOURS,
            f"sign-in length must be between 0 and 720 hours, not '{raw_hours}'",
        )  # fmt: skip
    proxies = os.environ.get(ENV_TRUSTED_PROXIES) or "127.0.0.1,::1"
    return AuthSettings(
        login=bool(login),
        session_hours=hours,
        trusted_header=header,
        trusted_proxies=frozenset(p.strip() for p in proxies.split(",") if p.strip()),
    )


def local_identity() -> Identity:
    """The one user of an app without sign-in: this computer's user, team ``local``."""
    from pathways.store import LOCAL_TEAM, current_user

    return Identity(user=current_user(), team=LOCAL_TEAM)


def current_identity() -> Identity:
    """Who is asking in this request (see :func:`install_auth`).

    Outside a request, or in an app without sign-in: :func:`local_identity`. In an app
    with sign-in, a request that got past the gate always has one; if it somehow has
    none, this refuses rather than fall back to the local team.
    """
    import flask

    if not flask.has_request_context():
        return local_identity()
    found = flask.g.get(_G_IDENTITY)
    if found is not None:
        return found
    settings = flask.current_app.config.get(AUTH_KEY)
    if settings is not None and settings.login:
        raise PermissionError("no signed-in user in this request")
    return local_identity()


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` (werkzeug.security), after checking its length."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise _problem("password", None, f"passwords need at least {MIN_PASSWORD_CHARS} characters")
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password)


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    # Checked when the user is unknown, so a wrong name takes as long as a wrong password.
    from werkzeug.security import generate_password_hash

    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_hex(16)))
    return _DUMMY_HASH[0]


def check_login(store: RunStore, name: str, password: str) -> Identity | None:
    """The identity of an active user whose password matches, else ``None``."""
    from werkzeug.security import check_password_hash

    user = store.get_user(name.strip()) if name.strip() else None
    stored = (user or {}).get("password_hash") or _dummy_hash()
    ok = check_password_hash(stored, password)
    if not (ok and user and user["active"] and user.get("password_hash")):
        return None
    return Identity(user=user["name"], team=user["team"], signed_in=True)


class FailedLogins:
    """Recent wrong passwords per user name, to slow down guessing (thread-safe)."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> list[float]:
        kept = [t for t in self._seen.get(name, []) if now - t < self.window_s]
        if kept:
            self._seen[name] = kept
        else:  # names without recent failures are not kept (nor made by asking)
            self._seen.pop(name, None)
        return kept

    def blocked(self, name: str) -> bool:
        with self._lock:
            return len(self._recent(name.lower(), time.monotonic())) >= self.limit

    def failed(self, name: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._seen[name.lower()] = [*self._recent(name.lower(), now), now]
            if len(self._seen) > MAX_TRACKED_NAMES:
                self._prune(now)

    def _prune(self, now: float) -> None:
        # Many different names in one window (someone trying names): forget the names
        # whose failures are past the window, then those with the fewest failures.
        for name in list(self._seen):
            self._recent(name, now)
        keep = MAX_TRACKED_NAMES // 2
        if len(self._seen) > keep:
            order = sorted(self._seen, key=lambda n: (len(self._seen[n]), self._seen[n][-1]))
            for name in order[: len(self._seen) - keep]:
                del self._seen[name]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._seen.pop(name.lower(), None)


# --------------------------------------------------------------------------- pages

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Crisis pathway planner</title>
<style>
body {{ font-family: Arial, sans-serif; background: #f0f4f5; color: #212b32; margin: 0; }}
header {{ background: #005eb8; color: #fff; padding: 16px 24px; font-size: 20px; }}
main {{ max-width: 420px; margin: 40px auto; background: #fff; padding: 24px 32px; }}
label {{ display: block; font-weight: bold; margin-top: 16px; }}
input[type=text], input[type=password] {{ width: 100%; padding: 8px; font-size: 16px;
  border: 2px solid #4c6272; box-sizing: border-box; }}
button {{ margin-top: 24px; background: #007f3b; color: #fff; border: 0; padding: 12px 20px;
  font-size: 16px; cursor: pointer; }}
.error {{ border-left: 6px solid #d5281b; padding: 8px 12px; background: #fde8e6; }}
.info {{ border-left: 6px solid #005eb8; padding: 8px 12px; background: #e8f1fb; }}
</style></head>
<body><header>NHS &middot; Crisis pathway planner</header>
<main><h1>{title}</h1>{body}</main></body></html>
"""


def _page(title: str, body: str, status: int = 200):
    import flask

    response = flask.make_response(_PAGE.format(title=html.escape(title), body=body), status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response


def _note(text: str | None, kind: str = "error") -> str:
    if not text:
        return ""
    role = "alert" if kind == "error" else "status"
    return f'<p class="{kind}" role="{role}">{html.escape(text)}</p>'


def csrf_token() -> str:
    """This browser's CSRF token for the sign-in and sign-out forms (made on first use)."""
    import flask

    token = flask.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        flask.session["csrf"] = token
    return token


def _csrf_ok(form: Mapping[str, str]) -> bool:
    import flask

    expected = flask.session.get("csrf")
    sent = form.get("csrf_token") or ""
    return bool(expected) and hmac.compare_digest(str(expected), str(sent))


_SAFE_NEXT = re.compile(r"/[A-Za-z0-9/_\-.?=&%]*")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this app only (never another site)."""
    if not target or not _SAFE_NEXT.fullmatch(target) or target.startswith("//"):
        return "/"
    return target


def login_form(error: str | None = None, next_path: str = "/", info: str | None = None) -> str:
    """The sign-in form's HTML (with this browser's CSRF token)."""
    return (
        _note(info, "info") + _note(error)
        + f'<form method="post" action="{LOGIN_PATH}">'
        f'<input type="hidden" name="csrf_token" value="{html.escape(csrf_token())}">'
        f'<input type="hidden" name="next" value="{html.escape(safe_next(next_path))}">'
        '<label for="username">User name</label>'
        '<input type="text" id="username" name="username" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" '
        "required>"
        '<button type="submit">Sign in</button></form>'
        "<p>Ask your planner administrator if you need an account.</p>"
    )  # fmt: skip


# --------------------------------------------------------------------------- the gate


def _session_interface():
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS."""
    import flask
    from flask.sessions import SecureCookieSessionInterface

    class SessionInterface(SecureCookieSessionInterface):
        def get_cookie_secure(self, app) -> bool:
            return bool(app.config.get("SESSION_COOKIE_SECURE")) or (
                flask.has_request_context() and flask.request.is_secure
            )

    return SessionInterface()


def _secret_key(login: bool) -> str:
    key = os.environ.get(ENV_SECRET_KEY)
    if key:
        if len(key) < 32:
            log.warning("%s is shorter than 32 characters: use a longer random key", ENV_SECRET_KEY)
        return key
    if login:
        log.warning(
            "%s is not set: using a random key, so everyone must sign in again after the "
            "server restarts (set it to keep sign-ins)", ENV_SECRET_KEY,
        )  # fmt: skip
    return secrets.token_hex(32)


def _wants_page(request) -> bool:
    """Whether a refused request is a browser asking for a page (redirect it to sign in)."""
    if request.method != "GET":
        return False
    path = request.path
    if path.startswith(("/_dash", "/assets", "/_favicon", "/_reload")):
        return False
    return "text/html" in (request.headers.get("Accept") or "")


def _refuse(request):
    import flask

    if _wants_page(request):
        query = urlencode({"next": safe_next(request.full_path.rstrip("?"))})
        return flask.redirect(f"{LOGIN_PATH}?{query}")
    response = flask.make_response("Sign in to use the crisis pathway planner.\n", 401)
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response


def password_tag(password_hash: str | None) -> str:
    """A short digest of a user's password hash, kept in their session: a new password
    (``pathways users add NAME --team TEAM --replace``) ends every session signed in with
    the old one. The hash is salted and slow, so the digest tells nothing of the password."""
    digest = hashlib.sha256(f"pathways-session:{password_hash or ''}".encode()).hexdigest()
    return digest[:32]


def session_identity(store: RunStore, session: Mapping[str, Any], hours: float) -> Identity | None:
    """The identity of a signed-in session that has not expired, whose user is still
    active and has the password they signed in with (the team is read from the store each
    time, so moving a user takes effect)."""
    name, at, tag = session.get("user"), session.get("at"), session.get("pw")
    if not isinstance(name, str) or not isinstance(at, int | float) or not isinstance(tag, str):
        return None
    if time.time() - float(at) > hours * 3600:
        return None
    user = store.get_user(name)
    if user is None or not user["active"] or not user.get("password_hash"):
        return None
    if not hmac.compare_digest(tag, password_tag(user["password_hash"])):
        return None
    return Identity(user=user["name"], team=user["team"], signed_in=True)


def header_identity(store: RunStore, request, settings: AuthSettings) -> Identity | None:
    """The identity a trusted single sign-on proxy vouches for, if configured and present."""
    # the address that connected (before any X-Forwarded-For rewrite, see dashapp.serve)
    peer = request.environ.get("pathways.peer", request.remote_addr)
    if not settings.trusted_header or peer not in settings.trusted_proxies:
        return None
    name = (request.headers.get(settings.trusted_header) or "").strip()
    if not name:
        return None
    user = store.get_user(name)
    if user is None or not user["active"]:
        return None
    return Identity(user=user["name"], team=user["team"], signed_in=True)


def install_auth(server, login: bool | None = None) -> AuthSettings:
    """Give a Flask server sign-in (when ``login``, see :func:`resolve_settings`).

    Always sets the secret key and cookie settings; with sign-in on, also the ``/login``
    and ``/logout`` pages and a gate in front of every other request. The app's run
    store (``server.config[CONFIG_KEY].store_url``) holds the users.
    """
    import flask

    from dashapp.state import CONFIG_KEY
    from pathways.store import RunStore

    settings = resolve_settings(login)
    server.config[AUTH_KEY] = settings
    server.secret_key = _secret_key(settings.login)
    server.session_interface = _session_interface()
    server.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_hours),
    )

    @server.route(HEALTH_PATH)
    def _health():
        return flask.Response("ok\n", mimetype="text/plain")

    if not settings.login:
        return settings
    config = server.config.get(CONFIG_KEY)
    store = RunStore(getattr(config, "store_url", None))
    failures = FailedLogins()
    if not store.list_users() and not settings.trusted_header:
        log.warning("sign-in is on but nobody can sign in yet: add a user with "
                    "'pathways users add NAME --team TEAM'")  # fmt: skip

    @server.before_request
    def _gate():
        request = flask.request
        if request.path in OPEN_PATHS:
            return None
        who = header_identity(store, request, settings) or session_identity(
            store, flask.session, settings.session_hours
        )
        if who is None:
            return _refuse(request)
        flask.g.setdefault(_G_IDENTITY, who)
        return None

    @server.route(LOGIN_PATH, methods=["GET", "POST"])
    def _login():
        request = flask.request
        next_path = safe_next(request.values.get("next"))
        if request.method == "GET":
            info = "You have signed out." if request.args.get("signed_out") else None
            return _page("Sign in", login_form(next_path=next_path, info=info))
        if not _csrf_ok(request.form):
            return _page("Sign in", login_form("The form had expired: please sign in again.",
                                               next_path), 400)  # fmt: skip
        name = (request.form.get("username") or "").strip()
        if failures.blocked(name):
            return _page("Sign in", login_form(
                "Too many wrong passwords for this user name: wait 15 minutes and try again, "
                "or ask your administrator to reset the password.", next_path), 429)  # fmt: skip
        who = check_login(store, name, request.form.get("password") or "")
        if who is None:
            failures.failed(name)
            log.info("failed sign-in for %r from %s", name[:100], request.remote_addr)
            return _page("Sign in", login_form("The user name or password is not right.",
                                               next_path), 401)  # fmt: skip
        failures.succeeded(name)
        flask.session.clear()  # a fresh session: nothing from before signing in carries over
        flask.session.permanent = True
        user = store.get_user(who.user) or {}
        flask.session.update(user=who.user, at=time.time(), csrf=secrets.token_urlsafe(32),
                             pw=password_tag(user.get("password_hash")))  # fmt: skip
        log.info("%s (team %s) signed in", who.user, who.team)
        return flask.redirect(next_path)

    @server.route(LOGOUT_PATH, methods=["GET", "POST"])
    def _logout():
        request = flask.request
        if request.method == "POST" and _csrf_ok(request.form):
            flask.session.clear()
            return flask.redirect(f"{LOGIN_PATH}?signed_out=1")
        who = current_identity()
        body = (
            f"<p>Signed in as {html.escape(who.user)} (team {html.escape(who.team)}).</p>"
            f'<form method="post" action="{LOGOUT_PATH}">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(csrf_token())}">'
            '<button type="submit">Sign out</button></form>'
            '<p><a href="/">Back to the planner</a></p>'
        )
        return _page("Sign out", body)

    return settings


# --------------------------------------------------------------------------- the CLI


def add_users_parser(sub) -> None:
    """The ``pathways users`` subcommands (add, list, disable, enable, remove, move-work)."""
    s = sub.add_parser("users", help="who may sign in to a shared web app, and their teams")
    s.add_argument("--store", help="run store URL (default: PATHWAYS_STORE_URL or ~/.pathways)")
    us = s.add_subparsers(dest="users_command", required=True)
    a = us.add_parser("add", help=f"add a user (password from {ENV_NEW_PASSWORD} or a prompt)")
    a.add_argument("name")
    a.add_argument("--team", required=True, help="the team whose workspace they share")
    a.add_argument(
        "--replace", action="store_true", help="change an existing user's team or password"
    )
    a.add_argument("--sso-only", action="store_true",
                   help="no password: signs in only through the single sign-on header")  # fmt: skip
    us.add_parser("list", help="users and their teams")
    for verb, text in (("disable", "stop a user signing in"), ("enable", "let a user sign in again"),
                       ("remove", "remove a user (their team's work stays)")):  # fmt: skip
        u = us.add_parser(verb, help=text)
        u.add_argument("name")
    m = us.add_parser("move-work", help="give one team's saved work to another (e.g. local)")
    m.add_argument("--from", dest="from_team", required=True)
    m.add_argument("--to", dest="to_team", required=True)


def _new_password() -> str:
    from_env = os.environ.get(ENV_NEW_PASSWORD)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise _problem("password", None, f"set {ENV_NEW_PASSWORD} or run this in a terminal")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise _problem("password", None, "the two passwords are not the same")
    return first


def users_cli(args: argparse.Namespace) -> int:
    """Run a ``pathways users`` subcommand against the run store."""
    from pathways.store import RunStore

    with RunStore(args.store) as store:
        command = args.users_command
        if command == "add":
            hashed = None if args.sso_only else hash_password(_new_password())
            store.add_user(args.name, args.team, hashed, replace=args.replace)
            print(f"{args.name} can sign in; team '{args.team}'")
        elif command == "list":
            for u in store.list_users():
                how = "password" if u["has_password"] else "single sign-on only"
                state = "" if u["active"] else " (disabled)"
                print(f"{u['name']}\tteam {u['team']}\t{how}{state}")
        elif command in ("disable", "enable"):
            store.set_user_active(args.name, command == "enable")
            print(f"{args.name} {'can' if command == 'enable' else 'can no longer'} sign in")
        elif command == "remove":
            store.remove_user(args.name)
            print(f"removed {args.name}; their team's saved work stays")
        elif command == "move-work":
            moved = store.move_team_work(args.from_team, args.to_team)
            print(f"moved {moved} saved scenarios and plans from '{args.from_team}' to "
                  f"'{args.to_team}'")  # fmt: skip
    return 0


__all__ = [
    "AuthSettings",
    "Identity",
    "add_users_parser",
    "check_login",
    "current_identity",
    "hash_password",
    "install_auth",
    "is_loopback",
    "local_identity",
    "login_needed",
    "password_tag",
    "resolve_settings",
    "safe_next",
    "users_cli",
]
