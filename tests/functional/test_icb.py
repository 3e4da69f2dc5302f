"""Every ICB's scenario starts from published beds and matches its published occupancy."""

from __future__ import annotations

import pandas as pd
import pytest

from pathways import queues
from pathways._paths import data_dir
from pathways.cli import main
from pathways.errors import InputError
from pathways.geography import list_icbs
from pathways.icb import (
    ICB_PEAKEDNESS,
    OCCUPANCY_TARGET_MAX,
    adult_acute_share,
    calibrate_los,
    icb_trust_beds,
    make_icb_scenario,
    site_beds,
)
from pathways.kpis import evaluate
from pathways.scenario import load_scenario


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    """All 42 ICBs through ``pathways scenario new``, read back from the files it writes."""
    folder = tmp_path_factory.mktemp("icbs")
    rows = []
    for code in list_icbs()["icb_cd"]:
        path = folder / f"{code}.yaml"
        assert main(["scenario", "new", code, "--out", str(path)]) == 0
        sc = load_scenario(path)
        assert sc.model_dump(exclude={"base_dir"}) == make_icb_scenario(code).model_dump(
            exclude={"base_dir"}
        )
        k = evaluate(sc).kpis
        sb = site_beds(code)
        rows.append(
            {
                "icb": code,
                "beds": sum(s.capacity.inpatient_beds for s in sc.sites),
                "mi_beds": sb["mi_beds"].sum(),
                "mi_published": sb.loc[~sb["source"].str.startswith("estimate"), "mi_beds"].sum(),
                "kh03_occupancy": sb["mi_occupied"].sum() / sb["mi_beds"].sum(),
                "occupancy": k["inpatient_occupancy"],
                "oap_bed_days": k["oap_bed_days_per_year"],
                "blocked": k["oap_placements_per_year"] / k["admissions_per_year"],
                "los": sc.queues.inpatient_los_days,
                "peakedness": sc.queues.inpatient_peakedness,
                "description": sc.description,
            }
        )
    return pd.DataFrame(rows)


def test_all_42_icbs_build_and_their_beds_add_up_to_kh03(national):
    assert len(national) == 42 and (national["beds"] > 0).all()
    kh03 = pd.read_parquet(data_dir() / "kh03_mental_illness_beds.parquet")
    base = kh03[kh03["baseline"] & (kh03["quarter"] != "estimate")]
    england = base.groupby("quarter")["beds_available"].sum().mean()
    assert national["mi_published"].sum() == pytest.approx(england, rel=1e-9)
    # adult acute beds: the assumed share of all beds, rounded once per ICB
    total = icb_trust_beds()["beds_available"].sum()
    assert abs(national["beds"].sum() - adult_acute_share() * total) <= 21


def test_length_of_stay_matches_each_icbs_kh03_occupancy(national):
    assert (national["peakedness"] == ICB_PEAKEDNESS).all()
    matched = national["description"].str.contains("calibrated so that today's beds")
    assert matched.all(), national.loc[~matched, "icb"].tolist()
    target = national["kh03_occupancy"].clip(upper=OCCUPANCY_TARGET_MAX)
    assert (national["occupancy"] - target).abs().max() < 0.002
    capped = national["description"].str.contains("capped at")
    assert (capped == (national["kh03_occupancy"] > OCCUPANCY_TARGET_MAX)).all()
    # England: within 2 points of KH03's occupancy for the same quarters
    kh03 = pd.read_parquet(data_dir() / "kh03_mental_illness_beds.parquet")
    base = kh03[kh03["baseline"] & (kh03["quarter"] != "estimate")]
    england = base["beds_occupied"].sum() / base["beds_available"].sum()
    modelled = (national["occupancy"] * national["beds"]).sum() / national["beds"].sum()
    assert abs(modelled - england) < 0.02


def test_national_oap_bed_days_are_near_the_published_figure(national):
    # the peakedness was calibrated to 206,000 a year; the ICBs' OAPs vary with their data
    assert national["oap_bed_days"].sum() == pytest.approx(206_000, rel=0.02)
    # beds were once set in proportion to demand (blocked shares 2.9-3.5% everywhere);
    # from published beds and occupancy they range from almost none to a third
    assert national["blocked"].min() < 0.001 and national["blocked"].max() > 0.2


def test_calibrate_los_inverts_the_occupancy_formula():
    los, ok = calibrate_los(3000.0, 300, 0.93, 1.5)
    load = 3000.0 * los / 365.0
    occ = load * (1 - float(queues.erlang_b_peaked(load, 300, 1.5))) / 300
    assert ok and occ == pytest.approx(0.93, abs=2e-4)  # LOS rounded to 0.001 day
    assert calibrate_los(3000.0, 300, 0.9999, 1.0) == (120.0, False)
    with pytest.raises(InputError, match="cannot calibrate"):
        calibrate_los(3000.0, 0, 0.9)


def test_scenario_new_refuses_to_overwrite_and_lists_ambiguous_names(tmp_path, capsys):
    out = tmp_path / "kent.yaml"
    assert main(["scenario", "new", "QKS", "--out", str(out)]) == 0
    assert "Kent and Medway" in out.read_text().splitlines()[0]
    assert main(["scenario", "new", "Kent and Medway", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["scenario", "new", "Kent and Medway", "--out", str(out), "--force"]) == 0
    assert main(["scenario", "new", "London", "--out", str(tmp_path / "l.yaml")]) == 2
    err = capsys.readouterr().err
    assert "'North Central London'" in err and "'South West London'" in err
    assert main(["scenario", "new", "Kent and Medway", "--out", str(tmp_path / "k.txt")]) == 2
    assert ".yaml" in capsys.readouterr().err


def test_scenario_list_gives_all_42_with_codes_and_published_beds(capsys):
    import json

    assert main(["scenario", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 42 and all(r["ods_code"].startswith("Q") for r in rows)
    assert sum(r["mental_illness_beds_kh03"] for r in rows) == pytest.approx(
        icb_trust_beds()["beds_available"].sum(), abs=42
    )
