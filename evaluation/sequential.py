"""Off-policy estimators for trajectories: the value of a policy over a customer's whole logged campaign.

Estimand: V(pi) = E[ sum_{t < T} r_t ] per episode (customer) when pi acts from the logged first day on,
over the logged horizon, undiscounted by default. Per episode i and step t (episodes that ended early
are padded with reward 0 and an unchanged ratio):

* rho_{i,t} = prod_{k <= t} pi(a_k | x_k) / mu(a_k | x_k), the cumulative importance ratio;
* PDIS (per-decision IS): mean_i sum_t rho_{i,t} r_{i,t};
* WPDIS (weighted PDIS): sum_t [ sum_i rho_{i,t} r_{i,t} / sum_i rho_{i,t} ], normalised per step;
* FQE (fitted Q evaluation): Q(x, a) fitted by iterating ridge regressions on
  r + gamma (1 - done) sum_a' pi(a' | x') Q(x', a'); V = mean_i sum_a pi(a | x_{i,0}) Q(x_{i,0}, a);
* DR (sequential doubly robust, Jiang & Li 2016):
  mean_i sum_t [ rho_{i,t} (r_{i,t} - Q(x_{i,t}, a_{i,t})) + rho_{i,t-1} V(x_{i,t}) ], rho_{i,-1} = 1.

Cumulative ratios grow or vanish geometrically with the horizon: over weeks of daily decisions, IS-based
estimates are usable only for policies very close to the logger; the effective sample size in the
diagnostics says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.evaluation.estimators import Estimate, _rngs, _validate, unsupported_mass, weight_diagnostics
from nextbest.evaluation.intervals import Resampler
from nextbest.evaluation.reward_model import RidgeRewardModel
from nextbest.logs import LoggedFeedback

__all__ = ["SEQUENTIAL_ESTIMATORS", "Trajectories", "estimate_sequential"]

SEQUENTIAL_ESTIMATORS = ("pdis", "wpdis", "fqe", "dr")


@dataclass(frozen=True)
class Trajectories:
    """Logged rows arranged as ``(N episodes, T steps)`` arrays (row index -1 where an episode had ended)."""

    row: np.ndarray  # (N, T) index into the logs, -1 for padding
    rewards: np.ndarray  # (N, T), 0 on padding
    ratios: np.ndarray  # (N, T) per-step pi/mu, 1 on padding

    @classmethod
    def build(cls, data: LoggedFeedback, step_ratio: np.ndarray) -> Trajectories:
        if not data.is_sequential:
            raise NextbestError(f"{data.source}: sequential estimators need episode_id and step columns")
        episode = np.unique(data.frame["episode_id"].to_numpy(), return_inverse=True)[1]
        step = data.frame["step"].to_numpy(dtype=np.int64)
        n, t = int(episode.max()) + 1, int(step.max()) + 1
        row = np.full((n, t), -1, dtype=np.int64)
        if np.unique(episode * t + step).size != len(data):
            raise NextbestError(f"{data.source}: column 'step': an episode has the same step twice")
        row[episode, step] = np.arange(len(data))
        present = row >= 0
        rewards = np.where(present, data.rewards[np.maximum(row, 0)], 0.0)
        ratios = np.where(present, step_ratio[np.maximum(row, 0)], 1.0)
        return cls(row, rewards, ratios)

    @property
    def cumulative(self) -> np.ndarray:
        """rho_{i,t}: cumulative importance ratios, ``(N, T)``."""
        return np.cumprod(self.ratios, axis=1)


def _fqe(
    data: LoggedFeedback,
    next_probs: np.ndarray,
    gamma: float,
    iterations: int,
    model: RidgeRewardModel,
) -> np.ndarray:
    """``(n, k)`` Q estimates by fitted Q iteration on all logged transitions."""
    done = data.frame["done"].to_numpy(dtype=bool) if "done" in data.frame.columns else np.zeros(len(data), bool)
    x, actions, rewards, k = data.contexts, data.actions, data.rewards, data.n_actions
    x_next = data.next_contexts
    if x_next is None:
        raise NextbestError(f"{data.source}: FQE needs the next_<feature> columns")
    q = np.zeros((len(data), k))
    q_next = np.zeros((len(data), k))
    for _ in range(iterations):
        target = rewards + gamma * (~done) * (next_probs * q_next).sum(axis=1)
        fitted = model.fit(x, actions, target, k)
        q, q_next = fitted.predict(x), fitted.predict(x_next)
    return q


def estimate_sequential(
    data: LoggedFeedback,
    action_probs: Any,
    *,
    estimators: tuple[str, ...] = SEQUENTIAL_ESTIMATORS,
    gamma: float = 1.0,
    fqe_iterations: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int | np.random.SeedSequence = 0,
    reward_model: RidgeRewardModel | None = None,
) -> list[Estimate]:
    """Value per episode (customer, whole logged horizon) of the evaluation policy.

    Args:
        data: sequential logged feedback (``episode_id``, ``step``, ``next_<feature>``, ``done``).
        action_probs: ``(n, k)`` evaluation policy's probabilities at each logged context.
        estimators: any of ``"pdis"``, ``"wpdis"``, ``"fqe"``, ``"dr"``.
        gamma: discount per step.
        fqe_iterations: fitted-Q iterations (default: the longest episode, enough to propagate
            rewards back to the first day).
        confidence, n_boot, seed: intervals are percentile bootstraps over episodes.
        reward_model: the ridge regression used for Q (its ``alpha``).

    Returns:
        One :class:`Estimate` per estimator, in the order asked.
    """
    unknown = [e for e in estimators if e not in SEQUENTIAL_ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown sequential estimator {unknown[0]!r} (known: {', '.join(SEQUENTIAL_ESTIMATORS)})")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    probs = _validate(data, action_probs)
    model = reward_model or RidgeRewardModel()
    _, boot_rng = _rngs(seed)
    rows = np.arange(len(data))
    ratio = probs[rows, data.actions] / data.propensities
    traj = Trajectories.build(data, ratio)
    n_episodes, horizon = traj.row.shape
    present = traj.row >= 0
    discount = gamma ** np.arange(horizon)
    rho = traj.cumulative
    rho_prev = np.concatenate([np.ones((n_episodes, 1)), rho[:, :-1]], axis=1)

    q = v = None
    if {"fqe", "dr"} & set(estimators):
        # pi at the next state is pi at the episode's next logged row (unused where the episode ended)
        next_row = np.full(len(data), -1)
        nxt = traj.row[:, 1:]
        has_next = (traj.row[:, :-1] >= 0) & (nxt >= 0)
        next_row[traj.row[:, :-1][has_next]] = nxt[has_next]
        next_probs = np.where((next_row >= 0)[:, None], probs[np.maximum(next_row, 0)], 0.0)
        q = _fqe(data, next_probs, gamma, fqe_iterations or horizon, model)
        v = (probs * q).sum(axis=1)

    # per-episode contributions (N,) for the mean-type estimators; WPDIS is a ratio per step
    contributions: dict[str, np.ndarray] = {}
    if "pdis" in estimators:
        contributions["pdis"] = (rho * traj.rewards * discount).sum(axis=1)
    if "fqe" in estimators:
        assert v is not None
        first = traj.row[:, 0]
        if (first < 0).any():
            raise NextbestError(f"{data.source}: column 'step': some episodes do not start at step 0")
        contributions["fqe"] = v[first]
    if "dr" in estimators:
        assert q is not None and v is not None
        safe = np.maximum(traj.row, 0)
        q_logged = np.where(present, q[safe, data.actions[safe]], 0.0)
        v_state = np.where(present, v[safe], 0.0)
        contributions["dr"] = ((rho * (traj.rewards - q_logged) + rho_prev * v_state) * discount).sum(axis=1)

    resampler = Resampler(np.arange(n_episodes), boot_rng, n_boot)
    groups, counts = resampler.clusters, resampler.counts
    tail = (1 - confidence) / 2
    diagnostics = weight_diagnostics(
        rho[:, -1],
        unsupported_mass(data, probs),
        clipped_share=0.0,
        far="the policy departs from the logger too often over the horizon for PDIS/WPDIS/DR to be "
        "reliable; FQE relies on its model",
        unit="episodes",
    )
    results = []
    for name in estimators:
        if name == "wpdis":
            num = np.stack([np.bincount(groups, weights=c) for c in (rho * traj.rewards * discount).T])  # (T, G)
            den = np.stack([np.bincount(groups, weights=c) for c in rho.T])
            value = float((num.sum(axis=1) / den.sum(axis=1)).sum())
            boot = ((counts @ num.T) / (counts @ den.T)).sum(axis=1)
        else:
            sums = np.bincount(groups, weights=contributions[name])
            sizes = np.bincount(groups).astype(np.float64)
            value = float(contributions[name].mean())
            boot = (counts @ sums) / (counts @ sizes)
        lower, upper = np.quantile(boot, [tail, 1 - tail])
        se = float(boot.std(ddof=1))
        results.append(
            Estimate(
                estimator=name,
                value=value,
                lower=float(lower),
                upper=float(upper),
                std_error=se,
                confidence=confidence,
                interval="bootstrap",
                n=n_episodes,
                diagnostics=diagnostics,
            )
        )
    return results
