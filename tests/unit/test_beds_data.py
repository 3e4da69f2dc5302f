"""The bundled NHS bed-stock tables (built by data/build/build_beds.py) add up."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pathways._paths import data_dir

DATA_DIR = data_dir()


@pytest.fixture(scope="module")
def tables():
    return (
        pd.read_parquet(DATA_DIR / "kh03_mental_illness_beds.parquet"),
        pd.read_parquet(DATA_DIR / "trust_sites.parquet"),
        pd.read_parquet(DATA_DIR / "icb_trust_beds.parquet"),
    )


def test_icb_beds_add_up_to_the_kh03_england_total(tables):
    kh03, _, icb = tables
    base = kh03[kh03["baseline"] & (kh03["quarter"] != "estimate")]
    quarters = base["quarter"].unique()
    assert len(quarters) == 4
    england = base.groupby("quarter")["beds_available"].sum().mean()
    published = icb[~icb["beds_source"].str.startswith("estimate")]
    assert published["beds_available"].sum() == pytest.approx(england, rel=1e-12)
    occupied = base.groupby("quarter")["beds_occupied"].sum().mean()
    assert published["beds_occupied"].sum() == pytest.approx(occupied, rel=1e-12)
    info = json.loads((DATA_DIR / "beds_build_info.json").read_text())
    assert info["kh03_england_beds_available_mean"] == pytest.approx(england, abs=0.05)


def test_every_trust_is_shared_out_whole_and_every_icb_has_beds(tables):
    _, _, icb = tables
    shares = icb.groupby("trust_code")["share"].sum()
    np.testing.assert_allclose(shares.to_numpy(), 1.0, rtol=1e-12)
    assert (icb["share"] > 0).all()
    lsoa = pd.read_parquet(DATA_DIR / "lsoa.parquet", columns=["icb_cd"])
    assert set(icb["icb_cd"]) == set(lsoa["icb_cd"])  # all 42 ICBs


def test_estimates_are_labelled_and_kept_apart(tables):
    kh03, _, icb = tables
    est = kh03[kh03["quarter"] == "estimate"]
    assert set(est["trust_code"]) == {"RV5", "RT5"}
    assert est["source"].str.startswith("estimate: last KH03 figure").all()
    assert not set(est["trust_code"]) & set(kh03.loc[kh03["quarter"] != "estimate", "trust_code"])
    est_icb = icb[icb["trust_code"].isin(est["trust_code"])]
    assert est_icb["beds_source"].str.startswith("estimate").all()


def test_sites_lie_in_england_and_belong_to_a_trust_with_beds(tables):
    kh03, sites, icb = tables
    assert sites["x"].between(80_000, 660_000).all() and sites["y"].between(5_000, 660_000).all()
    assert sites["icb_cd"].str.match(r"E54\d{6}$").all()
    assert set(sites["trust_code"]) <= set(kh03["trust_code"])
    # a trust's ICB shares follow its sites' nearest populations
    for code, own in sites.groupby("trust_code"):
        expect = own.groupby("icb_cd")["nearest_pop"].sum() / own["nearest_pop"].sum()
        got = icb[icb["trust_code"] == code].set_index("icb_cd")["share"]
        pd.testing.assert_series_equal(
            got.sort_index(), expect.sort_index(), check_names=False, rtol=1e-12
        )
