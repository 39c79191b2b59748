"""An exported SB3 policy gives the same action probabilities as SB3 itself (numpy vs torch)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import nextbest.envs  # noqa: F401
from nextbest.agents.sb3_export import export_sb3
from nextbest.policies import load


@pytest.mark.slow
def test_exported_probabilities_equal_sb3(tmp_path):
    env = gym.make("nextbest/EmailCampaign-v0")
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=256,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [64, 64]},
    )
    model.learn(512)
    model_env = env.unwrapped
    path = export_sb3(
        model,
        tmp_path / "ppo.zip",
        name="ppo",
        features=model_env.model.features,
        actions=model_env.model.catalog.names,
    )
    policy = load(path)
    obs = np.stack([env.reset(seed=s)[0] for s in range(64)])
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(obs))
        expected = dist.distribution.probs.numpy()
    got = policy.action_probs(obs, np.ones((64, 16), dtype=bool))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
