"""Fuzz every Dash callback of the app with payloads a hostile or broken browser could send.

The browser sends each callback's inputs and states as JSON, so anything may arrive: a
number where a scenario should be, a scenario with one field turned into nonsense, NaN,
a 10^300 population, NUL bytes, deep lists. Every callback must answer as Dash does when
all is well (200 with new values, or 204 when nothing changes): a 500 is an unhandled
exception, which the user would see as a broken page.

Each callback gets ``PATHWAYS_FUZZ_EXAMPLES`` examples (default 8: about 300 in all;
set it to 300 for a nightly-sized run of about 10,000). Background callbacks (the
optimiser and the frontier, which start processes) are fuzzed through the callbacks
that feed them: ``on_request`` and ``request_frontier`` check everything first.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashapp import state
from pathways.errors import InputError

EXAMPLES = int(os.environ.get("PATHWAYS_FUZZ_EXAMPLES", "8"))
HASH = re.compile(r"@[0-9a-f]{64}")


_APP: list = []


def _app():
    """One app for the whole module (made at collection, to list its callbacks)."""
    if not _APP:
        import tempfile
        from pathlib import Path

        from dashapp.app import create_app

        folder = Path(tempfile.mkdtemp(prefix="pathways-fuzz-"))
        _APP.append(create_app(store_url=f"sqlite:///{folder / 'store.db'}",
                               cache_dir=folder / "cache"))  # fmt: skip
    return _APP[0]


def _dependencies() -> dict[str, dict]:
    c = _app().server.test_client()
    assert c.get("/").status_code == 200
    deps = c.get("/_dash-dependencies").get_json()
    # keyed without the hashes Dash adds to outputs that allow duplicates (for test ids)
    return {HASH.sub("", d["output"]): d for d in deps if d["clientside_function"] is None}


@pytest.fixture(scope="module")
def client():
    return _app().server.test_client()


@pytest.fixture(scope="module")
def callbacks():
    return _dependencies()


def _names(callbacks) -> list[str]:
    return sorted(k for k, d in callbacks.items() if not d.get("background"))


@pytest.fixture(scope="module")
def demo_store() -> dict:
    return state.scenario_to_store(state.demo_scenario())


# --------------------------------------------------------------------------- values

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e300, -1e300, 10**12, 3e9, "", "0", "nan", "inf", "1e309"]),
    st.text(max_size=30),
    st.sampled_from(["<script>alert(1)</script>", "../../etc/passwd", "/etc/passwd",
                     "a\x00b", "=SUM(1,1)", "E54000064", "QNX", "🙂" * 5]),
)  # fmt: skip
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every (path) to a leaf or container inside a JSON-like value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:5]):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base):
    """A copy of a real session value with one to three parts replaced by junk."""
    value = copy.deepcopy(base)
    paths = [p for p in _paths(value) if p]
    for _ in range(draw(st.integers(1, 3))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        target = value
        for key in path[:-1]:
            target = target[key]
        if isinstance(target, dict | list):
            with_junk = draw(JSONISH)
            if isinstance(target, dict) and draw(st.booleans()) and len(target) > 1:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = with_junk
        paths = [p for p in _paths(value) if p]
    return value


def _value_for(prop: str, comp_id: str, draw, demo_store: dict):
    if comp_id == "app-scenario" and prop == "data":
        return draw(st.one_of(JSONISH, mutated(demo_store), st.just(demo_store)))
    if prop in ("n_clicks", "n_intervals", "n_submit"):
        return draw(st.one_of(st.integers(-5, 10**9), JSONISH))
    return draw(JSONISH)


def _entry(dep: dict, draw, demo_store: dict):
    comp_id = dep["id"]
    if isinstance(comp_id, str) and comp_id.startswith("{"):
        pattern = json.loads(comp_id)
        wild = {k: v for k, v in pattern.items() if isinstance(v, list)}
        if wild:  # ALL / MATCH: a list of concrete components
            items = []
            for _ in range(draw(st.integers(0, 3))):
                concrete = {k: (draw(st.text(max_size=10)) if k in wild else v)
                            for k, v in pattern.items()}  # fmt: skip
                items.append({"id": concrete, "property": dep["property"],
                              "value": draw(JSONISH)})  # fmt: skip
            return items
        comp_id = pattern
    return {"id": comp_id, "property": dep["property"],
            "value": _value_for(dep["property"], str(comp_id), draw, demo_store)}  # fmt: skip


def _outputs(spec: str):
    parts = [p for p in spec.split("...")] if spec.startswith("..") else [spec]
    outs = []
    for part in parts:
        part = part.strip(".")
        if not part:
            continue
        if part.startswith("{"):
            cid, _, prop = part.rpartition(".")
            outs.append({"id": json.loads(cid), "property": prop})
        else:
            cid, _, prop = part.rpartition(".")
            outs.append({"id": cid, "property": prop})
    return outs if spec.startswith("..") else outs[0]


def _post(client, body: dict):
    text = json.dumps(body, allow_nan=True)  # a hostile client may send NaN and Infinity
    return client.post("/_dash-update-component", data=text, content_type="application/json")


def pytest_generate_tests(metafunc):
    if "callback_name" in metafunc.fixturenames:
        names = _names(_dependencies())
        ids = [re.sub(r"[^A-Za-z0-9]+", "-", n).strip("-")[:60] for n in names]
        metafunc.parametrize("callback_name", names, ids=ids)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
def test_no_payload_breaks_a_callback(client, callbacks, demo_store, callback_name, data, caplog):
    caplog.clear()
    dep = callbacks[callback_name]
    draw = data.draw
    inputs = [_entry(i, draw, demo_store) for i in dep["inputs"]]
    states = [_entry(s, draw, demo_store) for s in dep["state"]]
    triggered = [i for i in dep["inputs"]]
    changed = [f"{t['id']}.{t['property']}" for t in draw(st.lists(st.sampled_from(triggered),
                                                                     max_size=2, unique_by=str))]  # fmt: skip
    body = {
        "output": dep["output"],
        "outputs": _outputs(HASH.sub("", dep["output"])),
        "inputs": inputs,
        "state": states,
        "changedPropIds": changed,
    }
    response = _post(client, body)
    text = response.get_data(as_text=True)
    from dashapp.payloads import _too_large

    if _too_large(body):  # no browser sends such a number: refused in words
        assert response.status_code == 400 and "whole number" in text, text[:500]
        return
    assert response.status_code in (200, 204), (callback_name, response.status_code, text[:500])
    assert "Traceback" not in text
    # Caught by a last-resort guard is not good enough: a bad value must be met by a check
    # (an InputError, explained to the user), never by a TypeError deep inside.
    unexpected = [
        f"{r.name}: {type(r.exc_info[1]).__name__}: {r.exc_info[1]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info and not isinstance(r.exc_info[1], InputError)
    ]
    assert not unexpected, (callback_name, unexpected)


def test_the_fuzz_covers_every_callback_but_the_background_ones(callbacks):
    names = _names(callbacks)
    assert len(names) >= 30
    background = [k for k, d in callbacks.items() if d.get("background")]
    assert len(background) == 3  # the optimiser, the frontier and the simulation


def test_a_request_not_in_dashs_shape_is_refused_in_words(client):
    for body in ('[1, 2]', '{"inputs": []}', '{"output": "a.b", "inputs": 5}',
                 '{"output": "a.b", "inputs": [7]}', '{"output": "a.b", "changedPropIds": [1]}',
                 "not json"):  # fmt: skip
        r = client.post("/_dash-update-component", data=body, content_type="application/json")
        assert r.status_code == 400 and "callback request" in r.get_data(as_text=True)


def test_session_stores_of_the_wrong_kind_are_read_as_empty():
    from dashapp.payloads import clean_entries

    entries = [
        {"id": "app-result", "property": "data", "value": [1, 2]},
        {"id": "app-result", "property": "data", "value": {"plan": {}}},
        {"id": "app-optimise-running", "property": "data", "value": "yes"},
        {"id": "_pages_location", "property": "pathname", "value": "results"},
        {"id": "optimise-run", "property": "n_clicks", "value": True},
        {"id": "optimise-mode", "property": "value", "value": {"a": 1}},
        [{"id": {"type": "x", "path": "a"}, "property": "value", "value": "3"}],
    ]
    assert clean_entries(entries) == 5
    assert [e["value"] for e in entries[:6]] == [None, {"plan": {}}, None, "/", None, None]
    assert entries[6][0]["value"] == "3"


def test_values_no_browser_sends_are_refused_or_read_as_empty(client):
    from dashapp.payloads import clean_entries

    entries = [
        {"id": "_pages_location", "property": "pathname", "value": ""},
        {"id": "services-table", "property": "data", "value": [1, "x", None]},
        {"id": "services-table", "property": "data", "value": [{"site_id": "A"}]},
    ]
    assert clean_entries(entries) == 2
    assert [e["value"] for e in entries] == ["/", [], [{"site_id": "A"}]]
    body = {"output": "a.b", "inputs": [{"id": "x", "property": "value", "value": 2**80}]}
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 400 and "whole number" in r.get_data(as_text=True)
