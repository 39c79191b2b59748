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
