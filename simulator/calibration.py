"""Calibration checks: the email KPIs a scenario produces, and a randomized one-email experiment.

Use them to check a scenario of your own against the figures your ESP reports; docs/calibration.md gives
the published ranges the built-in scenario is held to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.policy import Policy
from nextbest.simulator.driver import Step, rollout, spawn_rngs
from nextbest.simulator.model import CustomerModel

__all__ = [
    "EmailKPIs",
    "MyopicCheck",
    "OneEmailExperiment",
    "email_kpis",
    "myopic_oracle_check",
    "one_email_experiment",
]


@dataclass(frozen=True)
class EmailKPIs:
    """Per-send email KPIs over a simulated campaign (all rates are shares of sends)."""

    sends: int
    open_rate: float
    click_rate: float
    unsubscribe_rate: float
    purchases_per_customer: float
    email_purchase_share: float


def email_kpis(model: CustomerModel, policy: Policy, n_customers: int, days: int, seed: int) -> EmailKPIs:
    """Run ``policy`` and count opens, clicks and unsubscribes per send."""
    totals = dict.fromkeys(("sent", "opened", "clicked", "unsubscribed", "purchased", "via_email"), 0.0)

    def count(step: Step) -> None:
        o, a = step.outcome, step.active
        for key, values in (
            ("sent", o.sent),
            ("opened", o.opened),
            ("clicked", o.clicked),
            ("unsubscribed", o.unsubscribed),
            ("purchased", o.purchased),
            ("via_email", o.purchased_via_email),
        ):
            totals[key] += float(values[a].sum(dtype=np.float64))

    rollout(model, policy, n_customers, days, seed, on_step=count)
    sends = max(totals["sent"], 1.0)
    return EmailKPIs(
        sends=int(totals["sent"]),
        open_rate=totals["opened"] / sends,
        click_rate=totals["clicked"] / sends,
        unsubscribe_rate=totals["unsubscribed"] / sends,
        purchases_per_customer=totals["purchased"] / n_customers,
        email_purchase_share=totals["via_email"] / max(totals["purchased"], 1.0),
    )


@dataclass(frozen=True)
class OneEmailExperiment:
    """Two-week visit and conversion rates of a randomized "one email vs none" test."""

    n_control: int
    n_treated: int
    visit_control: float
    visit_treated: float
    conversion_control: float
    conversion_treated: float


def one_email_experiment(
    model: CustomerModel, n_customers: int, seed: int, action: str = "recommendation@morning", days: int = 14
) -> OneEmailExperiment:
    """A Hillstrom-style test: customers who bought in the last 12 months and may be emailed are split at
    random; the treated half gets one email (``action``) on day 0, then nobody is emailed for ``days``.

    Visit = any site visit (organic or through a click) within ``days``; conversion = any purchase.
    """
    pop_rng, assign_rng, outcome_rng = spawn_rngs(seed, 3)
    traits, state = model.sample_population(n_customers, pop_rng)
    eligible = (state.days_since_purchase <= 365) & (state.n_purchases > 0) & (model.may_email(state) > 0)
    idx = np.flatnonzero(eligible)
    traits, state = traits.take(idx), state.take(idx)
    treated = assign_rng.random(idx.size) < 0.5
    first = np.where(treated, model.catalog.index(action), 0)
    visited = np.zeros(idx.size, dtype=bool)
    bought = np.zeros(idx.size, dtype=bool)
    for t in range(days):
        actions = first if t == 0 else np.zeros(idx.size, dtype=np.int64)
        state, out = model.step(traits, state, actions, outcome_rng)
        visited |= out.visited > 0
        bought |= out.purchased > 0
    return OneEmailExperiment(
        n_control=int((~treated).sum()),
        n_treated=int(treated.sum()),
        visit_control=float(visited[~treated].mean()),
        visit_treated=float(visited[treated].mean()),
        conversion_control=float(bought[~treated].mean()),
        conversion_treated=float(bought[treated].mean()),
    )


@dataclass(frozen=True)
class MyopicCheck:
    """Value per customer of the myopic oracle (each day the action with the highest exact expected
    reward today, knowing the latent traits), uncapped and held to ``max_per_week`` emails."""

    myopic: float
    restrained: float
    gain_se: float  # standard error of restrained - myopic, paired over the same customers
    max_per_week: int
    myopic_sends_per_week: float
    restrained_sends_per_week: float


def myopic_oracle_check(
    model: CustomerModel, n_customers: int, seed: int, max_per_week: int = 2, horizon: int | None = None
) -> MyopicCheck:
    """Does maximising today's reward over-mail? Compares the myopic oracle with the same oracle
    allowed at most ``max_per_week`` emails in 7 days, on the same customers and outcome streams.

    If the restrained oracle earns more, today's reward hides long-run costs (fatigue, mail blindness,
    unsubscribes, habituation), and a policy that plans over the horizon can beat a myopic bandit.
    """
    horizon = model.scenario.horizon_days if horizon is None else horizon
    totals, sends = [], []
    for cap in (7, max_per_week):
        pop_rng, outcome_rng = spawn_rngs(seed, 2)
        traits, state = model.sample_population(n_customers, pop_rng)
        active = np.ones(n_customers, dtype=bool)
        total = np.zeros(n_customers)
        n_sent = 0
        for _ in range(horizon):
            value = model.expected_reward_all(traits, state)
            allowed = model.action_mask(state)
            allowed[:, 1:] &= (np.bitwise_count(state.send_hist & 63) < cap)[:, None]
            actions = np.where(active, np.where(allowed, value, -np.inf).argmax(axis=1), 0)
            total += np.where(active, model.expected_reward(traits, state, actions), 0.0)
            n_sent += int((actions > 0).sum())
            state, out = model.step(traits, state, actions, outcome_rng)
            active &= ~((out.unsubscribed > 0) | (out.churned > 0))
        totals.append(total)
        sends.append(n_sent / n_customers / horizon * 7)
    myopic, restrained = totals
    gain_se = (restrained - myopic).std(ddof=1) / np.sqrt(n_customers)
    return MyopicCheck(float(myopic.mean()), float(restrained.mean()), float(gain_se), max_per_week, sends[0], sends[1])
