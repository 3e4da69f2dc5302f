"""Today's capacity in all 42 ICBs, modelled from published beds, against national figures.

Usage (from the repository root; needs only the bundled data)::

    python data/build/icb_baselines.py [--csv out.csv]

Builds every ICB's scenario with :func:`pathways.icb.make_icb_scenario`, evaluates it,
and prints two Markdown tables: England against the published figures, and one row per
ICB (the tables of ``docs/calibration.md``, section 5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pathways._paths import data_dir  # noqa: E402
from pathways.geography import list_icbs  # noqa: E402
from pathways.icb import make_icb_scenario, site_beds  # noqa: E402
from pathways.kpis import evaluate  # noqa: E402


def icb_table() -> pd.DataFrame:
    """One row per ICB: published beds, calibration and the modelled baseline."""
    icbs = list_icbs().set_index("icb_cd")
    rows = []
    for code in icbs.index:
        sc = make_icb_scenario(code)
        k = evaluate(sc).kpis
        sb = site_beds(code)
        rows.append(
            {
                "icb_cd": code,
                "icb": icbs.loc[code, "icb_short"],
                "population": float(icbs.loc[code, "pop_total"]),
                "mi_beds": float(sb["mi_beds"].sum()),
                "estimated": bool(sb["source"].str.startswith("estimate").any()),
                "adult_acute_beds": sum(s.capacity.inpatient_beds for s in sc.sites),
                "kh03_occupancy": float(sb["mi_occupied"].sum() / sb["mi_beds"].sum()),
                "model_occupancy": float(k["inpatient_occupancy"]),
                "los_days": float(sc.queues.inpatient_los_days),
                "admissions": float(k["admissions_per_year"]),
                "oap_placements": float(k["oap_placements_per_year"]),
                "oap_bed_days": float(k["oap_bed_days_per_year"]),
                "oap_cost_gbp": float(k["oap_cost_gbp_per_year"]),
            }
        )
    df = pd.DataFrame(rows)
    df["blocked_share"] = df["oap_placements"] / df["admissions"]
    return df


def markdown(df: pd.DataFrame) -> str:
    kh03 = pd.read_parquet(data_dir() / "kh03_mental_illness_beds.parquet")
    base = kh03[kh03["baseline"] & (kh03["quarter"] != "estimate")]
    england_occ = base["beds_occupied"].sum() / base["beds_available"].sum()
    occ = (df["model_occupancy"] * df["adult_acute_beds"]).sum() / df["adult_acute_beds"].sum()
    bd = df["oap_bed_days"].sum()
    lines = [
        "| measure | model, 42 ICBs | published England |",
        "|---|---:|---:|",
        f"| adult acute beds | {df['adult_acute_beds'].sum():,} | about 10,700 (19.5 per 100k) |",
        f"| occupancy (bed-weighted) | {occ:.1%} | {england_occ:.1%} (KH03 mental illness, "
        f"2025-26) |",
        f"| OAP bed-days a year | {bd:,.0f} | about 206,000 (inappropriate OAPs, 12 months "
        "to March 2021; calibration target) |",
        f"| OAPs active on a mean day | {bd / 365:,.0f} | about 700 at month end (2023/24 "
        "mean 704) |",
        f"| OAP spend | GBP {df['oap_cost_gbp'].sum() / 1e6:,.1f}M | GBP 108-134M a year |",
        f"| blocked share of admissions: min / median / max | "
        f"{df['blocked_share'].min():.2%} / {df['blocked_share'].median():.1%} / "
        f"{df['blocked_share'].max():.1%} | (varies by area) |",
        "",
        "| ICB | mental illness beds (KH03) | adult acute beds | KH03 occupancy | length of "
        "stay, days | blocked share | OAP bed-days per 100k |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in df.sort_values("icb").itertuples():
        star = " (includes an estimate)" if r.estimated else ""
        lines.append(
            f"| {r.icb} | {r.mi_beds:,.0f}{star} | {r.adult_acute_beds:,} | "
            f"{r.kh03_occupancy:.1%} | {r.los_days:.1f} | {r.blocked_share:.1%} | "
            f"{r.oap_bed_days / r.population * 1e5:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, help="also write the per-ICB table as CSV")
    args = parser.parse_args(argv)
    df = icb_table()
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(markdown(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
