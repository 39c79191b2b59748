"""The decision log (pseudonymised, append-only) and the loop back to logged feedback."""

import numpy as np
import pandas as pd
import pytest

import nextbest
from nextbest import NextbestError
from nextbest.policies import Runtime, load, save_policy
from nextbest.policies.decision_log import DecisionLog, join_outcomes, pseudonymise, read_decisions
from nextbest.scripts.cli import main

FEATURES = ["recency_days", "frequency"]
ACTIONS = ["no_email", "newsletter@morning", "pct10@evening"]


@pytest.fixture
def runtime(tmp_path):
    path = save_policy(
        tmp_path / "p.zip",
        kind="linear",
        name="p",
        features=FEATURES,
        actions=ACTIONS,
        arrays={"coef": np.array([[0.0, -0.5, 0.5], [0.0, 0.3, 0.1]]), "intercept": np.zeros(3)},
        feature_mean=[60, 2],
        feature_scale=[40, 2],
        temperature=1.0,
    )
    return Runtime(load(path))


def send_list(n=50):
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{i}" for i in range(n)],
            "recency_days": np.linspace(0, 200, n),
            "frequency": np.arange(n) % 5,
            "consent": 1,
            "sends_7d": 0,
        }
    )


def test_pseudonyms(monkeypatch):
    monkeypatch.delenv("NEXTBEST_ID_KEY", raising=False)
    with pytest.raises(NextbestError, match="set NEXTBEST_ID_KEY"):
        pseudonymise(["a"])
    a = pseudonymise(["a", "b", "a"], key="k1")
    assert a[0] == a[2] != a[1] and len(a[0]) == 32
    assert pseudonymise(["a"], key="k2")[0] != a[0]


@pytest.mark.parametrize("target", ["log.jsonl", "log_dir"])
def test_append_only_log_without_raw_ids(tmp_path, runtime, target):
    log = DecisionLog(tmp_path / target, key="secret")
    first = runtime.decide_batch(send_list(), "c1", with_context=True).assign(decision_time=pd.Timestamp("2026-12-07"))
    second = runtime.decide_batch(send_list(), "c2", with_context=True).assign(decision_time=pd.Timestamp("2026-12-14"))
    assert log.append(first) == 50 and log.append(second) == 50
    back = read_decisions(tmp_path / target)
    assert len(back) == 100 and set(back["campaign_id"]) == {"c1", "c2"}
    assert not back["customer_id"].astype(str).str.startswith("cust-").any()
    raw = (tmp_path / target).read_text() if target.endswith(".jsonl") else ""
    assert "cust-1" not in raw and "secret" not in raw


def test_join_outcomes_window_and_reward():
    t0 = pd.Timestamp("2026-12-07 08:00")
    decisions = pd.DataFrame(
        {
            "customer_id": pseudonymise(["a", "b"], key="k"),
            "decision_time": [t0, t0],
            "action": [1, 0],
            "propensity": [0.5, 0.5],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b"],
            "timestamp": [
                t0,
                t0 + pd.Timedelta("1h"),
                t0 + pd.Timedelta(days=2),
                t0 + pd.Timedelta(days=7),
                t0 - pd.Timedelta("1h"),
            ],
            "event": ["opened", "clicked", "purchased", "purchased", "purchased"],
            "revenue": [0, 0, 40.0, 99.0, 10.0],
        }
    )
    out = join_outcomes(decisions, events, pd.Timedelta(days=7), key="k", margin_rate=0.5, send_cost=0.01)
    assert out[["opened", "clicked", "purchased"]].iloc[0].tolist() == [1, 1, 1]
    assert out["revenue"].tolist() == [40.0, 0.0]  # the day-7 purchase is outside [t, t + 7d); b's came before
    assert out["reward"].tolist() == pytest.approx([0.5 * 40 - 0.01, 0.0])


def test_decide_log_join_evaluate_loop(tmp_path, runtime, monkeypatch):
    monkeypatch.setenv("NEXTBEST_ID_KEY", "loop-key")
    sends = tmp_path / "tonight.csv"
    send_list(200).to_csv(sends, index=False)
    policy = runtime.policy.source
    assert (
        main(
            [
                "decide",
                "--policy",
                policy,
                "--customers",
                str(sends),
                "--campaign",
                "c1",
                "--out",
                str(tmp_path / "d.csv"),
                "--log",
                str(tmp_path / "log.jsonl"),
                "--no-progress",
            ]
        )
        == 0
    )
    decided = pd.read_csv(tmp_path / "d.csv")
    buyers = decided.loc[decided["action"] != 0, "customer_id"].head(20)
    events = pd.DataFrame(
        {
            "customer_id": buyers,
            "timestamp": pd.Timestamp.now() + pd.Timedelta("1h"),
            "event": "purchased",
            "revenue": 30.0,
        }
    )
    events.to_csv(tmp_path / "events.csv", index=False)
    assert (
        main(
            [
                "join-outcomes",
                "--decisions",
                str(tmp_path / "log.jsonl"),
                "--events",
                str(tmp_path / "events.csv"),
                "--window",
                "7d",
                "--margin-rate",
                "0.5",
                "--out",
                str(tmp_path / "logs.parquet"),
            ]
        )
        == 0
    )
    logs = nextbest.load_logs(tmp_path / "logs.parquet")
    assert len(logs) == 200 and logs.features == tuple(FEATURES) and logs.action_names == tuple(ACTIONS)
    assert logs.frame["purchased"].sum() == 20 and logs.rewards.sum() == pytest.approx(20 * 15.0)
    np.testing.assert_allclose(logs.action_probs.sum(axis=1), 1.0)
    assert (
        main(
            [
                "join-outcomes",
                "--decisions",
                str(tmp_path / "log.jsonl"),
                "--events",
                str(tmp_path / "events.csv"),
                "--window",
                "soon",
                "--out",
                str(tmp_path / "x.parquet"),
            ]
        )
        == 2
    )
