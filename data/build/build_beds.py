"""Build the bundled NHS bed-stock tables from the raw NHS organisation data.

Usage (from the repository root)::

    python data/build/build_beds.py --raw RAW [--out data]

``RAW`` is the raw-data folder holding the NHS files listed in ``data/SOURCES.md``
(KH03 "Bed availability and occupancy, overnight" workbooks, the KH03 mental illness
series 2013-2018, the ODS trust and ICB lists, the NHS Choices hospital list about
2020) and ``data/mh_sites_2014.parquet`` and ``data/lsoa.parquet`` already built by
``build_data.py``. It writes:

- ``kh03_mental_illness_beds.parquet``: mental illness beds available and occupied
  (average of the quarter's days) per NHS trust and quarter, as published; the four
  latest quarters are flagged ``baseline`` (used to build today's capacity), the
  others are kept for validation. Trusts missing from the workbooks but known to run
  mental health beds get one row, ``source = "estimate"``, from their last figure in
  the 2013-2018 series.
- ``trust_sites.parquet``: each such trust's hospital sites with coordinates
  (EPSG:27700), their LSOA and ICB, and the apportioning weight (below).
- ``icb_trust_beds.parquet``: each ICB's share of each trust's beds, and the beds
  that share gives (mean of the baseline quarters).
- ``icb_codes.parquet``: the 42 ICBs' ONS (E54) and ODS (Q..) codes and names, so an
  ICB can be named by either code.

**Apportioning rule.** A trust's beds are split over its sites in proportion to the
population (mid-2015) living nearer to that site than to any other mental health
site in England (straight-line distance between LSOA centroids and sites), plus one
person so that every site has a share; each site's beds belong to the ICB it lies in.
A trust's sites are its mental health hospitals in the 2014 NHS Choices list; failing
those, its hospitals in the 2020 list; failing both (trusts formed by mergers since),
all its beds go to the ICB of its headquarters (ODS). Shares sum to one for every
trust, so the England total over ICBs equals the KH03 total exactly.

The build is deterministic.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer
from scipy.spatial import cKDTree

log = logging.getLogger("build_beds")

RAW_KH03_GLOB = "Beds-Open-Overnight-Web_File-*.xlsx"
RAW_KH03_SERIES = "nhsr_intro_r_beds_data_KH03_MI_2013Q2-2018Q2.csv.gz"
RAW_TRUSTS = "ods_etr.csv.gz"
RAW_ICBS = "ods_icb_names_codes_dec_2024.csv.gz"
RAW_HOSPITALS_2020 = "nhs_choices_Hospital_2020.csv.gz"
KH03_SHEET = "NHS Trust by Sector"
#: Quarters used for today's capacity: the four latest in the raw folder.
BASELINE_QUARTERS = 4
#: Two sites of one trust closer than this (metres) are the same hospital.
SAME_SITE_M = 500.0
#: Trusts formed by mergers since the hospital lists were published, and the trusts
#: they absorbed (ODS): North London NHS FT (Barnet, Enfield and Haringey with Camden
#: and Islington, 2024); Essex Partnership University NHS FT (South and North Essex
#: partnership trusts, 2017).
PREDECESSORS = {"G6V2S": ("RRP", "TAF"), "R1L": ("RWN", "RRD")}
MONTH_QUARTER = {"june": 1, "september": 2, "december": 3, "march": 4}


def _nhs_path(raw: Path, name: str) -> Path:
    """Raw NHS files may sit in ``RAW`` or in ``RAW/nhs``."""
    for folder in (raw / "nhs", raw):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{name} not found under {raw} (or {raw / 'nhs'})")


def read_kh03_workbook(path: Path) -> pd.DataFrame:
    """Mental illness beds per trust in one KH03 quarterly workbook."""
    sheet = pd.read_excel(path, sheet_name=KH03_SHEET, header=None)
    first = sheet.iloc[:, 1].astype(str).str.strip()
    head = int(np.flatnonzero(first.to_numpy() == "Year")[0])
    labels = sheet.iloc[head].astype(str).str.strip().tolist()
    groups = sheet.iloc[head - 1].ffill().astype(str).str.strip().tolist()
    mi = [c for c, lab in enumerate(labels) if lab == "Mental Illness"]
    col = {groups[c]: c for c in mi}
    code_c, name_c, region_c = labels.index("Org Code"), labels.index("Org Name"), labels.index(
        "Region Code"
    )
    rows = sheet.iloc[head + 1 :]
    rows = rows[rows.iloc[:, code_c].notna()]
    year = str(rows.iloc[0, 1]).strip()
    month = str(rows.iloc[0, 2]).strip().lower()
    q = MONTH_QUARTER[month]
    out = pd.DataFrame(
        {
            "trust_code": rows.iloc[:, code_c].astype(str).str.strip(),
            "trust_name": rows.iloc[:, name_c].astype(str).str.strip(),
            "region_code": rows.iloc[:, region_c].astype(str).str.strip(),
            "beds_available": pd.to_numeric(rows.iloc[:, col["Available"]], errors="coerce"),
            "beds_occupied": pd.to_numeric(rows.iloc[:, col["Occupied"]], errors="coerce"),
        }
    )
    out = out[out["beds_available"].fillna(0) > 0].copy()
    out["quarter"] = f"{year} Q{q}"
    out["source"] = f"KH03 {year} Q{q}"
    return out


def read_kh03(raw: Path) -> pd.DataFrame:
    folder = _nhs_path(raw, RAW_KH03_SERIES).parent
    books = sorted(folder.glob(RAW_KH03_GLOB))
    if not books:
        raise FileNotFoundError(f"no KH03 workbooks ({RAW_KH03_GLOB}) under {folder}")
    table = pd.concat([read_kh03_workbook(p) for p in books], ignore_index=True)
    quarters = sorted(table["quarter"].unique())
    latest = quarters[-BASELINE_QUARTERS:]
    table["baseline"] = table["quarter"].isin(latest)
    return table.sort_values(["quarter", "trust_code"]).reset_index(drop=True)


def read_kh03_series(raw: Path) -> pd.DataFrame:
    """KH03 mental illness series 2013-2018 (date, org code, name, available, occupied)."""
    s = pd.read_csv(_nhs_path(raw, RAW_KH03_SERIES), skiprows=3, header=None,
                    names=["date", "trust_code", "trust_name", "available", "occupied"])  # fmt: skip
    s["date"] = pd.to_datetime(s["date"], format="%d/%m/%Y", errors="coerce")
    for c in ("available", "occupied"):
        s[c] = pd.to_numeric(s[c], errors="coerce")
    return s.dropna(subset=["date", "available"])


def read_trusts(raw: Path) -> pd.DataFrame:
    """ODS trusts: code, name, headquarters ICB (ONS E54 code)."""
    etr = pd.read_csv(_nhs_path(raw, RAW_TRUSTS), header=None, dtype=str)
    icbs = pd.read_csv(_nhs_path(raw, RAW_ICBS), dtype=str)
    ods_to_ons = dict(zip(icbs["ICB24CDH"], icbs["ICB24CD"], strict=True))
    return pd.DataFrame(
        {
            "trust_code": etr[0].str.strip(),
            "ods_name": etr[1].str.strip(),
            "hq_icb_cd": etr[3].str.strip().map(ods_to_ons),
        }
    )


#: Trusts that run mental health beds but have no row in any 2019-2026 KH03 workbook
#: here (South London and Maudsley, Leicestershire Partnership). Their beds are
#: estimated from their last figure in the 2013-2018 series and labelled as such.
#: (Other trusts absent from the recent workbooks merged into trusts that report.)
MISSING_FROM_KH03 = ("RV5", "RT5")


def missing_trusts(kh03: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """One estimated row per trust of :data:`MISSING_FROM_KH03`: its last series figure."""
    absent = [c for c in MISSING_FROM_KH03 if c not in set(kh03["trust_code"])]
    last = series[series["trust_code"].isin(absent)].sort_values("date")
    return last.groupby("trust_code").tail(1).sort_values("trust_code").reset_index(drop=True)


def site_table(raw: Path, data: Path, trusts: list[str]) -> gpd.GeoDataFrame:
    """Every candidate site of the given trusts, with coordinates, LSOA and ICB."""
    mh14 = gpd.read_parquet(data / "mh_sites_2014.parquet")
    mh14 = mh14[["site_id", "name", "trust_code", "x", "y", "lsoa11cd", "icb_cd"]].copy()
    mh14["site_list"] = "NHS Choices 2014 (mental health hospitals)"
    h20 = pd.read_csv(_nhs_path(raw, RAW_HOSPITALS_2020), sep="\u00ac", engine="python",
                      encoding="latin-1", dtype=str)  # fmt: skip
    h20 = h20[h20["Latitude"].notna()].copy()  # sites are matched by trust code below
    to_bng = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    x, y = to_bng.transform(h20["Longitude"].astype(float).to_numpy(),
                            h20["Latitude"].astype(float).to_numpy())  # fmt: skip
    h20 = pd.DataFrame(
        {
            "site_id": h20["OrganisationCode"].str.strip(),
            "name": h20["OrganisationName"].str.strip(),
            "trust_code": h20["ParentODSCode"].str.strip(),
            "x": np.round(x),
            "y": np.round(y),
        }
    )
    h20["site_list"] = "NHS Choices 2020 (hospitals)"
    # a trust's sites under its own code or, for trusts formed by mergers, its
    # predecessors' codes; in the 2020 list, also sites whose code starts with the trust's
    frames = []
    for code in trusts:
        codes = (code, *PREDECESSORS.get(code, ()))
        a = mh14[mh14["trust_code"].isin(codes)]
        b = h20[h20["trust_code"].isin(codes) | h20["site_id"].str.startswith(codes)]
        if len(a) and len(b):  # the same hospital in both lists: keep the 2014 row
            d, _ = cKDTree(np.c_[a["x"], a["y"]]).query(np.c_[b["x"], b["y"]])
            b = b[d > SAME_SITE_M]
        frames.append(pd.concat([a, b]).assign(trust_code=code))
    sites = pd.concat(frames, ignore_index=True)
    sites = sites.drop_duplicates(subset=["trust_code", "site_id"]).reset_index(drop=True)
    lsoa = gpd.read_parquet(data / "lsoa.parquet", columns=["lsoa11cd", "icb_cd", "geometry"])
    pts = gpd.GeoDataFrame(sites, geometry=gpd.points_from_xy(sites.x, sites.y), crs=lsoa.crs)
    joined = gpd.sjoin(pts.drop(columns=["lsoa11cd", "icb_cd"]), lsoa, how="left",
                       predicate="within").drop(columns="index_right")  # fmt: skip
    joined = joined[~joined.index.duplicated()]
    # sites just outside the simplified boundaries (coast, rounding): nearest LSOA
    miss = joined["lsoa11cd"].isna()
    if miss.any():
        cent = np.c_[lsoa.geometry.centroid.x, lsoa.geometry.centroid.y]
        _, idx = cKDTree(cent).query(np.c_[joined.loc[miss, "x"], joined.loc[miss, "y"]])
        joined.loc[miss, "lsoa11cd"] = lsoa["lsoa11cd"].to_numpy()[idx]
        joined.loc[miss, "icb_cd"] = lsoa["icb_cd"].to_numpy()[idx]
    return joined.reset_index(drop=True)


def nearest_population(sites: gpd.GeoDataFrame, data: Path) -> np.ndarray:
    """Population living nearer to each site than to any other site in the table."""
    lsoa = pd.read_parquet(data / "lsoa.parquet", columns=["pop_total", "centroid_x", "centroid_y"])
    tree = cKDTree(np.c_[sites["x"], sites["y"]])
    _, idx = tree.query(np.c_[lsoa["centroid_x"], lsoa["centroid_y"]])
    return np.bincount(idx, weights=lsoa["pop_total"].to_numpy(float), minlength=len(sites))


def icb_codes(raw: Path, data: Path) -> pd.DataFrame:
    """The bundled ICBs (codes of the LSOA lookup) with their ODS codes, matched by name
    (two ICBs, Surrey Heartlands and Sussex, took new ONS codes in 2024 with boundary
    changes; their ODS codes did not change)."""
    ods = pd.read_csv(_nhs_path(raw, RAW_ICBS), dtype=str)
    ods_by_name = dict(zip(ods["ICB24NM"].str.casefold(), ods["ICB24CDH"], strict=True))
    icbs = pd.read_parquet(data / "lsoa.parquet", columns=["icb_cd", "icb_nm"]).drop_duplicates()
    icbs["icb_ods_cd"] = icbs["icb_nm"].str.casefold().map(ods_by_name)
    if icbs["icb_ods_cd"].isna().any():
        missing = icbs.loc[icbs["icb_ods_cd"].isna(), "icb_nm"].tolist()
        raise ValueError(f"ICBs without an ODS code in {RAW_ICBS}: {missing}")
    return icbs.sort_values("icb_cd").reset_index(drop=True)


def build(raw: Path, out: Path) -> dict:
    kh03 = read_kh03(raw)
    series = read_kh03_series(raw)
    trusts = read_trusts(raw)
    est = missing_trusts(kh03, series)
    baseline_q = sorted(kh03.loc[kh03["baseline"], "quarter"].unique())
    if len(est):
        est_rows = pd.DataFrame(
            {
                "trust_code": est["trust_code"],
                "trust_name": est["trust_name"],
                "region_code": "",
                "beds_available": est["available"].astype(float),
                "beds_occupied": est["occupied"].astype(float),
                "quarter": "estimate",
                "source": [f"estimate: last KH03 figure, {d:%B %Y}" for d in est["date"]],
                "baseline": True,
            }
        )
        beds = pd.concat([kh03, est_rows], ignore_index=True)
    else:
        beds = kh03
    names = beds.groupby("trust_code")["trust_name"].last()
    base = beds[beds["baseline"]]
    n_q = {code: (1 if q.eq("estimate").all() else len(baseline_q))
           for code, q in base.groupby("trust_code")["quarter"]}  # fmt: skip
    # mean over the baseline quarters, a quarter without a row counting as no beds (a
    # trust that merged mid-year), so the England total is the mean of quarterly totals
    per_trust = base.groupby("trust_code").agg(
        beds_available=("beds_available", "sum"),
        beds_occupied=("beds_occupied", "sum"),
        source=("source", lambda s: "KH03 mean of " + ", ".join(baseline_q)
                if not s.str.startswith("estimate").any() else s.iloc[0]),
    )  # fmt: skip
    quarters_n = per_trust.index.map(n_q).to_numpy(float)
    per_trust["beds_available"] /= quarters_n
    per_trust["beds_occupied"] /= quarters_n
    sites = site_table(raw, out, sorted(per_trust.index))
    # the apportioning weight: nearest population among all the trusts' sites
    sites["nearest_pop"] = nearest_population(sites, out) + 1.0
    rows = []
    hq = dict(zip(trusts["trust_code"], trusts["hq_icb_cd"], strict=False))
    for code, t in per_trust.iterrows():
        own = sites[sites["trust_code"] == code]
        if len(own):
            share = own.groupby("icb_cd")["nearest_pop"].sum() / own["nearest_pop"].sum()
            basis = f"{len(own)} site(s) in the NHS Choices hospital lists (2014, 2020)"
        elif isinstance(hq.get(code), str):
            share = pd.Series({hq[code]: 1.0})
            basis = "no site found: headquarters ICB (ODS)"
        else:
            raise ValueError(f"trust {code} ({names[code]}): no site and no headquarters ICB")
        for icb, s in share.items():
            rows.append(
                {
                    "icb_cd": icb,
                    "trust_code": code,
                    "trust_name": names[code],
                    "share": float(s),
                    "beds_available": float(s * t.beds_available),
                    "beds_occupied": float(s * t.beds_occupied),
                    "beds_source": t.source,
                    "apportioned_by": basis,
                }
            )
    icb_beds = pd.DataFrame(rows).sort_values(["icb_cd", "trust_code"]).reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    beds.to_parquet(out / "kh03_mental_illness_beds.parquet", index=False)
    site_cols = ["trust_code", "site_id", "name", "x", "y", "lsoa11cd", "icb_cd", "site_list",
                 "nearest_pop"]  # fmt: skip
    sites[site_cols].sort_values(["trust_code", "site_id"]).to_parquet(
        out / "trust_sites.parquet", index=False
    )
    icb_beds.to_parquet(out / "icb_trust_beds.parquet", index=False)
    icb_codes(raw, out).to_parquet(out / "icb_codes.parquet", index=False)
    kh03_total = float(kh03[kh03["baseline"]].groupby("quarter")["beds_available"].sum().mean())
    facts = {
        "baseline_quarters": baseline_q,
        "kh03_trusts": int(kh03.loc[kh03["baseline"], "trust_code"].nunique()),
        "kh03_england_beds_available_mean": round(kh03_total, 1),
        "estimated_trusts": sorted(est["trust_code"]) if len(est) else [],
        "trusts_by_headquarters": sorted(
            icb_beds.loc[icb_beds["apportioned_by"].str.startswith("no site"), "trust_code"]
        ),
        "icbs_with_beds": int(icb_beds["icb_cd"].nunique()),
    }
    (out / "beds_build_info.json").write_text(json.dumps(facts, indent=2) + "\n")
    log.info("%s", json.dumps(facts))
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw-data folder")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.raw, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
