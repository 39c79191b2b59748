"""Linear contextual-bandit agents: per-action ridge models on standardised features.

Every agent here keeps, for each action ``a``, the ridge statistics ``A_a = lambda I + sum x x^T`` and
``b_a = sum w x r`` over the rows where ``a`` was taken (``x`` standardised, with an intercept), updated
in batches (one matrix product per action, no per-row loop), and the coefficients ``theta_a = A_a^-1 b_a``
(Cholesky solve). They differ in how they act while learning and in what they learn from:

* :class:`LinUCB`: acts greedily on ``theta_a . x + alpha sqrt(x^T A_a^-1 x)``;
* :class:`LinTS`: acts on ``theta~_a . x`` with ``theta~_a ~ N(theta_a, v^2 A_a^-1)``;
* :class:`DirectMethod`: ridge regression of the logged reward, nothing else;
* :class:`PolicyLearner`: off-policy learning from logs: regression of IPS or doubly robust pseudo-rewards
  for every action (``Gamma(x, a) = q(x, a) + 1{a = a_i} (r_i - q(x, a_i)) / p_i`` for DR), which corrects
  for what the logger chose to show.

Whatever the agent, the exported policy (and :meth:`LinearAgent.action_probs`) is greedy - or softmax at
``temperature`` - on the mean scores ``theta_a . x``, mixed with uniform by ``epsilon``: exactly what the
live runtime computes from the artifact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.logs import LoggedFeedback
from nextbest.policy import BasePolicy, exploration_probs

__all__ = ["DirectMethod", "LinTS", "LinUCB", "LinearAgent", "PolicyLearner"]


class LinearAgent(BasePolicy):
    """Per-action ridge models; the base of the linear agents.

    Args:
        features: feature names, in the order of the observation columns.
        actions: the action catalog (action 0 is "no email").
        ridge: the ridge penalty ``lambda`` (the intercept is not penalised).
        temperature, epsilon: the exported policy's exploration (argmax when ``temperature`` is None).
        feature_mean, feature_scale: standardisation; by default taken from the first batch of data.
    """

    def __init__(
        self,
        features: Sequence[str],
        actions: Sequence[str],
        *,
        ridge: float = 1.0,
        temperature: float | None = None,
        epsilon: float = 0.0,
        feature_mean: Sequence[float] | None = None,
        feature_scale: Sequence[float] | None = None,
        name: str = "linear",
    ) -> None:
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        if not 0 <= epsilon <= 1 or (temperature is not None and not temperature > 0):
            raise ValueError("need 0 <= epsilon <= 1 and temperature > 0")
        self.features = tuple(features)
        self.actions = tuple(actions)
        self.name = name
        self.ridge = ridge
        self.temperature = temperature
        self.epsilon = epsilon
        d, k = len(self.features), len(self.actions)
        self.mean = None if feature_mean is None else np.asarray(feature_mean, dtype=np.float64)
        self.scale = None if feature_scale is None else np.asarray(feature_scale, dtype=np.float64)
        eye = np.eye(d + 1)
        eye[0, 0] = 1e-8  # the intercept is (almost) not penalised
        self._A = np.repeat((ridge * eye)[None], k, axis=0)  # (k, d+1, d+1)
        self._b = np.zeros((k, d + 1))
        self._theta = np.zeros((k, d + 1))
        self.n_updates = 0

    # ------------------------------------------------------------------------------- statistics
    def _design(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise NextbestError(f"expected contexts of shape (n, {len(self.features)}), got {x.shape}")
        if not np.isfinite(x).all():
            raise NextbestError("contexts must be finite numbers")
        if self.mean is None or self.scale is None:
            self.mean = x.mean(axis=0)
            scale = x.std(axis=0)
            scale[scale == 0] = 1.0
            self.scale = scale
        return np.column_stack([np.ones(x.shape[0]), (x - self.mean) / self.scale])

    def update(
        self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        """Add a batch of (context, action, reward) rows to the per-action statistics and re-solve.

        Args:
            obs: ``(n, d)`` contexts; actions: ``(n,)`` ids; rewards: ``(n,)``; weights: ``(n,)`` row weights.
        """
        actions = np.asarray(actions, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=np.float64)
        if ((actions < 0) | (actions >= len(self.actions))).any():
            raise NextbestError(f"actions must be ids in [0, {len(self.actions)})")
        if not np.isfinite(rewards).all():
            raise NextbestError("rewards must be finite numbers")
        x = self._design(obs)
        if actions.shape != (x.shape[0],) or rewards.shape != actions.shape:
            raise NextbestError("obs, actions and rewards must have the same number of rows")
        w = np.ones_like(rewards) if weights is None else np.asarray(weights, dtype=np.float64)
        for a in np.unique(actions):
            rows = actions == a
            xa, wa = x[rows], w[rows]
            self._A[a] += (xa * wa[:, None]).T @ xa
            self._b[a] += xa.T @ (wa * rewards[rows])
        self._solve()
        self.n_updates += int(actions.size)

    def _solve(self) -> None:
        chol = np.linalg.cholesky(self._A)  # (k, d+1, d+1), batched
        y = np.linalg.solve(chol, self._b[..., None])
        self._theta = np.linalg.solve(np.swapaxes(chol, 1, 2), y)[..., 0]
        self._chol = chol

    def fit(self, logs: LoggedFeedback) -> LinearAgent:
        """Learn from logged decisions (reward regression per action); also the warm start of an online
        agent, which then goes on learning with :meth:`update`."""
        _check_logs_match(self, logs)
        self.update(logs.contexts, logs.actions, logs.rewards)
        return self

    # ------------------------------------------------------------------------------------ acting
    def scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, k)`` mean predicted reward of each action."""
        return self._design(obs) @ self._theta.T

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The exported policy's probabilities (greedy or softmax on mean scores, epsilon-mixed), computed
        by the same function as the runtime's."""
        return exploration_probs(self.scores(obs), mask, self.temperature, self.epsilon)

    def explore_scores(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scores the agent acts on while learning online (the mean scores; overridden by UCB and TS)."""
        return self.scores(obs)

    def act_online(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions while learning: argmax of :meth:`explore_scores` over the allowed actions."""
        return np.argmax(np.where(mask, self.explore_scores(obs, rng), -np.inf), axis=1)

    # ------------------------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike[str], **manifest: Any) -> Path:
        """Write the linear policy artifact (the mean scores with this agent's exploration)."""
        from nextbest.policies import save_policy

        if self.mean is None or self.scale is None:
            raise NextbestError("the agent has not seen any data yet")
        return save_policy(
            path,
            kind="linear",
            name=self.name,
            features=self.features,
            actions=self.actions,
            arrays={"coef": self._theta[:, 1:].T.copy(), "intercept": self._theta[:, 0].copy()},
            feature_mean=self.mean.tolist(),
            feature_scale=self.scale.tolist(),
            temperature=self.temperature,
            epsilon=self.epsilon,
            **manifest,
        )


class LinUCB(LinearAgent):
    """LinUCB (Li et al. 2010, disjoint models): optimism ``alpha * sqrt(x^T A_a^-1 x)`` while learning."""

    def __init__(self, *args: Any, alpha: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("name", "linucb")
        super().__init__(*args, **kwargs)
        self.alpha = alpha

    def explore_scores(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = self._design(obs)
        a_inv = np.linalg.inv(self._A)  # (k, d+1, d+1); small, once per batch
        width = np.sqrt(np.maximum(np.einsum("ni,kij,nj->nk", x, a_inv, x), 0.0))
        return x @ self._theta.T + self.alpha * width


class LinTS(LinearAgent):
    """Linear Thompson sampling (Agrawal & Goyal 2013): acts on coefficients drawn from N(theta, v^2 A^-1)."""

    def __init__(self, *args: Any, v: float = 0.2, **kwargs: Any) -> None:
        kwargs.setdefault("name", "lints")
        super().__init__(*args, **kwargs)
        self.v = v

    def explore_scores(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = self._design(obs)
        if not hasattr(self, "_chol"):
            self._solve()
        # theta~ = theta + v L^-T e with A = L L^T, e ~ N(0, I): one draw per action and batch
        e = rng.standard_normal(self._b.shape)[..., None]
        noise = np.linalg.solve(np.swapaxes(self._chol, 1, 2), e)[..., 0]
        return x @ (self._theta + self.v * noise).T


class DirectMethod(LinearAgent):
    """Reward regression on the logs (the direct method): greedy or softmax on predicted rewards."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", "dm")
        super().__init__(*args, **kwargs)


class PolicyLearner(LinearAgent):
    """Off-policy policy learning: per-action regression of IPS or doubly robust pseudo-rewards.

    For every logged row and every action ``a``: ``Gamma_IPS = 1{a = a_i} r_i / p_i`` and
    ``Gamma_DR = q(x_i, a) + 1{a = a_i} (r_i - q(x_i, a_i)) / p_i`` with ``q`` a cross-fitted reward model.
    Each action's model is fitted on all rows, so actions the logger rarely chose still get estimates.
    """

    def __init__(self, *args: Any, weighting: str = "dr", clip: float | None = 50.0, **kwargs: Any) -> None:
        if weighting not in ("dr", "ips"):
            raise ValueError(f"weighting must be 'dr' or 'ips', got {weighting!r}")
        kwargs.setdefault("name", f"{weighting}-policy")
        super().__init__(*args, **kwargs)
        self.weighting = weighting
        self.clip = clip

    def fit(self, logs: LoggedFeedback, seed: int = 0, progress: bool = False) -> PolicyLearner:
        from tqdm.auto import tqdm

        from nextbest.evaluation import RidgeRewardModel

        _check_logs_match(self, logs)
        n, k = len(logs), len(self.actions)
        bar = tqdm(total=k + 1, desc=f"{self.name} fit", unit="model", disable=not progress)
        inverse = 1.0 / logs.propensities
        if self.clip is not None:
            inverse = np.minimum(inverse, self.clip)
        taken = np.zeros((n, k))
        taken[np.arange(n), logs.actions] = 1.0
        if self.weighting == "dr":
            q = RidgeRewardModel().cross_fit(
                logs.contexts, logs.actions, logs.rewards, logs.clusters, k, np.random.default_rng(seed)
            )
            residual = logs.rewards - q[np.arange(n), logs.actions]
            gamma = q + taken * (residual * inverse)[:, None]
        else:
            gamma = taken * (logs.rewards * inverse)[:, None]
        bar.update()
        x = logs.contexts
        for a in range(k):  # every row informs every action's model
            self.update(x, np.full(n, a), gamma[:, a])
            bar.update()
        bar.close()
        self.n_updates = n
        return self


def _check_logs_match(agent: LinearAgent, logs: LoggedFeedback) -> None:
    """Logs must carry the agent's features (same order) and, when they name them, its actions."""
    if tuple(logs.features) != agent.features:
        raise NextbestError(
            f"{logs.source}: the logs' features {list(logs.features)} are not the agent's {list(agent.features)}"
        )
    if logs.action_names and tuple(logs.action_names) != agent.actions:
        raise NextbestError(
            f"{logs.source}: the logs' action catalog is not the agent's ({len(agent.actions)} actions)"
        )
    if logs.n_actions > len(agent.actions):
        raise NextbestError(f"{logs.source}: the logs have {logs.n_actions} actions, the agent {len(agent.actions)}")
