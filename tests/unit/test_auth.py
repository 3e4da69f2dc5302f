"""Sign-in of a shared web app: the gate, the sign-in form, sessions, single sign-on, users CLI."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import dash
import pytest

from dashapp import auth
from dashapp.serve import harden_proxy_headers
from pathways import cli
from pathways.errors import InputError
from pathways.store import RunStore

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"
#: Settings of the environment that change how sign-in behaves; cleared for every app here.
AUTH_ENV = (
    auth.ENV_LOGIN, auth.ENV_SESSION_HOURS, auth.ENV_TRUSTED_USER_HEADER,
    auth.ENV_TRUSTED_PROXIES, "PATHWAYS_BEHIND_PROXY",
)  # fmt: skip
#: The proxy address the single sign-on app trusts, and an address it does not.
PROXY, STRANGER = "10.0.0.2", "10.0.0.9"
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _make_app(tmp_path_factory, env: dict[str, str]):
    from dashapp.app import create_app

    work = tmp_path_factory.mktemp("auth")
    url = f"sqlite:///{work / 'store.db'}"
    with RunStore(url) as store:
        for name, team in (("ann", "east"), ("carol", "east"), ("dora", "west"),
                           (XSS, "<b>team</b>")):  # fmt: skip
            store.add_user(name, team, auth.hash_password(PASSWORD))
        store.add_user("sam", "west", None)  # single sign-on only
    with pytest.MonkeyPatch.context() as mp:
        for key in AUTH_ENV:
            mp.delenv(key, raising=False)
        mp.setenv(auth.ENV_SECRET_KEY, "k" * 64)
        for key, value in env.items():
            mp.setenv(key, value)
        app = create_app(login=True, store_url=url, cache_dir=work / "cache")
    # serve one request now: Dash takes its callbacks from the global list on the first
    # request, and the next app made in this process clears that list
    assert app.server.test_client().get(auth.HEALTH_PATH).status_code == 200
    return app, url


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """An app with sign-in and default settings, and its store's URL."""
    return _make_app(tmp_path_factory, {})


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    """An app trusting ``X-Remote-User`` from :data:`PROXY`, sessions of 1 hour."""
    app, url = _make_app(tmp_path_factory, {
        auth.ENV_TRUSTED_USER_HEADER: "X-Remote-User", auth.ENV_TRUSTED_PROXIES: PROXY,
        auth.ENV_SESSION_HOURS: "1", "PATHWAYS_BEHIND_PROXY": "1",
    })  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATHWAYS_BEHIND_PROXY", "1")
        harden_proxy_headers(app.server)  # as dashapp.serve and dashapp.wsgi do
    return app, url


@pytest.fixture
def client(shared):
    return shared[0].server.test_client()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the form has no CSRF token"
    return found.group(1)


def _login(client, name: str, password: str = PASSWORD, next_path: str = "/", **kw):
    token = _csrf(client.get(auth.LOGIN_PATH, **kw).get_data(as_text=True))
    return client.post(auth.LOGIN_PATH, data={"csrf_token": token, "username": name,
                                              "password": password, "next": next_path}, **kw)  # fmt: skip


def _pages() -> list[str]:
    paths = [p["relative_path"] for p in dash.page_registry.values()]
    assert "/" in paths and len(paths) >= 5, paths
    return paths


def _signed_in(shared, name: str = "ann"):
    client = shared[0].server.test_client()
    r = _login(client, name)
    assert r.status_code == 302, r.get_data(as_text=True)
    return client


def _nav_callback(client, pathname: str) -> tuple[dict, dict]:
    """The payload of the navigation highlight callback (from /_dash-dependencies)."""
    deps = client.get("/_dash-dependencies").json
    dep = next(
        d for d in deps
        if d["inputs"] == [{"id": "_pages_location", "property": "pathname"}]
        and d["output"].startswith("..app-nav-")
    )  # fmt: skip
    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1), strict=True))
               for part in dep["output"].strip(".").split("...")]  # fmt: skip
    payload = {
        "output": dep["output"], "outputs": outputs,
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname}],
        "changedPropIds": ["_pages_location.pathname"], "state": [],
    }  # fmt: skip
    return dep, payload


# --------------------------------------------------------------------------- the gate


def test_every_page_redirects_to_sign_in_without_a_session(shared, client):
    for path in _pages():
        r = client.get(path, headers=HTML)
        assert r.status_code == 302, path
        where = urlsplit(r.headers["Location"])
        assert where.path == auth.LOGIN_PATH
        assert parse_qs(where.query)["next"] == [path]


def test_redirect_keeps_the_whole_query_for_after_sign_in(client):
    r = client.get("/results?a=1&b=2", headers=HTML)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == ["/results?a=1&b=2"]


def test_dash_endpoints_assets_and_scripts_answer_401_without_a_session(shared, client):
    signed = _signed_in(shared)
    page = signed.get("/").get_data(as_text=True)
    suites = [
        s for s in re.findall(r'src="([^"]+)"', page) if s.startswith("/_dash-component-suites/")
    ]
    assert suites
    assert signed.get(suites[0]).status_code == 200  # a real script, served when signed in
    assert signed.get("/assets/app.css").status_code == 200
    for path in ("/_dash-layout", "/_dash-dependencies", "/assets/app.css", "/assets/fit.js",
                 suites[0], "/_favicon.ico", "/", "/optimise"):  # fmt: skip
        r = client.get(path)  # no Accept: text/html, as scripts and fetches ask
        assert r.status_code == 401, path
        assert r.headers["Cache-Control"] == "no-store"
        assert b"Sign in" in r.data
    _, payload = _nav_callback(signed, "/services")
    r = client.post("/_dash-update-component", json=payload)
    assert r.status_code == 401
    assert b"nav-link" not in r.data


def test_health_check_needs_no_session(client):
    r = client.get(auth.HEALTH_PATH)
    assert r.status_code == 200
    assert r.get_data(as_text=True) == "ok\n"


# --------------------------------------------------------------------------- signing in


def test_wrong_password_is_401_and_the_sixth_attempt_429(client):
    for _ in range(auth.MAX_FAILURES):
        r = _login(client, "carol", "not the password!")
        assert r.status_code == 401
        assert "not right" in r.get_data(as_text=True)
    r = _login(client, "carol")  # even the right password, until the window has passed
    assert r.status_code == 429
    assert "Too many wrong passwords" in r.get_data(as_text=True)
    assert client.get("/", headers=HTML).status_code == 302
    assert _login(client, "ann").status_code == 302  # other names are not held up


def test_unknown_users_and_single_sign_on_users_cannot_sign_in_with_a_password(client):
    assert _login(client, "nobody").status_code == 401
    assert _login(client, "sam").status_code == 401
    assert _login(client, "").status_code == 401


def test_sign_in_without_or_with_a_wrong_csrf_token_is_400(client):
    client.get(auth.LOGIN_PATH)
    data = {"username": "ann", "password": PASSWORD}
    assert client.post(auth.LOGIN_PATH, data=data).status_code == 400
    assert client.post(auth.LOGIN_PATH, data={**data, "csrf_token": "guess"}).status_code == 400
    assert client.get("/", headers=HTML).status_code == 302


def test_a_good_sign_in_sets_a_safe_cookie_then_pages_and_callbacks_work(shared, client):
    r = _login(client, "ann", next_path="/optimise")
    assert r.status_code == 302
    assert r.headers["Location"] == "/optimise"
    cookie = next(
        c for c in r.headers.getlist("Set-Cookie") if c.startswith(auth.COOKIE_NAME + "=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert "Expires=" in cookie
    for path in _pages():
        assert client.get(path, headers=HTML).status_code == 200, path
    assert client.get("/_dash-layout").status_code == 200
    dep, payload = _nav_callback(client, "/services")
    r = client.post("/_dash-update-component", json=payload)
    assert r.status_code == 200
    body = r.json["response"]
    assert body["app-nav-services"]["className"] == "nav-link active"
    assert body["app-nav-footprint"]["className"] == "nav-link"
    assert len(body) == len(dep["output"].strip(".").split("..."))


def test_the_cookie_is_secure_over_https(shared):
    client = shared[0].server.test_client()
    r = _login(client, "ann", base_url="https://planner.example")
    assert r.status_code == 302
    cookie = next(
        c for c in r.headers.getlist("Set-Cookie") if c.startswith(auth.COOKIE_NAME + "=")
    )
    assert "Secure" in cookie


def test_signing_in_starts_a_fresh_session(client):
    client.get(auth.LOGIN_PATH)
    with client.session_transaction() as session:
        before = dict(session)
        session["planted"] = "by someone else"
    _login(client, "ann")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["csrf"] != before["csrf"]
        assert session["user"] == "ann"


def test_sign_out_needs_the_form_token(shared):
    client = _signed_in(shared)
    page = client.get(auth.LOGOUT_PATH).get_data(as_text=True)
    assert "Signed in as ann (team east)" in page
    client.post(auth.LOGOUT_PATH, data={"csrf_token": "guess"})
    assert client.get("/", headers=HTML).status_code == 200
    r = client.post(auth.LOGOUT_PATH, data={"csrf_token": _csrf(page)})
    assert r.status_code == 302
    assert client.get("/", headers=HTML).status_code == 302
    assert "signed out" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_a_session_older_than_its_hours_is_refused(shared):
    client = _signed_in(shared)
    hours = shared[0].server.config[auth.AUTH_KEY].session_hours
    assert hours == auth.DEFAULT_SESSION_HOURS
    with client.session_transaction() as session:
        session["at"] = time.time() - hours * 3600 + 600  # 10 minutes left
    assert client.get("/", headers=HTML).status_code == 200
    with client.session_transaction() as session:
        session["at"] = time.time() - hours * 3600 - 60
    assert client.get("/", headers=HTML).status_code == 302
    assert client.get("/_dash-layout").status_code == 401


def test_session_hours_come_from_the_environment(sso):
    app, _ = sso
    assert app.server.config[auth.AUTH_KEY].session_hours == 1.0
    assert app.server.permanent_session_lifetime.total_seconds() == 3600
    client = app.server.test_client()
    assert _login(client, "ann").status_code == 302
    with client.session_transaction() as session:
        session["at"] = time.time() - 2 * 3600  # within the default 8 hours, not within 1
    assert client.get("/", headers=HTML).status_code == 302


@pytest.mark.parametrize("raw", ["0", "-1", "721", "eight"])
def test_bad_session_hours_are_refused(monkeypatch, raw):
    monkeypatch.setenv(auth.ENV_SESSION_HOURS, raw)
    with pytest.raises(InputError, match="between 0 and 720 hours"):
        auth.resolve_settings(True)


def test_a_session_without_a_sign_in_time_is_refused(shared):
    client = shared[0].server.test_client()
    with client.session_transaction() as session:
        session["user"] = "ann"  # only the server could write this; no "at" nor "pw"
    assert client.get("/_dash-layout").status_code == 401
    with client.session_transaction() as session:
        session["at"] = time.time()
    assert client.get("/_dash-layout").status_code == 401


def test_a_disabled_user_is_refused_at_the_next_request(shared):
    _, url = shared
    client = _signed_in(shared, "dora")
    assert client.get("/_dash-layout").status_code == 200
    with RunStore(url) as store:
        store.set_user_active("dora", False)
        try:
            assert client.get("/", headers=HTML).status_code == 302
            assert client.get("/_dash-layout").status_code == 401
            assert _login(shared[0].server.test_client(), "dora").status_code == 401
        finally:
            store.set_user_active("dora", True)
    # enabled again: a session still within its hours is let in again
    assert client.get("/_dash-layout").status_code == 200


def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(shared):
    _, url = shared
    with RunStore(url) as store:
        store.add_user("reset", "east", auth.hash_password(PASSWORD))
        client = _signed_in(shared, "reset")
        assert client.get("/_dash-layout").status_code == 200
        store.add_user("reset", "east", auth.hash_password(PASSWORD + "!"), replace=True)
    assert client.get("/_dash-layout").status_code == 401
    assert _login(client, "reset", PASSWORD).status_code == 401
    assert _login(client, "reset", PASSWORD + "!").status_code == 302
    assert client.get("/_dash-layout").status_code == 200


def test_moving_a_user_to_another_team_takes_effect_at_once(shared):
    _, url = shared
    with RunStore(url) as store:
        store.add_user("mover", "east", auth.hash_password(PASSWORD))
        client = _signed_in(shared, "mover")
        assert "(team east)" in client.get(auth.LOGOUT_PATH).get_data(as_text=True)
        same = store.get_user("mover")["password_hash"]
        store.add_user("mover", "north", same, replace=True)  # the same password
    assert "(team north)" in client.get(auth.LOGOUT_PATH).get_data(as_text=True)


# --------------------------------------------------------------------------- safe_next


@pytest.mark.parametrize("target", [
    "//evil.example", "//evil.example/login", "https://evil.example", "http://evil.example/",
    "javascript:alert(1)", "evil.example", "/\\evil.example", "/<script>", "", None,
])  # fmt: skip
def test_safe_next_refuses_other_sites(target):
    assert auth.safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/optimise", "/results?a=1&b=2"])
def test_safe_next_keeps_paths_of_this_app(target):
    assert auth.safe_next(target) == target


def test_sign_in_never_sends_the_browser_to_another_site(client):
    r = _login(client, "ann", next_path="//evil.example")
    assert r.status_code == 302
    assert r.headers["Location"] == "/"


# --------------------------------------------------------------------------- single sign-on


def test_trusted_header_is_ignored_when_not_configured(client):
    r = client.get("/_dash-layout", headers={"X-Remote-User": "ann"})
    assert r.status_code == 401


class _From:
    """A test client whose requests come from ``address``."""

    def __init__(self, app, address: str):
        self.client, self.address = app.server.test_client(), address

    def get(self, path: str, **kw):
        return self.client.get(path, environ_base={"REMOTE_ADDR": self.address}, **kw)


def test_trusted_header_is_honoured_only_from_a_trusted_peer(sso):
    app, _ = sso
    proxy, stranger = _From(app, PROXY), _From(app, STRANGER)
    r = proxy.get("/_dash-layout", headers={"X-Remote-User": "sam"})
    assert r.status_code == 200
    page = proxy.get(auth.LOGOUT_PATH, headers={"X-Remote-User": "sam"}).get_data(as_text=True)
    assert "Signed in as sam (team west)" in page
    assert stranger.get("/_dash-layout", headers={"X-Remote-User": "sam"}).status_code == 401
    # a forwarded-for address naming the proxy does not make a stranger the proxy
    forged = {"X-Remote-User": "sam", "X-Forwarded-For": PROXY}
    assert stranger.get("/_dash-layout", headers=forged).status_code == 401
    # the proxy's own forwarded-for (the browser's address) does not hide that it is the proxy
    forwarded = {"X-Remote-User": "sam", "X-Forwarded-For": "192.0.2.7"}
    assert proxy.get("/_dash-layout", headers=forwarded).status_code == 200
    assert proxy.get("/_dash-layout", headers={"X-Remote-User": "nobody"}).status_code == 401
    assert proxy.get("/_dash-layout", headers={"X-Remote-User": ""}).status_code == 401
    assert proxy.get("/_dash-layout").status_code == 401


def test_trusted_header_of_a_disabled_user_is_refused(sso):
    app, url = sso
    proxy = _From(app, PROXY)
    with RunStore(url) as store:
        store.set_user_active("dora", False)
        try:
            assert proxy.get("/_dash-layout", headers={"X-Remote-User": "dora"}).status_code == 401
        finally:
            store.set_user_active("dora", True)
    assert proxy.get("/_dash-layout", headers={"X-Remote-User": "dora"}).status_code == 200


# --------------------------------------------------------------------------- login_needed


@pytest.fixture
def plain_env(monkeypatch):
    for key in AUTH_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "planner.nhs.example"])
def test_login_is_always_needed_on_a_shared_address(plain_env, host):
    assert auth.login_needed(host) is True
    assert auth.login_needed(host, login=False) is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]"])
def test_login_is_not_needed_on_this_computer_by_default(plain_env, host):
    assert auth.login_needed(host) is False
    assert auth.login_needed(host, login=True) is True
    plain_env.setenv(auth.ENV_LOGIN, "1")
    assert auth.login_needed(host) is True


def test_a_configured_sign_on_header_needs_login_on_this_computer(plain_env):
    plain_env.setenv(auth.ENV_TRUSTED_USER_HEADER, "X-Remote-User")
    assert auth.login_needed("127.0.0.1") is True
    assert auth.resolve_settings().login is True


# --------------------------------------------------------------------------- escaping


def test_a_user_name_with_html_is_shown_escaped(shared, client):
    r = _login(client, XSS, "not the password!")
    assert r.status_code == 401
    assert XSS not in r.get_data(as_text=True)
    page = client.get(f"{auth.LOGIN_PATH}?next=/%22%3E{XSS}").get_data(as_text=True)
    assert XSS not in page
    signed = _signed_in(shared, XSS)
    page = signed.get(auth.LOGOUT_PATH).get_data(as_text=True)
    assert (
        "Signed in as &lt;script&gt;alert(1)&lt;/script&gt; (team &lt;b&gt;team&lt;/b&gt;)" in page
    )
    assert XSS not in page
    assert "<b>team</b>" not in page


# --------------------------------------------------------------------------- counting failures


def test_wrong_password_counts_expire_and_do_not_pile_up(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    failures = auth.FailedLogins(limit=2, window_s=60)
    assert not failures.blocked("someone")
    assert failures._seen == {}  # asking keeps nothing
    failures.failed("Ann")
    failures.failed("ann")
    assert failures.blocked("ANN")
    clock[0] += 61
    assert not failures.blocked("ann")
    for _ in range(4):
        failures.failed("ann")
    for k in range(2 * auth.MAX_TRACKED_NAMES):  # a flood of names within one window
        failures.failed(f"guess-{k}")
    assert len(failures._seen) <= auth.MAX_TRACKED_NAMES
    assert failures.blocked("ann")  # the name being guessed at is kept
    clock[0] += 61
    failures.failed("late")
    assert not failures.blocked("ann")


# --------------------------------------------------------------------------- the users CLI


def test_users_cli_adds_lists_and_disables(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv(auth.ENV_NEW_PASSWORD, PASSWORD)
    assert cli.main(["users", "--store", url, "add", "bob", "--team", "east"]) == 0
    assert "bob can sign in; team 'east'" in capsys.readouterr().out
    assert (
        cli.main(["users", "--store", url, "add", "sso-sue", "--team", "west", "--sso-only"]) == 0
    )
    capsys.readouterr()
    assert cli.main(["users", "--store", url, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["bob\tteam east\tpassword", "sso-sue\tteam west\tsingle sign-on only"]
    with RunStore(url) as store:
        assert store.get_user("bob")["password_hash"].startswith("scrypt:")
        assert PASSWORD not in store.get_user("bob")["password_hash"]
        assert auth.check_login(store, "bob", PASSWORD) == auth.Identity("bob", "east", True)
        assert auth.check_login(store, "bob", PASSWORD + "x") is None
    assert cli.main(["users", "--store", url, "disable", "bob"]) == 0
    assert "bob can no longer sign in" in capsys.readouterr().out
    cli.main(["users", "--store", url, "list"])
    assert "bob\tteam east\tpassword (disabled)" in capsys.readouterr().out
    with RunStore(url) as store:
        assert auth.check_login(store, "bob", PASSWORD) is None
    assert cli.main(["users", "--store", url, "enable", "bob"]) == 0
    capsys.readouterr()
    with RunStore(url) as store:
        assert auth.check_login(store, "bob", PASSWORD) is not None


def test_users_cli_refuses_a_second_add_and_short_passwords(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv(auth.ENV_NEW_PASSWORD, PASSWORD)
    assert cli.main(["users", "--store", url, "add", "bob", "--team", "east"]) == 0
    assert cli.main(["users", "--store", url, "add", "bob", "--team", "west"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["users", "--store", url, "add", "bob", "--team", "west", "--replace"]) == 0
    monkeypatch.setenv(auth.ENV_NEW_PASSWORD, "short")
    assert cli.main(["users", "--store", url, "add", "cy", "--team", "east"]) == 2
    assert f"at least {auth.MIN_PASSWORD_CHARS} characters" in capsys.readouterr().err
    assert cli.main(["users", "--store", url, "disable", "nobody"]) == 2
    with RunStore(url) as store:
        assert [u["name"] for u in store.list_users()] == ["bob"]
        assert store.get_user("bob")["team"] == "west"


def test_users_cli_reads_the_store_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env-store.db'}"
    monkeypatch.setenv("PATHWAYS_STORE_URL", url)
    monkeypatch.setenv(auth.ENV_NEW_PASSWORD, PASSWORD)
    assert cli.main(["users", "add", "eve", "--team", "south"]) == 0
    with RunStore(url) as store:
        assert store.get_user("eve")["team"] == "south"
        listed = store.list_users()
    assert [u["name"] for u in listed] == ["eve"]
    assert "password_hash" not in listed[0]  # the listing never holds hashes
