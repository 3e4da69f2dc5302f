"""A commissioner's journey through the app in headless Chromium.

Open the app -> choose Sussex -> change one assumption -> save today's plan -> run the
optimiser (short time limit) -> see the scorecard and the map -> save the plan ->
compare the two -> download the Excel workbook and open it. Also: a bad upload shows
a clear message; a run can be cancelled, and a reloaded page picks its run up again;
the pages work on a phone (390x844). Screenshots of every page (1366x768, and 390x844
for the phone) go to artifacts/screenshots/.

Nothing here depends on the solver's speed: every wait is for a condition (bounded
generously for a busy machine), and any honest outcome of a run is accepted (proven
best, stopped at the time limit with a plan, or the first plan that meets every limit).
"""

from __future__ import annotations

import time
from pathlib import Path

import openpyxl
import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

OPTIMISE_TIME_LIMIT_S = 30
#: A run's own time limit plus evaluation, on a busy two-core machine, with room to spare.
OPTIMISE_TIMEOUT_S = 420
STEP_TIMEOUT_S = 120  # generous: a loaded 2-core machine can take a minute for a first map
#: What the Optimise page says when a run ends with a plan (see pages/optimise.py).
FINISHED_WITH_A_PLAN = (
    "The optimiser found the best plan",
    "The optimiser stopped at the time limit after",
    "The solver found nothing better than the first plan",
)
PHONE = (390, 844)
DEFAULT_TIME_LIMIT_S = 30  # what the Optimise page keeps when the field is left alone


def css(driver, selector: str):
    return driver.find_element(By.CSS_SELECTOR, selector)


def wait_for(driver, predicate, timeout: float = STEP_TIMEOUT_S, what: str = "condition"):
    def check(d):
        try:
            return predicate(d)
        except (StaleElementReferenceException, LookupError):
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        alerts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".message")]
        raise AssertionError(
            f"timed out waiting for {what}; messages on the page: {alerts}"
        ) from None


def wait_text(driver, selector: str, text: str, timeout: float = STEP_TIMEOUT_S) -> str:
    def found(d):
        for e in d.find_elements(By.CSS_SELECTOR, selector):
            if text in e.text:
                return e.text
        return False

    return wait_for(driver, found, timeout, f"'{text}' in {selector}")


def go(driver, base: str, path: str, ready: str) -> None:
    """Navigate with the step links (as a user would) and wait for ``ready`` to appear."""
    link = css(driver, f"a.nav-link[href='{path}']")
    link.click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ready), what=ready)
    wait_for(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, "._dash-loading-callback"),
        what="idle",
    )


def wait_map(driver, graph_id: str) -> None:
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{graph_id} .maplibregl-canvas"),
             what=f"map {graph_id}")  # fmt: skip
    wait_for(
        driver,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f"#{graph_id} .choroplethmap, #{graph_id} canvas"
        ),
        what="map layers",
    )


def shot(driver, folder: Path, name: str) -> None:
    time.sleep(0.8)  # let maps finish painting
    driver.save_screenshot(str(folder / f"{name}.png"))


def choose_icb(driver, text: str, code: str) -> None:
    css(driver, "#footprint-icb").click()
    search = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".dash-dropdown-search-container input"),
                      what="dropdown search")  # fmt: skip
    search.send_keys(text)
    option = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, f".dash-dropdown-option input[value='{code}']"),
                      what=f"option {code}")  # fmt: skip
    option.find_element(By.XPATH, "./ancestor::label").click()


def set_number(driver, element, value: str) -> None:
    element.click()
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(value)
    element.send_keys(Keys.ENTER)


def save_as(driver, name: str) -> None:
    box = css(driver, "#compare-name")
    box.clear()
    box.send_keys(name)
    css(driver, "#compare-save").click()
    wait_text(driver, "#compare-save-message", f"Saved scenario '{name}'")


def session_store(driver, store: str):
    """A session store's data as the page keeps it (``None`` when empty)."""
    import json

    raw = driver.execute_script("return window.sessionStorage.getItem(arguments[0])", store)
    return None if raw in (None, "null", "undefined") else json.loads(raw)


def finished_status(driver) -> str | False:
    """The Optimise page's message once a run has ended with a plan, else False."""
    text = css(driver, "#optimise-status").text
    return text if text.startswith(FINISHED_WITH_A_PLAN) else False


def start_run(driver, base: str, seconds: int) -> None:
    """Open the Optimise page, set the time limit and press Run; wait until it runs."""
    driver.get(base + "/optimise")
    wait_for(driver, lambda d: css(d, "#optimise-mobile-min").get_attribute("value"),
             what="controls filled")  # fmt: skip
    wait_for(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "._dash-loading-callback"),
             what="idle")  # fmt: skip
    set_number(driver, css(driver, "#optimise-time-limit"), str(seconds))
    wait_for(driver, lambda d: (session_store(d, "app-options") or {}).get("time_limit_s", DEFAULT_TIME_LIMIT_S) == seconds,
             what="the time limit kept")  # fmt: skip
    css(driver, "#optimise-run").click()
    wait_for(driver, lambda d: css(d, "#optimise-cancel").is_enabled(), what="the run to start")
    wait_for(
        driver, lambda d: session_store(d, "app-optimise-job"), what="the session to know the job"
    )


def ensure_plan(driver, base: str) -> None:
    """Make sure the session holds an up-to-date optimised plan (runs the optimiser if not)."""
    driver.get(base + "/results")
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#app-badge .badge-item"),
        what="the header",
    )
    if "plan: optimised" in css(driver, "#app-badge").text:
        return
    start_run(driver, base, 10)
    wait_for(driver, finished_status, OPTIMISE_TIMEOUT_S, "a run to end with a plan")


def test_commissioner_journey(browser, app_url, screenshot_dir, download_dir):
    d = browser
    d.get(app_url + "/")
    wait_map(d, "footprint-map")
    wait_text(d, "#app-badge", "NHS Sussex ICB (demo)")

    # choose another ICB, then Sussex: the scenario follows the choice
    choose_icb(d, "Dorset", "E54000041")
    wait_text(d, "#app-badge", "Dorset", timeout=60)
    choose_icb(d, "Sussex", "E54000053")
    wait_text(d, "#app-badge", "NHS Sussex ICB (demo)", timeout=60)
    wait_text(d, "#footprint-cards", "1,659,921")
    wait_map(d, "footprint-map")
    shot(d, screenshot_dir, "1-footprint")

    go(d, app_url, "/services", "#services-table td")
    wait_map(d, "services-map")
    assert "Mill View Hospital" in css(d, "#services-table").text
    shot(d, screenshot_dir, "2-services")
    # click an area in the middle of the map: a candidate site is added there
    canvas = css(d, "#services-map .maplibregl-canvas")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    time.sleep(0.5)
    added = ""
    for dx, dy in ((125, 21), (-60, 0), (-250, 10), (200, -40)):  # a site marker may be in the way
        ActionChains(d).move_to_element(canvas).move_by_offset(dx, dy).click().perform()
        note = wait_for(
            d, lambda d: css(d, "#services-message").text, what="a message after the click"
        )
        if note.startswith("Added"):
            added = note
            break
        assert note.startswith("Site "), note  # a site marker was clicked instead
    assert "Candidate near" in added
    assert added.split("'")[1] in css(d, "#services-table").text

    # one assumption: demand grows by 10%
    go(d, app_url, "/assumptions", ".param-group")
    growth = css(d, '[id=\'{"path":"demand.growth_factor","type":"assumptions-num"}\']')
    d.execute_script("arguments[0].closest('details').open = true; arguments[0].scrollIntoView({block:'center'})",
                     growth)  # fmt: skip
    set_number(d, growth, "1.1")
    wait_text(d, "#assumptions-message", "1 change applied")
    shot(d, screenshot_dir, "3-assumptions")

    # keep today's plan for comparison
    go(d, app_url, "/compare", "#compare-name")
    save_as(d, "journey today")

    go(d, app_url, "/optimise", "#optimise-run")
    wait_for(
        d,
        lambda d: css(d, "#optimise-mobile-min").get_attribute("value") == "80",
        what="controls filled",
    )
    limit = css(d, "#optimise-time-limit")
    set_number(d, limit, str(OPTIMISE_TIME_LIMIT_S))
    wait_for(d, lambda d: (session_store(d, "app-options") or {}).get("time_limit_s", DEFAULT_TIME_LIMIT_S) == OPTIMISE_TIME_LIMIT_S,
             what="the time limit kept")  # fmt: skip
    css(d, "#optimise-run").click()
    wait_for(d, lambda d: css(d, "#optimise-cancel").is_enabled(), what="the run to start")
    wait_for(
        d, lambda d: "s (time limit" in css(d, "#optimise-progress-label").text, what="progress"
    )
    shot(d, screenshot_dir, "4-optimise")

    # the job runs in the background: move to the Results page while it works
    go(d, app_url, "/results", "#results-scorecard td")
    wait_for(d, lambda d: "optimiser running" in css(d, "#app-badge").text
             or "plan: optimised" in css(d, "#app-badge").text, what="the header to show the run")  # fmt: skip
    wait_text(d, "#app-badge", "plan: optimised", timeout=OPTIMISE_TIMEOUT_S)
    go(d, app_url, "/optimise", "#optimise-run")
    status = wait_for(d, finished_status, what="the optimiser's message")
    assert "See the results" in status, status
    wait_for(d, lambda d: css(d, "#optimise-run").is_enabled() and not css(d, "#optimise-cancel").is_enabled(),
             what="the controls to come back")  # fmt: skip
    wait_text(d, "#app-badge", "plan: optimised")

    go(d, app_url, "/results", "#results-scorecard td")
    wait_text(d, "#results-status", "Showing the optimised plan")
    wait_text(d, "#results-facts", "Settings used for this plan")
    wait_text(d, "#results-facts", "Time limit")
    header = wait_text(d, "#results-scorecard", "Optimised")
    assert "Today" in header and "Out-of-area bed-days a year" in header
    wait_map(d, "results-map")
    assert d.find_elements(By.CSS_SELECTOR, "#results-equity-chart .main-svg")
    shot(d, screenshot_dir, "5-results")

    go(d, app_url, "/compare", "#compare-name")
    save_as(d, "journey plan")
    wait_text(d, "#compare-saved", "journey plan")
    for box in d.find_elements(By.CSS_SELECTOR, "#compare-saved input[type='checkbox']"):
        box.click()
    css(d, "#compare-run").click()
    table = wait_text(d, "#compare-table", "Admissions a year")
    assert "journey today" in table and "journey plan" in table
    d.execute_script("document.getElementById('compare-table').scrollIntoView({block: 'start'})")
    shot(d, screenshot_dir, "6-compare")

    go(d, app_url, "/export", "#export-xlsx")
    wait_text(d, "#export-what", "the optimised plan")
    css(d, "#export-xlsx").click()
    wait_text(d, "#export-message", "Excel workbook ready")

    def downloaded(_d):
        files = [p for p in download_dir.glob("*.xlsx") if not p.name.endswith(".crdownload")]
        return files[0] if files and files[0].stat().st_size > 0 else False

    path = wait_for(d, downloaded, what="the Excel download")
    wb = openpyxl.load_workbook(path)
    assert {"Scorecard", "KPIs detail", "Plan by site", "KPIs by area", "KPIs by IMD quintile",
            "Assumptions"} <= set(wb.sheetnames)  # fmt: skip
    header = [c.value for c in wb["Scorecard"][1]]
    assert "current" in header and "optimised" in header
    shot(d, screenshot_dir, "7-export")

    # everything the pages loaded came from the app itself (no tiles, fonts or CDNs)
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [
        u for u in loaded if not u.startswith(app_url) and not u.startswith(("data:", "blob:"))
    ]
    assert not outside, outside


BAD_SITES = (
    "site_id,name,x,y,inpatient_beds\nN1,Good site,530000,110000,10\nN2,,530000,110000,ten\n"
)


def test_bad_upload_shows_file_row_and_field(browser, app_url, screenshot_dir, tmp_path):
    d = browser
    d.get(app_url + "/services")
    wait_for(
        d, lambda d: d.find_elements(By.CSS_SELECTOR, "#services-table td"), what="the sites table"
    )
    path = tmp_path / "bad_sites.csv"
    path.write_text(BAD_SITES)
    css(d, "#services-upload input[type='file']").send_keys(str(path))
    text = wait_text(d, "#services-message", "could not be used")
    assert "bad_sites.csv" in text and "inpatient_beds" in text and "name" in text
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#services-problems tr")]
    assert any(" 3 " in f" {r} " and "inpatient_beds" in r for r in rows), rows
    ActionChains(d).move_to_element(css(d, "#services-message")).perform()
    shot(d, screenshot_dir, "2b-services-bad-upload")


@pytest.mark.parametrize("path", ["/", "/results"])
def test_pages_work_with_the_keyboard(browser, app_url, path):
    """The step links and the first controls are reachable with Tab."""
    d = browser
    d.get(app_url + path)
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".page-header"), what="the page")
    seen = []
    for _ in range(10):
        ActionChains(d).send_keys(Keys.TAB).perform()
        seen.append(d.switch_to.active_element.get_attribute("href") or "")
    assert any(s.endswith("/optimise") for s in seen) and any(s.endswith("/export") for s in seen)


def test_optimise_can_be_cancelled_before_and_after_a_reload(browser, app_url):
    d = browser
    d.get(app_url + "/optimise")
    d.execute_script("window.sessionStorage.clear()")  # no plan from an earlier test
    start_run(d, app_url, 60)
    assert not css(d, "#optimise-run").is_enabled()
    wait_text(d, "#app-badge", "optimiser running")
    css(d, "#optimise-cancel").click()
    # the job says it was cancelled, the session forgets it, and no plan arrives
    wait_text(d, "#optimise-status", "Optimisation cancelled")
    wait_for(d, lambda d: css(d, "#optimise-run").is_enabled(), what="the run button to come back")
    wait_for(
        d, lambda d: session_store(d, "app-optimise-job") is None, what="the job to be forgotten"
    )
    assert "optimiser running" not in css(d, "#app-badge").text
    assert "hidden" in css(d, "#optimise-progress-wrap").get_attribute("class")
    assert session_store(d, "app-result") is None

    # a reload does not lose a run: the page finds it again, and can still cancel it
    start_run(d, app_url, 60)
    d.refresh()
    wait_text(d, "#optimise-progress-label", "started before the page was reloaded")
    wait_text(d, "#app-badge", "optimiser running")
    wait_for(d, lambda d: css(d, "#optimise-cancel").is_enabled(), what="Cancel after the reload")
    css(d, "#optimise-cancel").click()
    wait_text(d, "#optimise-status", "Optimisation cancelled")
    wait_for(
        d, lambda d: session_store(d, "app-optimise-job") is None, what="the job to be forgotten"
    )
    wait_for(d, lambda d: css(d, "#optimise-run").is_enabled(), what="the run button to come back")
    assert session_store(d, "app-result") is None


def test_a_reloaded_page_gets_the_result_of_its_run(browser, app_url, screenshot_dir):
    d = browser
    start_run(d, app_url, 10)
    d.refresh()
    wait_text(d, "#optimise-progress-label", "started before the page was reloaded")
    shot(d, screenshot_dir, "4b-optimise-after-reload")
    status = wait_for(d, finished_status, OPTIMISE_TIMEOUT_S, "the run to end with a plan")
    assert "See the results" in status
    wait_text(d, "#app-badge", "plan: optimised")
    assert session_store(d, "app-optimise-job") is None and session_store(d, "app-result")["plan"]


def _phone(driver, on: bool) -> None:
    if on:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})  # fmt: skip
    else:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


MAP_FITS = """
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
const full = gd && gd._fullLayout;
const map = full && full.map && full.map._subplot && full.map._subplot.map;
if (!map || !gd.layout.meta || !gd.layout.meta.fit_bounds) { return null; }
const [w, s, e, n] = gd.layout.meta.fit_bounds;
const b = map.getBounds();
const box = gd.getBoundingClientRect();
const canvas = gd.querySelector('.maplibregl-canvas').getBoundingClientRect();
const bar = gd.querySelector('.colorbar');
const barBox = bar ? bar.getBoundingClientRect() : null;
return {
  inside: box.left >= 0 && box.right <= window.innerWidth + 1,
  whole: b.getWest() <= w && b.getEast() >= e && b.getSouth() <= s && b.getNorth() >= n,
  barBelow: !barBox || barBox.top >= canvas.bottom - 1,
};
"""


def map_fits(driver, graph: str):
    """The map's fit once it shows the whole footprint, else False."""
    fit = driver.execute_script(MAP_FITS, graph)
    return fit if fit and fit["whole"] else False


def test_pages_are_usable_on_a_phone(browser, app_url, screenshot_dir):
    d = browser
    ensure_plan(d, app_url)
    _phone(d, True)
    try:
        for path, graph, name in (("/", "footprint-map", "1-footprint"), ("/services", "services-map", "2-services"),
                                  ("/results", "results-map", "5-results")):  # fmt: skip
            d.get(app_url + path)
            assert d.execute_script("return window.innerWidth") == PHONE[0]
            wait_map(d, graph)
            # the whole footprint is on screen, the colour bar under the map, not over it
            fit = wait_for(d, lambda d, g=graph: map_fits(d, g), what=f"{graph} to fit the screen")
            assert fit["inside"] and fit["barBelow"], fit
            # nothing makes the page itself wider than the phone
            assert d.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
            shot(d, screenshot_dir, f"phone-{name}")
        # the scorecard's Optimised column is on screen, or its table scrolls with a visible cue
        wait_text(d, "#results-scorecard", "Optimised")
        cell = css(d, "#results-scorecard th[data-dash-column='optimised']")
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        right = d.execute_script("return arguments[0].getBoundingClientRect().right", cell)
        wrap = cell.find_element(By.XPATH, "./ancestor::div[contains(@class, 'table-wrap')]")
        if right > PHONE[0]:
            cue = wrap.find_element(By.CSS_SELECTOR, ".scroll-cue")
            assert cue.is_displayed() and "has-more" in wrap.get_attribute("class")
        assert "is-wide" in wrap.get_attribute("class")  # the scorecard is wider than a phone...
        assert wrap.find_element(By.CSS_SELECTOR, ".scroll-cue").is_displayed()  # ...and says so
        shot(d, screenshot_dir, "phone-5b-scorecard")
        d.get(app_url + "/optimise")
        wait_for(
            d, lambda d: css(d, "#optimise-budget").get_attribute("value"), what="controls filled"
        )
        assert d.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
        shot(d, screenshot_dir, "phone-4-optimise")
    finally:
        _phone(d, False)


SIMULATE_TIMEOUT_S = 600  # 2 simulated years of today and of the plan, on a busy machine


def test_results_simulate_today_and_the_plan(browser, app_url, screenshot_dir):
    d = browser
    ensure_plan(d, app_url)
    d.get(app_url + "/results")
    reps = wait_for(d, lambda e: (el := css(e, "#results-sim-reps")).get_attribute("value") and el,
                    what="the simulation field filled")  # fmt: skip
    set_number(d, reps, "2")
    css(d, "#results-sim-run").click()
    wait_text(d, "#results-sim-status", "Simulated 2 years of today's capacity and the plan",
              SIMULATE_TIMEOUT_S)  # fmt: skip
    table = wait_text(d, "#results-sim-table", "Days with someone out of area")
    assert "Plan: simulated" in table and " to " in table
    wait_for(d, lambda e: len(e.find_elements(By.CSS_SELECTOR, "#results-sim-chart .scatterlayer .trace")) >= 4,
             what="the OAPs-by-day chart with today and the plan")  # fmt: skip
    d.execute_script("document.getElementById('results-sim-table').scrollIntoView()")
    shot(d, screenshot_dir, "5c-results-simulation-bands")
    d.execute_script("document.getElementById('results-sim-chart').scrollIntoView()")
    shot(d, screenshot_dir, "5d-results-simulation-oaps-by-day")
    # the same inputs again: shown from the cache
    css(d, "#results-sim-run").click()
    wait_text(d, "#results-sim-status", "from the cache", SIMULATE_TIMEOUT_S)
    # a reload keeps the simulation with the session
    d.refresh()
    wait_text(d, "#results-sim-table", "Days with someone out of area")
