"""The shared deployment of docs/deploy.md, started as a real server in its own process."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

requests = pytest.importorskip("requests")

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
#: How long the server may take to answer its health check on a busy machine.
START_BOUND_S = 120
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _pathways() -> list[str]:
    """The ``pathways`` command of this Python (its console script, else the same entry point)."""
    script = shutil.which("pathways", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from pathways.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[str]:
    """``pathways users add`` then ``pathways app --host 0.0.0.0 --workers 2``, as the
    guide says; yields the app's address on this computer."""
    work = tmp_path_factory.mktemp("deploy")
    env = {
        **os.environ,
        # the checkout under test, whatever copy of the package is installed
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PATHWAYS_STORE_URL": f"sqlite:///{work / 'store.db'}",
        "PATHWAYS_CACHE_DIR": str(work / "cache"),
        "PATHWAYS_SECRET_KEY": "0123456789abcdef" * 4,
        "PATHWAYS_NEW_PASSWORD": PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("PATHWAYS_LOGIN", "PATHWAYS_TRUSTED_USER_HEADER", "PATHWAYS_BEHIND_PROXY"):
        env.pop(key, None)
    added = subprocess.run(
        [*_pathways(), "users", "add", "ann", "--team", "east"],
        env=env, cwd=work, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "ann can sign in; team 'east'" in added.stdout
    port = _free_port()
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [*_pathways(), "app", "--host", "0.0.0.0", "--port", str(port), "--workers", "2"],
            env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_BOUND_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"the server stopped: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on /healthz: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)  # between polls of a condition, not a wait for it
        yield base
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=60)


def _sign_in(base: str, password: str = PASSWORD) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    form = session.get(f"{base}/login", timeout=30)
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = session.post(
        f"{base}/login",
        data={"csrf_token": token, "username": "ann", "password": password, "next": "/"},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    return session, r


def test_health_check_answers_without_a_session(deployment):
    r = requests.get(f"{deployment}/healthz", timeout=30)
    assert r.status_code == 200
    assert r.text == "ok\n"
    assert r.headers["Server"] == "crisis-pathway-planner"


def test_pages_without_a_session_go_to_sign_in(deployment):
    r = requests.get(f"{deployment}/", headers=HTML, allow_redirects=False, timeout=30)
    assert r.status_code == 302
    where = urlsplit(r.headers["Location"])
    assert where.path == "/login"
    assert parse_qs(where.query)["next"] == ["/"]
    assert requests.get(f"{deployment}/_dash-layout", timeout=30).status_code == 401


def test_a_wrong_password_is_refused(deployment):
    session, r = _sign_in(deployment, "not the password!")
    assert r.status_code == 401
    assert session.get(f"{deployment}/_dash-layout", timeout=30).status_code == 401


def test_signed_in_the_app_and_its_layout_are_served(deployment):
    session, r = _sign_in(deployment)
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    page = session.get(f"{deployment}/", headers=HTML, allow_redirects=False, timeout=30)
    assert page.status_code == 200
    assert "<title>Crisis pathway planner</title>" in page.text
    layout = session.get(f"{deployment}/_dash-layout", timeout=30)
    assert layout.status_code == 200
    assert '"app-scenario"' in layout.text
    assert "NHS Sussex ICB (demo)" in layout.text


CHILD_KEEPS_NO_PORT = r"""
import os, socket, stat, sys

def is_socket(fd):
    return stat.S_ISSOCK(os.fstat(fd).st_mode)

listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
browser = socket.create_connection(("127.0.0.1", port))
conn, _ = listener.accept()
other = socket.socketpair()  # not the server's: a job keeps it
if sys.argv[1] == "release":
    from dashapp.serve import release_sockets_in_jobs

    release_sockets_in_jobs()
report_r, report_w = os.pipe()
go_r, go_w = os.pipe()
child = os.fork()
if child == 0:  # a background job's process: it outlives the server
    os.close(report_r), os.close(go_w)
    kept = [is_socket(s.fileno()) for s in (listener, conn, other[0])]
    os.write(report_w, " ".join(map(str, kept)).encode())
    os.close(report_w)
    os.read(go_r, 1)
    os._exit(0)
os.close(report_w), os.close(go_r)
try:
    kept = os.read(report_r, 100).decode()
    # the server stops: its listener and its browser's connection close
    listener.close()
    conn.close()
    try:
        socket.create_server(("127.0.0.1", port)).close()  # a restarted server listens again
        rebound = True
    except OSError:
        rebound = False
    ended = None
    if rebound:
        browser.settimeout(60)  # a bound on waiting for the end of the connection
        ended = browser.recv(1) == b""
finally:
    os.close(go_w)  # the job ends
    os.waitpid(child, 0)
print(f"kept={kept} rebound={rebound} ended={ended}")
"""


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/fd").is_dir(),
                    reason="background jobs are forked from the server on Linux only")  # fmt: skip
@pytest.mark.parametrize("mode", ["release", "keep"])
def test_a_job_process_lets_go_of_the_server_port_and_connections(mode, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD_KEEPS_NO_PORT, mode],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    if mode == "release":  # as dashapp.serve and dashapp.wsgi set up every server
        assert out.stdout.strip() == "kept=False False True rebound=True ended=True"
    else:  # without it, a forked job would keep both open (why serve() releases them)
        assert out.stdout.strip() == "kept=True True True rebound=False ended=None"
