"""Write the bundled demo scenario ``data/scenarios/sussex.yaml`` (NHS Sussex ICB).

Existing sites are the seven Sussex mental health hospital sites in the 2014 NHS list
(data/mh_sites_2014.parquet). Their bed numbers, team bases and suites are
*assumptions*, not published figures: 300 adult acute beds (18 per 100,000 of Sussex's
1,659,921 people; the national median is about 19-20 per 100k, NHS Benchmarking Network
2016 via the Centre for Mental Health, and Sussex is less deprived than England, so the
model's demand there is about 10% below average: 300 beds put modelled occupancy near the
94-95% reported nationally, Centre for Mental Health 2019) split across the adult sites
roughly by the size of their towns' populations.

Candidate sites are *illustrative*: the centroid LSOA of 27 population-weighted
clusters (k-means, fixed seed) of Sussex's LSOAs, i.e. town centres, each able to host
a crisis house and a mobile-team base.

Run: ``python data/build/make_sussex.py`` (re-runnable; deterministic).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pathways.icb import kmeans  # noqa: E402 - the one weighted k-means, shared with ICB scenarios

ICB = "E54000053"

# site_id -> (beds, mobile teams, place-of-safety suites, note)
EXISTING = {
    "RX213": (80, 2, 1, "Mill View Hospital, Hove: adult acute wards serving Brighton and Hove"),
    "RX2P0": (64, 2, 1, "Langley Green Hospital, Crawley: adult acute wards for north West Sussex"),
    "RX277": (56, 1, 1, "Meadowfield, Worthing: adult acute wards for coastal West Sussex"),
    "RX2E7": (56, 2, 1, "Department of Psychiatry, Eastbourne DGH: adult acute wards for East Sussex"),
    "RX250": (24, 1, 0, "Clayton Ward, Princess Royal Hospital, Haywards Heath"),
    "RX298": (20, 0, 0, "Dove Ward, Crawley Hospital"),
    "RX2X4": (0, 0, 0, "Chalkhill, Haywards Heath: children's unit, no adult beds; kept as a possible team base"),
}
TODAY_CRISIS_HOUSE = 6  # places at the candidate nearest Brighton's centre (illustrative)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(REPO / "data" / "scenarios" / "sussex.yaml"))
    ap.add_argument("--candidates", type=int, default=27)
    args = ap.parse_args(argv)

    lsoa = pd.read_parquet(REPO / "data" / "lsoa.parquet",
                           columns=["lsoa11cd", "msoa11nm", "lad19nm", "icb_cd", "pop_total", "centroid_x", "centroid_y"])
    lsoa = lsoa[lsoa.icb_cd == ICB].reset_index(drop=True)
    sites = pd.read_parquet(REPO / "data" / "mh_sites_2014.parquet", columns=["site_id", "name", "x", "y", "icb_cd"])
    sites = sites[sites.icb_cd == ICB].set_index("site_id")
    pop = float(lsoa.pop_total.sum())

    out_sites = []
    for sid, (beds, teams, suites, note) in EXISTING.items():
        s = sites.loc[sid]
        services = ["mobile_team"] + (["inpatient"] if beds else []) + (["place_of_safety"] if suites else [])
        out_sites.append({
            "site_id": sid, "name": str(s["name"]), "x_m": float(s.x), "y_m": float(s.y), "status": "existing",
            "services": services,
            "capacity": {"inpatient_beds": beds, "mobile_teams": teams, "place_of_safety_suites": suites},
            "min_capacity": {"inpatient_beds": round(0.85 * beds)},
            "can_shrink": True, "can_close": False, "illustrative": True,
            "note": f"{note}. Capacities are assumptions (300 adult acute beds, 18 per 100k, split by catchment); "
                    "beds may fall by at most 15% at a site.",
        })

    xy = lsoa[["centroid_x", "centroid_y"]].to_numpy(float)
    centres = kmeans(xy, lsoa.pop_total.to_numpy(float), args.candidates)
    chosen = []
    for c in centres:
        i = int(((xy - c) ** 2).sum(axis=1).argmin())
        chosen.append(i)
    brighton = min(chosen, key=lambda i: (xy[i, 0] - 531000) ** 2 + (xy[i, 1] - 104500) ** 2)
    for n, i in enumerate(sorted(set(chosen), key=lambda i: (lsoa.lad19nm[i], lsoa.msoa11nm[i]))):
        row = lsoa.iloc[i]
        today = TODAY_CRISIS_HOUSE if i == brighton else 0
        out_sites.append({
            "site_id": f"CAND{n + 1:02d}", "name": f"{row.msoa11nm} (population centre)",
            "x_m": round(float(row.centroid_x)), "y_m": round(float(row.centroid_y)),
            "status": "existing" if today else "candidate",
            "services": ["crisis_house", "mobile_team"],
            "capacity": {"crisis_house_places": today},
            "min_capacity": {"crisis_house_places": 4, "mobile_teams": 1},
            "max_capacity": {"crisis_house_places": 12, "mobile_teams": 3},
            "illustrative": True,
            "note": (f"Illustrative candidate: centroid of LSOA {row.lsoa11cd}, the centre of a population cluster"
                     + ("; today's crisis house (6 places, an assumption)" if today else "")),
        })

    scenario = {
        "name": "NHS Sussex ICB (demo)",
        "description": (
            "Demo scenario for NHS Sussex ICB (E54000053): 995 LSOAs, 1,659,921 people (mid-2015). Existing "
            "sites from the 2014 NHS mental health hospital list with ASSUMED capacities; candidate sites are "
            "illustrative town-centre locations. Revenue budget GBP 60M a year: about GBP 4M above the modelled cost of today's services."
        ),
        "footprint": {"icb": ICB},
        "sites": out_sites,
        "hub": {"night": 2, "day": 3, "evening": 3},
        "budget": {"revenue_gbp_per_year": 60_000_000, "capital_gbp": 5_000_000},
        "objective": {"mode": "min_weighted"},
        "constraints": {"mobile_within_standard_share_min": 0.80, "hub_service_level_min": 0.80,
                        "crisis_house_travel_mins": 45, "crisis_house_population_share_min": 0.6,
                        "equity": {"enabled": True, "max_gap_share": 0.02}},
    }
    text = "# Generated by data/build/make_sussex.py - edit that script, not this file.\n"
    text += f"# Population {pop:,.0f}; capacities are assumptions (see notes).\n"
    text += yaml.safe_dump(scenario, sort_keys=False, width=110)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}: {len(out_sites)} sites")


if __name__ == "__main__":
    main()
