import numpy as np
import pandas as pd
import pytest

import nextbest
from nextbest.logs import load_logs, save_table, validate_logs
from nextbest.simulator import make_policy, simulate


@pytest.fixture(scope="module")
def logs(model):
    return simulate(model, make_policy("bau-softmax", model.features, model.catalog), 300, 10, seed=3)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip(tmp_path, model, logs, suffix):
    path = save_table(logs, tmp_path / f"logs{suffix}", logs.attrs["nextbest"])
    back = nextbest.load_logs(path)
    assert back.features == model.features
    assert back.action_names == model.catalog.names
    np.testing.assert_allclose(back.contexts, logs[list(model.features)].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(back.actions, logs["action"].to_numpy())
    np.testing.assert_allclose(back.action_probs.sum(axis=1), 1.0)
    assert back.is_sequential and back.next_contexts.shape == back.contexts.shape


def test_contract_columns(logs, model):
    for col in (
        "customer_id",
        "decision_time",
        "action",
        "propensity",
        "reward",
        "episode_id",
        "step",
        "terminated",
        "truncated",
        "done",
        "opened",
        "clicked",
        "purchased",
        "revenue",
        "discount_cost",
    ):
        assert col in logs.columns
    probs = logs[[f"prob_{a}" for a in model.catalog.names]].to_numpy()
    np.testing.assert_allclose(probs[np.arange(len(logs)), logs["action"]], logs["propensity"])
    parts = logs["margin"] - logs["discount_cost"] - logs["shipping_cost"] - logs["send_cost"]
    np.testing.assert_allclose(logs["reward"], parts)
    # an episode ends at most once, and nothing is logged after it ended
    ends = logs[logs["terminated"] | logs["truncated"]].groupby("episode_id")["step"].max()
    last = logs.groupby("episode_id")["step"].max()
    assert (ends == last[ends.index]).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="propensity"), "missing column 'propensity'"),
        (
            lambda f: f.assign(propensity=np.where(np.arange(len(f)) == 4, 0.0, f["propensity"])),
            "column 'propensity', row 4: must be in (0, 1]",
        ),
        (
            lambda f: f.assign(reward=np.where(np.arange(len(f)) == 2, np.nan, f["reward"])),
            "column 'reward', row 2: must be a finite number",
        ),
        (
            lambda f: f.assign(action=np.where(np.arange(len(f)) == 7, 99, f["action"])),
            "column 'action', row 7: outside the catalog of 16 actions",
        ),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "duplicate (customer_id, decision_time)"),
        (
            lambda f: f.assign(step=np.where(np.arange(len(f)) == 3, -1, f["step"])),
            "column 'step', row 3: must be a non-negative integer",
        ),
        (
            lambda f: f.assign(terminated=np.where(np.arange(len(f)) == 6, 2, f["terminated"].astype(int))),
            "column 'terminated', row 6: must be true/false",
        ),
    ],
)
def test_validation_names_file_column_and_row(tmp_path, logs, edit, message):
    path = tmp_path / "bad.csv"
    save_table(edit(logs), path)
    with pytest.raises(nextbest.DataError) as err:
        load_logs(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_file_and_directory(tmp_path, logs):
    with pytest.raises(nextbest.DataError, match="no such file"):
        load_logs(tmp_path / "nope.parquet")
    with pytest.raises(nextbest.NextbestError, match="does not exist"):
        save_table(logs, tmp_path / "no" / "dir.parquet")
    assert list(tmp_path.iterdir()) == []


def test_validate_in_memory_frame(logs):
    typed = validate_logs(logs)
    assert len(typed) == len(logs) and typed.n_actions == 16


def test_streamed_file_equals_in_memory_logs(tmp_path, model, logs):
    from nextbest.simulator import simulate_to_file

    policy = make_policy("bau-softmax", model.features, model.catalog)
    rows = simulate_to_file(model, policy, 300, tmp_path / "s.parquet", 10, seed=3)
    streamed = nextbest.load_logs(tmp_path / "s.parquet")
    assert rows == len(logs)
    pd.testing.assert_frame_equal(streamed.frame, validate_logs(logs).frame, check_dtype=False)


def test_failed_run_leaves_no_file(tmp_path, model):
    from nextbest.simulator import simulate_to_file

    class Failing:
        name = "failing"

        def __init__(self):
            self.calls = 0

        def act(self, obs, mask, rng):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("policy service went away")
            return np.zeros(len(obs), dtype=np.int64), np.ones(len(obs))

        def action_probs(self, obs, mask):
            p = np.zeros((len(obs), model.catalog.n_actions))
            p[:, 0] = 1
            return p

    with pytest.raises(RuntimeError, match="went away"):
        simulate_to_file(model, Failing(), 50, tmp_path / "half.parquet", 10, seed=0)
    assert list(tmp_path.iterdir()) == []
