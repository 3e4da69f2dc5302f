"""Workspaces in the run store: every saved plan belongs to a team, found by a random token.

These are the server-side checks the web app relies on: a team lists, opens and deletes
only its own work (and reads work shared with all teams); a token of another team's
plan is refused exactly like one that never existed; replacing asks for the version the
user saw; users and teams live in the store; stores from before workspaces are moved in.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pathways.errors import InputError
from pathways.plan import baseline_plan
from pathways.scenario import load_scenario
from pathways.store import LOCAL_TEAM, RunStore

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(SUSSEX)


@pytest.fixture
def store(tmp_path):
    s = RunStore(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def _save(store: RunStore, name: str, scenario, team: str, shared: bool = False) -> str:
    store.save_scenario(name, scenario, team=team, shared=shared, user=f"{team}-user")
    return store.save_plan(
        name, name, baseline_plan(scenario), {"kpis": {}}, team=team, shared=shared,
        user=f"{team}-user",
    )  # fmt: skip


def test_each_team_lists_only_its_own_and_shared_work(store, scenario):
    _save(store, "base case", scenario, "brighton")
    _save(store, "base case", scenario, "hastings")  # the same name in another team
    _save(store, "county view", scenario, "hastings", shared=True)
    mine = store.list_plans(team="brighton")
    assert [(p["name"], p["team"]) for p in mine] == [
        ("base case", "brighton"),
        ("county view", "hastings"),
    ]
    assert {p["name"] for p in store.list_plans(team="hastings")} == {"base case", "county view"}
    assert len(store.list_plans()) == 3  # the library (no team) sees every team's
    assert {s["team"] for s in store.list_scenarios(team="brighton")} == {"brighton", "hastings"}


def test_tokens_are_random_and_unique(store, scenario):
    tokens = {_save(store, f"plan {k}", scenario, "brighton") for k in range(5)}
    assert len(tokens) == 5
    assert all(len(t) >= 20 and not t.isdigit() for t in tokens)


def test_another_teams_token_is_refused_like_a_missing_one(store, scenario):
    theirs = _save(store, "private", scenario, "hastings")
    with pytest.raises(InputError) as other:
        store.open_saved(theirs, "brighton")
    with pytest.raises(InputError) as missing:
        store.open_saved("no-such-token", "brighton")
    assert str(other.value) == str(missing.value)
    assert "private" not in str(other.value) and "hastings" not in str(other.value)
    entry, scen, plan, card = store.open_saved(theirs, "hastings")
    assert entry["name"] == "private" and scen.fingerprint() == scenario.fingerprint()
    assert card == {"kpis": {}}
    for bad in (None, 3, "", ["x"]):
        with pytest.raises(InputError):
            store.open_saved(bad, "hastings")


def test_only_the_owner_team_deletes_even_shared_work(store, scenario):
    theirs = _save(store, "private", scenario, "hastings")
    shared = _save(store, "county view", scenario, "hastings", shared=True)
    with pytest.raises(InputError):
        store.delete_saved(theirs, "brighton")
    with pytest.raises(InputError, match="only that team can delete"):
        store.delete_saved(shared, "brighton")
    assert store.open_saved(shared, "brighton")[0]["name"] == "county view"  # readable
    assert len(store.list_plans(team="hastings")) == 2  # nothing was deleted
    assert store.delete_saved(theirs, "hastings") == "private"
    assert [s["name"] for s in store.list_scenarios(team="hastings")] == ["county view"]


def test_saving_over_a_name_keeps_the_token_and_counts_versions(store, scenario):
    token = _save(store, "plan A", scenario, "brighton")
    entry = store.find_plan("plan A", "brighton")
    assert entry["token"] == token and entry["version"] == 1
    with pytest.raises(InputError, match="already exists"):
        store.save_plan("plan A", "plan A", baseline_plan(scenario), team="brighton",
                        overwrite=False)  # fmt: skip
    again = store.save_plan("plan A", "plan A", baseline_plan(scenario), team="brighton",
                            expect_version=1)  # fmt: skip
    assert again == token and store.find_plan("plan A", "brighton")["version"] == 2
    with pytest.raises(InputError, match="changed by someone else"):
        store.save_plan("plan A", "plan A", baseline_plan(scenario), team="brighton",
                        expect_version=1)  # fmt: skip
    assert store.find_plan("plan A", "hastings") is None  # another team's name is free


def test_users_and_teams(store):
    store.add_user("asha", "brighton", "hash-1")
    with pytest.raises(InputError, match="already exists"):
        store.add_user("asha", "hastings", "hash-2")
    assert store.get_user("asha") == {
        "name": "asha", "team": "brighton", "password_hash": "hash-1", "active": True,
    }  # fmt: skip
    store.add_user("asha", "hastings", "hash-2", replace=True)
    assert store.get_user("asha")["team"] == "hastings"
    store.set_user_active("asha", False)
    assert store.get_user("asha")["active"] is False
    assert store.list_teams() == ["brighton", "hastings"]
    assert [u["name"] for u in store.list_users()] == ["asha"]
    assert "password_hash" not in store.list_users()[0]
    store.remove_user("asha")
    assert store.get_user("asha") is None
    assert store.get_user(None) is None


def test_batches_belong_to_a_team(store):
    a = store.start_batch("spec: a", team="brighton")
    store.start_batch("spec: b")
    assert [b["id"] for b in store.list_batches(team="brighton")] == [a]
    assert [b["team"] for b in store.list_batches()] == ["brighton", LOCAL_TEAM]


def test_moving_laptop_work_to_a_team(store, scenario):
    _save(store, "from my laptop", scenario, LOCAL_TEAM)
    assert store.move_team_work(LOCAL_TEAM, "brighton") == 2  # its scenario and plan
    assert [p["team"] for p in store.list_plans()] == ["brighton"]
    _save(store, "from my laptop", scenario, LOCAL_TEAM)
    with pytest.raises(InputError, match="same names"):
        store.move_team_work(LOCAL_TEAM, "brighton")


def _old_store_module():
    """The run store as it was before workspaces (from git), to write an old store file."""
    source = subprocess.run(
        ["git", "show", "78e7d34:pathways/store.py"], cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if source.returncode != 0:
        pytest.skip("the pre-workspace store is not in this checkout's history")
    path = Path(sys.modules[__name__].__file__).with_name("_old_store_for_test.py")
    spec = importlib.util.spec_from_loader("old_store", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source.stdout, str(path), "exec"), module.__dict__)  # noqa: S102
    return module


def test_an_existing_store_file_is_moved_into_the_local_team(tmp_path, scenario):
    old = _old_store_module()
    db = f"sqlite:///{tmp_path / 'old.db'}"
    with old.RunStore(db) as before:
        before.save_scenario("kept", scenario, user="maria")
        before.save_plan("kept", "kept", baseline_plan(scenario), {"kpis": {"x": 1}}, user="maria")
        before.start_batch("spec: old")
    with RunStore(db) as after:
        [entry] = after.list_plans(team=LOCAL_TEAM)
        assert (entry["name"], entry["user"], entry["team"]) == ("kept", "maria", LOCAL_TEAM)
        assert after.load_plan("kept")[1] == {"kpis": {"x": 1}}
        assert after.load_scenario("kept").fingerprint() == scenario.fingerprint()
        assert after.list_batches()[0]["team"] == LOCAL_TEAM
        assert after.open_saved(entry["token"], LOCAL_TEAM)[0]["name"] == "kept"
    with RunStore(db) as again:  # opening again moves nothing twice
        assert len(again.list_plans()) == 1
    engine = create_engine(db)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM plans")).scalar() == 0
    engine.dispose()
