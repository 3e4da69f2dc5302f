"""Settings of the pathway simulation, each with its unit and source.

The scenario's own parameters (rates, means of stays, routing, capacities, profiles)
are used as they are; :class:`SimParams` only adds what a steady-state formula does not
need: the shape of time (season, week), the spread of stays, repatriation of
out-of-area placements and the length of a run. ``SimParams.analytic()`` switches every
addition off, so that the simulation reproduces the analytic model's assumptions
(Poisson arrivals with the scenario's week profile, exponential stays, no season, no
repatriation); that is what the agreement tests use.

``PARAMETERS`` lists every field with its unit, source and meaning
(``docs/simulation.md`` prints the same table).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from pathways.errors import InputError, Problem

LOS_LAWS = ("lognormal", "exponential", "fixed")
REPATRIATION_RULES = ("after_days", "never")

PARAMETERS: dict[str, dict[str, str]] = {
    "seasonal_amplitude": {
        "unit": "share of the yearly mean rate (peak 1 + A, trough 1 - A)",
        "source": "assumption (labelled): a winter peak 10% above the yearly mean; England "
        "publishes no national size of the seasonal swing in acute mental health demand, so "
        "set it from your own monthly admissions (NHS England, Mental Health Services "
        "Monthly Statistics, admissions by month)",
        "meaning": "Size of the sinusoidal seasonal swing of every arrival stream.",
    },
    "seasonal_peak_day": {
        "unit": "day of the year (1 = 1 January)",
        "source": "assumption (labelled): mid-January, the usual NHS winter-pressure peak",
        "meaning": "Day on which every arrival stream peaks.",
    },
    "time_of_week": {
        "unit": "on/off",
        "source": "scenario: demand.weekday_profile x demand.hourly_profile (the same "
        "profile evaluate uses for the crisis line and mobile teams)",
        "meaning": "Arrivals follow the week's 168-hour profile (off: a flat rate).",
    },
    "los_distribution": {
        "unit": "name: lognormal, exponential or fixed",
        "source": "lognormal: lengths of stay in hospital are right-skewed and commonly "
        "modelled as lognormal (Marazzi, Paccaud, Ruffieux, Beguin, 'Fitting the "
        "distributions of length of stay by parametric models', Medical Care 36(6), 1998); "
        "exponential is the analytic model's own assumption",
        "meaning": "Law of every stay: ward, crisis house, out-of-area placement, place of "
        "safety. Means are the scenario's queues.*_los_days.",
    },
    "inpatient_los_cv": {
        "unit": "ratio (standard deviation / mean)",
        "source": "assumption (labelled): a standard deviation equal to the mean, the spread "
        "of an exponential stay, around the published mean of 33 days (Centre for Mental "
        "Health 2019)",
        "meaning": "Spread of a local ward stay (lognormal law only).",
    },
    "crisis_house_los_cv": {
        "unit": "ratio (standard deviation / mean)",
        "source": "assumption (labelled): stays planned at up to a week vary less than "
        "ward stays",
        "meaning": "Spread of a crisis-house stay (lognormal law only).",
    },
    "oap_los_cv": {
        "unit": "ratio (standard deviation / mean)",
        "source": "fitted to Grant Thornton's OAP analysis (77% of placements last 15+ "
        "nights, 46% 31+ nights): the lognormal through both points has mean 41 days "
        "(the scenario's default is 40) and CV 1.05",
        "meaning": "Spread of an out-of-area placement (lognormal law only).",
    },
    "place_of_safety_los_cv": {
        "unit": "ratio (standard deviation / mean)",
        "source": "assumption (labelled): stays are bounded by the 24-hour legal maximum "
        "(Mental Health Act 1983 s136, as amended by the Policing and Crime Act 2017)",
        "meaning": "Spread of a place-of-safety stay (lognormal law only).",
    },
    "repatriation": {
        "unit": "name: after_days or never",
        "source": "NHS England's commitment to end inappropriate out-of-area placements "
        "(Five Year Forward View for Mental Health, 2016) expects people to be brought back "
        "as soon as a local bed allows",
        "meaning": "after_days: an out-of-area patient comes back to the first local bed "
        "that frees once they have been away repatriation_after_days (longest away first); "
        "never: they stay away for the whole placement (the analytic model).",
    },
    "repatriation_after_days": {
        "unit": "days",
        "source": "assumption (labelled): no transfer in the first week of an acute "
        "admission",
        "meaning": "Days away before an out-of-area patient may be brought back.",
    },
    "years": {
        "unit": "years of 365 days",
        "source": "user setting",
        "meaning": "Length of the measured window of each replication.",
    },
    "warmup_days": {
        "unit": "days",
        "source": "user setting: two mean ward stays, after a start in the analytic steady "
        "state",
        "meaning": "Simulated before the window and discarded.",
    },
}


@dataclass(frozen=True)
class SimParams:
    """How the simulation departs from the analytic model (see ``PARAMETERS``)."""

    seasonal_amplitude: float = 0.10
    seasonal_peak_day: float = 15.0
    time_of_week: bool = True
    los_distribution: Literal["lognormal", "exponential", "fixed"] = "lognormal"
    inpatient_los_cv: float = 1.0
    crisis_house_los_cv: float = 0.5
    oap_los_cv: float = 1.05
    place_of_safety_los_cv: float = 0.5
    repatriation: Literal["after_days", "never"] = "after_days"
    repatriation_after_days: float = 7.0
    years: float = 1.0
    warmup_days: float = 60.0

    def __post_init__(self) -> None:
        problems = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem("simulate", None, name, message))

        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("los_distribution", "repatriation", "time_of_week"):
                continue
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                bad(f.name, "must be a finite number")
        if problems:
            raise InputError(problems)
        if not 0 <= self.seasonal_amplitude < 1:
            bad("seasonal_amplitude", "must be at least 0 and below 1")
        if not 1 <= self.seasonal_peak_day <= 366:
            bad("seasonal_peak_day", "must be a day of the year, 1 to 366")
        if not isinstance(self.time_of_week, bool):
            bad("time_of_week", "must be true or false")
        if self.los_distribution not in LOS_LAWS:
            bad("los_distribution", f"must be one of {', '.join(LOS_LAWS)}")
        for name in ("inpatient_los_cv", "crisis_house_los_cv", "oap_los_cv",
                     "place_of_safety_los_cv"):  # fmt: skip
            if not 0 <= getattr(self, name) <= 10:
                bad(name, "must be from 0 to 10")
        if self.repatriation not in REPATRIATION_RULES:
            bad("repatriation", f"must be one of {', '.join(REPATRIATION_RULES)}")
        if not 0 <= self.repatriation_after_days <= 365:
            bad("repatriation_after_days", "must be from 0 to 365 days")
        if not 0 < self.years <= 100 or round(self.years * 365) < 1:
            bad("years", "must cover at least one day and at most 100 years")
        if not 0 <= self.warmup_days <= 3650:
            bad("warmup_days", "must be from 0 to 3,650 days")
        if problems:
            raise InputError(problems)

    @classmethod
    def analytic(cls, **changes: Any) -> SimParams:
        """The analytic model's assumptions: no season, exponential stays, no repatriation."""
        base = cls(seasonal_amplitude=0.0, los_distribution="exponential", repatriation="never")
        return replace(base, **changes) if changes else base

    def with_changes(self, **changes: Any) -> SimParams:
        return replace(self, **changes)

    def cv(self, node: str) -> float | None:
        """Coefficient of variation of a stay at ``node`` (None: exponential)."""
        if self.los_distribution == "exponential":
            return None
        if self.los_distribution == "fixed":
            return 0.0
        return float(getattr(self, f"{node}_los_cv"))

    @property
    def days(self) -> int:
        return int(round(self.years * 365))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parameter_table() -> list[dict[str, Any]]:
    """Every setting with its default, unit, source and meaning."""
    d = SimParams()
    return [{"name": k, "default": getattr(d, k), **v} for k, v in PARAMETERS.items()]
