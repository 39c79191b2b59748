"""Ground truth for logs the simulator wrote: re-simulate them and take exact expected rewards.

A logged-feedback file from ``nextbest simulate`` records its scenario, logging policy, seed, population
and days. Simulating it again reproduces every logged decision together with the customers' latent
state, so the evaluation policy's *exact* expected reward on each logged context is known:

    truth = mean over logged rows i of  sum_a pi(a | x_i) * E[r | s_i, a]

which is what the bandit estimators estimate. The re-simulation is checked against the file (same
actions in the same order) so an edited or foreign file is refused rather than silently mis-scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nextbest.errors import DataError
from nextbest.logs import LoggedFeedback
from nextbest.policy import Policy
from nextbest.scenario import Scenario
from nextbest.simulator import CustomerModel, PolicyValue, Step, make_policy, policy_value, rollout

__all__ = ["bandit_ground_truth", "bandit_truth_rows", "model_for_logs", "sequential_ground_truth"]

_NEEDED = ("scenario_config", "policy", "seed", "n_customers", "days")


def model_for_logs(logs: LoggedFeedback) -> CustomerModel:
    """The customer model the logs were simulated with (from their metadata)."""
    missing = [k for k in _NEEDED if logs.metadata.get(k) is None]
    if missing:
        raise DataError(
            f"{logs.source}: no ground truth: the file does not say how it was simulated (missing {missing[0]!r});"
            " only Parquet logs written by `nextbest simulate` carry it"
        )
    if logs.metadata.get("driver", "vectorized") != "vectorized":
        raise DataError(f"{logs.source}: no ground truth for logs of the SimPy campaign runner")
    return CustomerModel(Scenario.from_dict(logs.metadata["scenario_config"]))


def bandit_ground_truth(logs: LoggedFeedback, policies: Sequence[Policy]) -> dict[str, float]:
    """Exact value per decision of each policy on the logged contexts (currency per decision).

    Raises:
        DataError: the logs carry no simulation metadata, or re-simulating them does not reproduce them.
    """
    return {name: float(values.mean()) for name, values in bandit_truth_rows(logs, policies).items()}


def bandit_truth_rows(logs: LoggedFeedback, policies: Sequence[Policy]) -> dict[str, np.ndarray]:
    """Exact expected reward of each policy's choice at every logged decision, ``(n,)`` per policy, in
    the logs' row order (for intervals over the logged contexts). The logs may hold only some of the
    simulated customers (a held-out half, say), with their rows in the order the simulator wrote them."""
    model = model_for_logs(logs)
    meta = logs.metadata
    n_customers = int(meta["n_customers"])
    ids = logs.frame["customer_id"].to_numpy()
    present = np.ones(n_customers, dtype=bool)
    if np.issubdtype(ids.dtype, np.integer) and len(ids) and ids.min() >= 0 and ids.max() < n_customers:
        present[:] = False
        present[np.unique(ids)] = True
    logger = make_policy(meta["policy"], model.features, model.catalog)
    parts: list[list[np.ndarray]] = [[] for _ in policies]
    actions: list[np.ndarray] = []

    def score(step: Step) -> None:
        rows = np.flatnonzero(step.active & present)
        actions.append(step.actions[rows])
        values = model.expected_reward_all(step.traits.take(rows), step.state.take(rows)).astype(np.float64)
        for j, policy in enumerate(policies):
            parts[j].append((policy.action_probs(step.obs[rows], step.mask[rows]) * values).sum(axis=1))

    rollout(model, logger, n_customers, int(meta["days"]), int(meta["seed"]), on_step=score)
    replayed = np.concatenate(actions)
    if replayed.size != len(logs) or not np.array_equal(replayed, logs.actions):
        raise DataError(
            f"{logs.source}: re-simulating the logs does not reproduce them (edited file, or another version)"
        )
    return {policy.name: np.concatenate(parts[j]) for j, policy in enumerate(policies)}


def sequential_ground_truth(
    logs: LoggedFeedback, policies: Sequence[Policy], n_customers: int = 100_000
) -> dict[str, PolicyValue]:
    """Value per episode (customer, over the logged days) of each policy acting from day 0, by Monte Carlo
    on a fresh population of ``n_customers`` from the logs' scenario: the quantity the sequential
    estimators estimate. Its 95% interval is part of the answer (it is not exact)."""
    model = model_for_logs(logs)
    days, seed = int(logs.metadata["days"]), int(logs.metadata["seed"])
    return {p.name: policy_value(p, model, n_customers, days, seed=seed + 1) for p in policies}
