"""Browser tests: the real app in a subprocess, driven by headless Chromium.

Skipped, with the reason, when Chromium or chromedriver is missing. Paths can be set
with ``PATHWAYS_CHROMIUM`` and ``PATHWAYS_CHROMEDRIVER``. The server gets its own run
store and cache folder under pytest's temporary directory, so tests never touch a
user's saved work. Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
WINDOW = (1366, 768)
SERVER_START_TIMEOUT_S = 90
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
    "--mute-audio",
    # no network but the app itself: maps must draw offline
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def _find(env: str, *candidates: str) -> str | None:
    for c in (os.environ.get(env), *candidates):
        if c and (Path(c).is_file() or shutil.which(c)):
            return shutil.which(c) or c
    return None


CHROMIUM = _find("PATHWAYS_CHROMIUM", "/usr/bin/chromium", "chromium", "google-chrome", "chrome")
CHROMEDRIVER = _find("PATHWAYS_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = None
    if CHROMIUM is None:
        reason = "Chromium not found (install the 'chromium' package or set PATHWAYS_CHROMIUM)"
    elif CHROMEDRIVER is None:
        reason = "chromedriver not found (install 'chromium-driver' or set PATHWAYS_CHROMEDRIVER)"
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            reason = "selenium is not installed (pip install 'dash[testing]')"
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(
        f"the app did not start within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``pathways app`` on a free port with its own store and cache; yield its URL."""
    work = tmp_path_factory.mktemp("app")
    port = _free_port()
    env = {
        **os.environ,
        "PATHWAYS_STORE_URL": f"sqlite:///{work / 'store.db'}",
        "PATHWAYS_CACHE_DIR": str(work / "cache"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PATHWAYS_TILE_URL", None)
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pathways.cli", "app", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url + "/", proc, log)
        yield url
    finally:
        # the server and the background jobs it started share its process group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(app_url: str, download_dir: Path):
    """Headless Chromium at 1366x768 that saves downloads to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })  # fmt: skip
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_window_size(*WINDOW)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
