"""Off-policy evaluation: bandit estimators with intervals and diagnostics, and ground truth on simulated logs.

Example:
    >>> import nextbest
    >>> from nextbest.evaluation import estimate_all
    >>> logs = nextbest.load_logs("logs.parquet")  # doctest: +SKIP
    >>> for e in estimate_all(logs, policy.action_probs(logs.contexts, mask)):  # doctest: +SKIP
    ...     print(e.estimator, e.value, e.lower, e.upper)
"""

from nextbest.evaluation.estimators import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    Diagnostics,
    DRos,
    Estimate,
    Estimator,
    SwitchDR,
    default_estimators,
    estimate_all,
)
from nextbest.evaluation.ground_truth import bandit_ground_truth, model_for_logs, sequential_ground_truth
from nextbest.evaluation.reward_model import FittedRidge, RidgeRewardModel
from nextbest.evaluation.sequential import SEQUENTIAL_ESTIMATORS, Trajectories, estimate_sequential

__all__ = [
    "DM",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
    "DRos",
    "Diagnostics",
    "Estimate",
    "Estimator",
    "FittedRidge",
    "RidgeRewardModel",
    "SEQUENTIAL_ESTIMATORS",
    "SwitchDR",
    "Trajectories",
    "bandit_ground_truth",
    "default_estimators",
    "estimate_all",
    "estimate_sequential",
    "model_for_logs",
    "sequential_ground_truth",
]
