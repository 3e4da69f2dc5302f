"""The production server for a shared app: waitress, one process with several threads.

``pathways app --host 0.0.0.0 --workers 4`` calls :func:`serve`. Why threads in one
process rather than several processes:

- the heavy work (optimisations and budget frontiers) already runs outside the server,
  one process per job (Dash's ``DiskcacheManager``), so a server thread only answers
  light requests (pages, callbacks, polls) and a few threads serve several commissioners;
- everything a request needs from earlier ones is on disk or in the database, never in
  the server's memory: saved work in the run store, the job board and background
  results in the disk cache under ``PATHWAYS_CACHE_DIR``, the session in a signed cookie
  (kept over a restart when ``PATHWAYS_SECRET_KEY`` is set). A job whose process outlives
  the server (only the server's own process was stopped) writes its result there, and a
  page reloaded after the restart shows it; a job stopped with the server (Ctrl+C, or a
  service manager stopping the whole process group) is reported as stopped without a
  result. A job's process lets go of the server's port and connections as it starts
  (:func:`release_sockets_in_jobs`), so a restarted server can listen again at once;
- waitress runs on Windows and Linux alike and needs no C compiler, and one process
  keeps the per-process safeguards (the wrong-password counter) whole.

For an external WSGI server use :mod:`dashapp.wsgi` (``dashapp.wsgi:application``).
"""

from __future__ import annotations

import logging
import os

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


def _listening_ports_and_sockets() -> tuple[set[int], list[tuple[int, int]]]:
    """This process's TCP sockets as (fd, local port), and the ports it listens on."""
    import socket
    import stat

    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # not Linux: look at the usual range
        fds = list(range(3, 1024))
    listening: set[int] = set()
    sockets: list[tuple[int, int]] = []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            port = int(sock.getsockname()[1])
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                listening.add(port)
            sockets.append((fd, port))
        except OSError:
            continue
        finally:
            sock.detach()  # only looked at: the fd stays as it was
    return listening, sockets


def _drop_server_sockets() -> None:
    """In a process just forked from the server (a background job): let go of the
    server's listening sockets and its browsers' connections.

    Without this, a job's process would keep the server's port open after the server
    stopped (a restarted server could not listen on it until the job ended, and
    browsers would wait on a socket nobody answers), and keep a browser's connection
    open after the server closed it. Each such descriptor is pointed at ``/dev/null``
    rather than closed, so that nothing else reuses its number behind the server's
    socket objects.
    """
    try:
        listening, sockets = _listening_ports_and_sockets()
        if not listening:
            return
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for fd, port in sockets:
                if port in listening:
                    os.dup2(null, fd, inheritable=False)
        finally:
            os.close(null)
    except Exception:  # noqa: BLE001 - never stop a job from starting
        log.debug("could not release the server's sockets in a job process", exc_info=True)


_FORK_HOOK: list[bool] = []


def release_sockets_in_jobs() -> None:
    """Make every process forked from now on (Dash's background jobs on Linux) let go of
    the server's sockets (:func:`_drop_server_sockets`). Called by :func:`serve` and
    :mod:`dashapp.wsgi`; once per process."""
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_drop_server_sockets)
        _FORK_HOOK.append(True)


def serve(server, host: str, port: int, workers: int = DEFAULT_THREADS) -> None:
    """Serve the Flask ``server`` with waitress on ``host:port`` with ``workers`` threads.

    Stops on Ctrl+C or SIGTERM. Behind a reverse proxy that ends TLS, set
    ``PATHWAYS_BEHIND_PROXY=1`` (see :class:`ProxyHeaders`).
    """
    import waitress

    threads = check_threads(workers)
    harden_proxy_headers(server)
    release_sockets_in_jobs()
    log.info("crisis pathway planner on http://%s:%d (waitress, %d threads)", host, port, threads)
    # waitress's own proxy handling is off: ProxyHeaders does it, keeping the real peer
    waitress.serve(server, host=host, port=port, threads=threads, ident=SERVER_NAME,
                   clear_untrusted_proxy_headers=False)  # fmt: skip


__all__ = [
    "DEFAULT_THREADS",
    "ProxyHeaders",
    "check_threads",
    "harden_proxy_headers",
    "release_sockets_in_jobs",
    "serve",
]
