"""What the environments share: building the model and the observation space."""

from __future__ import annotations

import os

import numpy as np
from gymnasium import spaces

from nextbest.actions import feature_bounds
from nextbest.scenario import Scenario
from nextbest.simulator.model import CustomerModel

ScenarioLike = str | os.PathLike[str] | Scenario


def build_model(scenario: ScenarioLike) -> CustomerModel:
    """A compiled customer model from a scenario, a built-in scenario name or a YAML path."""
    return CustomerModel(scenario if isinstance(scenario, Scenario) else Scenario.load(scenario))


def observation_space(model: CustomerModel) -> spaces.Box:
    """Box of the business's view of one customer; every feature is a bounded non-negative count, rate or flag."""
    high = feature_bounds(model.features)
    return spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)
