"""stable-baselines3 trains on the environments (tiny budgets: this checks plumbing, not learning)."""

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

import nextbest.envs  # noqa: F401
from nextbest.envs.sb3 import PopulationVecEnv


@pytest.mark.slow
def test_ppo_on_email_campaign():
    env = gym.make("nextbest/EmailCampaign-v0")
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


@pytest.mark.slow
def test_maskable_ppo_respects_the_mask():
    env = gym.make("nextbest/EmailCampaign-v0")
    model = MaskablePPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    for seed in range(100):
        obs, info = env.reset(seed=seed)
        if not info["action_mask"][1:].any():
            action, _ = model.predict(obs, action_masks=info["action_mask"], deterministic=True)
            assert int(action) == 0
            return
    pytest.fail("no fully masked customer found")


@pytest.mark.slow
def test_ppo_and_maskable_ppo_on_population_vec_env():
    venv = PopulationVecEnv(num_envs=32, seed=0)
    assert isinstance(venv, VecEnv)
    PPO("MlpPolicy", venv, n_steps=32, batch_size=256, n_epochs=1, seed=0, device="cpu").learn(2048)
    masks = np.stack(venv.env_method("action_masks"))
    assert masks.shape == (32, 16) and masks[:, 0].all()
    MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=256, n_epochs=1, seed=0, device="cpu").learn(2048)


def test_vec_env_reports_terminal_observation():
    venv = PopulationVecEnv(num_envs=64, seed=0)
    venv.reset()
    replaced = np.zeros(64, dtype=bool)
    for _ in range(90):
        obs, rewards, dones, infos = venv.step(np.zeros(64, dtype=np.int64))
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i] and "TimeLimit.truncated" in infos[i]
        ended = dones & ~replaced
        replaced |= dones
    # customers who lasted the whole horizon are cut there, flagged as a time limit for bootstrapping
    survivors = np.flatnonzero(ended)
    assert survivors.size > 32
    assert all(infos[i]["TimeLimit.truncated"] for i in survivors)
