"""``nextbest/EmailPopulation-v0``: N customers stepped together in one numpy call."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from nextbest.envs._common import ScenarioLike, build_model, observation_space

__all__ = ["EmailPopulationEnv"]


class EmailPopulationEnv(VectorEnv):
    """A natively vectorized population: sub-environment ``i`` is customer ``i``'s EmailCampaign-v0.

    Same spaces, rewards and episode endings as ``nextbest/EmailCampaign-v0``. Autoreset is
    ``SAME_STEP``: a customer whose episode ended is replaced in the same step by a fresh customer, the
    returned observation is the new customer's, and the last one is in ``infos["final_obs"]`` (rows
    flagged by ``infos["_final_obs"]``). ``infos["action_mask"]`` is ``(num_envs, n_actions)``.

    Use it with stable-baselines3 through :class:`nextbest.envs.sb3.PopulationVecEnv`.

    Args:
        num_envs: customers stepped together.
        scenario: a :class:`~nextbest.Scenario`, a built-in scenario name or a YAML path.
        reward: ``"realised"`` (the day's sampled margin minus costs) or ``"expected"`` (its exact
            expected value given the customer's latent state and the action: the same objective in
            expectation with far less noise, since a purchase follows well under 1% of decisions - a
            training aid that only a simulator can give; states still evolve from sampled outcomes).
        unsubscribe_penalty: currency charged per unsubscribe on top of the reward (per expected
            unsubscribe with ``reward="expected"``): what a subscriber is worth after the horizon, which
            the horizon's own accounting leaves out. A training aid; the ground truth never includes it.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1024,
        scenario: ScenarioLike = "retail",
        reward: str = "realised",
        unsubscribe_penalty: float = 0.0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if reward not in ("realised", "expected"):
            raise ValueError(f"reward must be 'realised' or 'expected', got {reward!r}")
        if not unsubscribe_penalty >= 0:
            raise ValueError(f"unsubscribe_penalty must be >= 0, got {unsubscribe_penalty}")
        self.reward = reward
        self.unsubscribe_penalty = float(unsubscribe_penalty)
        self.model = build_model(scenario)
        self.num_envs = num_envs
        self.horizon = self.model.scenario.horizon_days
        self.single_observation_space = observation_space(self.model)
        self.single_action_space = spaces.Discrete(self.model.catalog.n_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._np_random, self._np_random_seed = seeding.np_random()
        self._traits: Any = None
        self._state: Any = None

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._traits, self._state = self.model.sample_population(self.num_envs, self._np_random)
        return self.model.observe(self._state), {"action_mask": self.model.action_mask(self._state)}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        m = self.model
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if ((actions < 0) | (actions >= m.catalog.n_actions)).any():
            raise ValueError(f"actions must be in [0, {m.catalog.n_actions})")
        guardrail = (actions != 0) & (m.may_email(self._state) == 0)
        executed = np.where(guardrail, 0, actions)
        probs = m.probabilities(self._traits, self._state, executed)  # one pass serves reward and outcome
        out = m.sample_outcome(self._traits, self._state, executed, self._np_random, probs=probs)
        state = m.transition(self._traits, self._state, executed, out)
        if self.reward == "expected":
            reward = m.expected_reward(self._traits, self._state, executed, probs=probs)
            reward = reward - self.unsubscribe_penalty * probs.p_open * probs.p_unsubscribe
        else:
            reward = out.reward - self.unsubscribe_penalty * out.unsubscribed
        terminated = (out.unsubscribed > 0) | (out.churned > 0)
        truncated = ~terminated & (state.t >= self.horizon)
        obs = m.observe(state)
        infos: dict[str, Any] = {"guardrail": guardrail, "executed_action": executed}
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            final = np.zeros_like(obs)
            final[done] = obs[done]
            infos["final_obs"], infos["_final_obs"] = final, terminated | truncated
            new_traits, new_state = m.sample_population(done.size, self._np_random)
            self._traits = self._traits.put(done, new_traits)
            state = state.put(done, new_state)
            obs[done] = m.observe(new_state)
        self._state = state
        infos["action_mask"] = m.action_mask(state)
        return obs, reward.astype(np.float64), terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_actions)`` mask of the actions allowed now."""
        return self.model.action_mask(self._state)
