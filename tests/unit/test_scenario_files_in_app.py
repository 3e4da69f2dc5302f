"""Download the session's scenario as YAML and open it again, in the app."""

from __future__ import annotations

import base64
import sys
import types

import pytest
from dash import no_update

from dashapp import state
from pathways.icb import make_icb_scenario
from tests.dash_text import component_text as _text


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    from dashapp.app import create_app

    if "dashapp.pages.results" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    return types.SimpleNamespace(
        footprint=sys.modules["dashapp.pages.footprint"], export=sys.modules["dashapp.pages.export"]
    )


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv(state.ENV_STORE_URL, f"sqlite:///{tmp_path / 'store.db'}")


def _upload(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "data:application/x-yaml;base64," + base64.b64encode(raw).decode()


def test_a_downloaded_scenario_opens_again_unchanged(pages):
    sc = make_icb_scenario("Dorset")
    payload = pages.export.scenario_file(state.scenario_to_store(sc))
    assert payload["filename"].endswith(".yaml")
    assert "# Where today's capacities come from:" in payload["content"]
    out = pages.footprint.on_open_scenario(_upload(payload["content"]), payload["filename"])
    stored, result, frontier, icb, note = out
    assert result is None and frontier is None and icb == "E54000041"
    again = state.scenario_from_store(stored)
    assert again.model_dump(exclude={"base_dir"}) == sc.model_dump(exclude={"base_dir"})
    assert "Opened" in _text(note)


BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}' if p else 'x'] * 9)}]\n"
    for p, k in zip(["", "a", "b", "c", "d", "e"], "abcdef", strict=True)
)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s.yaml", "name: x\nfootprint: {icb: E54000053}\nsites: 3\n", r"s\.yaml 3 sites .*tuple"),
        (
            "s.yaml",
            "name: x\nfootprint: {icb: E54000053}\nqueues: {inpatient_los_days: -4}\n",
            r"inpatient_los_days",
        ),
        (
            "s.yaml",
            "name: x\nfootprint:\n  areas_file: /etc/passwd\n",
            "not uploaded through the app",
        ),
        ("s.txt", "name: x\n", r"\.yaml or \.yml"),
        ("s.yaml", "", "empty"),
        ("s.yaml", b"\xff\xfe\x00name", "UTF-8"),
        ("s.yaml", BOMB, "expands to more than"),
    ],
)
def test_a_bad_scenario_file_is_explained_and_the_session_kept(pages, name, text, expected):
    stored, result, frontier, icb, note = pages.footprint.on_open_scenario(_upload(text), name)
    assert stored is no_update and result is no_update and icb is no_update
    import re

    assert re.search(expected, _text(note), re.I), _text(note)
    assert "Traceback" not in _text(note)
