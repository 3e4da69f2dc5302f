"""Validate the modelled ICB baselines against published data not used for calibration.

Usage (from the repository root; ``RAW`` is the raw-data folder, the NHS files in
``RAW/nhs/``)::

    python data/build/validate_baselines.py --raw RAW [--out docs/img] [--model-csv X.csv]

Compares the per-ICB baseline of ``data/build/icb_baselines.py`` (``icb_table()``) with:

1. inappropriate out-of-area placements (OAPs) active at the end of the three months
   Sep-Nov 2020 (30 November 2020) and their cost over the three months, by CCG (``openinnov_oaps_ccg21_3m_to_nov2020.csv.gz``), aggregated to ICBs;
2. the NHS Digital experimental OAP series, Oct 2016 - Feb 2017
   (``nhsd_oaps-open-data-{oct,nov,dec}-2016.csv.gz``, ``...{jan,feb}-2017.csv.gz``), by
   STP, matched to today's ICBs by name;
3. KH03 mental illness beds in the quarters not used for calibration (2024-25 Q1-Q4 and
   2019-20 Q3, bundled in ``data/kh03_mental_illness_beds.parquet``), apportioned to ICBs
   with the baseline shares.

Prints Markdown tables (``docs/calibration.md``, section 6) and writes
``calibration_oaps.png`` to ``--out``. ``--model-csv`` reuses a table written by
``icb_baselines.py --csv`` instead of rebuilding the 42 scenarios (about 20 seconds).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"

OAPS_2020 = "openinnov_oaps_ccg21_3m_to_nov2020.csv.gz"
OAPS_2020_COUNT = "Inappropriate OAPs active at period end"
OAPS_2020_COST = "Total Cost For Inappropriate OAPs in Period"
OAPS_2016_MONTHS = ["oct-2016", "nov-2016", "dec-2016", "jan-2017", "feb-2017"]
Q_ACTIVE = "OAPs active at period end"
Q_DAYS = "Total number of OAP days over the period"
MIN_KH03_BEDS = 50  # ICBs with fewer published 2025-26 beds are left out of the occupancy checks

# CCG codes of April 2021 that are not sub-ICB location codes. From NHS England's "ICB
# boundary changes 2022-23" ("Other geography codes"): the first four were re-coded with
# the same footprint (the old CCG's ODS code ends the sub-ICB location's name in
# data/lsoa.parquet); Tameside and Glossop became the Tameside sub-ICB location (01Y),
# Glossop moving to Derby and Derbyshire (15M).
CCG21_TO_SICBL = {
    "E38000026": "E38000260",  # Cambridgeshire and Peterborough (06H)
    "E38000220": "E38000258",  # Birmingham and Solihull (15E)
    "E38000229": "E38000261",  # Derby and Derbyshire (15M)
    "E38000242": "E38000262",  # Northamptonshire (78H)
    "E38000182": "E38000263",  # Tameside and Glossop -> Tameside (01Y); Glossop moved
}

# 2016 STPs whose name does not match today's ICB after normalisation:
# STP name -> (ICB short name, footprint note). "same" means the same area under
# another name; otherwise the note says how the footprint differs.
STP_TO_ICB = {
    "Staffordshire": ("Staffordshire and Stoke-on-Trent", "same"),
    "Derbyshire": ("Derby and Derbyshire", "ICB adds Glossop"),
    "Nottinghamshire": ("Nottingham and Nottinghamshire", "ICB adds Bassetlaw"),
    "South Yorkshire and Bassetlaw": ("South Yorkshire", "ICB without Bassetlaw"),
    "Humber, Coast and Vale": (
        "Humber and North Yorkshire",
        "ICB adds Harrogate, Hambleton, Richmondshire and Whitby",
    ),
    "Shropshire and Telford and Wrekin": ("Shropshire, Telford and Wrekin", "same"),
    "Frimley Health": ("Frimley", "same"),
    "Sussex and East Surrey": ("Sussex", "ICB without East Surrey"),
    "Bath, Swindon and Wiltshire": ("Bath and North East Somerset, Swindon and Wiltshire", "same"),
    "Durham, Darlington, Teesside, Hambleton, Richmondshire and Whitby": (
        "North East and North Cumbria",
        "three STPs merged; Hambleton, Richmondshire and Whitby now in Humber and North Yorkshire",
    ),
    "Northumberland, Tyne and Wear and North Durham": (
        "North East and North Cumbria",
        "three STPs merged",
    ),
    "West, North and East Cumbria": ("North East and North Cumbria", "three STPs merged"),
}

# STPs whose name matches today's ICB but whose footprint differs (CCG moves of
# 2018-2022; used to restrict one correlation to unchanged footprints).
FOOTPRINT_NOTES = {
    "West Yorkshire": "ICB without Harrogate (in the STP West Yorkshire and Harrogate)",
    "Surrey Heartlands": "ICB adds East Surrey",
    "Greater Manchester": "ICB without Glossop",
}


# ---------------------------------------------------------------------------
# pure helpers (tested in tests/unit/test_validate_baselines.py)


def normalise_name(name: str) -> str:
    """Lower-case words of an area name, without "NHS", "the", "ICB", punctuation and "&".

    Word order is kept; :func:`match_stp_to_icb` compares the sets of words.
    """
    s = name.lower().replace("&", " and ")
    s = re.sub(r"\bintegrated care board\b|\bicb\b|\bstp\b", " ", s)
    s = re.sub(r"[^a-z0-9 ]", " ", s)
    words = [w for w in s.split() if w not in {"nhs", "the"}]
    return " ".join(words)


def match_stp_to_icb(
    stp_names: list[str], icb_names: list[str], table: dict | None = None
) -> pd.DataFrame:
    """Match 2016 STP names to today's ICB short names.

    First the explicit table (``STP_TO_ICB`` by default), then equal sets of
    normalised words (so "The Black Country" = "Black Country" and "Milton Keynes,
    Bedfordshire and Luton" = "Bedfordshire, Luton and Milton Keynes"). Returns one row
    per STP: ``stp``, ``icb`` (None when unmatched), ``how`` ("table", "name" or
    "unmatched") and ``note`` ("same" when the footprint is unchanged, else how it
    differs: the table's note or :data:`FOOTPRINT_NOTES`).
    """
    table = STP_TO_ICB if table is None else table
    by_words = {}
    for icb in icb_names:
        by_words.setdefault(frozenset(normalise_name(icb).split()), []).append(icb)
    rows = []
    for stp in stp_names:
        if stp in table:
            icb, note = table[stp]
            if icb not in icb_names:
                raise ValueError(f"table maps {stp!r} to unknown ICB {icb!r}")
            rows.append({"stp": stp, "icb": icb, "how": "table", "note": note})
            continue
        hits = by_words.get(frozenset(normalise_name(stp).split()), [])
        if len(hits) == 1:
            note = FOOTPRINT_NOTES.get(stp, "same")
            rows.append({"stp": stp, "icb": hits[0], "how": "name", "note": note})
        else:
            rows.append({"stp": stp, "icb": None, "how": "unmatched", "note": ""})
    return pd.DataFrame(rows, columns=["stp", "icb", "how", "note"])


def to_number(values: pd.Series) -> pd.Series:
    """Published counts as floats; suppressed ("*") and blank values become NaN."""
    return pd.to_numeric(values.astype(str).str.replace(",", "").str.strip(), errors="coerce")


def aggregate_ccg_to_icb(
    ccg: pd.DataFrame, sicbl: pd.DataFrame, recode: dict | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Sum CCG values to ICBs through sub-ICB locations.

    ``ccg``: columns ``code`` (CCG E38 code) and value columns. ``sicbl``: one row per
    sub-ICB location, columns ``sicbl_cd``, ``icb_cd``, ``population``. CCG codes are
    first recoded with ``recode`` (``CCG21_TO_SICBL`` by default), then joined on
    ``sicbl_cd``. Returns (per ICB: the summed value columns, ``n_ccgs``,
    ``population`` (all of the ICB), ``covered_pop``, ``coverage`` = covered_pop /
    population; the CCG codes that did not map). ICBs with no CCG get zero values and
    coverage 0.
    """
    recode = CCG21_TO_SICBL if recode is None else recode
    df = ccg.copy()
    df["sicbl_cd"] = df["code"].map(lambda c: recode.get(c, c))
    known = df["sicbl_cd"].isin(set(sicbl["sicbl_cd"]))
    unmapped = sorted(df.loc[~known, "code"])
    df = df[known].merge(sicbl[["sicbl_cd", "icb_cd", "population"]], on="sicbl_cd")
    values = [c for c in ccg.columns if c != "code"]
    agg = df.groupby("icb_cd").agg(
        **{v: (v, "sum") for v in values},
        n_ccgs=("code", "size"),
        covered_pop=("population", "sum"),
    )
    pop = sicbl.groupby("icb_cd")["population"].sum()
    out = agg.reindex(pop.index)
    out[values] = out[values].fillna(0.0)
    out["n_ccgs"] = out["n_ccgs"].fillna(0).astype(int)
    out["covered_pop"] = out["covered_pop"].fillna(0.0)
    out["population"] = pop
    out["coverage"] = out["covered_pop"] / out["population"]
    return out.reset_index(), unmapped


def apportion(kh03: pd.DataFrame, shares: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split trust beds (per quarter) over ICBs with the baseline shares.

    ``kh03``: ``trust_code``, ``quarter``, ``beds_available``, ``beds_occupied``.
    ``shares``: ``icb_cd``, ``trust_code``, ``share``. Returns (per ICB and quarter:
    beds available and occupied; per quarter: the beds of trusts without a share).
    """
    known = kh03["trust_code"].isin(set(shares["trust_code"]))
    m = kh03[known].merge(shares[["icb_cd", "trust_code", "share"]], on="trust_code")
    for c in ("beds_available", "beds_occupied"):
        m[c] = m[c] * m["share"]
    icb = m.groupby(["icb_cd", "quarter"], as_index=False)[
        ["beds_available", "beds_occupied"]
    ].sum()
    un = (
        kh03[~known]
        .groupby("quarter")
        .agg(
            trusts=("trust_code", lambda s: ", ".join(sorted(s))),
            beds_available=("beds_available", "sum"),
        )
    )
    return icb, un


def rank_corr(x, y) -> tuple[float, float, int]:
    """Spearman rank correlation over the pairs where both are finite: (rho, p, n)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return float("nan"), float("nan"), n
    r = spearmanr(x[ok], y[ok])
    return float(r.statistic), float(r.pvalue), n


def oap_bed_days_at(row, occupancy: float) -> float:
    """A baseline ICB's modelled OAP bed-days a year if its length of stay were calibrated
    to ``occupancy`` instead of its 2025-26 KH03 occupancy.

    ``row``: one row of ``icb_table()`` (admissions, adult acute beds, OAP placements and
    bed-days). Same beds, admissions, national peakedness and cap as
    :func:`pathways.icb.make_icb_scenario`; OAP bed-days = admissions x blocked share x
    the baseline's bed-days per placement.
    """
    from pathways import queues
    from pathways.icb import ICB_PEAKEDNESS, OCCUPANCY_TARGET_MAX, calibrate_los

    beds = int(row["adult_acute_beds"])
    los, _ = calibrate_los(
        row["admissions"], beds, min(occupancy, OCCUPANCY_TARGET_MAX), ICB_PEAKEDNESS
    )
    load = row["admissions"] * los / 365.0
    blocked = float(queues.erlang_b_peaked(load, beds, ICB_PEAKEDNESS))
    per_placement = row["oap_bed_days"] / row["oap_placements"] if row["oap_placements"] else 40
    return row["admissions"] * blocked * per_placement


# ---------------------------------------------------------------------------
# reading the raw files


def sicbl_table() -> pd.DataFrame:
    lsoa = pd.read_parquet(
        DATA / "lsoa.parquet", columns=["sicbl_cd", "icb_cd", "icb_short", "pop_total"]
    )
    return (
        lsoa.groupby(["sicbl_cd", "icb_cd"], as_index=False)["pop_total"]
        .sum()
        .rename(columns={"pop_total": "population"})
    )


def read_oaps_month(path: Path) -> pd.DataFrame:
    """One month of the 2016-17 series with the columns common to all months.

    The October and November files have no ``Breakdown*Description`` columns and the
    February file adds ``PublicationDate``/``PublicationPeriod``; only February has an
    ``Stp`` breakdown (earlier months: England, region, CCG, providers, ...).
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in ("Breakdown1Description", "Breakdown2", "Breakdown2Code"):
        if c not in df.columns:
            df[c] = ""
    need = {"Question", "Breakdown1", "Breakdown1Code", "value"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{path.name}: missing columns {sorted(missing)}")
    df = df[df["Breakdown2"].str.strip() == ""]  # single breakdowns only
    return df[["Question", "Breakdown1", "Breakdown1Code", "Breakdown1Description", "value"]]


def oaps_2016(nhs: Path, icbs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(England per month, STP table Feb 2017 matched to ICBs, per-ICB sums)."""
    england, stp = [], None
    for m in OAPS_2016_MONTHS:
        df = read_oaps_month(nhs / f"nhsd_oaps-open-data-{m}.csv.gz")
        e = df[(df["Breakdown1"] == "England") & df["Question"].isin([Q_ACTIVE, Q_DAYS])]
        row = {"month": m, "breakdowns": ", ".join(sorted(df["Breakdown1"].unique()))}
        for q, col in ((Q_ACTIVE, "active"), (Q_DAYS, "oap_days")):
            v = to_number(e.loc[e["Question"] == q, "value"])
            row[col] = float(v.iloc[0]) if len(v) else float("nan")
        england.append(row)
        s = df[(df["Breakdown1"] == "Stp") & df["Breakdown1Code"].str.startswith("E54")]
        if len(s):
            stp = s  # latest month with an STP breakdown
            stp_month = m
    if stp is None:
        raise ValueError("no month of the 2016-17 series has an Stp breakdown")
    wide = stp.pivot_table(
        index=["Breakdown1Code", "Breakdown1Description"],
        columns="Question",
        values="value",
        aggfunc="first",
    ).reset_index()
    wide = wide.rename(
        columns={
            "Breakdown1Code": "stp_cd",
            "Breakdown1Description": "stp",
            Q_ACTIVE: "active_raw",
            Q_DAYS: "oap_days_raw",
        }
    )
    wide["active"] = to_number(wide["active_raw"])
    wide["oap_days"] = to_number(wide["oap_days_raw"])
    wide["month"] = stp_month
    match = match_stp_to_icb(wide["stp"].tolist(), icbs["icb"].tolist())
    wide = wide.merge(match, on="stp", how="left")
    # per ICB: a sum over its STPs is known only when none of them is suppressed
    g = wide.groupby("icb")
    per = pd.DataFrame(
        {
            "stps": g["stp"].size(),
            "oap_days": g["oap_days"].sum(min_count=1),
            "active": g["active"].sum(min_count=1),
            "days_suppressed": g["oap_days"].apply(lambda s: s.isna().any()),
            "active_suppressed": g["active"].apply(lambda s: s.isna().any()),
            "same_footprint": g["note"].apply(lambda s: (s == "same").all()),
        }
    ).reset_index()
    per.loc[per["days_suppressed"], "oap_days"] = np.nan
    per.loc[per["active_suppressed"], "active"] = np.nan
    return pd.DataFrame(england), wide, per


# ---------------------------------------------------------------------------
# report


def fmt(x, spec=",.0f", na="n/a"):
    return na if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def corr_line(label, x, y) -> str:
    rho, p, n = rank_corr(x, y)
    return f"| {label} | {n} | {fmt(rho, '.2f')} | {fmt(p, '.3f')} |"


def load_model(model_csv: Path | None) -> pd.DataFrame:
    if model_csv is not None:
        return pd.read_csv(model_csv)
    sys.path.insert(0, str(REPO / "data" / "build"))
    sys.path.insert(0, str(REPO))
    from icb_baselines import icb_table  # noqa: PLC0415

    return icb_table()


def plot(df: pd.DataFrame, rho: float, n: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = df[df["full_2020"]].copy()
    floor = 0.15  # zeros drawn on the log axes at this value
    x = d["obs_2020_per100k"].where(d["obs_2020_per100k"] > 0, floor)
    y = d["model_per100k"].where(d["model_per100k"] > 1, 1.0)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    zero = d["obs_2020_per100k"] <= 0
    ax.scatter(x[~zero], y[~zero], s=30, color="#1f77b4", label="ICB")
    ax.scatter(
        x[zero],
        y[zero],
        s=30,
        marker="<",
        color="#d62728",
        label=f"ICB with no OAPs in the 2020 file (drawn at x = {floor})",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xticks([0.2, 0.5, 1, 2, 5])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    # label the ICBs whose ranks differ most, and the extremes
    rx = d["obs_2020_per100k"].rank()
    ry = d["model_per100k"].rank()
    gap = (rx - ry).abs()
    lab = (
        set(gap.nlargest(8).index)
        | set(d["model_per100k"].nlargest(3).index)
        | set(d["model_per100k"].nsmallest(3).index)
        | set(d["obs_2020_per100k"].nlargest(3).index)
        | set(d["obs_2020_per100k"].nsmallest(5).index)
    )
    below = 0
    for i in sorted(lab, key=lambda j: x[j]):
        dx, dy, ha = 4, 2, "left"
        if y[i] <= 1.0:  # the floored points share a height: labels to the left, staggered
            dx, dy, ha, below = -4, (6 if below % 2 else -10), "right", below + 1
        ax.annotate(
            d.loc[i, "icb"], (x[i], y[i]), fontsize=7, xytext=(dx, dy),
            textcoords="offset points", ha=ha,
        )  # fmt: skip
    ax.set_xlabel(
        "observed: inappropriate OAPs active on 30 Nov 2020 per 100k (NHS Digital, by CCG)"
    )
    ax.set_ylabel("model: OAP bed-days a year per 100k (values below 1 drawn at 1)")
    ax.set_title(
        f"ICBs fully covered by the 2020 CCG file: n = {n}, Spearman rho = {rho:.2f}", fontsize=10
    )
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.1))
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "calibration_oaps.png"
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True, help="the raw-data folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--model-csv", type=Path, help="per-ICB table from icb_baselines.py --csv")
    args = parser.parse_args(argv)
    nhs = args.raw / "nhs"

    model = load_model(args.model_csv)
    model["model_per100k"] = model["oap_bed_days"] / model["population"] * 1e5
    sicbl = sicbl_table()
    out: list[str] = []

    # 1. OAPs by CCG, Sep-Nov 2020 ---------------------------------------------
    raw20 = pd.read_csv(nhs / OAPS_2020, dtype=str)
    ccg = pd.DataFrame(
        {
            "code": raw20["CCG21CD"],
            "oaps_2020": to_number(raw20[OAPS_2020_COUNT]),
            "cost_2020": to_number(raw20[OAPS_2020_COST]),
        }
    )
    direct = int(ccg["code"].isin(set(sicbl["sicbl_cd"])).sum())
    recoded = int(ccg["code"].isin(set(CCG21_TO_SICBL)).sum())
    agg, unmapped = aggregate_ccg_to_icb(ccg, sicbl)
    agg["full_2020"] = agg["coverage"] > 0.999
    df = model.merge(
        agg[["icb_cd", "oaps_2020", "cost_2020", "n_ccgs", "coverage", "full_2020"]],
        on="icb_cd",
        how="left",
    )
    df["obs_2020_per100k"] = df["oaps_2020"] / df["population"] * 1e5
    df["cost_2020_per100k"] = df["cost_2020"] / df["population"] * 1e5
    full = df[df["full_2020"]]
    partial = df[(df["coverage"] > 0) & ~df["full_2020"]]
    none = df[df["coverage"] == 0]
    rho20, _, n20 = rank_corr(full["model_per100k"], full["obs_2020_per100k"])

    out += [
        "### 1. OAPs by area, Sep-Nov 2020",
        "",
        f"{len(ccg)} CCGs in `{OAPS_2020}`: {direct} codes are sub-ICB location codes, "
        f"{recoded} are recoded (`CCG21_TO_SICBL`), {len(unmapped)} did not map"
        + (f" ({', '.join(unmapped)})" if unmapped else "")
        + f". ICBs fully covered: {len(full)}; partly covered: {len(partial)} "
        f"({', '.join(sorted(partial['icb']))}); not covered: {len(none)} "
        f"({', '.join(sorted(none['icb']))}). England total of the file: "
        f"{ccg['oaps_2020'].sum():,.0f} inappropriate OAPs active on 30 November 2020, "
        f"GBP {ccg['cost_2020'].sum() / 1e6:,.1f}M over September-November 2020.",
        "",
        "| comparison (ICBs fully covered) | n | Spearman rho | p |",
        "|---|---:|---:|---:|",
        corr_line(
            "model OAP bed-days per 100k vs OAPs active per 100k, 2020",
            full["model_per100k"],
            full["obs_2020_per100k"],
        ),
        corr_line(
            "model OAP cost per 100k vs OAP cost per 100k, 2020",
            full["oap_cost_gbp"] / full["population"] * 1e5,
            full["cost_2020_per100k"],
        ),
        corr_line(
            "KH03 occupancy 2025-26 vs OAPs active per 100k, 2020",
            full["kh03_occupancy"],
            full["obs_2020_per100k"],
        ),
        corr_line(
            "mental illness beds per 100k vs OAPs active per 100k, 2020",
            full["mi_beds"] / full["population"],
            full["obs_2020_per100k"],
        ),
        "",
    ]

    # 2. OAPs by STP, Feb 2017 ------------------------------------------------
    icbs = model[["icb_cd", "icb", "population"]]
    eng16, stp, per16 = oaps_2016(nhs, icbs)
    out += [
        "### 2. OAPs by area, Oct 2016 - Feb 2017 (NHS Digital experimental series)",
        "",
        "| month | England OAPs active at period end | England OAP days in month | "
        "breakdowns published |",
        "|---|---:|---:|---|",
    ]
    for r in eng16.itertuples():
        out.append(f"| {r.month} | {fmt(r.active)} | {fmt(r.oap_days)} | {r.breakdowns} |")
    unm = stp[stp["how"] == "unmatched"]
    out += [
        "",
        f"STP breakdown: {stp['month'].iloc[0]} only; {len(stp)} STPs "
        f"({(stp['how'] == 'name').sum()} matched by name, {(stp['how'] == 'table').sum()} "
        f"by the table `STP_TO_ICB`, {len(unm)} unmatched), giving {len(per16)} ICBs; "
        f"OAP days suppressed for {int(stp['oap_days'].isna().sum())} STPs, so "
        f"{int(per16['days_suppressed'].sum())} ICBs have no total.",
        "",
    ]
    d16 = model.merge(per16, on="icb", how="inner")
    d16["days_per100k"] = d16["oap_days"] / d16["population"] * 1e5
    d16["active_per100k"] = d16["active"] / d16["population"] * 1e5
    same = d16[d16["same_footprint"]]
    d16z = d16.copy()  # suppressed values taken as the lowest, tied
    d16z["days_per100k"] = d16z["days_per100k"].fillna(-1.0)
    dd = df.merge(d16[["icb_cd", "days_per100k"]], on="icb_cd", how="inner")
    dd = dd[dd["full_2020"]]
    out += [
        "| comparison | n | Spearman rho | p |",
        "|---|---:|---:|---:|",
        corr_line(
            "model OAP bed-days per 100k vs OAP days per 100k, Feb 2017 (published)",
            d16["model_per100k"],
            d16["days_per100k"],
        ),
        corr_line(
            "the same, ICBs with the STP's footprint only",
            same["model_per100k"],
            same["days_per100k"],
        ),
        corr_line(
            "the same, suppressed STPs ranked lowest (tied)",
            d16z["model_per100k"],
            d16z["days_per100k"],
        ),
        corr_line(
            "model vs OAPs active per 100k, Feb 2017", d16["model_per100k"], d16["active_per100k"]
        ),
        corr_line(
            "observed 2017 OAP days vs observed 2020 OAPs active (per 100k)",
            dd["days_per100k"],
            dd["obs_2020_per100k"],
        ),
        "",
        "| STP (Feb 2017) | ICB | matched by | footprint | OAPs active | OAP days |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in stp.sort_values("stp").itertuples():
        out.append(
            f"| {r.stp} | {r.icb or '-'} | {r.how} | {r.note} | {r.active_raw} | {r.oap_days_raw} |"
        )
    out.append("")

    # 3. KH03 in quarters not used for calibration -----------------------------
    kh03 = pd.read_parquet(DATA / "kh03_mental_illness_beds.parquet")
    kh03 = kh03[kh03["quarter"] != "estimate"]
    shares = pd.read_parquet(DATA / "icb_trust_beds.parquet")
    icbq, unalloc = apportion(kh03, shares)
    icbq = icbq.merge(icbs, on="icb_cd")
    icbq["occ"] = icbq["beds_occupied"] / icbq["beds_available"]
    quarters = sorted(kh03["quarter"].unique())
    base_q = sorted(kh03.loc[kh03["baseline"], "quarter"].unique())
    y24 = [q for q in quarters if q.startswith("2024-25")]

    out += [
        "### 3. KH03 mental illness beds in quarters not used for calibration",
        "",
        "| quarter | used for calibration | England beds available | England occupancy | "
        "trusts without a share | their beds |",
        "|---|---|---:|---:|---|---:|",
    ]
    for q in quarters:
        g = kh03[kh03["quarter"] == q]
        un = unalloc.loc[q] if q in unalloc.index else None
        out.append(
            f"| {q} | {'yes' if q in base_q else 'no'} | {g['beds_available'].sum():,.0f} | "
            f"{g['beds_occupied'].sum() / g['beds_available'].sum():.1%} | "
            f"{un['trusts'] if un is not None else '-'} | "
            f"{un['beds_available'] if un is not None else 0:,.0f} |"
        )

    over = kh03[kh03["beds_occupied"] > kh03["beds_available"]].sort_values(
        ["trust_code", "quarter"]
    )

    def period(qs):
        g = icbq[icbq["quarter"].isin(qs)].groupby("icb_cd")[["beds_available", "beds_occupied"]]
        s = g.sum() / len(qs)
        s["occ"] = s["beds_occupied"] / s["beds_available"]
        return s

    b = period(base_q)
    p24 = period(y24)
    p19 = period(["2019-20 Q3"])
    cmp = b.join(p24.add_suffix("_24")).join(p19.add_suffix("_19")).join(icbs.set_index("icb_cd"))
    # an ICB whose baseline beds are almost all an estimate (no KH03 rows) says nothing here
    cmp = cmp[cmp["beds_available"] >= MIN_KH03_BEDS]
    cmp["d24"] = (cmp["occ_24"] - cmp["occ"]) * 100
    cmp["d19"] = (cmp["occ_19"] - cmp["occ"]) * 100
    cmp["beds_ratio_24"] = cmp["beds_available_24"] / cmp["beds_available"]
    cmp["beds_ratio_19"] = cmp["beds_available_19"] / cmp["beds_available"]
    ok24 = cmp[(cmp["beds_ratio_24"] - 1).abs() <= 0.1]
    ok19 = cmp[(cmp["beds_ratio_19"] - 1).abs() <= 0.1]
    # quarter-to-quarter spread inside the calibration year
    qq = icbq[icbq["quarter"].isin(base_q)].pivot(index="icb_cd", columns="quarter", values="occ")
    qq = qq.loc[cmp.index]
    spread = (qq.max(axis=1) - qq.min(axis=1)) * 100
    sd_between = cmp["occ"].std() * 100

    def stab(label, d, sub, col):
        a = d.abs()
        rho, _, n = rank_corr(sub["occ"], sub[col])
        worst = a.idxmax()
        return (
            f"| {label} | {a.notna().sum()} | {a.median():.1f} | {a.max():.1f} "
            f"({cmp.loc[worst, 'icb']}) | {(a > 2).sum()} | {(a > 5).sum()} | "
            f"{fmt(rho, '.2f')} (n = {n}) |"
        )

    out += [
        "",
        "Per ICB, occupancy = apportioned beds occupied / available. The two trusts estimated "
        "in the baseline (no KH03 rows) are left out of every period here: South East London "
        "is compared on its other trusts; ICBs with fewer than "
        f"{MIN_KH03_BEDS} published beds in 2025-26 are left out "
        f"({', '.join(sorted(set(icbs['icb']) - set(cmp['icb'])))}).",
        "",
        "Trust-quarters where KH03 reports more mental illness beds occupied than available: "
        + (
            ", ".join(
                f"{r.trust_code} {r.quarter} ({r.beds_occupied / r.beds_available:.0%})"
                for r in over.itertuples()
            )
            or "none"
        )
        + ".",
        "",
        "| occupancy, percentage points, against 2025-26 (mean of Q1-Q4) | ICBs | median "
        "abs. difference | max abs. difference | ICBs > 2 points | ICBs > 5 points | "
        "Spearman rho of ICB occupancy |",
        "|---|---:|---:|---:|---:|---:|---:|",
        stab("2024-25 (mean of Q1-Q4), all ICBs", cmp["d24"], cmp, "occ_24"),
        stab("2024-25, ICBs whose apportioned beds are within 10%", ok24["d24"], ok24, "occ_24"),
        stab("2019-20 Q3, all ICBs", cmp["d19"], cmp, "occ_19"),
        stab("2019-20 Q3, ICBs whose apportioned beds are within 10%", ok19["d19"], ok19, "occ_19"),
        "",
        f"Spread of ICB occupancy between the four 2025-26 quarters (max - min): median "
        f"{spread.median():.1f} points, max {spread.max():.1f} ({cmp.loc[spread.idxmax(), 'icb']}). "
        f"Standard deviation of 2025-26 occupancy between ICBs: {sd_between:.1f} points. "
        f"ICBs within 10% of their 2025-26 beds: {len(ok24)} in 2024-25, {len(ok19)} in 2019-20 Q3.",
        "",
    ]
    # what the 2024-25 occupancy would do to the modelled OAPs (beds, admissions and the
    # national peakedness unchanged)
    mi = model.set_index("icb_cd")
    alt = pd.Series(
        {
            c: oap_bed_days_at(mi.loc[c], cmp.loc[c, "occ_24"])
            if c in cmp.index
            else mi.loc[c, "oap_bed_days"]
            for c in mi.index
        }
    )
    base_bd = mi["oap_bed_days"]
    rho_alt, _, n_alt = rank_corr(base_bd, alt)
    ratio = (alt / base_bd).where(base_bd > 100)
    big = ratio[(ratio > 2) | (ratio < 0.5)]
    out += [
        "Length of stay calibrated to each ICB's 2024-25 occupancy instead (beds, admissions "
        "and the national peakedness unchanged; ICBs left out above keep their baseline): "
        f"England OAP bed-days {alt.sum():,.0f} a year against {base_bd.sum():,.0f}; "
        f"Spearman rho of ICB OAP bed-days between the two {rho_alt:.2f} (n = {n_alt}); "
        f"ratio 2024-25 / 2025-26 for ICBs with more than 100 bed-days: median "
        f"{ratio.median():.2f}, {len(big)} of {ratio.notna().sum()} ICBs change by a factor "
        f"of more than 2 ({', '.join(sorted(mi.loc[big.index, 'icb']))}).",
        "",
        "| ICB | beds 2025-26 | occupancy 2025-26 | beds 2024-25 | occupancy 2024-25 | "
        "difference, points | beds 2019-20 Q3 | occupancy 2019-20 Q3 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in cmp.sort_values("icb").itertuples():
        out.append(
            f"| {r.icb} | {fmt(r.beds_available)} | {fmt(r.occ, '.1%')} | "
            f"{fmt(r.beds_available_24)} | {fmt(r.occ_24, '.1%')} | {fmt(r.d24, '+.1f')} | "
            f"{fmt(r.beds_available_19)} | {fmt(r.occ_19, '.1%')} |"
        )
    out.append("")

    # 4. the plot and the per-ICB OAP table ------------------------------------
    path = plot(df, rho20, n20, args.out)
    out += [
        f"Plot written: `{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`.",
        "",
        "| ICB | model OAP bed-days per 100k | 2020 OAPs active per 100k | 2020 coverage | "
        "Feb 2017 OAP days per 100k |",
        "|---|---:|---:|---:|---:|",
    ]
    t = df.merge(d16[["icb_cd", "days_per100k"]], on="icb_cd", how="left")
    for r in t.sort_values("icb").itertuples():
        obs = fmt(r.obs_2020_per100k, ".2f") if r.full_2020 else "-"
        out.append(
            f"| {r.icb} | {fmt(r.model_per100k)} | {obs} | {fmt(r.coverage, '.0%')} | "
            f"{fmt(r.days_per100k, '.1f', na='-')} |"
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
