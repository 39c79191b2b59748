"""``nextbest/EmailCampaign-v0``: one customer over the campaign horizon."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nextbest.envs._common import ScenarioLike, build_model, guarded_action, observation_space
from nextbest.simulator.model import SCALAR

__all__ = ["EmailCampaignEnv"]


class EmailCampaignEnv(gym.Env[np.ndarray, np.int64]):
    """One customer, one decision per day, for the scenario's horizon.

    * action: ``Discrete(n_actions)``; 0 = no email, then every (offer, slot) pair of the catalog.
    * observation: float32 vector of what the business sees (RFM, email history, consent, ...; see
      ``nextbest.observation_features``), never the latent traits.
    * reward: that day's margin - discount cost - shipping cost - send cost (currency).
    * ``terminated`` when the customer unsubscribes or churns; ``truncated`` at the horizon.
    * ``info["action_mask"]``: bool ``(n_actions,)`` of the actions guardrails allow *next*; an action
      outside the mask is replaced by "no email" and ``info["guardrail"]`` is True.

    The per-step path uses the model's scalar form (plain Python floats): numpy's per-call overhead on
    length-1 arrays would make it ~10x slower.

    Args:
        scenario: a :class:`~nextbest.Scenario`, a built-in scenario name or a YAML path.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, scenario: ScenarioLike = "retail") -> None:
        self.model = build_model(scenario)
        self.horizon = self.model.scenario.horizon_days
        self.observation_space = observation_space(self.model)
        self.action_space = spaces.Discrete(self.model.catalog.n_actions)
        self._traits: Any = None
        self._state: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        traits, state = self.model.sample_population(1, self.np_random)
        self._traits, self._state = traits.row(0), state.row(0)
        return self.model.observe(self._state, SCALAR), {"action_mask": self.model.action_mask_one(self._state)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        m, state = self.model, self._state
        executed, guardrail = guarded_action(m, state, action)
        out = m.sample_outcome(self._traits, state, executed, self.np_random, ops=SCALAR)
        self._state = m.transition(self._traits, state, executed, out, SCALAR)
        terminated = bool(out.unsubscribed or out.churned)
        truncated = not terminated and self._state.t >= self.horizon
        info = {
            "action_mask": m.action_mask_one(self._state),
            "executed_action": executed,
            "guardrail": guardrail,
            "opened": out.opened,
            "clicked": out.clicked,
            "purchased": out.purchased,
            "revenue": out.revenue,
        }
        return m.observe(self._state, SCALAR), float(out.reward), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Mask of allowed actions now (the hook sb3-contrib's MaskablePPO calls)."""
        return self.model.action_mask_one(self._state)
