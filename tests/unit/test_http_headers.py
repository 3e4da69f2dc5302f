"""HTTP responses of the web app: security headers, request size, server banner, debugger."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import urllib.request

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from dashapp import security
from pathways import uploads
from pathways.errors import InputError


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from dashapp.app import create_app

    return create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def _inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", page, re.DOTALL)


# --------------------------------------------------------------------------- headers


def test_the_page_has_the_security_headers(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in r.headers["Permissions-Policy"]
    csp = _directives(r.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert csp["default-src"] == ["'self'"] and csp["base-uri"] == ["'self'"]


def test_scripts_run_only_from_the_app_or_by_hash(app, client):
    r = client.get("/")
    csp = _directives(r.headers["Content-Security-Policy"])
    scripts = csp["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert scripts[0] == "'self'" and all(s.startswith("'sha256-") for s in scripts[1:])
    page = r.get_data(as_text=True)
    inline = _inline_scripts(page)
    assert inline  # Dash's page starts its renderer with an inline script
    for text in inline:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in scripts
    # Dash's own list of the inline scripts it needs agrees
    assert set(app.csp_hashes()) <= set(scripts)


def test_every_kind_of_response_has_the_headers(client):
    for path in ("/_dash-layout", "/_dash-dependencies", "/assets/app.css", "/no-such-page"):
        r = client.get(path)
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path


def test_callback_responses_are_not_cached(client):
    r = client.post("/_dash-update-component", json={})
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY"


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/").headers
    secure = client.get("/", base_url="https://planner.example.nhs.uk")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_tile_server_is_allowed_for_images_and_fetches_only(tmp_path):
    from dashapp.app import create_app

    app = create_app(cache_dir=tmp_path, tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    csp = _directives(app.server.test_client().get("/").headers["Content-Security-Policy"])
    assert "https://*.tiles.example.org" in csp["img-src"]
    assert "https://*.tiles.example.org" in csp["connect-src"]
    assert "https://*.tiles.example.org" not in csp["script-src"]


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://tile.example.org/{z}/{x}/{y}.png", "https://tile.example.org"),
        ("http://localhost:8080/{z}/{x}/{y}.png", "http://localhost:8080"),
        ("javascript:alert(1)", None),
        ("https://a.org'; script-src *;/{z}.png", None),
        ("", None),
        (None, None),
    ],
)
def test_tile_origin(url, origin):
    assert security.tile_origin(url) == origin


# --------------------------------------------------------------------------- request size


def test_the_request_size_is_capped(app):
    assert app.server.config["MAX_CONTENT_LENGTH"] == uploads.request_max_bytes()
    assert uploads.request_max_bytes() > uploads.browser_max_bytes() > uploads.max_upload_bytes()


def test_a_request_over_the_cap_is_refused_before_it_is_read(tmp_path):
    from dashapp.app import create_app

    app = create_app(cache_dir=tmp_path)
    app.server.config["MAX_CONTENT_LENGTH"] = 1000
    r = app.server.test_client().post(
        "/_dash-update-component", data=b"x" * 2000, content_type="application/json"
    )
    assert r.status_code == 413
    assert r.headers["X-Content-Type-Options"] == "nosniff"


# --------------------------------------------------------------------------- server banner


def _server_header(wsgi_app, handler) -> str:
    server = make_server("127.0.0.1", 0, wsgi_app, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/assets/app.css") as r:
            return r.headers["Server"]
    finally:
        server.shutdown()
        thread.join()


def test_the_development_server_does_not_tell_its_versions(app):
    banner = _server_header(app.server, security.QuietRequestHandler)
    assert banner == security.SERVER_NAME
    # without it, Werkzeug tells both its version and Python's
    assert re.match(r"Werkzeug/\S+ Python/\S+", _server_header(app.server, WSGIRequestHandler))


# --------------------------------------------------------------------------- debugger


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "planner.local", ""])
def test_debug_is_refused_on_an_address_others_can_reach(host):
    with pytest.raises(InputError, match="only allowed on 127.0.0.1 or localhost") as err:
        security.check_debug_host(host, True)
    assert err.value.problems[0].field == "--debug"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_debug_is_allowed_on_this_computer_only(host):
    security.check_debug_host(host, True)


def test_without_debug_any_address_is_allowed():
    security.check_debug_host("0.0.0.0", False)


def test_run_refuses_debug_before_building_or_serving_the_app(monkeypatch):
    from dashapp import app as app_module

    def must_not_build(*_a, **_k):
        raise AssertionError("the app was built")

    monkeypatch.setattr(app_module, "create_app", must_not_build)
    with pytest.raises(InputError, match="debug"):
        app_module.run(host="0.0.0.0", debug=True)


def test_the_command_line_says_why_debug_was_refused(monkeypatch, capsys):
    from dashapp import app as app_module
    from pathways import cli

    monkeypatch.setattr(app_module, "create_app", lambda *a, **k: pytest.fail("app built"))
    assert cli.main(["app", "--host", "0.0.0.0", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "--debug" in err and "127.0.0.1" in err and "Traceback" not in err


def test_run_serves_with_the_quiet_handler(monkeypatch):
    from dashapp import app as app_module

    seen = {}

    class FakeApp:
        def run(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(app_module, "create_app", lambda **kwargs: FakeApp())
    app_module.run(host="127.0.0.1", port=1, debug=True)
    assert seen["request_handler"] is security.QuietRequestHandler and seen["debug"] is True
