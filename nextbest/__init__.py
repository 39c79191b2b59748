"""nextbest: which email to send to which customer, and when.

The top-level package holds only the shared contracts (scenario config, action catalog, policy interface,
logged-feedback dataset); heavier parts are reached lazily so that ``import nextbest.policies`` stays light.
"""

from __future__ import annotations

from typing import Any

from nextbest.actions import NO_EMAIL, ActionCatalog, observation_features
from nextbest.errors import DataError, NextbestError, ScenarioError
from nextbest.policy import Policy
from nextbest.scenario import Scenario

__version__ = "0.1.0"

__all__ = [
    "NO_EMAIL",
    "ActionCatalog",
    "DataError",
    "NextbestError",
    "Policy",
    "Scenario",
    "ScenarioError",
    "__version__",
    "observation_features",
]
