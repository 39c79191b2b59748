"""Linear bandit agents: a toy problem with a known best action per context, export parity, determinism,
invalid inputs."""

import numpy as np
import pandas as pd
import pytest

from nextbest import NextbestError
from nextbest.agents.linear import DirectMethod, LinTS, LinUCB, PolicyLearner
from nextbest.logs import validate_logs
from nextbest.policies import load
from nextbest.scripts.cli import main

FEATURES = ["x0", "x1"]
ACTIONS = ["none", "a", "b"]


def mean_reward(x, a):
    """Action 1 pays x0, action 2 pays -x0, action 0 pays 0.2: the best action depends on the context."""
    return np.where(a == 0, 0.2, np.where(a == 1, x[:, 0], -x[:, 0]))


def uniform_logs(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    a = rng.integers(0, 3, n)
    r = mean_reward(x, a) + rng.normal(0, 0.5, n)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "decision_time": pd.Timestamp("2026-01-05"),
            "x0": x[:, 0],
            "x1": x[:, 1],
            "action": a,
            "propensity": 1 / 3,
            "reward": r,
        }
    )
    for name in ACTIONS:
        frame[f"prob_{name}"] = 1 / 3
    return validate_logs(frame)


def best_action_share(agent, seed=9):
    x = np.random.default_rng(seed).normal(size=(2000, 2))
    chosen = agent.action_probs(x, np.ones((2000, 3), dtype=bool)).argmax(axis=1)
    best = np.stack([mean_reward(x, np.full(2000, a)) for a in range(3)], axis=1).argmax(axis=1)
    return (chosen == best).mean()


@pytest.mark.parametrize(
    "make",
    [
        lambda: DirectMethod(FEATURES, ACTIONS),
        lambda: PolicyLearner(FEATURES, ACTIONS, weighting="dr"),
        lambda: PolicyLearner(FEATURES, ACTIONS, weighting="ips"),
    ],
    ids=["dm", "dr-policy", "ips-policy"],
)
def test_offline_learners_find_the_best_action(make):
    agent = make()
    logs = uniform_logs()
    agent.fit(logs)
    assert best_action_share(agent) > 0.9


@pytest.mark.parametrize("cls", [LinUCB, LinTS])
def test_online_agents_find_the_best_action(cls):
    rng = np.random.default_rng(1)
    agent = cls(FEATURES, ACTIONS, feature_mean=[0, 0], feature_scale=[1, 1])
    for _ in range(40):
        x = rng.normal(size=(250, 2))
        a = agent.act_online(x, np.ones((250, 3), dtype=bool), rng)
        agent.update(x, a, mean_reward(x, a) + rng.normal(0, 0.5, 250))
    assert best_action_share(agent) > 0.9


@pytest.mark.parametrize("kwargs", [{"temperature": None, "epsilon": 0.0}, {"temperature": 0.3, "epsilon": 0.1}])
def test_export_parity(tmp_path, kwargs):
    agent = PolicyLearner(FEATURES, ACTIONS, **kwargs).fit(uniform_logs())
    policy = load(agent.export(tmp_path / "p.zip"))
    x = np.random.default_rng(4).normal(size=(1000, 2)) * 3
    mask = np.ones((1000, 3), dtype=bool)
    mask[::4, 1:] = False
    np.testing.assert_allclose(policy.action_probs(x, mask), agent.action_probs(x, mask), rtol=0, atol=1e-9)


def test_deterministic(tmp_path):
    a = PolicyLearner(FEATURES, ACTIONS).fit(uniform_logs(), seed=3)
    b = PolicyLearner(FEATURES, ACTIONS).fit(uniform_logs(), seed=3)
    x = np.random.default_rng(0).normal(size=(100, 2))
    np.testing.assert_array_equal(a.scores(x), b.scores(x))


def test_invalid_inputs(tmp_path):
    agent = DirectMethod(FEATURES, ACTIONS)
    with pytest.raises(NextbestError, match="actions must be ids"):
        agent.update(np.zeros((3, 2)), np.array([0, 1, 5]), np.zeros(3))
    with pytest.raises(NextbestError, match=r"shape \(n, 2\)"):
        agent.update(np.zeros((3, 4)), np.array([0, 1, 2]), np.zeros(3))
    with pytest.raises(NextbestError, match="has not seen any data"):
        agent.export(tmp_path / "x.zip")
    with pytest.raises(ValueError, match="weighting"):
        PolicyLearner(FEATURES, ACTIONS, weighting="magic")


def test_train_command(tmp_path, capsys):
    path = tmp_path / "logs.csv"
    uniform_logs(3000).frame.to_csv(path, index=False)
    out = tmp_path / "policy.zip"
    assert main(["train", "--algo", "dr-policy", "--logs", str(path), "--out", str(out)]) == 0
    assert "vs logging policy" in capsys.readouterr().out
    manifest = load(out).manifest
    assert manifest["ope"]["estimator"] == "dr" and len(manifest["training_data_sha256"]) == 64
    small = tmp_path / "small.csv"
    uniform_logs(20).frame.to_csv(small, index=False)
    assert main(["train", "--algo", "dm", "--logs", str(small), "--out", str(tmp_path / "s.zip")]) == 2
    assert "too few" in capsys.readouterr().err and not (tmp_path / "s.zip").exists()


def test_non_contextual_baselines_find_the_best_arm(tmp_path):
    from nextbest.agents.basic import UCB1, EpsilonGreedyBandit, ThompsonBandit

    rng = np.random.default_rng(2)
    for cls in (EpsilonGreedyBandit, UCB1, ThompsonBandit):
        agent = cls(FEATURES, ACTIONS)
        for _ in range(60):
            x = rng.normal(size=(100, 2))
            a = agent.act_online(x, np.ones((100, 3), dtype=bool), rng)
            agent.update(
                x, a, np.where(a == 2, 1.0, 0.0) * (rng.random(100) < 0.6) + (a == 1) * (rng.random(100) < 0.4)
            )
        assert np.argmax(agent.means) == 2, cls.__name__
        policy = load(agent.export(tmp_path / f"{cls.__name__}.zip"))
        x = rng.normal(size=(50, 2))
        np.testing.assert_allclose(
            policy.action_probs(x, np.ones((50, 3), bool)), agent.action_probs(x, np.ones((50, 3), bool)), atol=1e-9
        )


def test_train_bad_logs_exit_2_without_artifact(tmp_path, capsys):
    frame = uniform_logs(3000).frame
    no_propensity = tmp_path / "no_prop.csv"
    frame.drop(columns=["propensity"]).to_csv(no_propensity, index=False)
    outside = tmp_path / "outside.csv"
    frame.assign(action=np.where(np.arange(len(frame)) == 7, 3, frame["action"])).to_csv(outside, index=False)
    for path, message in ((no_propensity, "--propensity"), (outside, "row 7: outside the catalog")):
        out = tmp_path / "p.zip"
        assert main(["train", "--algo", "dr-policy", "--logs", str(path), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err and not out.exists()
