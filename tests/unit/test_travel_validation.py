"""Leave-destination-out validation of data/build/fit_travel.py on a tiny synthetic matrix.

No raw-data folder needed: the matrix is made up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from pathways import travel as tr


def synthetic(ft, n_side: int = 12, m: int = 10, seed: int = 7):
    """Origins 4 km apart on a 12 x 12 grid plus 60 far away, ``m`` sites; minutes from a known law.

    The far origins give the distance curve pairs beyond its last knot (320 km).
    """
    rng = np.random.default_rng(seed)
    g = (np.arange(n_side) * 4_000.0) + 50_000.0
    near = np.array([(x, y) for y in g for x in g])
    far = rng.uniform(100_000.0, 690_000.0, size=(60, 2))
    xy = np.vstack([near, far])
    codes = np.array([f"E{i:08d}" for i in range(len(xy))])
    site_xy = near[rng.choice(len(near), m, replace=False)] + 500.0
    d = tr.straight_line_km(xy, site_xy)
    minutes = 6.0 + 1.2 * d
    minutes[0, 0] = np.nan  # a missing pair is skipped, not scored
    return ft.RawData(
        codes=codes,
        xy=xy,
        row_lsoa=np.arange(len(xy)),
        postcodes=np.array([f"S{j}" for j in range(m)]),
        site_xy=site_xy,
        minutes=minutes,
    )


@pytest.mark.parametrize("m,k", [(10, 3), (125, 5), (125, 10), (7, 7)])
def test_every_destination_is_in_one_fold_of_balanced_size(ft, m, k):
    folds = ft.destination_folds(m, k, seed=20240101)
    assert folds.shape == (m,)
    assert set(folds.tolist()) == set(range(k))
    sizes = np.bincount(folds, minlength=k)
    assert sizes.sum() == m and sizes.max() - sizes.min() <= 1


def test_folds_are_deterministic_and_follow_the_seed(ft):
    a = ft.destination_folds(125, 5, seed=1)
    np.testing.assert_array_equal(a, ft.destination_folds(125, 5, seed=1))
    assert not np.array_equal(a, ft.destination_folds(125, 5, seed=2))


@pytest.mark.parametrize("k", [0, 1, 11])
def test_impossible_fold_counts_are_refused(ft, k):
    with pytest.raises(ValueError, match="folds"):
        ft.destination_folds(10, k, seed=1)


def test_each_column_is_predicted_by_a_fit_that_never_saw_it(ft):
    data = synthetic(ft)
    folds = ft.destination_folds(data.minutes.shape[1], 3, seed=3)
    seen: list[np.ndarray] = []

    def spy_fit(d, cols, **kw):
        seen.append(np.array(cols))
        # the fit for fold f (called in fold order) must not receive fold f's columns
        assert not np.isin(cols, np.flatnonzero(folds == len(seen) - 1)).any()
        return ft.fit_columns(d, cols, **kw)

    pred = ft.leave_destinations_out(data, folds, fit=spy_fit, use_grid=False)
    assert len(seen) == 3
    for f, cols in enumerate(seen):
        np.testing.assert_array_equal(np.sort(cols), np.flatnonzero(folds != f))
    assert pred.shape == data.minutes.shape and np.isfinite(pred).all()


def test_leaving_destinations_out_recovers_a_plain_distance_law(ft):
    data = synthetic(ft)
    folds = ft.destination_folds(data.minutes.shape[1], 5, seed=3)
    pred = ft.leave_destinations_out(data, folds, use_factors=False, use_grid=False)
    tables = ft.ldo_tables(pred, data.minutes)
    s = tables["all"]["< 60 min"]
    obs = data.minutes
    assert s["pairs"] == np.sum(np.isfinite(obs) & (obs < 60))
    # the curve is piecewise linear in log(1 + d): close to 6 + 1.2 d, not exact
    assert s["median_abs_min"] < 1.0 and s["max_abs_min"] < 5.0
    assert tables["all"]["< 120 min"]["pairs"] >= s["pairs"]


def test_trip_tables_split_by_limit_and_group(ft):
    obs = np.array([[10.0, 50.0, 100.0, np.nan], [30.0, 70.0, 130.0, 20.0]])
    pred = obs + np.array([[1.0, -2.0, 4.0, 0.0], [3.0, 5.0, 50.0, -1.0]])
    groups = {"north": np.array([True, False]), "south": np.array([False, True])}
    t = ft.ldo_tables(pred, obs, groups)
    assert list(t) == ["all", "north", "south"]
    under60 = t["all"]["< 60 min"]
    assert under60["pairs"] == 4  # 10, 50, 30, 20; the missing pair is skipped
    assert under60["median_abs_min"] == pytest.approx(np.median([1, 2, 3, 1]))
    assert under60["max_abs_min"] == 3
    assert under60["median_bias_min"] == pytest.approx(np.median([1, -2, 3, -1]))
    assert t["all"]["< 120 min"]["pairs"] == 6
    assert t["north"]["< 120 min"]["pairs"] == 3
    assert t["south"]["< 60 min"]["median_rel_pct"] == pytest.approx(
        np.median([3 / 30, 1 / 20]) * 100
    )
    assert t["south"]["< 60 min"]["p90_abs_min"] == pytest.approx(np.percentile([3, 1], 90))
