"""What the environments share: building the model and the observation space."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces

from nextbest.actions import feature_bounds
from nextbest.scenario import Scenario
from nextbest.simulator.model import SCALAR, CustomerModel, State

ScenarioLike = str | os.PathLike[str] | Scenario


def build_model(scenario: ScenarioLike) -> CustomerModel:
    """A compiled customer model from a scenario, a built-in scenario name or a YAML path."""
    return CustomerModel(scenario if isinstance(scenario, Scenario) else Scenario.load(scenario))


def observation_space(model: CustomerModel) -> spaces.Box:
    """Box of the business's view of one customer; every feature is a bounded non-negative count, rate or flag."""
    high = feature_bounds(model.features)
    return spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)


def guarded_action(model: CustomerModel, state: State | None, action: Any) -> tuple[int, bool]:
    """Check one customer's action and apply the guardrails: ``(executed action, guardrail fired)``.

    A disallowed email (no consent, unsubscribed, weekly cap) is replaced by "no email" (action 0).
    """
    if state is None:
        raise RuntimeError("call reset() before step()")
    action = int(action)
    if not 0 <= action < model.catalog.n_actions:
        raise ValueError(f"action {action} outside Discrete({model.catalog.n_actions})")
    guardrail = action != 0 and not model.may_email(state, SCALAR)
    return (0 if guardrail else action), guardrail
