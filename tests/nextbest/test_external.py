"""Logs from outside the simulator: mapping, encoding, validation that names the export's columns."""

import re

import numpy as np
import pandas as pd
import pytest

from nextbest import DataError, NextbestError
from nextbest.external import LogMapping, import_logs
from nextbest.scripts.cli import main


@pytest.fixture
def export(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "customer": np.arange(n) % 100,
            "sent_at": pd.Timestamp("2026-09-01") + pd.to_timedelta(np.arange(n) // 100 * 7, unit="D"),
            "arm": rng.choice(["control", "newsletter", "pct10"], n),
            "margin_eur": rng.gamma(1.0, 5.0, n).round(2),
            "rfm_segment": rng.choice(["vip", "regular"], n),
            "days_since_order": rng.integers(0, 200, n),
        }
    )
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path, frame


MAPPING = LogMapping(id="customer", action="arm", reward="margin_eur", propensity=1 / 3, time="sent_at")


def test_import_maps_and_encodes(export):
    path, frame = export
    logs = import_logs(path, MAPPING)
    assert logs.action_names == ("control", "newsletter", "pct10")
    assert logs.features == ("rfm_segment=regular", "rfm_segment=vip", "days_since_order")
    x = logs.contexts
    assert x[:, 2].mean() == pytest.approx(0, abs=1e-9) and x[:, 2].std() == pytest.approx(1)
    np.testing.assert_array_equal(x[:, 1], (frame["rfm_segment"] == "vip").to_numpy())
    np.testing.assert_allclose(logs.propensities, 1 / 3)
    np.testing.assert_array_equal(np.asarray(logs.action_names)[logs.actions], frame["arm"])
    assert logs.metadata["encoding"]["days_since_order"]["kind"] == "standardised"


def test_mapping_file(tmp_path, export):
    path, _ = export
    spec = tmp_path / "map.yaml"
    spec.write_text(
        "id: customer\naction: arm\nreward: margin_eur\npropensity: 0.3333333333\ntime: sent_at\n"
        "context: [rfm_segment]\nactions: [control, newsletter, pct10]\n"
    )
    logs = import_logs(path, LogMapping.load(spec))
    assert logs.features == ("rfm_segment=regular", "rfm_segment=vip")
    spec.write_text("id: customer\naction: arm\nreward: margin_eur\npropensity: 0.3\ncolour: red\n")
    with pytest.raises(NextbestError, match="colour: unknown key"):
        LogMapping.load(spec)
    spec.write_text("id: customer\naction: arm\nreward: margin_eur\npropensity: 1.5\n")
    with pytest.raises(NextbestError, match=r"propensity: a constant propensity must be in \(0, 1\]"):
        LogMapping.load(spec)


@pytest.mark.parametrize(
    ("edit", "mapping", "message"),
    [
        (lambda f: f, MAPPING.replace(reward="profit"), "missing column 'profit'"),
        (
            lambda f: f.assign(margin_eur=np.where(np.arange(len(f)) == 7, np.nan, f["margin_eur"])),
            MAPPING,
            "column 'margin_eur', row 7: must be a finite number",
        ),
        (
            lambda f: f.assign(p=np.where(np.arange(len(f)) == 3, 0.0, 0.5)),
            MAPPING.replace(propensity="p"),
            "column 'p', row 3: must be in (0, 1]",
        ),
        (
            lambda f: f.assign(sent_at=np.where(np.arange(len(f)) == 5, "someday", f["sent_at"].astype(str))),
            MAPPING,
            "column 'sent_at', row 5: not a date-time",
        ),
        (lambda f: f, MAPPING.replace(actions=("control", "newsletter")), "'pct10' is not in the actions list"),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), MAPPING, "duplicate (customer_id, decision_time)"),
        (
            lambda f: f.assign(days_since_order=np.where(np.arange(len(f)) == 9, np.inf, f["days_since_order"])),
            MAPPING,
            "column 'days_since_order', row 9: must be a finite number",
        ),
    ],
)
def test_bad_exports_name_file_column_row(tmp_path, export, edit, mapping, message):
    _, frame = export
    path = tmp_path / "bad.csv"
    edit(frame).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        import_logs(path, mapping)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_evaluate_an_export_from_the_command_line(tmp_path, export, capsys):
    path, _ = export
    args = [
        "evaluate",
        "--logs",
        str(path),
        "--id-col",
        "customer",
        "--action-col",
        "arm",
        "--reward-col",
        "margin_eur",
        "--propensity",
        "0.333333333",
        "--time-col",
        "sent_at",
    ]
    assert (
        main(
            [*args, "--policy", "always:pct10", "--policy", "random", "--report", str(tmp_path / "r"), "--n-boot", "30"]
        )
        == 0
    )
    assert "always:pct10: DR" in capsys.readouterr().out
    assert main([*args, "--policy", "bau", "--report", str(tmp_path / "r2")]) == 2
    assert "reads context column 'recency_days'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


@pytest.fixture(scope="module")
def simulated(model):
    """Simulated logs (30 days, 60 customers) exported the way a retailer would: its own column names,
    action labels, one row per decision, rows shuffled, no episode/step/next-state columns."""
    from nextbest.simulator import make_policy, simulate

    frame = simulate(model, make_policy("bau-epsilon", model.features, model.catalog), 60, 30, seed=3)
    export = pd.DataFrame(
        {
            "customer": frame["customer_id"],
            "day": frame["decision_time"],
            "sent": frame["action_name"],
            "p": frame["propensity"],
            "profit": frame["reward"],
            "unsub": np.where(frame["unsubscribed"].astype(bool), "true", "false"),
            "churned": frame["terminated"].astype(int),
            **{f: frame[f] for f in ("recency_days", "frequency", "days_since_email")},
        }
    )
    shuffled = np.random.default_rng(0).permutation(len(export))
    return frame.iloc[shuffled].reset_index(drop=True), export.iloc[shuffled].reset_index(drop=True)


TRAJECTORIES = LogMapping(
    id="customer",
    action="sent",
    reward="profit",
    propensity="p",
    time="day",
    context=("recency_days", "frequency", "days_since_email"),
    unsubscribed="unsub",
    terminated="churned",
    trajectories=True,
)


def test_trajectories_are_rebuilt_from_consecutive_rows(tmp_path, simulated):
    from nextbest.agents.offline import Transitions

    truth, export = simulated
    path = tmp_path / "export.parquet"
    export.to_parquet(path)
    logs = import_logs(path, TRAJECTORIES)
    frame = logs.frame
    np.testing.assert_array_equal(frame["step"], truth["step"])  # rows keep their place in the export
    np.testing.assert_array_equal(frame["unsubscribed"], truth["unsubscribed"])
    np.testing.assert_array_equal(frame["done"], truth["done"])
    np.testing.assert_array_equal(frame["terminated"], truth["terminated"])
    inner = ~truth["done"].to_numpy()
    for f in ("recency_days", "days_since_email"):
        encoding = logs.metadata["encoding"][f]
        expected = (truth[f"next_{f}"] - encoding["mean"]) / encoding["sd"]
        np.testing.assert_allclose(frame.loc[inner, f"next_{f}"], expected[inner], atol=1e-5)  # float32 logs
    transitions = Transitions.from_logs(logs, unsubscribe_penalty=60.0)
    np.testing.assert_array_equal(transitions.terminal, truth["done"])
    np.testing.assert_allclose(transitions.rewards, truth["reward"] - 60.0 * truth["unsubscribed"])


def test_an_episode_column_splits_a_customer_history(tmp_path, simulated):
    _, export = simulated
    path = tmp_path / "export.csv"
    export = export.assign(quarter=np.where(pd.to_datetime(export["day"]).dt.day < 15, "q1", "q2"))
    export.to_csv(path, index=False)
    logs = import_logs(path, TRAJECTORIES.replace(episode="quarter"))
    first = logs.frame.groupby("episode_id")["step"].min()
    assert (first == 0).all() and len(first) == export.groupby(["customer", "quarter"]).ngroups > 60
    assert logs.frame["done"].sum() == len(first)


@pytest.mark.parametrize(
    ("edit", "mapping", "error", "message"),
    [
        (
            lambda f: f.assign(unsub=np.where(np.arange(len(f)) == 4, "maybe", f["unsub"])),
            TRAJECTORIES,
            DataError,
            "column 'unsub', row 4: 'maybe' is not true/false",
        ),
        (lambda f: f, TRAJECTORIES.replace(episode="quarter"), DataError, "missing column 'quarter'"),
    ],
)
def test_bad_trajectory_exports(tmp_path, simulated, edit, mapping, error, message):
    _, export = simulated
    path = tmp_path / "bad.csv"
    edit(export).to_csv(path, index=False)
    with pytest.raises(error, match=re.escape(message)):
        import_logs(path, mapping)


def test_an_episode_column_needs_trajectories():
    with pytest.raises(NextbestError, match="needs trajectories: true"):
        MAPPING.replace(episode="quarter")


def test_a_decision_after_an_unsubscribe_is_refused_by_its_row(tmp_path, simulated):
    from nextbest.agents.offline import Transitions

    _, export = simulated
    first = int(np.flatnonzero(pd.to_datetime(export["day"]) == pd.to_datetime(export["day"]).min())[0])
    path = tmp_path / "bad.csv"
    export.assign(unsub=np.where(np.arange(len(export)) == first, "true", export["unsub"])).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row \d+: episode .* goes on after it ended"):
        Transitions.from_logs(import_logs(path, TRAJECTORIES))


def test_train_offline_rl_on_an_export_from_the_command_line(tmp_path, simulated, capsys):
    from nextbest.policies import load

    _, export = simulated
    path = tmp_path / "export.csv"
    export.to_csv(path, index=False)
    out = tmp_path / "bc.zip"
    args = ["train", "--algo", "bc", "--logs", str(path), "--steps", "50", "--out", str(out)]
    mapping = ["--id-col", "customer", "--action-col", "sent", "--reward-col", "profit", "--propensity-col", "p"]
    mapping += ["--time-col", "day", "--context-cols", "recency_days,frequency,days_since_email"]
    assert main([*args, *mapping]) == 2
    assert "episode_id" in capsys.readouterr().err and not out.exists()
    assert main([*args, *mapping, "--trajectories", "--unsubscribed-col", "unsub"]) == 0
    assert "value per customer by FQE" in capsys.readouterr().out
    assert load(out).features == ("recency_days", "frequency", "days_since_email")
