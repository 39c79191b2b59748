"""nextbest: which email to send to which customer, and when.

The top-level package holds only the shared contracts (scenario config, action catalog, policy interface,
logged-feedback dataset); heavier parts are reached lazily so that ``import nextbest.policies`` stays light.
"""

from __future__ import annotations

from typing import Any

from nextbest.actions import NO_EMAIL, ActionCatalog, observation_features
from nextbest.decision import Decision
from nextbest.errors import DataError, NextbestError, ScenarioError
from nextbest.policy import Policy
from nextbest.scenario import Scenario

__version__ = "0.1.0"

_LAZY = {
    "LoggedFeedback": "nextbest.logs",
    "load_logs": "nextbest.logs",
    "save_table": "nextbest.logs",
}


def __getattr__(name: str) -> Any:
    """Reach the pandas-backed logged-feedback API lazily, keeping ``import nextbest`` light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nextbest' has no attribute {name!r}")


__all__ = [
    "NO_EMAIL",
    "ActionCatalog",
    "DataError",
    "Decision",
    "LoggedFeedback",
    "NextbestError",
    "Policy",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_logs",
    "observation_features",
    "save_table",
]
