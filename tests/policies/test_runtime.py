"""The live-send runtime: decisions, guardrails, replayable exploration, parity of single and batch."""

import numpy as np
import pandas as pd
import pytest

from nextbest import Decision, NextbestError
from nextbest.policies import Runtime, load, save_policy

FEATURES = ["recency_days", "frequency"]
ACTIONS = ["no_email", "newsletter@morning", "pct10@evening"]


@pytest.fixture
def runtime(tmp_path):
    rng = np.random.default_rng(0)
    path = save_policy(
        tmp_path / "p.zip",
        kind="linear",
        name="p",
        features=FEATURES,
        actions=ACTIONS,
        arrays={"coef": rng.normal(size=(2, 3)), "intercept": np.array([0.0, 0.5, 0.2])},
        feature_mean=[60, 2],
        feature_scale=[40, 2],
        temperature=0.7,
        epsilon=0.1,
        guardrails={"frequency_cap_per_week": 2},
    )
    return Runtime(load(path))


def customers(n=2000, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n) * 7 + 3,
            "recency_days": rng.uniform(0, 200, n),
            "frequency": rng.poisson(2, n),
            "consent": (rng.random(n) < 0.9).astype(int),
            "sends_7d": rng.integers(0, 4, n),
            "unsubscribed": (rng.random(n) < 0.05).astype(int),
        }
    )


def test_single_and_batch_agree(runtime):
    frame = customers(300)
    batch = runtime.decide_batch(frame, "camp-1")
    for i in range(0, 300, 7):
        one = runtime.decide(frame.iloc[i], "camp-1")
        assert isinstance(one, Decision)
        assert one.action == batch["action"].iloc[i] and one.action_name == batch["action_name"].iloc[i]
        assert one.propensity == pytest.approx(batch["propensity"].iloc[i], rel=1e-12)
        logged = batch["guardrail"].iloc[i]
        assert one.guardrail == (None if pd.isna(logged) else logged)


def test_replayable_and_campaign_dependent(runtime):
    frame = customers()
    a = runtime.decide_batch(frame, "camp-1")
    pd.testing.assert_frame_equal(
        a,
        runtime.decide_batch(frame.sample(frac=1, random_state=0), "camp-1")
        .set_index("customer_id")
        .loc[frame["customer_id"]]
        .reset_index(),
    )
    b = runtime.decide_batch(frame, "camp-2")
    assert (a["action"] != b["action"]).mean() > 0.05


def test_draws_follow_the_logged_propensities(runtime):
    """Same features for everyone: the hash-driven draws reproduce the policy's probabilities."""
    n = 40_000
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(n)], "recency_days": 50.0, "frequency": 1, "consent": 1, "sends_7d": 0}
    )
    out = runtime.decide_batch(frame, "camp")
    probs = out.groupby("action")["propensity"].first()
    freq = out["action"].value_counts(normalize=True)
    se = np.sqrt(probs * (1 - probs) / n)
    assert (np.abs(freq[probs.index] - probs) < 4 * se).all(), (freq, probs)


def test_guardrails(runtime):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "recency_days": 10.0,
            "frequency": 1,
            "consent": [0, 1, 1, 1],
            "sends_7d": [0, 2, 0, 0],
            "unsubscribed": [0, 0, 1, 0],
        }
    )
    out = runtime.decide_batch(frame, "c")
    assert out["action"].iloc[:3].tolist() == [0, 0, 0]
    assert out["guardrail"].iloc[:3].tolist() == ["no_consent", "frequency_cap", "unsubscribed"]
    assert (out["propensity"].iloc[:3] == 1.0).all()
    assert runtime.decide(frame.iloc[0].to_dict(), "c").guardrail == "no_consent"


def test_bad_records_are_named(runtime):
    frame = customers(10)
    with pytest.raises(NextbestError, match="lack column 'frequency'"):
        runtime.decide_batch(frame.drop(columns="frequency"), "c")
    with pytest.raises(NextbestError, match="column 'customer_id', row 10: duplicate customer id"):
        runtime.decide_batch(pd.concat([frame, frame.iloc[[0]]], ignore_index=True), "c")
    bad = frame.astype({"recency_days": object})
    bad.loc[4, "recency_days"] = "soon"
    with pytest.raises(NextbestError, match="column 'recency_days', row 4: must be a finite number"):
        runtime.decide_batch(bad, "c")
    with pytest.raises(NextbestError, match="lacks field 'frequency'"):
        runtime.decide({"customer_id": 1, "recency_days": 3, "consent": 1, "sends_7d": 0}, "c")
    with pytest.raises(NextbestError, match="not a number"):
        runtime.decide({"customer_id": 1, "recency_days": "x", "frequency": 1, "consent": 1, "sends_7d": 0}, "c")


def test_decide_command(tmp_path, runtime):
    from nextbest.scripts.cli import main

    send_list = tmp_path / "tonight.csv"
    customers(500).to_csv(send_list, index=False)
    out = tmp_path / "decisions.parquet"
    policy = runtime.policy.source
    assert (
        main(
            [
                "decide",
                "--policy",
                policy,
                "--customers",
                str(send_list),
                "--campaign",
                "2026-12-07",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    written = pd.read_parquet(out)
    expected = runtime.decide_batch(customers(500), "2026-12-07")
    np.testing.assert_array_equal(written["action"], expected["action"])
    bad = customers(20)
    bad.loc[13, "frequency"] = np.nan
    bad.to_csv(send_list, index=False)
    assert (
        main(
            [
                "decide",
                "--policy",
                policy,
                "--customers",
                str(send_list),
                "--campaign",
                "x",
                "--out",
                str(tmp_path / "d2.csv"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "d2.csv").exists()


def test_discount_budget_per_campaign(tmp_path):
    # a policy that loves the discount: pct10 scores far above the rest
    path = save_policy(
        tmp_path / "d.zip",
        kind="linear",
        name="d",
        features=FEATURES,
        actions=ACTIONS,
        arrays={"coef": np.zeros((2, 3)), "intercept": np.array([0.0, 1.0, 3.0])},
        temperature=1.0,
        guardrails={"discount_offers": ["pct10"], "discount_budget_per_campaign": 5},
    )
    runtime = Runtime(load(path))
    frame = customers(300).assign(consent=1, sends_7d=0, unsubscribed=0)
    first = runtime.decide_batch(frame, "c1", with_context=True)
    assert (first["offer"] == "pct10").sum() == 5
    fifth = np.flatnonzero(first["offer"] == "pct10")[-1]
    over = first.iloc[fifth + 1 :]
    assert (over["prob_pct10@evening"] == 0).all()  # everyone after the budget ran out: no-discount policy
    assert (first.iloc[:fifth]["prob_pct10@evening"] > 0.5).all()
    np.testing.assert_allclose(over[[f"prob_{a}" for a in ACTIONS]].sum(axis=1), 1.0)
    assert (runtime.decide_batch(frame, "c1")["offer"] == "pct10").sum() == 0  # budget spent
    assert (runtime.decide_batch(frame, "c2")["offer"] == "pct10").sum() == 5  # a new campaign
    single = [runtime.decide(r, "c3").offer for r in frame.head(20).to_dict(orient="records")]
    assert single.count("pct10") == 5
    with pytest.raises(NextbestError, match="needs guardrails.discount_offers"):
        Runtime(
            runtime.policy
            if False
            else load(
                save_policy(
                    tmp_path / "n.zip",
                    kind="linear",
                    name="n",
                    features=FEATURES,
                    actions=ACTIONS,
                    arrays={"coef": np.zeros((2, 3)), "intercept": np.zeros(3)},
                )
            ),
            discount_budget=3,
        )
