"""Every registered nextbest environment through the same gauntlet."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import nextbest.envs
from nextbest.envs import EmailPopulationEnv

SINGLE = [eid for eid in gym.registry if eid.startswith("nextbest/") and gym.registry[eid].entry_point]


def test_all_ids_registered():
    assert set(nextbest.envs.ENV_IDS) <= set(gym.registry)
    assert set(SINGLE) == {"nextbest/EmailCampaign-v0", "nextbest/EmailBandit-v0"}


@pytest.mark.parametrize("env_id", SINGLE)
def test_checkers_pass_without_warnings(env_id):
    env = gym.make(env_id).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)
        sb3_check_env(env)


def _trajectory(env_id, seed, steps=200):
    env = gym.make(env_id)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    record = [obs, info["action_mask"]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        record += [obs, reward, terminated, truncated, info["action_mask"]]
        if terminated or truncated:
            obs, info = env.reset()
            record += [obs]
    return record


@pytest.mark.parametrize("env_id", SINGLE)
def test_same_seed_same_trajectory(env_id):
    a, b, c = _trajectory(env_id, 3), _trajectory(env_id, 3), _trajectory(env_id, 4)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=False))


def test_campaign_episode_endings_and_guardrail():
    env = gym.make("nextbest/EmailCampaign-v0")
    lengths, ended_by = [], []
    env.reset(seed=0)
    for _ in range(40):
        t = 0
        while True:
            obs, _, terminated, truncated, info = env.step(1)
            t += 1
            assert obs[nextbest.observation_features(env.unwrapped.model.scenario).index("campaign_day")] == t
            if info["guardrail"]:
                assert info["executed_action"] == 0
            if terminated or truncated:
                break
        lengths.append(t)
        ended_by.append("truncated" if truncated else "terminated")
        env.reset()
    assert max(lengths) == 90 and "truncated" in ended_by
    assert all(n == 90 for n, how in zip(lengths, ended_by, strict=True) if how == "truncated")


def test_no_consent_masks_everything_but_no_email():
    env = gym.make("nextbest/EmailCampaign-v0").unwrapped
    for seed in range(200):
        _, info = env.reset(seed=seed)
        if not env._state.consent:
            assert info["action_mask"].tolist() == [True] + [False] * (env.action_space.n - 1)
            _, _, _, _, step_info = env.step(5)
            assert step_info["guardrail"] and step_info["executed_action"] == 0
            return
    pytest.fail("no customer without consent in 200 draws")


def test_population_env_vectorized_contract():
    env = gym.make_vec("nextbest/EmailPopulation-v0", num_envs=256)
    assert isinstance(env.unwrapped if hasattr(env, "unwrapped") else env, EmailPopulationEnv)
    obs, info = env.reset(seed=1)
    assert obs.shape == (256, env.single_observation_space.shape[0]) and obs.dtype == np.float32
    assert info["action_mask"].shape == (256, env.single_action_space.n)
    assert env.single_observation_space.contains(obs[0])
    twin = gym.make_vec("nextbest/EmailPopulation-v0", num_envs=256)
    twin.reset(seed=1)
    rng = np.random.default_rng(0)
    saw_reset = saw_truncation = False
    for _ in range(95):
        actions = rng.integers(0, env.single_action_space.n, 256)
        out_a = env.step(actions)
        out_b = twin.step(actions)
        for x, y in zip(out_a[:4], out_b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        obs, _, terminated, truncated, info = out_a
        done = terminated | truncated
        saw_truncation |= truncated.any()
        if done.any():
            saw_reset = True
            np.testing.assert_array_equal(info["_final_obs"], done)
            day = env.single_observation_space.shape[0] - 6  # campaign_day precedes the 5 one-hot columns
            assert (obs[done, day] == 0).all()  # replaced by fresh customers on day 0
    assert saw_reset and saw_truncation


@pytest.mark.slow
def test_expected_reward_mode_has_the_realised_mean():
    """Same objective, less noise: with the same seed the customers evolve identically, and the mean
    expected reward matches the mean realised reward within sampling error."""
    realised, expected = EmailPopulationEnv(4096), EmailPopulationEnv(4096, reward="expected")
    rng = np.random.default_rng(0)
    r_sum, e_sum = [], []
    realised.reset(seed=7)
    expected.reset(seed=7)
    for _ in range(20):
        actions = rng.integers(0, realised.single_action_space.n, 4096)
        r_sum.append(realised.step(actions)[1])
        e_sum.append(expected.step(actions)[1])
    r, e = np.concatenate(r_sum), np.concatenate(e_sum)
    assert e.std() < r.std() / 3
    assert abs(r.mean() - e.mean()) < 4 * r.std() / np.sqrt(r.size)
    with pytest.raises(ValueError, match="reward"):
        EmailPopulationEnv(4, reward="lucky")
    with pytest.raises(ValueError, match="unsubscribe_penalty"):
        EmailPopulationEnv(4, unsubscribe_penalty=-1.0)
