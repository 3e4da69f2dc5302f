"""The web app under load: simulated users browsing and optimising at the same time.

Each simulated user is one ``requests.Session`` that does what a browser does on a
page visit: GET the page, GET ``/_dash-layout`` and ``/_dash-dependencies``, then POST
the Dash callbacks the page fires to ``/_dash-update-component``, one after another,
with payloads recorded from a real headless Chromium (``benchmarks/load_payloads.json``).
Values that an earlier answer changed (the session's scenario, a job id) are carried
from answer to payload as the browser would. Users fetch the page's scripts and styles
once, at their first visit (a browser caches them), and wait ``--think`` seconds
between pages. A user visits the pages in order from a random one.

``--optimisers`` of the users first press "Run optimiser" on the Optimise page: the
click callback, then the background callback (the first POST answers with a signed
``cacheKey`` and ``job``; the browser then POSTs again with them in the query string
every ``interval`` ms, inputs blanked, until the answer carries the result), and the
progress callbacks each poll triggers, until the run ends or the test does; then they
browse like the others. A run that waits in a queue counts as started.

Measured: every request's latency by kind, errors (HTTP >= 400, no answer in time, the
app's own error handler reporting a failed callback, or a job's outcome store holding an
error; errors the server logged are counted apart), optimisations started and finished,
and each second the memory (RSS) of the server process and all its children (the
background jobs) and the processor time they used. Before the test the recorded
callbacks are checked against the app's ``/_dash-dependencies`` and every page is
visited once: stale payloads stop the test with what changed (record them again). The script starts the app itself (waitress, ``--workers``
threads, its own run store and cache in a temporary folder), stops it by its process
group at the end, and always ends: users stop starting requests at the deadline and
jobs still running are stopped with the server.

Run from the repository root::

    python benchmarks/bench_load.py --users 20 --seconds 60 --optimisers 5
    python benchmarks/bench_load.py --record        # record the payloads again first
    python benchmarks/bench_load.py --url http://127.0.0.1:8050 --server-pid 1234

``--record`` needs Chromium and chromedriver (``/usr/bin/chromium``,
``/usr/bin/chromedriver``, or ``PATHWAYS_CHROMIUM`` / ``PATHWAYS_CHROMEDRIVER``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import hashlib
import html as html_lib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
PAYLOADS = Path(__file__).resolve().parent / "load_payloads.json"
CALLBACK = "/_dash-update-component"
PAGE_RENDER_OUTPUT = "_pages_content.children"
OPTIMISE_PATH = "/optimise"
#: Values longer than this (as JSON) are kept once in the fixture and referred to.
SHARED_VALUE_CHARS = 400
REQUEST_TIMEOUT_S = 60.0
SERVER_START_TIMEOUT_S = 120

KINDS = (
    "page shell GET",
    "static assets (first visit)",
    "layout/dependencies",
    "page-render callback",
    "page callbacks",
    "results callbacks",
    "optimise start",
    "optimise polls",
    "optimise progress callbacks",
    "page visit (all of the above)",
)
#: The table's summary rows: page loads, callbacks and the optimisation's requests.
GROUPS = {
    "page loads (shell, assets, layout)": ("page shell GET", "static assets (first visit)",
                                           "layout/dependencies"),
    "callbacks of pages": ("page-render callback", "page callbacks", "results callbacks"),
    "optimisation callbacks": ("optimise start", "optimise polls", "optimise progress callbacks"),
}  # fmt: skip

# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path, workers: int) -> tuple[subprocess.Popen, str]:
    """``pathways app`` on a free port with waitress, its own store and cache."""
    port = free_port()
    env = {
        **os.environ,
        "PATHWAYS_STORE_URL": f"sqlite:///{work / 'store.db'}",
        "PATHWAYS_CACHE_DIR": str(work / "cache"),
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("PATHWAYS_TILE_URL", "PATHWAYS_LOGIN"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "pathways.cli", "app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]  # fmt: skip
    with (work / "server.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, work / "server.log")
    return proc, url


def wait_up(url: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    import requests

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise SystemExit(f"the app exited with {proc.returncode}:\n{tail}")
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the app did not answer {url}/healthz within {SERVER_START_TIMEOUT_S} s")


def stop_server(proc: subprocess.Popen, leftovers: list[tuple[int, float]] = ()) -> None:
    """Stop the server and the jobs it started (its process group), then any of its
    children that left the group, by PID and start time (a reused PID is left alone)."""
    import psutil

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid, created in leftovers:
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(pid)
            if abs(child.create_time() - created) < 1e-2 and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()


class MemorySampler(threading.Thread):
    """RSS of a process and all its descendants, once a second, and the processor time
    they used (user + system)."""

    def __init__(self, pid: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, float, float, int]] = []  # t, total MB, server MB, n
        self.children: set[tuple[int, float]] = set()  # (pid, create time)
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> latest CPU seconds
        self.cpu_first: dict[tuple[int, float], float] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            server = root.memory_info().rss
            self._cpu(root, "server")
            kids = root.children(recursive=True)
        except psutil.Error:
            return
        total = server
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                total += kid.memory_info().rss
                self.children.add((kid.pid, kid.create_time()))
                self._cpu(kid, (kid.pid, kid.create_time()))
        self.samples.append((time.monotonic(), total / 2**20, server / 2**20, 1 + len(kids)))

    def _cpu(self, proc, key) -> None:
        t = proc.cpu_times()
        self.cpu[key] = t.user + t.system
        self.cpu_first.setdefault(key, self.cpu[key])

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every_s)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        peak = max(self.samples, key=lambda s: s[1])
        return {
            "samples": len(self.samples),
            "start_mb": round(self.samples[0][1], 1),
            "peak_mb": round(peak[1], 1),
            "peak_processes": max(s[3] for s in self.samples),
            "end_mb": round(self.samples[-1][1], 1),
            "server_peak_mb": round(max(s[2] for s in self.samples), 1),
            "server_end_mb": round(self.samples[-1][2], 1),
            "seconds": round(self.samples[-1][0] - self.samples[0][0], 1),
            "server_cpu_s": round(self.cpu.get("server", 0) - self.cpu_first.get("server", 0), 1),
            "jobs_cpu_s": round(sum(v - self.cpu_first[k] for k, v in self.cpu.items()
                                    if k != "server"), 1),  # fmt: skip
        }


# --------------------------------------------------------------------------- recording

RECORDER_JS = r"""
(function () {
  if (window.__loadRec) { return; }
  window.__loadRec = [];
  var orig = window.fetch;
  window.fetch = function (input, init) {
    var url = (typeof input === 'string') ? input : input.url;
    var e = {url: url, method: (init && init.method) || 'GET',
             body: (init && typeof init.body === 'string') ? init.body : null,
             t0: performance.now()};
    window.__loadRec.push(e);
    return orig.apply(this, arguments).then(function (res) {
      e.status = res.status; e.t1 = performance.now();
      res.clone().text().then(function (t) { e.resp = t.length < 300000 ? t : null; });
      return res;
    });
  };
})();
"""


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = os.environ.get("PATHWAYS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = (os.environ.get("PATHWAYS_CHROMEDRIVER") or shutil.which("chromedriver")
              or "/usr/bin/chromedriver")  # fmt: skip
    opts = Options()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 "--window-size=1366,768"):  # fmt: skip
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER_JS})
    return d


def _wait(driver, predicate, timeout: float = 120.0):
    from selenium.common.exceptions import WebDriverException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate(driver)
            if value:
                return value
        except (WebDriverException, LookupError):
            pass
        time.sleep(0.1)
    raise TimeoutError("the page did not settle")


def _settled(driver, quiet_s: float = 1.5) -> list[dict]:
    """Wait until no fetch has started or ended for ``quiet_s``; return the fetches."""
    last, since = None, time.monotonic()
    while True:
        rec = driver.execute_script("return window.__loadRec || []")
        sig = (len(rec), sum(1 for e in rec if "status" in e))
        if sig != last:
            last, since = sig, time.monotonic()
        elif time.monotonic() - since >= quiet_s and sig[0] == sig[1]:
            time.sleep(0.3)  # response texts are read asynchronously
            return driver.execute_script("return window.__loadRec || []")
        time.sleep(0.1)


def _callbacks(rec: list[dict]) -> list[dict]:
    out = []
    for e in sorted(rec, key=lambda e: e["t0"]):
        if CALLBACK in e["url"] and e["method"] == "POST" and e.get("body"):
            out.append({"url": e["url"], "body": json.loads(e["body"]), "status": e.get("status"),
                        "resp": e.get("resp")})  # fmt: skip
    return out


def _template(cb: dict) -> dict:
    body = cb["body"]
    kind = "page-render callback" if PAGE_RENDER_OUTPUT in body.get("output", "") else None
    return {"output": body.get("output"), "kind": kind, "body": body}


def record(url: str) -> dict:
    """Drive headless Chromium through every page and one optimisation; return the fixture."""
    import dash
    import requests
    from selenium.webdriver.common.by import By

    deps = requests.get(url + "/_dash-dependencies", timeout=30).json()
    background = {d["output"]: d["background"] for d in deps if d.get("background")}
    paths = _page_paths(url)
    driver = _browser()
    pages = []
    try:
        for path in paths:
            driver.get(url + path)
            rec = _settled(driver)
            cbs = [_template(c) for c in _callbacks(rec)]
            pages.append({"path": path, "callbacks": cbs})
            print(f"  recorded {path}: {len(cbs)} callbacks", file=sys.stderr)
        # one optimisation, from a fresh visit to the Optimise page
        driver.get(url + OPTIMISE_PATH)
        _wait(driver, lambda d: d.find_element(By.ID, "optimise-mobile-min").get_attribute("value"))
        n_before = len(_settled(driver))
        driver.find_element(By.ID, "optimise-run").click()
        _wait(driver, lambda d: "optimis" in d.find_element(By.ID, "optimise-status").text.lower()
              or "run" in d.find_element(By.ID, "optimise-status").text.lower(), timeout=600)  # fmt: skip
        rec = _settled(driver, 3.0)
        status_text = driver.find_element(By.ID, "optimise-status").text
        print(f"  optimise: {status_text[:120]!r}", file=sys.stderr)
    finally:
        driver.quit()
    run = _callbacks(rec[n_before:])
    optimise = _split_optimise(run, background)
    fixture = {
        "recorded": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dash": dash.__version__,
        "pages": pages,
        "optimise": optimise,
    }
    return _share_values(fixture)


def _page_paths(url: str) -> list[str]:
    """The app's pages in navigation order: the step links of the page layout."""
    import requests

    stack, paths = [requests.get(url + "/_dash-layout", timeout=30).json()], []
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            props = node.get("props")
            is_nav = isinstance(props, dict) and str(props.get("id", "")).startswith("app-nav-")
            if is_nav and props.get("href") not in paths:
                paths.append(props["href"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return paths or ["/"]


def _split_optimise(run: list[dict], background: dict) -> dict:
    """The optimise click's callbacks: the click, what it sets off before the background
    job starts, the job's first POST, the callbacks polls trigger, and what follows the end."""
    request = start = None
    chain, progress, after = [], {}, []
    polls = ticks = 0
    interval = None
    for cb in run:
        out = cb["body"].get("output")
        if "cacheKey=" in cb["url"]:
            polls += 1
            continue
        if out in background:
            if start is None:
                start = _template(cb)
                interval = background[out].get("interval")
            continue
        if request is None and any("optimise-run.n_clicks" == c for c in cb["body"].get("changedPropIds", [])):
            request = _template(cb)
            continue
        if start is None:
            chain.append(_template(cb))
        elif polls == 0 or not _after_end(cb):
            changed = tuple(sorted(cb["body"].get("changedPropIds", [])))
            progress.setdefault((out, changed), _template(cb))
            ticks += changed == (PROGRESS_KEY,)
        else:
            after.append(_template(cb))
    if request is None or start is None:
        raise SystemExit("recording: the optimise click did not start a background callback")
    return {"path": OPTIMISE_PATH, "request": request, "chain": chain, "start": start,
            "progress": list(progress.values()), "after": after, "interval_ms": interval or 1000,
            "recorded_polls": polls, "recorded_progress_callbacks": ticks}  # fmt: skip


def _after_end(cb: dict) -> bool:
    """Whether a callback was set off by the job's end (its status or result arriving)."""
    changed = cb["body"].get("changedPropIds", [])
    return any(c in ("app-optimise-status.data", "app-result.data") for c in changed) or (
        "app-optimise-running.data" in changed and _input_value(cb["body"], "app-optimise-running.data") is False
    )


def _input_value(body: dict, key: str) -> Any:
    for item in _items(body.get("inputs", [])):
        if _key(item) == key:
            return item.get("value")
    return None


def _share_values(fixture: dict) -> dict:
    """Keep each long value (the scenario store) once: ``{"$ref": hash}`` in payloads."""
    values: dict[str, Any] = {}

    def walk(body: dict) -> None:
        for part in ("inputs", "state"):
            for item in _items(body.get(part, [])):
                if str(item.get("id")).startswith("app-") and item.get("property") == "data":
                    # the shell's stores: a user's replay always fills them from its own
                    # layout and answers, as the browser does
                    item["value"] = None
                    continue
                text = json.dumps(item.get("value"), sort_keys=True)
                if len(text) > SHARED_VALUE_CHARS:
                    ref = hashlib.sha256(text.encode()).hexdigest()[:16]
                    values[ref] = item["value"]
                    item["value"] = {"$ref": ref}

    for tmpl in _all_templates(fixture):
        walk(tmpl["body"])
    fixture["values"] = values
    return fixture


def _all_templates(fixture: dict) -> list[dict]:
    out = [t for p in fixture["pages"] for t in p["callbacks"]]
    o = fixture["optimise"]
    return out + [o["request"], *o["chain"], o["start"], *o["progress"], *o["after"]]


def load_fixture(path: Path) -> dict:
    fixture = json.loads(path.read_text())
    values = fixture.get("values", {})

    def resolve(body: dict) -> None:
        for part in ("inputs", "state"):
            for item in _items(body.get(part, [])):
                v = item.get("value")
                if isinstance(v, dict) and set(v) == {"$ref"}:
                    item["value"] = values[v["$ref"]]

    for tmpl in _all_templates(fixture):
        resolve(tmpl["body"])
    return fixture


def stale_callbacks(url: str, fixture: dict) -> list[str]:
    """Recorded callbacks the running app no longer has as recorded (an output, input or
    state that changed): the payloads must be recorded again (``--record``)."""
    import requests

    deps = {d["output"]: d for d in requests.get(url + "/_dash-dependencies", timeout=30).json()}

    def same(sent: Any, wanted: dict) -> bool:
        """A payload's item (a list for a wildcard) against the dependency it answers."""
        if isinstance(sent, list):  # ALL/MATCH: each id has the pattern's fixed keys
            pattern = json.loads(wanted["id"]) if isinstance(wanted["id"], str) else wanted["id"]
            fixed = {k: v for k, v in pattern.items() if not isinstance(v, list)}
            return all(i.get("property") == wanted["property"]
                       and {k: i["id"].get(k) for k in fixed} == fixed for i in sent)  # fmt: skip
        return sent.get("id") == wanted["id"] and sent.get("property") == wanted["property"]

    stale = []
    for tmpl in _all_templates(fixture):
        body, dep = tmpl["body"], deps.get(tmpl["body"].get("output"))
        if dep is None:
            stale.append(f"{body.get('output')}: no such callback")
            continue
        for part in ("inputs", "state"):
            sent, wanted = body.get(part, []), dep.get(part, [])
            if len(sent) != len(wanted) or not all(map(same, sent, wanted)):
                stale.append(f"{body.get('output')}: its {part} changed")
    return sorted(set(stale))


def logged_errors(log: Path) -> int:
    """Error records in the server's log: logging's ``ERROR`` lines and Flask's
    ``Exception on ...`` (a callback that raised and answered 500)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(1 for line in text.splitlines()
               if " ERROR " in line or line.startswith("Exception on "))  # fmt: skip


# --------------------------------------------------------------------------- replay


def _items(part: list) -> list[dict]:
    """The dependency items of a payload's inputs or state (wildcards give lists)."""
    out = []
    for item in part:
        if isinstance(item, list):
            out.extend(i for i in item if isinstance(i, dict))
        elif isinstance(item, dict):
            out.append(item)
    return out


def _id_text(cid: Any) -> str:
    if isinstance(cid, dict):
        return json.dumps(cid, sort_keys=True, separators=(",", ":"))
    return str(cid)


def _key(item: dict) -> str:
    return f"{_id_text(item.get('id'))}.{item.get('property')}"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, float, bool, float]] = []  # kind, seconds, ok, at
        self.errors: list[str] = []
        self.started = self.finished = self.failed_runs = self.lost_runs = 0
        self.user_failures: list[str] = []  # users stopped by an exception in this script
        self.queued_texts: set[str] = set()
        self.run_seconds: list[float] = []
        self.outputs: dict[str, list[float]] = defaultdict(list)  # callback -> seconds
        self.unfinished: list[str] = []  # last progress of runs the deadline cut short

    def add(self, kind: str, seconds: float, ok: bool, note: str = "") -> None:
        with self.lock:
            self.rows.append((kind, seconds, ok, time.monotonic()))
            if not ok and len(self.errors) < 50:
                self.errors.append(f"{kind}: {note}")

    def by_output(self, output: str, seconds: float) -> None:
        name = re.sub(r"@[0-9a-f]+", "", output).strip(".")
        name = name.split("...")[0] + ("..." if "..." in name else "")
        with self.lock:
            self.outputs[name].append(seconds)


class Deadline(Exception):
    pass


class User:
    """One simulated browser session."""

    def __init__(self, n: int, url: str, fixture: dict, stats: Stats, deadline: float,
                 think_s: float, time_limit: float | None, rng: random.Random):  # fmt: skip
        import requests

        self.n, self.url, self.fixture, self.stats = n, url, fixture, stats
        self.deadline, self.think_s, self.time_limit, self.rng = deadline, think_s, time_limit, rng
        self.http = requests.Session()
        self.http.headers.update({"User-Agent": f"bench-load/{n}"})
        self.values: dict[str, Any] = {}  # what the browser's components hold now
        self.end_id: str | None = None
        self.assets_done = False

    # -- low level
    def _check(self) -> None:
        if time.monotonic() >= self.deadline:
            raise Deadline

    def get(self, path: str, kind: str):
        self._check()
        t0 = time.perf_counter()
        try:
            r = self.http.get(self.url + path, timeout=REQUEST_TIMEOUT_S)
        except Exception as err:  # noqa: BLE001 - a failed request is a result
            self.stats.add(kind, time.perf_counter() - t0, False, f"GET {path}: {err}")
            return None
        ok = r.status_code < 400
        self.stats.add(kind, time.perf_counter() - t0, ok, f"GET {path}: HTTP {r.status_code}")
        return r

    def post(self, body: dict, kind: str, query: dict | None = None) -> tuple[bool, dict | None]:
        """POST a callback; returns (ok, answer or None for 204)."""
        self._check()
        q = {"endId": self.end_id} if self.end_id else {}
        q.update(query or {})
        url = self.url + CALLBACK + ("?" + "&".join(f"{k}={quote(str(v))}" for k, v in q.items()) if q else "")
        t0 = time.perf_counter()
        try:
            r = self.http.post(url, json=body, timeout=REQUEST_TIMEOUT_S)
        except Exception as err:  # noqa: BLE001
            self.stats.add(kind, time.perf_counter() - t0, False, f"{body.get('output')}: {err}")
            return False, None
        seconds = time.perf_counter() - t0
        if r.status_code == 204:
            self.stats.add(kind, seconds, True)
            self.stats.by_output(body.get("output", ""), seconds)
            return True, None
        answer = None
        ok = r.status_code < 400
        note = f"{body.get('output', '')[:80]}: HTTP {r.status_code} {r.text[:200]!r}"
        if ok:
            try:
                answer = r.json()
            except ValueError:
                ok, note = False, f"{body.get('output', '')[:80]}: not JSON"
        failed = _dash_error(answer) if answer is not None else None
        if failed:
            ok, note = False, f"{body.get('output', '')[:80]}: {failed}"
        self.stats.add(kind, seconds, ok, note)
        self.stats.by_output(body.get("output", ""), seconds)
        if answer is not None:
            self._absorb(answer)
        return ok, answer

    def _absorb(self, answer: dict) -> None:
        for part in ("response", "sideUpdate", "progress"):
            block = answer.get(part)
            if not isinstance(block, dict):
                continue
            for cid, props in block.items():
                if isinstance(props, dict):
                    if part == "progress":  # keys are "id.prop"
                        continue
                    for prop, value in props.items():
                        self.values[f"{cid}.{prop}"] = value
        progress = answer.get("progress")
        if isinstance(progress, dict):
            for key, value in progress.items():
                self.values[key] = value

    def payload(self, tmpl: dict, blank: bool = False) -> dict:
        body = copy.deepcopy(tmpl["body"])
        for part in ("inputs", "state"):
            for item in _items(body.get(part, [])):
                if blank:
                    item["value"] = None
                    continue
                key = _key(item)
                if key in self.values:
                    item["value"] = self.values[key]
        return body

    # -- page visits
    def visit(self, page: dict, kind_for_page: str) -> None:
        t0 = time.perf_counter()
        ok = self.load_shell(page["path"])
        for tmpl in page["callbacks"]:
            kind = tmpl.get("kind") or kind_for_page
            good, _ = self.post(self.payload(tmpl), kind)
            ok = ok and good
        self.stats.add("page visit (all of the above)", time.perf_counter() - t0, ok,
                       f"visit {page['path']}")  # fmt: skip

    def load_shell(self, path: str) -> bool:
        # a page (re)load forgets the memory stores; session stores and the rest the
        # answers of this visit will set again
        self.values = {k: v for k, v in self.values.items() if k.split(".")[0] in SESSION_STORES}
        r = self.get(path, "page shell GET")
        if r is None or r.status_code >= 400:
            return False
        m = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', r.text, re.S)
        config = json.loads(html_lib.unescape(m.group(1))) if m else {}
        self.end_id = config.get("end_id")
        ok = True
        if not self.assets_done:
            self.assets_done = True
            for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="(/[^"]+)"', r.text):
                a = self.get(src, "static assets (first visit)")
                ok = ok and a is not None and a.status_code < 400
        for p in ("/_dash-layout", "/_dash-dependencies"):
            a = self.get(p, "layout/dependencies")
            ok = ok and a is not None and a.status_code < 400
            if p == "/_dash-layout" and a is not None and a.status_code < 400:
                self._stores_from_layout(a.json())
        return ok

    def _stores_from_layout(self, layout: Any) -> None:
        """Session stores start from the layout's data only when the browser has none."""
        stack = [layout]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                props = node.get("props")
                if node.get("type") == "Store" and isinstance(props, dict) and "id" in props:
                    key = f"{props['id']}.data"
                    if key not in self.values or props.get("storage_type") not in ("session", "local"):
                        self.values[key] = props.get("data")
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)

    # -- the optimisation
    def optimise(self) -> None:
        o = self.fixture["optimise"]
        page = next(p for p in self.fixture["pages"] if p["path"] == o["path"])
        self.visit(page, "page callbacks")
        self.sleep(self.think_s)
        req = self.payload(o["request"])
        if self.time_limit is not None:
            for item in _items(req.get("state", [])):
                if item.get("id") == "optimise-time-limit":
                    item["value"] = f"{self.time_limit:g}"
        ok, answer = self.post(req, "optimise start")
        if not ok or not answer:
            return
        for tmpl in o["chain"]:
            self.post(self.payload(tmpl), "optimise progress callbacks")
        ok, answer = self.post(self.payload(o["start"]), "optimise start")
        if not ok or not answer or "cacheKey" not in answer:
            return
        with self.stats.lock:
            self.stats.started += 1
        t_start = time.perf_counter()
        handles = {"cacheKey": answer["cacheKey"], "job": answer["job"]}
        last_progress = ""
        self.progress_note = lambda: last_progress
        self.values["app-optimise-running.data"] = True
        ticks = [t for t in o["progress"] if _changed(t) == [PROGRESS_KEY]]
        for tmpl in o["progress"]:
            if tmpl not in ticks:
                self.post(self.payload(tmpl), "optimise progress callbacks")
        while True:
            self.sleep(o["interval_ms"] / 1000)
            ok, answer = self.post(self.payload(o["start"], blank=True), "optimise polls", handles)
            if answer is None and ok:  # 204: the job is gone without a result (cancelled, killed)
                with self.stats.lock:
                    self.stats.lost_runs += 1
                self.run_done = True
                return
            if not ok:
                continue
            if "progress" in answer:
                for v in answer["progress"].values():
                    text = json.dumps(v)
                    last_progress = text[:160]
                    if "wait" in text.lower():
                        with self.stats.lock:
                            self.stats.queued_texts.add(text[:160])
                for tmpl in ticks:
                    self.post(self.payload(tmpl), "optimise progress callbacks")
            if "response" in answer:
                break
        self.run_done = True
        self.values["app-optimise-running.data"] = False
        self.values["app-optimise-progress.data"] = None
        status = self.values.get("app-optimise-status.data")
        with self.stats.lock:
            self.stats.finished += 1
            self.stats.run_seconds.append(time.perf_counter() - t_start)
            if isinstance(status, dict) and status.get("kind") == "error":
                self.stats.failed_runs += 1
        for tmpl in o["after"]:
            self.post(self.payload(tmpl), "optimise progress callbacks")

    def sleep(self, seconds: float) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Deadline
        time.sleep(min(seconds, left))
        self._check()

    def run(self, optimiser: bool, ramp_s: float) -> None:
        pages = self.fixture["pages"]
        try:
            self.sleep(ramp_s)
            if optimiser:
                self.optimise()
                self.sleep(self.think_s * self.rng.uniform(0.5, 1.5))
            k = self.rng.randrange(len(pages))
            while True:
                page = pages[k % len(pages)]
                kind = "results callbacks" if page["path"] == "/results" else "page callbacks"
                self.visit(page, kind)
                self.sleep(self.think_s * self.rng.uniform(0.5, 1.5))
                k += 1
        except Deadline:
            note = getattr(self, "progress_note", None)
            if note is not None and not getattr(self, "run_done", False):
                with self.stats.lock:
                    self.stats.unfinished.append(note())
            return
        except Exception as err:  # noqa: BLE001 - one user's failure must not end the test
            with self.stats.lock:
                self.stats.user_failures.append(f"user {self.n} stopped: {err!r}")
        finally:
            self.http.close()


SESSION_STORES = {"app-scenario", "app-result", "app-frontier", "app-options",
                  "app-optimise-job", "app-frontier-job"}  # fmt: skip


PROGRESS_KEY = "app-optimise-progress.data"
JOB_STATUS_STORES = ("app-optimise-status", "app-frontier-status")


def _changed(tmpl: dict) -> list[str]:
    return sorted(tmpl["body"].get("changedPropIds", []))


def _dash_error(answer: dict) -> str | None:
    """What the app reports as failed in an answer, else ``None``: its error handler's
    alert box (``app-alert``, set for any callback that raised) or a job's outcome store
    (``app-optimise-status``, ``app-frontier-status``) holding an error. A page's own
    fallback for a failure (an empty figure) logs an error: see :func:`logged_errors`."""
    for part in ("response", "sideUpdate"):
        block = answer.get(part)
        if not isinstance(block, dict):
            continue
        alert = block.get("app-alert") if part == "sideUpdate" else None
        if isinstance(alert, dict) and alert.get("children"):
            return "the app's error handler reported a failed callback"
        for cid in JOB_STATUS_STORES:
            data = (block.get(cid) or {}).get("data")
            if isinstance(data, dict) and data.get("kind") == "error":
                return f"{cid} reports an error: {data.get('head')!r}"
    return None


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def summarise(stats: Stats, seconds: float) -> dict:
    by: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for kind, sec, ok, _ in stats.rows:
        by[kind].append((sec, ok))
    table = []
    requests_only = [(s, ok) for k, rows in by.items() if not k.startswith("page visit")
                     for s, ok in rows]  # fmt: skip

    def row(name: str, rows: list[tuple[float, bool]]) -> dict:
        lat = [s for s, _ in rows]
        return {"kind": name, "count": len(rows), "errors": sum(1 for _, ok in rows if not ok),
                "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3),
                "max_s": round(max(lat), 3) if lat else float("nan")}  # fmt: skip

    table.append(row("all requests", requests_only))
    for name, kinds in GROUPS.items():
        rows = [r for k in kinds for r in by.get(k, [])]
        if rows:
            table.append(row(name, rows))
    for kind in [*KINDS, *sorted(set(by) - set(KINDS))]:
        if kind in by:
            table.append(row(kind, by[kind]))
    return {
        "requests": len(requests_only),
        "requests_per_s": round(len(requests_only) / seconds, 1),
        "errors": sum(1 for _, ok in requests_only if not ok),
        "user_failures": stats.user_failures,
        "table": table,
        "optimisations_started": stats.started,
        "optimisations_finished": stats.finished,
        "optimisations_failed": stats.failed_runs,
        "optimisations_lost": stats.lost_runs,
        "optimisation_seconds": [round(s, 1) for s in stats.run_seconds],
        "queue_messages": sorted(stats.queued_texts),
        "unfinished_last_progress": stats.unfinished,
        "slowest_callbacks": sorted(
            ({"output": k, "count": len(v), "p50_s": round(pct(v, 50), 3),
              "p95_s": round(pct(v, 95), 3), "max_s": round(max(v), 3)}
             for k, v in stats.outputs.items()), key=lambda r: -r["p95_s"])[:8],  # fmt: skip
        "error_samples": stats.errors[:20],
    }


def markdown(summary: dict, memory: dict, meta: dict) -> str:
    lines = [
        f"{meta['users']} users ({meta['optimisers']} optimising) for {meta['seconds']:g} s, "
        f"think {meta['think']:g} s, server threads {meta['workers']}, load average at start "
        f"{meta['load_start']}, at end {meta['load_end']}",
        "",
        "| request kind | count | errors | p50 s | p95 s | max s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in summary["table"]:
        lines.append(f"| {r['kind']} | {r['count']} | {r['errors']} | {r['p50_s']:.3f} | "
                     f"{r['p95_s']:.3f} | {r['max_s']:.3f} |")  # fmt: skip
    lines += [
        "",
        f"- requests: {summary['requests']} ({summary['requests_per_s']} a second), "
        f"errors: {summary['errors']}",
        f"- optimisations started: {summary['optimisations_started']}, finished within the run: "
        f"{summary['optimisations_finished']} (of which failed: {summary['optimisations_failed']}); "
        f"seconds from start to result: {summary['optimisation_seconds']}",
    ]
    if summary["optimisations_lost"]:
        lines.append(f"- optimisations gone without a result: {summary['optimisations_lost']}")
    if summary["user_failures"]:
        lines.append(f"- users stopped by an error of this script: {summary['user_failures']}")
    if summary["unfinished_last_progress"]:
        lines.append(f"- last progress of runs still going at the end: "
                     f"{summary['unfinished_last_progress']}")  # fmt: skip
    if summary["queue_messages"]:
        lines.append(f"- queue messages seen: {summary['queue_messages'][:3]}")
    if memory:
        lines.append(
            f"- memory (RSS, server + children): start {memory['start_mb']:.0f} MB, peak "
            f"{memory['peak_mb']:.0f} MB ({memory['peak_processes']} processes), end "
            f"{memory['end_mb']:.0f} MB; server alone peak {memory['server_peak_mb']:.0f} MB, "
            f"end {memory['server_end_mb']:.0f} MB"
        )
        lines.append(
            f"- processor time over {memory['seconds']:.0f} s: server {memory['server_cpu_s']:.0f} s "
            f"({memory['server_cpu_s'] / max(memory['seconds'], 1):.2f} cores), background jobs "
            f"{memory['jobs_cpu_s']:.0f} s ({memory['jobs_cpu_s'] / max(memory['seconds'], 1):.2f} cores)"
        )
    if meta.get("server_log_errors") is not None:
        lines.append(f"- errors logged by the server: {meta['server_log_errors']}")
    lines += ["", "Slowest callbacks (by p95; first output of each):", "",
              "| callback output | count | p50 s | p95 s | max s |", "|---|---:|---:|---:|---:|"]
    for r in summary["slowest_callbacks"]:
        lines.append(f"| `{r['output']}` | {r['count']} | {r['p50_s']:.3f} | {r['p95_s']:.3f} | "
                     f"{r['max_s']:.3f} |")  # fmt: skip
    if summary["error_samples"]:
        lines.append("")
        lines.append("- first errors:")
        lines += [f"  - {e}" for e in summary["error_samples"][:10]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def run_load(url: str, fixture: dict, args: argparse.Namespace) -> tuple[Stats, float]:
    stats = Stats()
    start = time.monotonic()
    deadline = start + args.seconds
    rng = random.Random(args.seed)
    threads = []
    for n in range(args.users):
        user = User(n, url, fixture, stats, deadline, args.think, args.time_limit,
                    random.Random(rng.random()))  # fmt: skip
        ramp = args.ramp * n / max(1, args.users)
        t = threading.Thread(target=user.run, args=(n < args.optimisers, ramp), daemon=True)
        threads.append(t)
        t.start()
    for t in threads:  # in-flight requests end by their timeout at the latest
        t.join(timeout=max(0.0, deadline + REQUEST_TIMEOUT_S + 5 - time.monotonic()))
    return stats, time.monotonic() - start


def _interrupt(signum, frame) -> None:
    """SIGTERM stops the test like Ctrl+C: through the ``finally`` that stops the server."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--optimisers", type=int, default=5, help="users who run an optimisation first")
    ap.add_argument("--think", type=float, default=2.0,
                    help="seconds between pages (each wait 0.5 to 1.5 times this)")  # fmt: skip
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds over which users arrive")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="solver seconds typed before Run (default: as recorded, the app's 30 s)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=8, help="server threads (waitress)")
    ap.add_argument("--payloads", type=Path, default=PAYLOADS)
    ap.add_argument("--record", action="store_true",
                    help="record the payloads with headless Chromium first (and save them)")  # fmt: skip
    ap.add_argument("--url", help="use this running app instead of starting one")
    ap.add_argument("--server-pid", type=int, help="with --url: the server's PID, for memory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--server-log", type=Path, help="keep the started server's log here")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        proc = None
        if args.url:
            url = args.url.rstrip("/")
            wait_up(url)
            pid = args.server_pid
        else:
            proc, url = start_server(work, args.workers)
            pid = proc.pid
        sampler = MemorySampler(pid) if pid else None
        try:
            if args.record or not args.payloads.exists():
                print(f"recording payloads with headless Chromium on {url}", file=sys.stderr)
                fixture = record(url)
                args.payloads.write_text(json.dumps(fixture, sort_keys=True, separators=(",", ":")) + "\n")
                if proc is not None:  # measure a fresh server, not the one recorded on
                    stop_server(proc)
                    (work / "run").mkdir()
                    proc, url = start_server(work / "run", args.workers)
                    sampler = MemorySampler(proc.pid)
            fixture = load_fixture(args.payloads)
            stale = stale_callbacks(url, fixture)
            if stale:
                raise SystemExit(f"{args.payloads.name} is stale for this app (record it again "
                                 "with --record):\n  " + "\n  ".join(stale))  # fmt: skip
            # one warm-up visit of every page, as a first user would, outside the figures;
            # it must pass without an error, or the figures would measure a broken replay
            warm_stats = Stats()
            warm = User(-1, url, fixture, warm_stats, time.monotonic() + 120, 0, None,
                        random.Random(0))  # fmt: skip
            for page in fixture["pages"]:
                warm.visit(page, "page callbacks")
            if warm_stats.errors:
                raise SystemExit("the warm-up visit failed (record the payloads again with "
                                 "--record?):\n  " + "\n  ".join(warm_stats.errors[:10]))  # fmt: skip
            load_start = f"{os.getloadavg()[0]:.1f}"
            if sampler:
                sampler.start()
            print(f"{args.users} users for {args.seconds:g} s on {url}", file=sys.stderr)
            stats, elapsed = run_load(url, fixture, args)
            load_end = f"{os.getloadavg()[0]:.1f}"
        finally:
            leftovers = []
            if sampler:
                sampler.stop.set()
                if sampler.is_alive():
                    sampler.join(timeout=5)
                leftovers = sorted(sampler.children)
            if proc is not None:
                stop_server(proc, leftovers)
        log_errors = None
        logs = sorted(work.rglob("server.log"), key=lambda f: len(f.parts))
        if proc is not None and logs:
            log_errors = logged_errors(logs[-1])
            if args.server_log:
                shutil.copyfile(logs[-1], args.server_log)
    summary = summarise(stats, args.seconds)
    memory = sampler.summary() if sampler else {}
    meta = {"users": args.users, "optimisers": args.optimisers, "seconds": args.seconds,
            "think": args.think, "workers": args.workers if proc is not None else None,
            "load_start": load_start, "load_end": load_end, "elapsed_s": round(elapsed, 1),
            "server_log_errors": log_errors, "cores": os.cpu_count(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip
    print(markdown(summary, memory, meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "memory": memory, **summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
