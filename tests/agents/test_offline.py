"""Offline RL (BC, FQI, CQL, BCQ): a toy chain where the answer is known, determinism, export parity,
broken trajectories."""

import numpy as np
import pandas as pd
import pytest

from nextbest.agents.offline import OFFLINE_ALGORITHMS, BehaviourCloning, DiscreteBCQ, Transitions
from nextbest.errors import DataError, NextbestError
from nextbest.logs import validate_logs
from nextbest.policies import load
from nextbest.scripts.cli import main

FEATURES = ["day", "burnt"]
ACTIONS = ["no_email", "blast"]
DAYS = 10


def chain_logs(n_episodes=400, p_blast=0.5, seed=0):
    """Each day "no_email" earns 0.5; "blast" earns 1.0 once and burns the customer: every later day
    earns 0 whatever the action. Over 10 days the best plan is never to blast (5.0 against 1.0 + 0);
    a one-step (myopic) learner blasts on day 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_episodes):
        burnt = 0.0
        for t in range(DAYS):
            a = int(rng.random() < p_blast)
            r = 0.0 if burnt else (1.0 if a else 0.5)
            after = 1.0 if (burnt or a) else 0.0
            rows.append(
                {
                    "customer_id": e,
                    "decision_time": pd.Timestamp("2026-01-05") + pd.Timedelta(days=t),
                    "episode_id": e,
                    "step": t,
                    "day": t / DAYS,
                    "burnt": burnt,
                    "action": a,
                    "propensity": p_blast if a else 1 - p_blast,
                    "reward": r + rng.normal(0, 0.1),
                    "next_day": (t + 1) / DAYS,
                    "next_burnt": after,
                    "terminated": False,
                    "truncated": t == DAYS - 1,
                    "done": t == DAYS - 1,
                }
            )
            burnt = after
    return validate_logs(pd.DataFrame(rows), "chain.csv", {"action_names": ACTIONS})


START = np.array([[0.0, 0.0], [0.3, 0.0], [0.6, 0.0]])  # fresh customers early in the campaign
ALL = np.ones((3, 2), dtype=bool)


@pytest.fixture(scope="module")
def logs():
    return chain_logs()


@pytest.mark.parametrize("algo", ["fqi", "cql", "bcq"])
def test_q_learners_plan_past_the_myopic_choice(logs, algo):
    agent = OFFLINE_ALGORITHMS[algo](FEATURES, ACTIONS, steps=3_000, gamma=1.0, seed=0).fit(logs)
    assert (agent.action_probs(START, ALL).argmax(axis=1) == 0).all()  # never blast
    q = agent.scores(START[:1])[0]
    assert q[0] > q[1]


def test_behaviour_cloning_imitates_the_logger():
    agent = BehaviourCloning(FEATURES, ACTIONS, steps=1_500).fit(chain_logs(p_blast=0.8))
    probs = agent.action_probs(START, ALL)
    np.testing.assert_allclose(probs[:, 1], 0.8, atol=0.06)  # ~4,000 decisions: s.e. of a share ~0.006


@pytest.mark.parametrize("algo", sorted(OFFLINE_ALGORITHMS))
def test_export_parity_and_determinism(logs, algo, tmp_path):
    a = OFFLINE_ALGORITHMS[algo](FEATURES, ACTIONS, steps=300, seed=4).fit(logs)
    b = OFFLINE_ALGORITHMS[algo](FEATURES, ACTIONS, steps=300, seed=4).fit(logs)
    x = np.random.default_rng(0).random((1000, 2)) * [1.0, 1.0]
    np.testing.assert_array_equal(a.scores(x), b.scores(x))
    policy = load(a.export(tmp_path / f"{algo}.zip"))
    mask = np.ones((1000, 2), dtype=bool)
    mask[::7, 1] = False
    mine, theirs = a.action_probs(x, mask), policy.action_probs(x, mask)
    np.testing.assert_allclose(theirs, mine, atol=1e-5)
    assert (theirs.argmax(axis=1) == mine.argmax(axis=1)).all()


def test_bcq_keeps_to_the_logged_actions(tmp_path):
    """A logger that never blasts on day 0 gives BCQ no support for blasting there."""
    logs = chain_logs(p_blast=0.0)
    agent = DiscreteBCQ(FEATURES, ACTIONS, steps=500, tau=0.3).fit(logs)
    assert (agent.action_probs(START, ALL)[:, 0] == 1).all()
    policy = load(agent.export(tmp_path / "bcq.zip"))
    assert policy.manifest["support"]["threshold"] == 0.3


def test_broken_trajectories_are_refused(logs):
    frame = logs.frame
    missing = frame.drop(index=3)  # episode 0 loses step 3
    with pytest.raises(DataError, match=r"column 'step', row 3: episode 0: step 4 comes after a missing step 3"):
        Transitions.from_logs(validate_logs(missing, "chain.csv"))
    ended = frame.copy()
    ended.loc[5, "terminated"] = True  # episode 0 ends at step 5 but goes on
    with pytest.raises(DataError, match="row 6: episode 0 goes on after it ended"):
        Transitions.from_logs(validate_logs(ended, "chain.csv"))
    with pytest.raises(DataError, match="next_burnt"):
        Transitions.from_logs(validate_logs(frame.drop(columns=["next_burnt"]), "chain.csv"))
    with pytest.raises(NextbestError, match="features"):
        OFFLINE_ALGORITHMS["cql"](["burnt", "day"], ACTIONS, steps=10).fit(logs)


def test_train_offline_command(logs, tmp_path, capsys):
    path = tmp_path / "chain.csv"
    logs.frame.to_csv(path, index=False)
    out = tmp_path / "cql.zip"
    assert main(["train", "--algo", "cql", "--logs", str(path), "--steps", "200", "--out", str(out)]) == 0
    assert "value per customer by FQE" in capsys.readouterr().out and load(out).name == "cql"
    broken = tmp_path / "broken.csv"
    logs.frame.drop(index=3).to_csv(broken, index=False)
    bad = tmp_path / "bad.zip"
    assert main(["train", "--algo", "bcq", "--logs", str(broken), "--out", str(bad)]) == 2
    assert "step 4 comes after a missing step 3" in capsys.readouterr().err and not bad.exists()
    assert main(["train", "--algo", "cql", "--online", "--out", str(bad)]) == 2
    assert "--logs" in capsys.readouterr().err


def test_train_offline_on_simulated_logs_prints_ground_truth(model, tmp_path, capsys):
    from nextbest.simulator import make_policy, simulate_to_file

    path = tmp_path / "logs.parquet"
    simulate_to_file(model, make_policy("bau-epsilon", model.features, model.catalog), 300, path, 10, seed=2)
    out = tmp_path / "bc.zip"
    assert main(["train", "--algo", "bc", "--logs", str(path), "--steps", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "new policy: true value over 10 days" in printed and "logging policy: true value" in printed
    assert len(load(out).manifest["training_data_sha256"]) == 64


def test_reward_options_of_the_transitions(logs):
    with pytest.raises(DataError, match="'unsubscribed'"):
        Transitions.from_logs(logs, unsubscribe_penalty=60.0)
    frame = logs.frame.assign(unsubscribed=(logs.frame["step"] == 2).astype(float))
    marked = validate_logs(frame, "chain.csv", {"action_names": ACTIONS})
    charged = Transitions.from_logs(marked, unsubscribe_penalty=60.0)
    np.testing.assert_allclose(charged.rewards, logs.rewards - 60.0 * (logs.frame["step"] == 2))
    smooth = Transitions.from_logs(logs, smooth_rewards=True)
    assert smooth.rewards.std() < logs.rewards.std()
    assert abs(smooth.rewards.mean() - logs.rewards.mean()) < 0.01  # ridge with intercepts keeps the mean
