"""The app shell: it builds, serves every page, wires its callbacks, and hides tracebacks."""

from __future__ import annotations

import json

import pytest
from dash import html

from dashapp import app as app_module
from dashapp import state
from pathways.errors import InputError, Problem
from pathways.scenario import with_changes

PAGES = ["/", "/services", "/assumptions", "/optimise", "/results", "/compare", "/export"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    dash_app = app_module.create_app(
        store_url=f"sqlite:///{work / 'store.db'}", cache_dir=work / "cache"
    )
    assert dash_app.server.config[state.CONFIG_KEY].cache_dir == (work / "cache").resolve()
    return dash_app.server.test_client()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert b"Crisis pathway planner" in r.data


def test_layout_holds_the_session_stores_with_the_demo(client):
    layout = json.dumps(client.get("/_dash-layout").json)
    for store in ("app-scenario", "app-result", "app-frontier"):
        assert f'"id": "{store}"' in layout
    assert "NHS Sussex ICB (demo)" in layout
    assert '"storage_type": "session"' in layout


def test_callbacks_are_registered_once_with_page_prefixed_ids(client):
    deps = client.get("/_dash-dependencies").json
    outputs = [d["output"] for d in deps]
    assert len(outputs) == len(set(outputs))
    prefixes = ("app-", "footprint-", "services-", "assumptions-", "optimise-", "results-", "compare-", "export-",
                "_pages", "..")  # fmt: skip
    for out in outputs:
        for part in out.strip(".").split("..."):
            cid = part.split(".")[0]
            if cid.startswith("{"):
                cid = json.loads(cid)["type"]
            assert cid.startswith(prefixes), out
    background = [d for d in deps if d.get("background")]
    assert {d["output"].strip(".").split(".")[0] for d in background} >= {
        "app-optimise-status",
        "app-frontier-status",
    }


def test_badge_reports_plan_state():
    s = state.demo_scenario()
    data = state.scenario_to_store(s)

    def words(parts) -> str:
        return " ".join(p.children for p in parts)

    assert "today's capacity" in words(app_module.badge_text(data, None))
    fresh = {"scenario_fingerprint": s.fingerprint()}
    assert "optimised" in words(app_module.badge_text(data, fresh))
    stale = state.scenario_to_store(with_changes(s, {"demand.growth_factor": 1.2}))
    assert "out of date" in words(app_module.badge_text(stale, fresh))
    assert "No valid scenario" in words(app_module.badge_text({"name": ""}, None))


def test_unexpected_errors_become_a_message(monkeypatch, caplog):
    shown = {}
    monkeypatch.setattr(app_module, "set_props", lambda cid, props: shown.update({cid: props}))
    app_module.report_callback_error(KeyError("site_x"))
    box = shown["app-alert"]["children"]
    assert isinstance(box, html.Div) and "logged" in box.children[0].children
    assert "callback failed" in caplog.text  # the traceback goes to the server log
    app_module.report_callback_error(InputError(Problem("sites.csv", 3, "name", "name is missing")))
    text = str(shown["app-alert"]["children"].children[1].children[0].children)
    assert text == "sites.csv, row 3, field 'name': name is missing"


def test_every_page_layout_builds(client):
    import sys

    for name in (
        "footprint",
        "services",
        "assumptions",
        "optimise",
        "results",
        "compare",
        "export",
    ):
        assert sys.modules[f"dashapp.pages.{name}"].layout() is not None


def test_the_session_keeps_jobs_and_options_across_reloads(client):
    layout = client.get("/_dash-layout").json
    stores = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if node.get("type") == "Store":
                stores[props["id"]] = props.get("storage_type")
            for v in props.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(layout)
    assert (
        stores["app-optimise-job"]
        == stores["app-frontier-job"]
        == stores["app-options"]
        == "session"
    )
    assert stores["app-optimise-request"] is None  # a page load's own request is not kept
    assert app_module.orphan({"id": "x"}, None) and not app_module.orphan(
        {"id": "x"}, {"job_id": "x"}
    )
    assert not app_module.orphan(None, None)


def test_money_has_one_format():
    from dashapp.components import fmt_change, fmt_value

    assert fmt_value("total_cost_gbp_per_year", 60e6) == "£60.00M"
    assert fmt_value("oap_cost_gbp_per_year", 101_234) == "£101,234"  # never "£0.10M"
    assert fmt_value("oap_cost_gbp_per_year", 14_823) == "£14,823"
    assert fmt_change("total_cost_gbp_per_year", 61e6, 60e6) == "+£1.00M"
    assert fmt_change("oap_cost_gbp_per_year", 1e5, 2e5) == "−£100,000"
