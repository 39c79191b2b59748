"""The policy interface shared by baselines, agents, evaluation and the runtime.

A policy maps a batch of observations to action probabilities; it does not learn (agents do). Every
policy respects the guardrail mask: disallowed actions get probability 0, and a row with nothing allowed
puts all its mass on action 0 ("no email"), which is always allowed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "BasePolicy",
    "EpsilonGreedy",
    "Policy",
    "Softmax",
    "UniformRandom",
    "apply_mask",
    "exploration_probs",
    "sample_actions",
]


@runtime_checkable
class Policy(Protocol):
    """Anything with a name, ``action_probs(obs, mask) -> (n, n_actions)`` and ``act``."""

    name: str

    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw one action per customer: ``(actions, propensities)``, both ``(n,)``, consistent with
        :meth:`action_probs` (``propensities[i] == action_probs(obs, mask)[i, actions[i]]``)."""
        ...

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Probabilities of each action.

        Args:
            obs: float array ``(n, n_features)``, the business's view of each customer.
            mask: bool array ``(n, n_actions)``, True where guardrails allow the action.

        Returns:
            float64 ``(n, n_actions)``; rows sum to 1; zero where ``mask`` is False.
        """
        ...


def apply_mask(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero disallowed actions and renormalise rows; rows left empty go to action 0 (no email)."""
    p = np.where(mask, probs, 0.0)
    total = p.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    if empty.any():
        p[empty] = 0.0
        p[empty, 0] = 1.0
        total[empty] = 1.0
    return p / total


def exploration_probs(scores: np.ndarray, mask: np.ndarray, temperature: float | None, epsilon: float) -> np.ndarray:
    """Greedy (``temperature`` None) or softmax at ``temperature`` over the allowed actions' scores, mixed
    with uniform over the allowed actions by ``epsilon``; rows with nothing allowed go to action 0.

    Args:
        scores: ``(n, k)``; mask: bool ``(n, k)``.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any(axis=1).all():  # a row with nothing allowed: the generic rule sends it to action 0
        return apply_mask(exploration_probs(scores, np.ones_like(mask), temperature, epsilon), mask)
    z = np.where(mask, scores, -np.inf)
    if temperature is None:
        best = np.argmax(z, axis=1)
        z[:] = 0.0
        z[np.arange(len(best)), best] = 1.0
    else:
        z /= float(temperature)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    if epsilon > 0:
        z *= 1 - epsilon
        z += mask * (epsilon / mask.sum(axis=1, keepdims=True))
    return z


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one action per row by inverse CDF.

    Args:
        probs: ``(n, n_actions)`` rows summing to 1.
        rng: the policy's generator.

    Returns:
        ``(actions, propensities)``, both ``(n,)``: the actions drawn and their probabilities.
    """
    n = probs.shape[0]
    rows = np.arange(n)
    u = rng.random(n)
    actions = np.argmax(probs, axis=1)
    # Rows with a sure action (deterministic policies, guardrail-only rows) need no inverse CDF; this
    # keeps sampling for rule-based policies at one argmax over the batch.
    random_rows = np.flatnonzero(probs[rows, actions] < 1.0)
    if random_rows.size:
        p = probs[random_rows]
        cum = np.cumsum(p, axis=1)
        pick = (cum <= (u[random_rows] * cum[:, -1])[:, None]).sum(axis=1)
        pick = np.minimum(pick, probs.shape[1] - 1)
        # Guard against landing on a zero-probability action through rounding at the top of the CDF.
        zero = p[np.arange(pick.size), pick] <= 0
        pick[zero] = np.argmax(p[zero], axis=1)
        actions[random_rows] = pick
    return actions, probs[np.arange(len(actions)), actions]


class BasePolicy(ABC):
    """Implements :meth:`act` by sampling :meth:`action_probs`; subclasses may override it with a
    faster exact path (e.g. deterministic rules)."""

    name: str

    @abstractmethod
    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """See :meth:`Policy.action_probs`."""

    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`Policy.act`."""
        return sample_actions(self.action_probs(obs, mask), rng)


class UniformRandom(BasePolicy):
    """Uniform over the allowed actions."""

    def __init__(self, n_actions: int, name: str = "random") -> None:
        self.n_actions = n_actions
        self.name = name

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return apply_mask(np.ones((obs.shape[0], self.n_actions)), mask)


class EpsilonGreedy(BasePolicy):
    """With probability ``epsilon`` a uniform allowed action, otherwise the base policy's choice.

    p(a) = (1 - epsilon) * base(a) + epsilon / |allowed|.
    """

    def __init__(self, base: Policy, epsilon: float, name: str | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.base = base
        self.epsilon = epsilon
        self.name = name or f"{base.name}-eps{epsilon:g}"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        base = self.base.action_probs(obs, mask)
        uniform = apply_mask(np.ones_like(base), mask)
        return (1.0 - self.epsilon) * base + self.epsilon * uniform


class Softmax(BasePolicy):
    """Softmax over the base policy's probabilities used as scores: p(a) ∝ exp(base(a) / temperature).

    For a deterministic base this keeps the base's action most likely and gives every other allowed
    action the same small probability, e.g. the "softmax-of-BAU" logging policy.
    """

    def __init__(self, base: Policy, temperature: float, name: str | None = None) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.base = base
        self.temperature = temperature
        self.name = name or f"{base.name}-softmax{temperature:g}"

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        scores = self.base.action_probs(obs, mask) / self.temperature
        scores = np.where(mask, scores, -np.inf)
        scores -= scores.max(axis=1, keepdims=True)
        return apply_mask(np.exp(scores), mask)
