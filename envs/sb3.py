"""stable-baselines3 adapter for the natively vectorized population (imports SB3; load it explicitly).

Example:
    >>> from stable_baselines3 import PPO
    >>> from nextbest.envs.sb3 import PopulationVecEnv
    >>> venv = PopulationVecEnv(num_envs=64, seed=0)
    >>> model = PPO("MlpPolicy", venv, n_steps=16, batch_size=256, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from nextbest.envs._common import ScenarioLike
from nextbest.envs.population import EmailPopulationEnv

__all__ = ["PopulationVecEnv"]


class PopulationVecEnv(VecEnv):
    """``EmailPopulationEnv`` behind SB3's ``VecEnv`` interface (one numpy call per step for all envs).

    SB3 conventions: ``dones = terminated | truncated``; on done the returned observation is the new
    customer's and ``infos[i]["terminal_observation"]`` the last one; ``infos[i]["TimeLimit.truncated"]``
    tells SB3 to bootstrap. ``env_method("action_masks")`` serves sb3-contrib's MaskablePPO.

    Args:
        num_envs: customers stepped together.
        scenario: a :class:`~nextbest.Scenario`, a built-in scenario name or a YAML path.
        seed: seed of the first reset.
        reward, unsubscribe_penalty: training reward (see :class:`~nextbest.envs.population.EmailPopulationEnv`).
    """

    def __init__(
        self,
        num_envs: int = 64,
        scenario: ScenarioLike = "retail",
        seed: int | None = None,
        reward: str = "realised",
        unsubscribe_penalty: float = 0.0,
    ) -> None:
        self.env = EmailPopulationEnv(num_envs, scenario, reward, unsubscribe_penalty)
        super().__init__(num_envs, self.env.single_observation_space, self.env.single_action_space)
        self._seed = seed
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def close(self) -> None:
        pass

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        idx = self._indices(indices)
        if method_name == "action_masks":
            return list(self.env.action_masks()[idx])
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(idx)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices) if isinstance(indices, Iterable) else [indices]
