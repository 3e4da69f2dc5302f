"""How fast the web app feels on localhost, measured in headless Chromium.

Measures (median of ``--runs``):

- first page load: from opening the app (empty browser cache and session) until the
  Footprint map and summary cards are drawn;
- ICB switch redraw: from picking another ICB in the dropdown until its map and cards
  are drawn (first visit to that ICB, and a repeat visit);
- Sussex optimise round trip: from pressing "Run optimiser" on the Sussex demo until
  the result message is shown (``--time-limit`` seconds for the solver);

plus the size of the Footprint map figure sent to the browser.

Run from the repository root::

    python benchmarks/bench_app.py --runs 3

Needs Chromium and chromedriver (``/usr/bin/chromium``, ``/usr/bin/chromedriver``, or
``PATHWAYS_CHROMIUM`` / ``PATHWAYS_CHROMEDRIVER``). The app runs in a subprocess with
a temporary run store and cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ICBS = [
    ("Dorset", "E54000041"),
    ("Kent", "E54000032"),
    ("Cornwall", "E54000036"),
    ("Devon", "E54000037"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PATHWAYS_STORE_URL": f"sqlite:///{work / 'store.db'}",
           "PATHWAYS_CACHE_DIR": str(work / "cache")}  # fmt: skip
    env.pop("PATHWAYS_TILE_URL", None)
    log = (work / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pathways.cli", "app", "--port", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise SystemExit(f"the app did not start; see {work / 'server.log'}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = (
        os.environ.get("PATHWAYS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    )
    driver_path = (
        os.environ.get("PATHWAYS_CHROMEDRIVER")
        or shutil.which("chromedriver")
        or "/usr/bin/chromedriver"
    )
    opts = Options()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--window-size=1366,768"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def wait(driver, predicate, timeout: float = 300.0):
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate(driver)
            if value:
                return value
        except (StaleElementReferenceException, WebDriverException, LookupError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out; messages on the page: {_text(driver, '.message')[:500]}")


def idle(driver, settle_s: float = 1.0) -> None:
    """Wait until Dash has no callback in flight, then a moment more (a click during the
    first callbacks after a page load can be lost)."""
    from selenium.webdriver.common.by import By

    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "._dash-loading-callback"))
    time.sleep(settle_s)


def _text(driver, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, selector))


def _map_drawn(driver, graph: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, f"#{graph} .maplibregl-canvas"))


def first_load(driver, url: str) -> float:
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get("about:blank")
    driver.delete_all_cookies()
    t0 = time.perf_counter()
    driver.get(url + "/")
    wait(
        driver,
        lambda d: _map_drawn(d, "footprint-map") and "1,659,921" in _text(d, "#footprint-cards"),
    )
    return time.perf_counter() - t0


def switch_icb(driver, name: str, code: str) -> float:
    from selenium.webdriver.common.by import By

    idle(driver, 0.3)
    driver.find_element(By.CSS_SELECTOR, "#footprint-icb").click()
    box = wait(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, ".dash-dropdown-search-container input")
    )
    box.send_keys(name)
    option = wait(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f".dash-dropdown-option input[value='{code}']"),
    )
    label = option.find_element(By.XPATH, "./ancestor::label")
    before = _text(driver, "#footprint-cards")
    t0 = time.perf_counter()
    label.click()
    wait(driver, lambda d: code in _text(d, "#footprint-cards") and _text(d, "#footprint-cards") != before
         and d.execute_script(
             "var g=document.querySelector('#footprint-map .js-plotly-plot');"
             f"return g && g.layout && String(g.layout.uirevision).indexOf('{code}') >= 0"))  # fmt: skip
    return time.perf_counter() - t0


def optimise_round_trip(driver, url: str, time_limit: float) -> float:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url + "/optimise")
    wait(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, "#optimise-mobile-min").get_attribute("value"),
    )
    idle(driver)
    box = driver.find_element(By.CSS_SELECTOR, "#optimise-time-limit")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(int(time_limit)), Keys.ENTER)
    idle(driver)
    t0 = time.perf_counter()
    driver.find_element(By.CSS_SELECTOR, "#optimise-run").click()
    wait(driver, lambda d: "The optimiser found" in _text(d, "#optimise-status")
         or "constraints" in _text(d, "#optimise-status") or "went wrong" in _text(d, "#optimise-status"),
         timeout=time_limit * 10 + 120)  # fmt: skip
    elapsed = time.perf_counter() - t0
    status = _text(driver, "#optimise-status")
    if "The optimiser found" not in status:
        print(f"  optimiser did not find a plan: {status[:200]}", file=sys.stderr)
    return elapsed


def figure_payload_kb() -> float:
    import json

    from dashapp.app import create_app
    from dashapp.state import demo_scenario, scenario_to_store

    with tempfile.TemporaryDirectory() as tmp:
        create_app(cache_dir=tmp)
        footprint = sys.modules["dashapp.pages.footprint"]
        fig, _ = footprint.render(scenario_to_store(demo_scenario()), "population", None)
        return len(json.dumps(fig.to_plotly_json(), default=str)) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--time-limit", type=float, default=30.0, help="solver seconds for the optimise run"
    )
    ap.add_argument("--skip-optimise", action="store_true")
    args = ap.parse_args(argv)

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        driver = browser()
        try:
            first_load(driver, url)  # warm the server's caches of the bundled tables
            results["first page load (Footprint, Sussex)"] = [
                first_load(driver, url) for _ in range(args.runs)
            ]
            cold, warm = [], []
            for name, code in ICBS[: args.runs]:
                cold.append(switch_icb(driver, name, code))
                warm.append(switch_icb(driver, "Sussex", "E54000053"))
            results["ICB switch redraw, first visit to an ICB"] = cold
            results["ICB switch redraw, back to Sussex"] = warm
            if not args.skip_optimise:
                key = f"Sussex optimise round trip ({args.time_limit:.0f} s solver limit)"
                driver.get(url + "/")
                results[key] = [
                    optimise_round_trip(driver, url, args.time_limit) for _ in range(args.runs)
                ]
        finally:
            driver.quit()
            stop_server(proc)
    payload = figure_payload_kb()

    print(f"{'measure':<52}{'runs':>5}{'median s':>10}{'min s':>8}{'max s':>8}")
    for key, vals in results.items():
        print(
            f"{key:<52}{len(vals):>5}{statistics.median(vals):>10.2f}{min(vals):>8.2f}{max(vals):>8.2f}"
        )
    print(f"{'Footprint map figure payload (Sussex, 995 areas)':<52}{'':>5}{payload:>9.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
