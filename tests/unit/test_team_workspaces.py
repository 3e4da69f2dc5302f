"""Saved plans in a shared app: each team sees and changes only its own work.

The Compare page takes rows (with their tokens) from the browser, so every test here
plays a browser that sends whatever it likes: another team's token, a made-up one, a
row list edited by hand. The store checks the team on the server each time.
"""

from __future__ import annotations

import sys
import types

import pytest

from dashapp import state
from dashapp.auth import Identity
from pathways.errors import InputError
from tests.dash_text import component_text as _text

ALICE = Identity(user="alice", team="brighton", signed_in=True)
BOB = Identity(user="bob", team="hastings", signed_in=True)


@pytest.fixture(scope="module")
def compare(tmp_path_factory):
    from dashapp.app import create_app

    if "dashapp.pages.compare" not in sys.modules:
        create_app(cache_dir=tmp_path_factory.mktemp("app-cache"))
    return sys.modules["dashapp.pages.compare"]


@pytest.fixture
def config(tmp_path, monkeypatch) -> state.AppConfig:
    monkeypatch.setenv(state.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv(state.ENV_STORE_URL, f"sqlite:///{tmp_path / 'store.db'}")
    return state.resolve_config()


@pytest.fixture
def demo() -> dict:
    return state.scenario_to_store(state.demo_scenario())


def _rows(compare, config, who):
    return compare.saved_rows(config, who)


def test_a_team_sees_only_its_own_plans(compare, config, demo):
    assert compare.save("brighton today", demo, None, config, identity=ALICE)[1]
    assert compare.save("hastings today", demo, None, config, identity=BOB)[1]
    assert [r["name"] for r in _rows(compare, config, ALICE)] == ["brighton today"]
    assert [r["name"] for r in _rows(compare, config, BOB)] == ["hastings today"]
    row = _rows(compare, config, ALICE)[0]
    assert row["user"] == "alice" and row["workspace"] == "yours"
    assert len(row["token"]) >= 20  # unguessable, not a row number


def test_a_replayed_token_opens_compares_and_deletes_nothing(compare, config, demo):
    compare.save("brighton today", demo, None, config, identity=ALICE)
    compare.save("hastings today", demo, None, config, identity=BOB)
    stolen = _rows(compare, config, ALICE)
    mine = _rows(compare, config, BOB)
    for trigger, rows, selected in (
        ("compare-load", stolen, [0]),
        ("compare-delete", stolen, [0]),
        ("compare-run", stolen + mine, [0, 1]),
        ("compare-load", [{"name": "x", "token": "made-up-token"}], [0]),
    ):
        out = compare.act(trigger, rows, selected, config, BOB)
        assert "not in your team's workspace" in _text(out[5]), trigger
        assert out[6] is compare.no_update and out[7] is compare.no_update
    # Alice's plan is still there, unchanged
    assert [r["name"] for r in _rows(compare, config, ALICE)] == ["brighton today"]


def test_a_name_another_team_uses_is_free_and_never_replaces_theirs(compare, config, demo):
    compare.save("plan", demo, None, config, identity=ALICE)
    before = _rows(compare, config, ALICE)[0]
    note, saved, cls, text, pending = compare.save_flow(
        "compare-save", "plan", None, demo, None, config, identity=BOB
    )
    assert saved and "hidden" in cls and pending is None  # not asked: Bob has no 'plan'
    after = _rows(compare, config, ALICE)[0]
    assert after["token"] == before["token"] and after["user"] == "alice"


def test_a_shared_plan_is_read_only_for_other_teams(compare, config, demo):
    note, saved = compare.save("sussex shared", demo, None, config, shared=True, identity=ALICE)
    assert saved and "shared with every team" in _text(note)
    rows = _rows(compare, config, BOB)
    assert [(r["name"], r["workspace"]) for r in rows] == [("sussex shared", "shared by brighton")]
    out = compare.act("compare-load", rows, [0], config, BOB)
    assert "Opened 'sussex shared'" in _text(out[5]) and out[6] is not compare.no_update
    compare.save("mine", demo, None, config, identity=BOB)
    rows = _rows(compare, config, BOB)
    assert [r["name"] for r in rows] == ["mine", "sussex shared"]  # own work first
    out = compare.act("compare-run", rows, [0, 1], config, BOB)
    assert [c["name"] for c in out[3]][1:] == ["mine", "sussex shared (brighton)"]
    out = compare.act("compare-delete", rows, [1], config, BOB)
    assert "only that team can delete it" in _text(out[5])
    assert "sussex shared" in [r["name"] for r in _rows(compare, config, ALICE)]


def test_replacing_replaces_only_the_version_the_user_was_asked_about(compare, config, demo):
    compare.save("plan", demo, None, config, identity=ALICE)
    *_, pending = compare.save_flow("compare-save", "plan", None, demo, None, config,
                                    identity=ALICE)  # fmt: skip
    assert pending["name"] == "plan" and isinstance(pending["version"], int)
    # meanwhile a colleague in the same team replaces it
    colleague = Identity(user="carol", team="brighton", signed_in=True)
    assert compare.save("plan", demo, None, config, replace=True, identity=colleague)[1]
    carol_scenario = compare.open_store(config).load_scenario("plan", "brighton").fingerprint()
    with pytest.raises(InputError, match="changed by someone else"):
        compare.save_flow("compare-replace", "plan", pending, demo, None, config, identity=ALICE)
    assert _rows(compare, config, ALICE)[0]["user"] == "carol"
    store = compare.open_store(config)
    assert store.load_scenario("plan", "brighton").fingerprint() == carol_scenario
    store.close()


def test_rows_edited_by_hand_are_ignored_not_trusted(compare, config, demo):
    compare.save("plan", demo, None, config, identity=ALICE)
    for rows, selected in (
        ("not a list", [0]), ([{"name": "plan"}], [0]), ([None], [0]),
        (_rows(compare, config, ALICE), ["0", -1, 99]),
    ):  # fmt: skip
        out = compare.act("compare-load", rows, selected, config, ALICE)
        assert "Select exactly one plan" in _text(out[5])


def test_without_sign_in_everything_is_the_local_team(compare, config, demo):
    from pathways.store import LOCAL_TEAM

    assert compare.save("laptop", demo, None, config)[1]
    rows = compare.saved_rows(config)
    assert [r["name"] for r in rows] == ["laptop"]
    assert compare.saved_rows(config, types.SimpleNamespace(team=LOCAL_TEAM, user="x"))
    assert not compare.saved_rows(config, BOB)
