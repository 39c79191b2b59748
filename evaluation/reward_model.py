"""Reward models q(x, a) for the direct method and doubly robust estimators, cross-fitted.

One ridge regression per action on standardised contexts, solved in closed form with numpy: with ``d``
features the fit is a ``(d+1) x (d+1)`` solve per action and fold after one pass over the rows, which
keeps 1M rows x 16 actions well under a second and exactly reproducible. scikit-learn's ``Ridge`` fits
the same model; calling it 16 x ``n_folds`` times costs more in input checks than the solve itself.

Cross-fitting: customers (not rows, so a customer's days stay together) are split at random into
``n_folds`` folds; each row's prediction comes from the model fitted on the other folds, so the DR
correction term is not fitted to its own noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FittedRidge", "RidgeRewardModel"]


@dataclass(frozen=True, kw_only=True)
class RidgeRewardModel:
    """Per-action ridge regression, cross-fitted over customers.

    Attributes:
        alpha: ridge penalty on the standardised coefficients (the intercept is not penalised).
        n_folds: cross-fitting folds (>= 2).
    """

    alpha: float = 1.0
    n_folds: int = 2

    def __post_init__(self) -> None:
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")

    def cross_fit(
        self,
        contexts: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        clusters: np.ndarray,
        n_actions: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Out-of-fold predictions of every action's expected reward.

        Args:
            contexts: ``(n, d)``; actions, rewards, clusters: ``(n,)``; n_actions: ``k``.

        Returns:
            ``(n, k)`` predicted reward of each action for each logged context.
        """
        n_clusters = int(clusters.max()) + 1
        fold = rng.permutation(n_clusters)[clusters] % self.n_folds
        if np.unique(fold).size < self.n_folds:  # too few customers to split: fit on everything
            fold = np.zeros_like(fold)
        predictions = np.empty((contexts.shape[0], n_actions))
        for k in np.unique(fold):
            test = fold == k
            train = ~test if (~test).any() else test
            predictions[test] = self.fit(contexts[train], actions[train], rewards[train], n_actions).predict(
                contexts[test]
            )
        return predictions

    def fit(self, x: np.ndarray, actions: np.ndarray, targets: np.ndarray, n_actions: int) -> FittedRidge:
        """One ridge regression per action of ``targets`` on standardised ``x`` (all rows, no folds).

        An action with fewer than 2 rows predicts the mean target.
        """
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        design = _design(x, mean, scale)
        d = design.shape[1]
        penalty = self.alpha * np.eye(d)
        penalty[0, 0] = 0.0
        weights = np.zeros((d, n_actions))
        weights[0] = targets.mean() if targets.size else 0.0
        for a in range(n_actions):
            rows = actions == a
            if rows.sum() < 2:
                continue
            xa = design[rows]
            weights[:, a] = np.linalg.solve(xa.T @ xa + penalty, xa.T @ targets[rows])
        return FittedRidge(weights, mean, scale)


@dataclass(frozen=True)
class FittedRidge:
    """Per-action ridge coefficients ``(d+1, k)`` and the standardisation they were fitted with."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(n, k)`` predictions for contexts ``x`` ``(n, d)``."""
        return _design(x, self.mean, self.scale) @ self.weights


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(x.shape[0]), (x - mean) / scale])
