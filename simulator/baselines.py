"""Baseline policies: what the retailer does today (BAU rules), uniform random, never-email, and their
epsilon / softmax versions. All expose ``action_probs`` and act on observations only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nextbest.actions import ActionCatalog
from nextbest.errors import NextbestError
from nextbest.policy import BasePolicy, EpsilonGreedy, Policy, Softmax, UniformRandom

__all__ = ["BUILTIN_POLICIES", "BAUPolicy", "FixedAction", "NeverEmail", "make_policy"]


class BAUPolicy(BasePolicy):
    """Business-as-usual rules of a typical CRM calendar (deterministic).

    * weekly cadence: when ``days_since_email >= cadence_days``, send the newsletter - or
      ``lapse_offer`` (20% off) to customers with no purchase for more than ``lapse_days``;
    * cross-sell: the day after a purchase, send a recommendation;
    * never more than ``max_per_week`` emails in 7 days, all at ``slot``.

    Guardrails (the mask) always win.
    """

    def __init__(
        self,
        features: Sequence[str],
        catalog: ActionCatalog,
        *,
        cadence_days: int = 7,
        lapse_days: int = 60,
        max_per_week: int = 2,
        slot: str = "morning",
        newsletter: str = "newsletter",
        lapse_offer: str = "pct20",
        cross_sell_offer: str = "recommendation",
        name: str = "bau",
    ) -> None:
        self.name = name
        self.n_actions = catalog.n_actions
        self._one_hot = np.eye(catalog.n_actions)
        idx = {f: i for i, f in enumerate(features)}
        needed = ("recency_days", "days_since_email", "sends_7d", "frequency")
        missing = [f for f in needed if f not in idx]
        if missing:
            raise NextbestError(f"policy {name!r} reads context column {missing[0]!r}, which the data do not have")
        self._recency = idx["recency_days"]
        self._since_email = idx["days_since_email"]
        self._sends_7d = idx["sends_7d"]
        self._frequency = idx["frequency"]
        self.cadence_days = cadence_days
        self.lapse_days = lapse_days
        self.max_per_week = max_per_week
        self._newsletter = catalog.action(newsletter, slot)
        self._lapse = catalog.action(lapse_offer, slot)
        self._cross_sell = catalog.action(cross_sell_offer, slot)

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """The rule's action per customer, before guardrails, shape ``(n,)``."""
        recency = obs[:, self._recency]
        since_email = obs[:, self._since_email]
        under_cap = obs[:, self._sends_7d] < self.max_per_week
        weekly = since_email >= self.cadence_days
        lapsed = (recency > self.lapse_days) & (obs[:, self._frequency] > 0)
        cross_sell = (recency == 1) & (obs[:, self._frequency] > 0)
        action = np.where(weekly, np.where(lapsed, self._lapse, self._newsletter), 0)
        action = np.where(~weekly & cross_sell, self._cross_sell, action)
        return np.where(under_cap, action, 0)

    def _allowed_actions(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        action = self.actions(obs)
        return np.where(mask[np.arange(obs.shape[0]), action], action, 0)

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._one_hot[self._allowed_actions(obs, mask)]

    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic: the rule's action with propensity 1 (no draw from ``rng``)."""
        return self._allowed_actions(obs, mask), np.ones(obs.shape[0])


class NeverEmail(BasePolicy):
    """Always "no email": the control arm."""

    def __init__(self, n_actions: int, name: str = "none") -> None:
        self.n_actions = n_actions
        self.name = name

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        probs = np.zeros((obs.shape[0], self.n_actions))
        probs[:, 0] = 1.0
        return probs

    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(obs.shape[0], dtype=np.int64), np.ones(obs.shape[0])


class FixedAction(BasePolicy):
    """The same action for everyone the guardrails allow it for ("no email" for the rest)."""

    def __init__(self, action: int, n_actions: int, name: str) -> None:
        self.action = action
        self.n_actions = n_actions
        self.name = name

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        probs = np.zeros((obs.shape[0], self.n_actions))
        allowed = mask[:, self.action]
        probs[allowed, self.action] = 1.0
        probs[~allowed, 0] = 1.0
        return probs


BUILTIN_POLICIES: dict[str, str] = {
    "bau": "business-as-usual rules: weekly newsletter, 20% off when lapsed > 60 days, cross-sell after a purchase",
    "bau-epsilon": "BAU, with probability 0.1 a uniformly random allowed action",
    "bau-softmax": "softmax of BAU at temperature 0.25 (BAU's action ~78% when all 16 actions are allowed)",
    "random": "uniformly random allowed action",
    "none": "never email (control)",
    "always:<action>": "the same action for everyone allowed, e.g. always:pct10@morning",
}


def make_policy(name: str, features: Sequence[str], catalog: ActionCatalog) -> Policy:
    """A built-in policy by name (see ``BUILTIN_POLICIES``).

    Raises:
        NextbestError: unknown name.
    """
    if name == "bau":
        return BAUPolicy(features, catalog)
    if name == "bau-epsilon":
        return EpsilonGreedy(BAUPolicy(features, catalog), 0.1, name=name)
    if name == "bau-softmax":
        return Softmax(BAUPolicy(features, catalog), 0.25, name=name)
    if name == "random":
        return UniformRandom(catalog.n_actions)
    if name == "none":
        return NeverEmail(catalog.n_actions)
    if name.startswith("always:"):
        return FixedAction(catalog.index(name[len("always:") :]), catalog.n_actions, name)
    raise NextbestError(f"unknown policy {name!r} (built-in policies: {', '.join(BUILTIN_POLICIES)})")
