"""Online learning in EmailBandit-v0: regret bookkeeping against the simulator's ground truth."""

import numpy as np

from nextbest.agents.linear import LinTS
from nextbest.agents.online import run_online
from nextbest.scripts.cli import main


class NeverEmail:
    """An agent that never emails and never learns."""

    def act_online(self, obs, mask, rng):
        return np.zeros(len(obs), dtype=np.int64)

    def update(self, obs, actions, rewards):
        pass


def test_regret_is_recorded_and_seeded(model):
    a = run_online(LinTS(model.features, model.catalog.names), 640, seed=3, checkpoints=(100, 640))
    b = run_online(LinTS(model.features, model.catalog.names), 640, seed=3, checkpoints=(100, 640))
    assert a == b
    assert set(a.checkpoints) == {100, 640} and 0 <= a.checkpoints[100] <= a.checkpoints[640]
    assert a.rounds[-1] == 640 and np.all(np.diff(a.regret) >= -1e-9)  # regret never decreases


def test_never_email_regret_is_the_value_of_the_best_action(model):
    result = run_online(NeverEmail(), 256, seed=1, checkpoints=(256,))
    assert result.checkpoints[256] > 0  # emailing someone is worth more than nobody, in expectation


def test_train_online_command(tmp_path, capsys):
    assert main(["train", "--algo", "lints", "--online", "--steps", "500", "--out", str(tmp_path / "p.zip")]) == 0
    assert "cumulative expected regret" in capsys.readouterr().out and (tmp_path / "p.zip").exists()
    assert main(["train", "--algo", "dm", "--online", "--steps", "10", "--out", str(tmp_path / "q.zip")]) == 2


def _bau_logs(model, tmp_path):
    from nextbest.logs import load_logs
    from nextbest.simulator import make_policy, simulate_to_file

    path = tmp_path / "logs.parquet"
    simulate_to_file(model, make_policy("bau-epsilon", model.features, model.catalog), 400, path, 5, seed=4)
    return path, load_logs(path)


def test_warm_start_from_logs_then_online(model, tmp_path):
    _, logs = _bau_logs(model, tmp_path)
    agent = LinTS(model.features, model.catalog.names).fit(logs)
    assert agent.n_updates == len(logs)
    warm = agent.scores(logs.contexts[:50]).copy()
    assert np.abs(warm).sum() > 0  # the logs taught it something before its first online round
    result = run_online(agent, 256, seed=2, references={"never": NeverEmailPolicy()})
    assert agent.n_updates == len(logs) + 256 and not np.allclose(agent.scores(logs.contexts[:50]), warm)
    assert result.references["never"] < result.reward[-1]


def test_warm_start_refuses_logs_of_other_features(model, tmp_path):
    import pytest

    from nextbest.errors import NextbestError

    _, logs = _bau_logs(model, tmp_path)
    with pytest.raises(NextbestError, match="features"):
        LinTS(model.features[::-1], model.catalog.names).fit(logs)
    with pytest.raises(NextbestError, match="action catalog"):
        LinTS(model.features, model.catalog.names[::-1]).fit(logs)


def test_train_online_warm_started_command(model, tmp_path, capsys):
    path, logs = _bau_logs(model, tmp_path)
    out = tmp_path / "p.zip"
    assert (
        main(["train", "--algo", "linucb", "--logs", str(path), "--online", "--steps", "300", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert f"warm start: {len(logs):,} logged decisions" in printed and "vs BAU" in printed and out.exists()


class NeverEmailPolicy:
    """A reference policy that never emails."""

    def action_probs(self, obs, mask):
        probs = np.zeros(mask.shape)
        probs[:, 0] = 1.0
        return probs
