"""The customer population model, its drivers (vectorized daily, SimPy campaign) and ground truth."""

from nextbest.simulator.baselines import BUILTIN_POLICIES, BAUPolicy, NeverEmail, make_policy
from nextbest.simulator.driver import (
    CAMPAIGN_START,
    LogCollector,
    PolicyValue,
    Step,
    log_metadata,
    policy_value,
    rollout,
    simulate,
    simulate_to_file,
    spawn_rngs,
)
from nextbest.simulator.model import ARRAY, SCALAR, CustomerModel, Outcome, Probabilities, State, Traits

__all__ = [
    "ARRAY",
    "BAUPolicy",
    "BUILTIN_POLICIES",
    "CAMPAIGN_START",
    "CustomerModel",
    "NeverEmail",
    "Outcome",
    "PolicyValue",
    "Probabilities",
    "SCALAR",
    "State",
    "Step",
    "Traits",
    "LogCollector",
    "log_metadata",
    "make_policy",
    "simulate",
    "simulate_to_file",
    "policy_value",
    "rollout",
    "spawn_rngs",
]
