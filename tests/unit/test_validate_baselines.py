"""Pure functions of data/build/validate_baselines.py (no raw-data folder needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pathways._paths import data_dir


@pytest.fixture(scope="module")
def vb():
    path = Path(__file__).resolve().parents[2] / "data" / "build" / "validate_baselines.py"
    spec = importlib.util.spec_from_file_location("validate_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ICBS = [
    "Black Country",
    "Bedfordshire, Luton and Milton Keynes",
    "Hampshire and Isle of Wight",
    "Sussex",
    "North East and North Cumbria",
    "Derby and Derbyshire",
    "Cornwall and the Isles of Scilly",
    "West Yorkshire",
]


def test_normalise_name(vb):
    assert vb.normalise_name("NHS Sussex Integrated Care Board") == "sussex"
    assert vb.normalise_name("The Black Country") == "black country"
    assert vb.normalise_name("Hampshire & the Isle of Wight") == "hampshire and isle of wight"


@pytest.mark.parametrize(
    ("stp", "icb", "how"),
    [
        ("The Black Country", "Black Country", "name"),
        ("Milton Keynes, Bedfordshire and Luton", "Bedfordshire, Luton and Milton Keynes", "name"),
        ("Hampshire and the Isle of Wight", "Hampshire and Isle of Wight", "name"),
        ("Cornwall and the Isles of Scilly", "Cornwall and the Isles of Scilly", "name"),
        ("West Yorkshire", "West Yorkshire", "name"),
        ("Sussex and East Surrey", "Sussex", "table"),
        ("Derbyshire", "Derby and Derbyshire", "table"),
        ("West, North and East Cumbria", "North East and North Cumbria", "table"),
    ],
)
def test_stp_to_icb_known_pairs(vb, stp, icb, how):
    m = vb.match_stp_to_icb([stp], ICBS)
    assert m.loc[0, "icb"] == icb
    assert m.loc[0, "how"] == how


def test_stp_to_icb_unmatched_and_bad_table(vb):
    m = vb.match_stp_to_icb(["Somewhere Else"], ICBS)
    assert m.loc[0, "how"] == "unmatched" and m.loc[0, "icb"] is None
    with pytest.raises(ValueError, match="unknown ICB"):
        vb.match_stp_to_icb(["X"], ICBS, table={"X": ("Not an ICB", "same")})


def test_stp_table_targets_are_todays_icbs(vb):
    icbs = pd.read_parquet(data_dir() / "lsoa.parquet", columns=["icb_short"])["icb_short"]
    assert {icb for icb, _ in vb.STP_TO_ICB.values()} <= set(icbs)


def test_to_number(vb):
    got = vb.to_number(pd.Series(["5", "*", "1,257", ""]))
    assert got.iloc[0] == 5 and np.isnan(got.iloc[1]) and got.iloc[2] == 1257
    assert np.isnan(got.iloc[3])


def test_aggregate_ccg_to_icb(vb):
    sicbl = pd.DataFrame(
        {
            "sicbl_cd": ["S1", "S2", "S3", "S4"],
            "icb_cd": ["A", "A", "B", "C"],
            "population": [100.0, 300.0, 500.0, 50.0],
        }
    )
    ccg = pd.DataFrame({"code": ["S1", "S2", "OLD3", "ZZ"], "oaps": [5.0, 10.0, 0.0, 7.0]})
    out, unmapped = vb.aggregate_ccg_to_icb(ccg, sicbl, recode={"OLD3": "S3"})
    out = out.set_index("icb_cd")
    assert unmapped == ["ZZ"]
    assert out.loc["A", "oaps"] == 15 and out.loc["A", "n_ccgs"] == 2
    assert out.loc["A", "coverage"] == 1.0 and out.loc["A", "population"] == 400
    assert out.loc["B", "oaps"] == 0 and out.loc["B", "coverage"] == 1.0
    assert out.loc["C", "coverage"] == 0.0 and out.loc["C", "n_ccgs"] == 0
    # partial coverage
    out2, _ = vb.aggregate_ccg_to_icb(ccg[ccg["code"] == "S2"], sicbl, recode={})
    assert out2.set_index("icb_cd").loc["A", "coverage"] == pytest.approx(0.75)


def test_ccg21_recodes_point_at_sub_icb_locations(vb):
    codes = set(pd.read_parquet(data_dir() / "lsoa.parquet", columns=["sicbl_cd"])["sicbl_cd"])
    assert set(vb.CCG21_TO_SICBL.values()) <= codes
    assert not set(vb.CCG21_TO_SICBL) & codes


def test_apportion(vb):
    kh03 = pd.DataFrame(
        {
            "trust_code": ["T1", "T2", "T9"],
            "quarter": ["q", "q", "q"],
            "beds_available": [100.0, 50.0, 30.0],
            "beds_occupied": [90.0, 40.0, 30.0],
        }
    )
    shares = pd.DataFrame(
        {"icb_cd": ["A", "B", "B"], "trust_code": ["T1", "T1", "T2"], "share": [0.25, 0.75, 1.0]}
    )
    icb, un = vb.apportion(kh03, shares)
    icb = icb.set_index("icb_cd")
    assert icb.loc["A", "beds_available"] == 25 and icb.loc["B", "beds_available"] == 125
    assert icb.loc["B", "beds_occupied"] == pytest.approx(0.75 * 90 + 40)
    assert icb["beds_available"].sum() + un.loc["q", "beds_available"] == 180
    assert un.loc["q", "trusts"] == "T9"


def test_rank_corr_skips_missing(vb):
    rho, _, n = vb.rank_corr([1, 2, 3, np.nan, 5], [2, 4, 6, 8, np.nan])
    assert n == 3 and rho == pytest.approx(1.0)
    assert np.isnan(vb.rank_corr([1, 2], [1, 2])[0])
