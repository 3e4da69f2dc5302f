"""The production server for a shared app: waitress, one process with several threads.

``pathways app --host 0.0.0.0 --workers 4`` calls :func:`serve`. Why threads in one
process rather than several processes:

- the heavy work (optimisations and budget frontiers) already runs outside the server,
  one process per job (Dash's ``DiskcacheManager``), so a server thread only answers
  light requests (pages, callbacks, polls) and a few threads serve several commissioners;
- everything a request needs from earlier ones is on disk or in the database, never in
  the server's memory: saved work in the run store, the job board and background
  results in the disk cache under ``PATHWAYS_CACHE_DIR``, the session in a signed cookie.
  A page reloaded after a restart therefore still finds its job;
- waitress runs on Windows and Linux alike and needs no C compiler, and one process
  keeps the per-process safeguards (the wrong-password counter) whole.

For an external WSGI server use :mod:`dashapp.wsgi` (``dashapp.wsgi:application``).
"""

from __future__ import annotations

import logging

from dashapp.security import SERVER_NAME

log = logging.getLogger(__name__)

#: Threads when ``--workers`` is not given on a shared address.
DEFAULT_THREADS = 4
MAX_THREADS = 64


def check_threads(workers: int) -> int:
    """The number of server threads, checked (1 to 64)."""
    from pathways.errors import InputError, Problem

    if not isinstance(workers, int) or not 1 <= workers <= MAX_THREADS:
        raise InputError(
            Problem("pathways app", None, "--workers",
                    f"the number of server threads must be between 1 and {MAX_THREADS}, not {workers}")
        )  # fmt: skip
    return workers


#: Headers a reverse proxy sets about the original request (WSGI environ keys).
FORWARDED_KEYS = (
    "HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX",
)  # fmt: skip
#: Where :class:`ProxyHeaders` keeps the address that actually connected.
PEER_KEY = "pathways.peer"
ENV_BEHIND_PROXY = "PATHWAYS_BEHIND_PROXY"


class ProxyHeaders:
    """WSGI middleware: believe ``X-Forwarded-*`` only from a trusted reverse proxy.

    With ``behind_proxy``, a request from one of the ``trusted`` addresses (the proxy
    that ends TLS) has its client address, scheme and host taken from the proxy's
    headers (one hop, :class:`werkzeug.middleware.proxy_fix.ProxyFix`), so cookies are
    marked Secure and HSTS is sent. From anyone else those headers are dropped. The
    address that really connected is kept in ``environ["pathways.peer"]`` for the
    single sign-on header check (:func:`dashapp.auth.header_identity`).
    """

    def __init__(self, app, trusted: frozenset[str], behind_proxy: bool):
        from werkzeug.middleware.proxy_fix import ProxyFix

        self.app, self.trusted, self.behind_proxy = app, trusted, behind_proxy
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        if self.behind_proxy and peer in self.trusted:
            return self.fixed(environ, start_response)
        for key in FORWARDED_KEYS:
            environ.pop(key, None)
        return self.app(environ, start_response)


def harden_proxy_headers(server) -> None:
    """Wrap the Flask ``server`` in :class:`ProxyHeaders` (``PATHWAYS_BEHIND_PROXY=1``
    trusts the proxies of ``PATHWAYS_TRUSTED_PROXIES``, default this computer)."""
    import os

    from dashapp.auth import AUTH_KEY, resolve_settings

    settings = server.config.get(AUTH_KEY) or resolve_settings()
    behind = os.environ.get(ENV_BEHIND_PROXY, "").strip().lower() in {"1", "true", "yes", "on"}
    server.wsgi_app = ProxyHeaders(server.wsgi_app, settings.trusted_proxies, behind)


def serve(server, host: str, port: int, workers: int = DEFAULT_THREADS) -> None:
    """Serve the Flask ``server`` with waitress on ``host:port`` with ``workers`` threads.

    Stops on Ctrl+C or SIGTERM. Behind a reverse proxy that ends TLS, set
    ``PATHWAYS_BEHIND_PROXY=1`` (see :class:`ProxyHeaders`).
    """
    import waitress

    threads = check_threads(workers)
    harden_proxy_headers(server)
    log.info("crisis pathway planner on http://%s:%d (waitress, %d threads)", host, port, threads)
    # waitress's own proxy handling is off: ProxyHeaders does it, keeping the real peer
    waitress.serve(server, host=host, port=port, threads=threads, ident=SERVER_NAME,
                   clear_untrusted_proxy_headers=False)  # fmt: skip


__all__ = ["DEFAULT_THREADS", "ProxyHeaders", "check_threads", "harden_proxy_headers", "serve"]
