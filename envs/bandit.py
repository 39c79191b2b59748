"""``nextbest/EmailBandit-v0``: the contextual-bandit view, one decision per episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nextbest.envs._common import ScenarioLike, build_model, guarded_action, observation_space
from nextbest.simulator.baselines import BAUPolicy
from nextbest.simulator.model import SCALAR

__all__ = ["EmailBanditEnv"]


class EmailBanditEnv(gym.Env[np.ndarray, np.int64]):
    """Each episode is one (customer, day): observe the context, pick an action, get that day's reward.

    Contexts come from a pool of ``pool_size`` customers that lives through the campaign under the
    retailer's BAU policy, so they carry realistic email and purchase histories (fatigue, coupons,
    recency). Each day's customers are served in random order; then the pool moves on one day (a fresh
    pool after the horizon). The reward is the realised reward of the chosen action on that day; the
    pool's own history is not changed by it. ``info["expected_rewards"]`` at reset holds the exact expected
    reward of every action for this customer (the simulator's ground truth, for measuring regret).

    Args:
        scenario: a :class:`~nextbest.Scenario`, a built-in scenario name or a YAML path.
        pool_size: customers in the context pool.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, scenario: ScenarioLike = "retail", pool_size: int = 512) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self.model = build_model(scenario)
        self.pool_size = pool_size
        self.observation_space = observation_space(self.model)
        self.action_space = spaces.Discrete(self.model.catalog.n_actions)
        self._bau = BAUPolicy(self.model.features, self.model.catalog)
        self._pool: Any = None
        self._order: list[int] = []
        self._served = False
        self._current: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None or self._pool is None:
            self._pool = self.model.sample_population(self.pool_size, self.np_random)
            self._order = []
            self._served = False
        if not self._order:
            self._advance_pool()
        i = self._order.pop()
        traits, state = self._pool
        self._current = (traits.row(i), state.row(i))
        mask = self.model.action_mask_one(self._current[1])
        info = {"action_mask": mask, "expected_rewards": self._expected[i]}
        return self.model.observe(self._current[1], SCALAR), info

    def _advance_pool(self) -> None:
        """Start serving the pool's next day (its first day right after it was drawn)."""
        traits, state = self._pool
        if self._served:
            if int(state.t[0]) + 1 >= self.model.scenario.horizon_days:
                traits, state = self.model.sample_population(self.pool_size, self.np_random)
            else:
                actions, _ = self._bau.act(self.model.observe(state), self.model.action_mask(state), self.np_random)
                state, _ = self.model.step(traits, state, actions, self.np_random)
            self._pool = (traits, state)
        self._order = self.np_random.permutation(self.pool_size).tolist()
        self._served = True
        # Ground truth for regret: the exact expected reward of every action for every pooled customer
        # today (latent knowledge: evaluation only, never part of the observation).
        self._expected = self.model.expected_reward_all(*self._pool).astype(np.float64)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        traits, state = self._current if self._current is not None else (None, None)
        m = self.model
        executed, guardrail = guarded_action(m, state, action)
        out = m.sample_outcome(traits, state, executed, self.np_random, ops=SCALAR)
        obs = m.observe(state, SCALAR)
        self._current = None
        info = {"executed_action": executed, "guardrail": guardrail, "action_mask": m.action_mask_one(state)}
        return obs, float(out.reward), True, False, info
