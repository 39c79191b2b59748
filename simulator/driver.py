"""The vectorized daily driver: run a policy over a population, collect logged feedback, and compute the
ground-truth value of a policy.

Episode accounting (shared with the environments and the logged data): a customer's episode ends
(``terminated``) on the day they unsubscribe or churn, and is cut (``truncated``) at the horizon. A
policy's value is the mean over customers of the undiscounted sum of rewards until then.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nextbest.logs import OUTCOME_PARTS, TableWriter
from nextbest.policy import Policy
from nextbest.scenario import Scenario
from nextbest.simulator.model import CustomerModel, Outcome, State, Traits

__all__ = [
    "CAMPAIGN_START",
    "LogCollector",
    "PolicyValue",
    "Step",
    "log_metadata",
    "policy_value",
    "rollout",
    "simulate",
    "simulate_to_file",
    "spawn_rngs",
]

#: Day 0 of every simulated campaign (decision_time = start + step days).
CAMPAIGN_START = pd.Timestamp("2026-01-05")


def spawn_rngs(seed: int | np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one root seed (population, policy, outcomes, ...)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(child) for child in ss.spawn(n)]


@dataclass(frozen=True)
class Step:
    """Everything that happened on one day, for the customers whose episode was still running.

    Arrays are ``(n,)`` over the whole population; ``active`` marks who was still in their episode.
    ``probs`` (the policy's full probability vectors) is computed on first use only.
    """

    t: int
    obs: np.ndarray  # (n, n_features)
    mask: np.ndarray  # (n, n_actions)
    policy: Policy
    actions: np.ndarray
    propensity: np.ndarray
    outcome: Outcome
    next_obs: np.ndarray
    active: np.ndarray
    terminated: np.ndarray
    state: State
    traits: Traits

    @cached_property
    def probs(self) -> np.ndarray:
        """``(n, n_actions)`` action probabilities of the policy on this day's observations."""
        return self.policy.action_probs(self.obs, self.mask)


def rollout(
    model: CustomerModel,
    policy: Policy,
    n_customers: int,
    horizon: int,
    seed: int | np.random.SeedSequence,
    *,
    on_step: Callable[[Step], None] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run ``policy`` over a fresh population for ``horizon`` days.

    Args:
        model: the compiled customer model.
        policy: acts on observations with the guardrail mask.
        n_customers: population size (>= 1).
        horizon: days (>= 1).
        seed: root seed; population, policy and outcomes get independent child streams.
        on_step: called once per day with a :class:`Step`.
        progress: show a progress bar over days.

    Returns:
        Realised return per customer, ``(n_customers,)``.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    pop_rng, policy_rng, outcome_rng = spawn_rngs(seed, 3)
    traits, state = model.sample_population(n_customers, pop_rng)
    active = np.ones(n_customers, dtype=bool)
    returns = np.zeros(n_customers)
    obs = model.observe(state)
    for t in tqdm(range(horizon), desc=f"simulating {policy.name}", unit="day", disable=not progress):
        mask = model.action_mask(state)
        actions, propensity = policy.act(obs, mask, policy_rng)
        actions = np.where(active, actions, 0)
        next_state, out = model.step(traits, state, actions, outcome_rng)
        returns += np.where(active, out.reward, 0.0)
        terminated = active & ((out.unsubscribed > 0) | (out.churned > 0))
        next_obs = model.observe(next_state)
        if on_step is not None:
            on_step(Step(t, obs, mask, policy, actions, propensity, out, next_obs, active, terminated, state, traits))
        active = active & ~terminated
        state, obs = next_state, next_obs
    return returns


@dataclass(frozen=True)
class PolicyValue:
    """Ground-truth value of a policy: mean return per customer with a 95% normal interval, and what the
    policy did to get it.

    The interval is mean ± 1.96 standard errors over independent customers; returns use the exact
    expected reward of each day's action (a Rao-Blackwellised, lower-variance Monte Carlo estimate).
    ``sends_per_customer`` counts emails over the horizon, ``discount_share`` the share of them carrying
    a discount or free shipping, ``unsubscribe_rate`` the share of customers who unsubscribed.
    """

    policy: str
    mean: float
    lower: float
    upper: float
    std_error: float
    n_customers: int
    horizon: int
    sends_per_customer: float = float("nan")
    discount_share: float = float("nan")
    unsubscribe_rate: float = float("nan")

    @property
    def unsubscribes_per_email(self) -> float:
        """Unsubscribes per email sent (the industry's unsubscribe rate); 0 for a policy that never emails."""
        return self.unsubscribe_rate / self.sends_per_customer if self.sends_per_customer > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.policy}: {self.mean:.4f} per customer (95% CI {self.lower:.4f} .. {self.upper:.4f})"


def policy_value(
    policy: Policy,
    scenario: Scenario | CustomerModel,
    n_customers: int = 10_000,
    horizon: int | None = None,
    seed: int | np.random.SeedSequence = 0,
    *,
    progress: bool = False,
) -> PolicyValue:
    """True value of ``policy`` by Monte Carlo: mean return per customer over ``horizon`` days.

    Args:
        policy: the policy to value.
        scenario: scenario (or an already compiled model).
        n_customers: customers simulated; the interval's width shrinks as 1/sqrt(n_customers).
        horizon: days; defaults to the scenario's horizon.
        seed: root seed.

    Example:
        >>> from nextbest import Scenario
        >>> from nextbest.simulator import CustomerModel, make_policy, policy_value
        >>> m = CustomerModel(Scenario.load("retail"))
        >>> v = policy_value(make_policy("none", m.features, m.catalog), m, 2000, 10, seed=1)
        >>> v.lower <= v.mean <= v.upper
        True
    """
    model = scenario if isinstance(scenario, CustomerModel) else CustomerModel(scenario)
    horizon = model.scenario.horizon_days if horizon is None else horizon
    expected = np.zeros(n_customers)
    counts = np.zeros(3)  # sends, discounted sends, unsubscribes

    def add(step: Step) -> None:
        reward = model.expected_reward(step.traits, step.state, step.actions)
        expected[:] += np.where(step.active, reward, 0.0)
        executed = step.actions[step.active]
        sent = model.catalog.sends[executed] > 0
        counts[:] += (sent.sum(), model.discount_actions[executed].sum(), step.outcome.unsubscribed[step.active].sum())

    rollout(model, policy, n_customers, horizon, seed, on_step=add, progress=progress)
    mean = float(expected.mean())
    se = float(expected.std(ddof=1) / np.sqrt(n_customers)) if n_customers > 1 else float("inf")
    return PolicyValue(
        policy.name,
        mean,
        mean - 1.96 * se,
        mean + 1.96 * se,
        se,
        n_customers,
        horizon,
        sends_per_customer=float(counts[0] / n_customers),
        discount_share=float(counts[1] / max(counts[0], 1.0)),
        unsubscribe_rate=float(counts[2] / n_customers),
    )


class LogCollector:
    """``on_step`` callback that turns each day into logged-feedback rows, one per decision of an active
    customer; it keeps them for :meth:`frame`, or hands each day's rows to ``sink`` (e.g. a
    :class:`~nextbest.logs.TableWriter`) so that long runs need not fit in memory."""

    def __init__(
        self, model: CustomerModel, policy_id: str, horizon: int, sink: Callable[[pd.DataFrame], None] | None = None
    ) -> None:
        self.model = model
        self.policy_id = policy_id
        self.horizon = horizon
        self.sink = sink
        self.rows = 0
        self._frames: list[pd.DataFrame] = []

    def __call__(self, step: Step) -> None:
        rows = np.flatnonzero(step.active)
        m = self.model
        customer = rows.astype(np.int64)
        action = step.actions[rows]
        columns: dict[str, Any] = {
            "customer_id": customer,
            "decision_time": np.full(rows.size, (CAMPAIGN_START + pd.Timedelta(days=step.t)).to_datetime64()),
            "episode_id": customer,
            "step": np.full(rows.size, step.t, dtype=np.int64),
            "policy_id": pd.Categorical.from_codes(np.zeros(rows.size, dtype=np.int8), [self.policy_id]),
        }
        for j, name in enumerate(m.features):
            columns[name] = step.obs[rows, j]
        columns["may_email"] = step.mask[rows, 1:].any(axis=1)
        columns["action"] = action
        columns["action_name"] = pd.Categorical.from_codes(action, m.catalog.names)
        columns["propensity"] = step.propensity[rows]
        probs = step.probs[rows].astype(np.float32)
        for k, name in enumerate(m.catalog.names):
            columns[f"prob_{name}"] = probs[:, k]
        out = step.outcome
        columns["reward"] = out.reward[rows]
        for name in OUTCOME_PARTS:
            values = getattr(out, name)[rows]
            columns[name] = values.astype(np.int8) if name in _FLAGS else values
        for j, name in enumerate(m.features):
            columns[f"next_{name}"] = step.next_obs[rows, j]
        terminated = step.terminated[rows]
        columns["terminated"] = terminated
        columns["truncated"] = np.full(rows.size, step.t == self.horizon - 1) & ~terminated
        columns["done"] = terminated | columns["truncated"]
        frame = pd.DataFrame(columns)
        self.rows += len(frame)
        if self.sink is None:
            self._frames.append(frame)
        else:
            self.sink(frame)

    def frame(self) -> pd.DataFrame:
        """All rows kept so far, ordered by day then customer."""
        return pd.concat(self._frames, ignore_index=True)


_FLAGS = frozenset({"opened", "clicked", "purchased", "unsubscribed"})


def simulate(
    scenario: Scenario | CustomerModel,
    policy: Policy,
    n_customers: int,
    days: int | None = None,
    seed: int | np.random.SeedSequence = 0,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate a campaign and return its logged feedback (one row per decision, see
    :mod:`nextbest.logs`); ``frame.attrs["nextbest"]`` holds the metadata to store with it. To write
    a run too large for memory, see :func:`simulate_to_file`.

    Example:
        >>> from nextbest import Scenario
        >>> from nextbest.simulator import CustomerModel, make_policy, simulate
        >>> m = CustomerModel(Scenario.load("retail"))
        >>> logs = simulate(m, make_policy("bau", m.features, m.catalog), 100, 7, seed=0)
        >>> len(logs) <= 700, bool(logs["propensity"].between(0, 1).all())  # fewer if some unsubscribe
        (True, True)
    """
    model = scenario if isinstance(scenario, CustomerModel) else CustomerModel(scenario)
    days = model.scenario.horizon_days if days is None else days
    collector = LogCollector(model, policy.name, days)
    rollout(model, policy, n_customers, days, seed, on_step=collector, progress=progress)
    frame = collector.frame()
    frame.attrs["nextbest"] = log_metadata(model, policy.name, seed, n_customers, days)
    return frame


def log_metadata(
    model: CustomerModel,
    policy_id: str,
    seed: Any,
    n_customers: int | None = None,
    days: int | None = None,
    driver: str = "vectorized",
) -> dict[str, Any]:
    """What a logged-feedback file records about where it came from: enough to simulate it again
    (scenario, policy, seed, population, days), which is how ground truth is computed for it."""
    return {
        "scenario": model.scenario.name,
        "scenario_config": model.scenario.to_dict(),
        "policy": policy_id,
        "seed": seed if isinstance(seed, int) else str(seed),
        "n_customers": n_customers,
        "days": days,
        "driver": driver,
        "features": list(model.features),
        "action_names": list(model.catalog.names),
    }


def simulate_to_file(
    scenario: Scenario | CustomerModel,
    policy: Policy,
    n_customers: int,
    path: str | os.PathLike[str],
    days: int | None = None,
    seed: int | np.random.SeedSequence = 0,
    *,
    progress: bool = False,
) -> int:
    """Like :func:`simulate`, but each day's rows go straight to ``path`` (Parquet, or CSV by suffix),
    atomically: nothing is left at ``path`` if the run fails. Returns the number of rows written."""
    model = scenario if isinstance(scenario, CustomerModel) else CustomerModel(scenario)
    days = model.scenario.horizon_days if days is None else days
    with TableWriter(path, log_metadata(model, policy.name, seed, n_customers, days)) as writer:
        collector = LogCollector(model, policy.name, days, sink=writer.write)
        rollout(model, policy, n_customers, days, seed, on_step=collector, progress=progress)
    return collector.rows
