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

__all__ = ["EmailKPIs", "OneEmailExperiment", "email_kpis", "one_email_experiment"]


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
        totals["sent"] += o.sent[a].sum()
        totals["opened"] += o.opened[a].sum()
        totals["clicked"] += o.clicked[a].sum()
        totals["unsubscribed"] += o.unsubscribed[a].sum()
        totals["purchased"] += o.purchased[a].sum()
        totals["via_email"] += o.purchased_via_email[a].sum()

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
