"""Non-contextual bandit baselines: the same action ranking for every customer (within the guardrails).

They keep per-action counts and reward sums; ``update`` is one ``bincount`` per batch. The exported policy
is greedy on the mean reward (softmax/epsilon as configured), written as a linear artifact with zero
coefficients, so the runtime treats it like any other policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nextbest.agents.linear import LinearAgent
from nextbest.errors import NextbestError

__all__ = ["UCB1", "EpsilonGreedyBandit", "ThompsonBandit"]


class _Counts(LinearAgent):
    """Per-action counts and means; scores ignore the context."""

    def __init__(self, features: Sequence[str], actions: Sequence[str], **kwargs: Any) -> None:
        super().__init__(features, actions, **kwargs)
        self.counts = np.zeros(len(self.actions))
        self.sums = np.zeros(len(self.actions))

    def update(
        self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        actions = np.asarray(actions, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=np.float64)
        if ((actions < 0) | (actions >= len(self.actions))).any():
            raise NextbestError(f"actions must be ids in [0, {len(self.actions)})")
        self._design(obs)  # checks the shape, fixes the standardisation for export
        k = len(self.actions)
        self.counts += np.bincount(actions, minlength=k)
        self.sums += np.bincount(actions, weights=rewards, minlength=k)
        self._theta = np.zeros_like(self._theta)
        self._theta[:, 0] = self.means
        self.n_updates += int(actions.size)

    @property
    def means(self) -> np.ndarray:
        return np.divide(self.sums, self.counts, out=np.zeros_like(self.sums), where=self.counts > 0)


class EpsilonGreedyBandit(_Counts):
    """With probability ``explore`` a uniform allowed action while learning, else the best mean."""

    def __init__(self, *args: Any, explore: float = 0.1, **kwargs: Any) -> None:
        kwargs.setdefault("name", "egreedy")
        super().__init__(*args, **kwargs)
        self.explore = explore

    def act_online(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        greedy = np.argmax(np.where(mask, self.means[None, :], -np.inf), axis=1)
        noise = rng.random(mask.shape)
        uniform = np.argmax(np.where(mask, noise, -1.0), axis=1)
        return np.where(rng.random(len(obs)) < self.explore, uniform, greedy)


class UCB1(_Counts):
    """UCB1 (Auer et al. 2002): mean + c * sqrt(2 ln t / n_a); untried actions first."""

    def __init__(self, *args: Any, c: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("name", "ucb1")
        super().__init__(*args, **kwargs)
        self.c = c

    def explore_scores(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = max(self.counts.sum(), 1.0)
        bonus = np.where(self.counts > 0, self.c * np.sqrt(2 * np.log(t) / np.maximum(self.counts, 1)), np.inf)
        return np.broadcast_to(self.means + bonus, (len(obs), len(self.actions)))


class ThompsonBandit(_Counts):
    """Beta-Bernoulli Thompson sampling on "did the decision make money" (reward > 0), acting per customer
    on a fresh draw; the exported policy is still greedy on mean reward."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", "ts")
        super().__init__(*args, **kwargs)
        self.wins = np.zeros(len(self.actions))

    def update(
        self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        super().update(obs, actions, rewards, weights)
        self.wins += np.bincount(np.asarray(actions), weights=np.asarray(rewards) > 0, minlength=len(self.actions))

    def explore_scores(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(1 + self.wins, 1 + self.counts - self.wins, size=(len(obs), len(self.actions)))
