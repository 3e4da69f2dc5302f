"""HTTP hardening of the web app: security headers, request size, server banner, debugger.

:func:`install_security` is called once by :func:`dashapp.app.create_app`. On every
response it sets:

- ``Content-Security-Policy`` (:func:`content_security_policy`): scripts only from the
  app itself, plus the few inline scripts of the page Dash serves, allowed one by one
  by their SHA-256 hash (no ``'unsafe-inline'`` and no ``'unsafe-eval'`` for scripts);
  styles from the app and inline (React and plotly.js set styles on elements); images,
  fonts and map workers from the app, ``data:`` and ``blob:``; the optional map tile
  server (``PATHWAYS_TILE_URL``) for images and fetches; no plugins; no framing;
- ``X-Frame-Options: DENY`` (older browsers' version of ``frame-ancestors 'none'``),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``Permissions-Policy`` (no camera, microphone or location), and
  ``Cross-Origin-Opener-Policy: same-origin``;
- ``Strict-Transport-Security`` when the request came over HTTPS (behind a proxy that
  ends TLS, Flask only knows that if the proxy's ``X-Forwarded-Proto`` is trusted, e.g.
  with ``werkzeug.middleware.proxy_fix.ProxyFix``);
- ``Cache-Control: no-store`` on callback responses, which carry the session's scenario.

It also caps the size of a request (Flask ``MAX_CONTENT_LENGTH``, from
:func:`pathways.uploads.request_max_bytes`), so a huge upload is refused before it is
read into memory.

The server banner: Werkzeug's development server (``pathways app``) always sends
``Server: Werkzeug/<version> Python/<version>`` from its request handler, whatever the
app says, so :func:`dashapp.app.run` serves with :class:`QuietRequestHandler`, which
sends ``Server: crisis-pathway-planner``. Waitress sends ``Server: waitress`` (no
version) unless the app sets its own, which it then keeps (and adds ``Via: waitress``);
``waitress-serve --ident=...`` changes the word.

The debugger: ``debug=True`` serves the Werkzeug debugger, which runs any Python code
a visitor types (behind a PIN printed in the console), and Dash's developer tools, which
show tracebacks. :func:`check_debug_host` refuses it unless the app listens only on this
computer (127.0.0.1, localhost or ::1).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

from dashapp.state import CONFIG_KEY
from pathways import uploads
from pathways.errors import InputError, Problem

#: Hosts that only this computer can reach: the only ones the debugger may listen on.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SERVER_NAME = "crisis-pathway-planner"
HSTS = "max-age=31536000; includeSubDomains"
STATIC_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Dash's callback endpoint: its responses hold the session's scenario and results.
CALLBACK_PATH = "/_dash-update-component"

# An inline script (no src attribute) and its text. JSON data blocks are not run, so
# they need no hash, but hashing them does no harm.
_INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\ssrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)


def script_hashes(page: str) -> list[str]:
    """CSP source expressions (``'sha256-...'``) for every inline script of an HTML page."""
    out = []
    for text in _INLINE_SCRIPT.findall(page):
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
        expr = f"'sha256-{digest}'"
        if expr not in out:
            out.append(expr)
    return out


def tile_origin(tile_url: str | None) -> str | None:
    """The origin of a tile URL template for the CSP (``{s}`` subdomains become ``*``)."""
    if not tile_url:
        return None
    try:
        parts = urlsplit(tile_url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = re.sub(r"\{[^}]*\}", "*", parts.netloc.rsplit("@", 1)[-1])
    if not re.fullmatch(r"[A-Za-z0-9.*:\[\]-]+", host):
        return None
    return f"{parts.scheme}://{host}"


def content_security_policy(hashes: Iterable[str] = (), tiles: str | None = None) -> str:
    """The Content-Security-Policy header for a page whose inline scripts have ``hashes``.

    ``tiles``: origin of the map tile server, allowed for images and fetches.
    """
    extra = f" {tiles}" if tiles else ""
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *hashes]),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": f"'self' data: blob:{extra}",
        "font-src": "'self' data:",
        "connect-src": f"'self'{extra}",
        "worker-src": "'self' blob:",
        "child-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def _configured_tiles(server) -> str | None:
    config = server.config.get(CONFIG_KEY)
    return tile_origin(getattr(config, "tile_url", None))


def secure_response(response, request, tiles: str | None = None):
    """Add the security headers to one Flask response (see the module docstring)."""
    hashes: list[str] = []
    if response.mimetype == "text/html" and not response.direct_passthrough:
        hashes = script_hashes(response.get_data(as_text=True))
    response.headers["Content-Security-Policy"] = content_security_policy(hashes, tiles)
    for name, value in STATIC_HEADERS.items():
        response.headers[name] = value
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    if request.path == CALLBACK_PATH:
        response.headers["Cache-Control"] = "no-store"
    return response


def install_security(server) -> None:
    """Harden a Flask server: security headers on every response, a request size cap."""
    import flask

    if server.config.get("MAX_CONTENT_LENGTH") is None:
        server.config["MAX_CONTENT_LENGTH"] = uploads.request_max_bytes()
    tiles = _configured_tiles(server)

    @server.after_request
    def _add_security_headers(response):
        return secure_response(response, flask.request, tiles)


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the versions of Werkzeug and Python in ``Server``."""

    def version_string(self) -> str:
        return SERVER_NAME


def check_debug_host(host: str, debug: bool) -> None:
    """Refuse to serve the debugger on an address other computers can reach."""
    if debug and str(host).strip().strip("[]").lower() not in LOOPBACK_HOSTS:
        raise InputError(
            Problem(
                "pathways app",
                None,
                "--debug",
                f"debug mode lets anyone who can reach the app run programs on this computer, "
                f"so it is only allowed on 127.0.0.1 or localhost, not on {host}; drop --debug "
                "or use --host 127.0.0.1",
            )
        )


__all__ = [
    "LOOPBACK_HOSTS",
    "QuietRequestHandler",
    "check_debug_host",
    "content_security_policy",
    "install_security",
    "script_hashes",
    "secure_response",
    "tile_origin",
]
