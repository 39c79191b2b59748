"""The action catalog and the observation features: the vocabulary shared by simulator, logs and policies.

Action 0 is always "no email"; actions ``1..`` are every (offer, send slot) pair of the scenario, offers
outermost, in the order the scenario lists them. Observation features are what the business sees about a
customer (never the simulator's latent traits); their names are the context columns of logged data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.errors import NextbestError
from nextbest.scenario import Scenario

__all__ = ["NO_EMAIL", "ActionCatalog", "observation_features"]

NO_EMAIL = 0

#: Observation features before the one-hot ``last_category_<name>`` columns, in order.
BASE_FEATURES: tuple[str, ...] = (
    "recency_days",  # days since last purchase (capped at 365; tenure if never bought)
    "frequency",  # purchases so far
    "monetary_avg",  # average order value so far (0 if none), currency
    "days_since_email",  # days since the last email we sent (capped at 365)
    "sends_7d",
    "sends_30d",
    "opens_7d",
    "opens_30d",
    "clicks_7d",
    "clicks_30d",
    "tenure_days",  # days since sign-up (capped at 3650)
    "discount_share",  # share of purchases made with a discount or free-shipping coupon
    "coupon_days_left",  # days left on an open coupon we sent (0 if none)
    "consent",  # 1 if we may email the customer (consent given and not unsubscribed)
    "campaign_day",  # day of the campaign, 0-based
)


#: Upper bound of each base feature (observations are clipped to it; the one-hot columns are <= 1).
FEATURE_HIGH: dict[str, float] = {
    "recency_days": 365,
    "frequency": 1000,
    "monetary_avg": 100_000,
    "days_since_email": 365,
    "sends_7d": 7,
    "sends_30d": 30,
    "opens_7d": 7,
    "opens_30d": 30,
    "clicks_7d": 7,
    "clicks_30d": 30,
    "tenure_days": 3650,
    "discount_share": 1,
    "coupon_days_left": 60,
    "consent": 1,
    "campaign_day": 3650,
}


def feature_bounds(features: tuple[str, ...]) -> np.ndarray:
    """Upper bounds of ``features`` (float32 ``(d,)``); all features are >= 0."""
    return np.array([FEATURE_HIGH.get(f, 1.0) for f in features], dtype=np.float32)


def observation_features(scenario: Scenario) -> tuple[str, ...]:
    """Names of the observation vector's entries for ``scenario`` (the logged context columns)."""
    return BASE_FEATURES + tuple(f"last_category_{c}" for c in scenario.categories)


@dataclass(frozen=True)
class ActionCatalog:
    """Every action a policy can take, with per-action attribute arrays of shape ``(n_actions,)``.

    Attributes:
        names: ``"no_email"`` then ``"<offer>@<slot>"``.
        offers: offer name per action (``"none"`` for action 0).
        slots: slot name per action (``"none"`` for action 0).
        offer_index: index into the scenario's offers, -1 for no email.
        slot_index: index into the scenario's slots, -1 for no email.
        hour: send hour per action (NaN for no email).
        sends: 1.0 for email actions, 0.0 for no email.
    """

    names: tuple[str, ...]
    offers: tuple[str, ...]
    slots: tuple[str, ...]
    offer_index: np.ndarray
    slot_index: np.ndarray
    hour: np.ndarray
    sends: np.ndarray

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> ActionCatalog:
        names, offers, slots, oi, si, hours = ["no_email"], ["none"], ["none"], [-1], [-1], [np.nan]
        for i, offer in enumerate(scenario.offers):
            for j, (slot, hour) in enumerate(scenario.slots.items()):
                names.append(f"{offer}@{slot}")
                offers.append(offer)
                slots.append(slot)
                oi.append(i)
                si.append(j)
                hours.append(hour)
        sends = np.ones(len(names))
        sends[NO_EMAIL] = 0.0
        return cls(
            names=tuple(names),
            offers=tuple(offers),
            slots=tuple(slots),
            offer_index=np.asarray(oi, dtype=np.int64),
            slot_index=np.asarray(si, dtype=np.int64),
            hour=np.asarray(hours, dtype=np.float64),
            sends=sends,
        )

    @classmethod
    def from_names(cls, names: tuple[str, ...] | list[str]) -> ActionCatalog:
        """A catalog for logs from outside the simulator: ``"<offer>@<slot>"`` names are split, other names
        are offers without a slot. Action 0 plays "no email" for the guardrails (put the control arm first).
        """
        offers = [n.split("@")[0] for n in names]
        slots = [n.split("@")[1] if "@" in n else "any" for n in names]
        offer_ids = {o: i for i, o in enumerate(dict.fromkeys(offers))}
        slot_ids = {s: i for i, s in enumerate(dict.fromkeys(slots))}
        sends = np.ones(len(names))
        sends[NO_EMAIL] = 0.0
        return cls(
            names=tuple(names),
            offers=tuple(offers),
            slots=tuple(slots),
            offer_index=np.array([offer_ids[o] for o in offers], dtype=np.int64),
            slot_index=np.array([slot_ids[s] for s in slots], dtype=np.int64),
            hour=np.full(len(names), np.nan),
            sends=sends,
        )

    @property
    def n_actions(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Action id of ``"no_email"`` or ``"<offer>@<slot>"``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise NextbestError(f"unknown action {name!r} (known: {', '.join(self.names)})") from None

    def action(self, offer: str, slot: str) -> int:
        """Action id of an (offer, slot) pair."""
        return self.index(f"{offer}@{slot}")
