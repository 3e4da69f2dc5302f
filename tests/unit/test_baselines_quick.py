"""The baselines' quick scorer gives the scorecard's mobile figures, base by base.

``_Quick`` prices a team layout from cached catchments and each base's own queue; the
scorecard (``kpis.mobile_teams``) runs every base's queue at once. Both must give the
same share of responses within the standard, for any layout and in any order of calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathways.instance import prepare
from pathways.kpis import mobile_teams, nearest_allocation
from pathways.optimise.baselines import _Quick
from pathways.scenario import load_scenario

SUSSEX = Path(__file__).resolve().parents[2] / "data" / "scenarios" / "sussex.yaml"


@pytest.fixture(scope="module")
def inst():
    return prepare(load_scenario(SUSSEX))


def _reference(inst, teams: np.ndarray) -> tuple[float, float]:
    alloc = nearest_allocation(inst.travel_mins, teams > 0)
    mob = mobile_teams(inst, teams.astype(float), alloc)
    eps = inst.mobile_episodes
    within = float((eps * mob["within_share_area"]).sum() / eps.sum())
    hours = float(((alloc * inst.travel_mins).sum(axis=1) * eps).sum()) / 60.0
    return within, hours


def test_quick_mobile_matches_the_scorecard_on_random_layouts(inst):
    rng = np.random.default_rng(7)
    quick = _Quick(inst)
    m = len(inst.site_ids)
    layouts = []
    for _ in range(40):
        teams = np.zeros(m, int)
        open_ = rng.choice(m, size=int(rng.integers(1, 8)), replace=False)
        teams[open_] = rng.integers(1, 6, size=len(open_))
        layouts.append(teams)
        # greedy's pattern: one more team at an open base, then back
        bumped = teams.copy()
        bumped[open_[0]] += 1
        layouts += [bumped, teams]
    for teams in layouts:
        within, hours = quick._mobile(teams)
        ref_within, ref_hours = _reference(inst, teams)
        assert within == pytest.approx(ref_within, rel=1e-12, abs=1e-12)
        assert hours == pytest.approx(ref_hours, rel=1e-12)
