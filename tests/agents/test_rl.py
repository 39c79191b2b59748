"""Online RL with stable-baselines3: a toy scenario where the answer is known, determinism, export parity,
ground-truth reporting, the CLI."""

import numpy as np
import pytest

from nextbest import Scenario
from nextbest.agents.rl import ALGORITHMS, train_online
from nextbest.policies import load
from nextbest.scripts.cli import main
from nextbest.simulator import CustomerModel, make_policy, policy_value

# Every email costs 3 currency units, far more than it ever earns: the answer is "never email".
TOY = Scenario.load("retail").replace(send_cost=3.0, horizon_days=20)


@pytest.fixture(scope="module")
def toy_model():
    return CustomerModel(TOY)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo"])
def test_small_budget_beats_random_on_the_toy_scenario(algo, toy_model):
    trained = train_online(algo, 80_000, TOY, seed=0, n_envs=64, n_steps=32, batch_size=512, learning_rate=3e-3)
    value = policy_value(trained.policy(), toy_model, 2_000, seed=3)
    random = policy_value(make_policy("random", toy_model.features, toy_model.catalog), toy_model, 2_000, seed=3)
    never = policy_value(make_policy("none", toy_model.features, toy_model.catalog), toy_model, 2_000, seed=3)
    # random loses ~3 per email; the learned policy must have cut most of that loss
    assert value.mean > random.mean + 0.5 * (never.mean - random.mean)
    assert trained.history and trained.history[-1][1].policy == algo


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_determinism_and_export_parity(algo, tmp_path, toy_model):
    options = {
        "dqn": {"n_envs": 16, "learning_starts": 64, "buffer_size": 4096},
        "a2c": {"n_envs": 16, "n_steps": 16},
    }.get(algo, {"n_envs": 16, "n_steps": 16, "batch_size": 64})
    a = train_online(algo, 512, TOY, seed=5, eval_customers=50, **options)
    b = train_online(algo, 512, TOY, seed=5, eval_customers=50, **options)
    obs = np.abs(np.random.default_rng(0).normal(size=(1000, len(toy_model.features)))) * 5
    np.testing.assert_array_equal(a.policy().scores(obs), b.policy().scores(obs))
    mask = np.ones((1000, toy_model.catalog.n_actions), dtype=bool)
    mask[::5, 1:] = False
    for temperature in (1.0, None):
        mine = a.policy(temperature).action_probs(obs, mask)
        theirs = load(a.export(tmp_path / f"{algo}.zip", temperature=temperature)).action_probs(obs, mask)
        np.testing.assert_allclose(theirs, mine, atol=1e-5)
        assert (theirs.argmax(axis=1) == mine.argmax(axis=1)).all()


def test_sb3_policy_probabilities_are_sb3s(toy_model):
    import torch

    trained = train_online("ppo", 256, TOY, seed=1, eval_customers=50, n_envs=16, n_steps=16, batch_size=64)
    obs = np.abs(np.random.default_rng(1).normal(size=(64, len(toy_model.features))))
    with torch.no_grad():
        dist = trained.sb3_model.policy.get_distribution(torch.as_tensor(trained.scaling(obs)))
    expected = dist.distribution.probs.numpy()
    got = trained.policy().action_probs(obs, np.ones((64, toy_model.catalog.n_actions), dtype=bool))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_unknown_algorithm_and_misuse(tmp_path, capsys):
    from nextbest.errors import NextbestError

    with pytest.raises(NextbestError, match="unknown online RL algorithm"):
        train_online("sarsa", 100)
    out = tmp_path / "p.zip"
    assert main(["train", "--algo", "ppo", "--out", str(out)]) == 2
    assert "--online" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--algo", "sarsa", "--online", "--out", str(out)])
    assert exc.value.code == 2


@pytest.mark.slow
def test_train_ppo_command_reports_ground_truth(tmp_path, capsys):
    out = tmp_path / "ppo.zip"
    assert main(["train", "--algo", "ppo", "--online", "--steps", "2048", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "true value over 90 days" in printed and "BAU on the same customers" in printed
    assert load(out).manifest["kind"] == "mlp"
