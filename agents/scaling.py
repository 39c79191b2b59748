"""The fixed observation map ``(obs - mean) / scale`` the neural agents (online RL, offline RL) train on
and that their MLP artifacts carry as feature normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.simulator import make_policy
from nextbest.simulator.driver import rollout
from nextbest.simulator.model import CustomerModel

__all__ = ["Scaling"]


@dataclass(frozen=True)
class Scaling:
    """Per-feature ``mean`` and ``scale`` (standard deviation; 1 for a constant feature)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, obs: np.ndarray) -> Scaling:
        """Mean and standard deviation of every column of ``obs`` ``(n, d)`` (e.g. logged contexts)."""
        x = np.asarray(obs, dtype=np.float64)
        return cls._floored(x.mean(axis=0), x.std(axis=0))

    @classmethod
    def measure(cls, model: CustomerModel, n_customers: int = 2_000, seed: int = 0) -> Scaling:
        """Mean and standard deviation of every feature over a BAU-run population and horizon."""
        bau = make_policy("bau", model.features, model.catalog)
        total = np.zeros(len(model.features))
        square = np.zeros(len(model.features))
        count = 0

        def add(step: Any) -> None:
            nonlocal count
            x = step.obs[step.active].astype(np.float64)
            total[:] += x.sum(axis=0)
            square[:] += (x * x).sum(axis=0)
            count += x.shape[0]

        rollout(model, bau, n_customers, model.scenario.horizon_days, seed, on_step=add)
        mean = total / count
        return cls._floored(mean, np.sqrt(np.maximum(square / count - mean * mean, 0.0)))

    @classmethod
    def _floored(cls, mean: np.ndarray, scale: np.ndarray) -> Scaling:
        """A constant feature (spread under 1e-6) keeps scale 1 rather than dividing by ~0."""
        scale = scale.copy()
        scale[scale < 1e-6] = 1.0
        return cls(mean, scale)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Scaled observations, float32 (what the torch networks read)."""
        return ((np.asarray(obs, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)
