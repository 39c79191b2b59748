"""Gymnasium environments over the customer simulator; importing this package registers them.

* ``nextbest/EmailCampaign-v0``: one customer over the campaign horizon (:class:`EmailCampaignEnv`).
* ``nextbest/EmailPopulation-v0``: a natively vectorized population (:class:`EmailPopulationEnv`), made
  with ``gymnasium.make_vec("nextbest/EmailPopulation-v0", num_envs=N)``; for stable-baselines3 wrap it
  in :class:`nextbest.envs.sb3.PopulationVecEnv`.
* ``nextbest/EmailBandit-v0``: one decision per episode, the contextual-bandit view (:class:`EmailBanditEnv`).

Bump the version suffix whenever the dynamics change.
"""

from __future__ import annotations

import gymnasium as gym

from nextbest.envs.bandit import EmailBanditEnv
from nextbest.envs.campaign import EmailCampaignEnv
from nextbest.envs.population import EmailPopulationEnv

__all__ = ["ENV_IDS", "EmailBanditEnv", "EmailCampaignEnv", "EmailPopulationEnv"]

#: Horizon of the built-in "retail" scenario; the environments also end episodes at their scenario's own
#: horizon, so other scenarios work without passing max_episode_steps.
_RETAIL_HORIZON = 90

ENV_IDS = ("nextbest/EmailCampaign-v0", "nextbest/EmailPopulation-v0", "nextbest/EmailBandit-v0")


def _register() -> None:
    if "nextbest/EmailCampaign-v0" in gym.registry:
        return
    gym.register(
        id="nextbest/EmailCampaign-v0",
        entry_point="nextbest.envs.campaign:EmailCampaignEnv",
        max_episode_steps=_RETAIL_HORIZON,
    )
    gym.register(
        id="nextbest/EmailPopulation-v0",
        vector_entry_point="nextbest.envs.population:EmailPopulationEnv",
    )
    gym.register(id="nextbest/EmailBandit-v0", entry_point="nextbest.envs.bandit:EmailBanditEnv", max_episode_steps=1)


_register()
