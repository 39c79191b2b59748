"""The customer population model, its drivers (vectorized daily, SimPy campaign) and ground truth."""

from nextbest.simulator.baselines import BUILTIN_POLICIES, BAUPolicy, NeverEmail, make_policy
from nextbest.simulator.driver import CAMPAIGN_START, PolicyValue, Step, policy_value, rollout, spawn_rngs
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
    "make_policy",
    "policy_value",
    "rollout",
    "spawn_rngs",
]
