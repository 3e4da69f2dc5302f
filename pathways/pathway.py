"""Routing of crisis episodes through the tiers of the pathway.

The graph (see ``ROUTING_TARGETS`` in :mod:`pathways.scenario`)::

    first contact -> mobile team ------\\
                  -> place of safety / A&E liaison --> crisis house --> inpatient
                  -> crisis house ------/                               |
                                                          local bed <---+---> out-of-area

Each node splits its episodes by the routing fractions. Two overflow edges
carry the effect of capacity:

* a crisis-house referral that finds the house full, or has no house within
  reach, is admitted with probability ``crisis_house_full_to_inpatient_share``
  and otherwise stays with home treatment;
* an admission that finds every local bed full becomes an out-of-area placement.

Every episode ends in exactly one terminal outcome (``TERMINAL_OUTCOMES``); this
is property-tested. All functions are vectorised over areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pathways.scenario import PathwayParams


@dataclass(frozen=True)
class Flows:
    """Expected episodes per year through each node and into each outcome, per area."""

    episodes: np.ndarray
    mobile_team: np.ndarray
    place_of_safety: np.ndarray
    crisis_house_referrals: np.ndarray
    crisis_house_served: np.ndarray
    crisis_house_turned_away: np.ndarray
    admissions: np.ndarray
    resolved: np.ndarray
    home_treatment: np.ndarray
    admitted_local: np.ndarray
    admitted_out_of_area: np.ndarray

    def terminal_total(self) -> np.ndarray:
        return self.resolved + self.home_treatment + self.admitted_local + self.admitted_out_of_area


@dataclass(frozen=True)
class Coefficients:
    """Per-episode shares that do not depend on capacity (the linear part of the pathway).

    admissions = episodes * direct_admission + referrals * (served_share * ch_to_inpatient
                 + (1 - served_share) * full_to_inpatient)
    """

    to_mobile: float
    to_place_of_safety: float
    to_crisis_house: float
    direct_admission: float
    ch_to_inpatient: float
    full_to_inpatient: float


def coefficients(params: PathwayParams) -> Coefficients:
    r = params.routing
    fc, mob, pos = r["first_contact"], r["mobile_team"], r["place_of_safety"]
    return Coefficients(
        to_mobile=fc["mobile_team"],
        to_place_of_safety=fc["place_of_safety"],
        to_crisis_house=fc["crisis_house"]
        + fc["mobile_team"] * mob["crisis_house"]
        + fc["place_of_safety"] * pos["crisis_house"],
        direct_admission=fc["mobile_team"] * mob["inpatient"]
        + fc["place_of_safety"] * pos["inpatient"],
        ch_to_inpatient=r["crisis_house"]["inpatient"],
        full_to_inpatient=params.crisis_house_full_to_inpatient_share,
    )


def route(
    episodes: np.ndarray,
    params: PathwayParams,
    crisis_house_served_share: np.ndarray | float,
    out_of_area_share: float,
) -> Flows:
    """Push episodes through the graph.

    Parameters
    ----------
    episodes
        In-person crisis episodes per area per year.
    params
        Routing fractions and overflow shares.
    crisis_house_served_share
        Per area, the share of crisis-house referrals that get a place (reachable and
        not turned away by a full house).
    out_of_area_share
        Share of admissions that find no local bed (the pooled blocking probability).
    """
    e = np.asarray(episodes, dtype=float)
    served_share = np.broadcast_to(np.asarray(crisis_house_served_share, dtype=float), e.shape)
    r = params.routing
    fc, mob_r, pos_r, ch_r = (
        r["first_contact"],
        r["mobile_team"],
        r["place_of_safety"],
        r["crisis_house"],
    )
    full_adm = params.crisis_house_full_to_inpatient_share

    mob = e * fc["mobile_team"]
    pos = e * fc["place_of_safety"]
    referrals = e * fc["crisis_house"] + mob * mob_r["crisis_house"] + pos * pos_r["crisis_house"]
    served = referrals * served_share
    turned = referrals - served
    admissions = (
        mob * mob_r["inpatient"]
        + pos * pos_r["inpatient"]
        + served * ch_r["inpatient"]
        + turned * full_adm
    )
    resolved = mob * mob_r["resolved"] + pos * pos_r["resolved"] + served * ch_r["resolved"]
    home = (
        mob * mob_r["home_treatment"]
        + pos * pos_r["home_treatment"]
        + served * ch_r["home_treatment"]
        + turned * (1.0 - full_adm)
    )
    oap = admissions * out_of_area_share
    return Flows(
        episodes=e,
        mobile_team=mob,
        place_of_safety=pos,
        crisis_house_referrals=referrals,
        crisis_house_served=served,
        crisis_house_turned_away=turned,
        admissions=admissions,
        resolved=resolved,
        home_treatment=home,
        admitted_local=admissions - oap,
        admitted_out_of_area=oap,
    )


def admission_share(params: PathwayParams, crisis_house_served_share: float) -> float:
    """Share of episodes admitted when a given share of crisis-house referrals gets a place."""
    c = coefficients(params)
    return c.direct_admission + c.to_crisis_house * (
        crisis_house_served_share * c.ch_to_inpatient
        + (1 - crisis_house_served_share) * c.full_to_inpatient
    )
