"""The SimPy campaign runner agrees with the vectorized driver and writes a sane event log."""

import numpy as np
import pandas as pd
import pytest

from nextbest.simulator import BAUPolicy, make_policy, simulate
from nextbest.simulator.campaign import EVENT_TYPES, CampaignRunner


@pytest.fixture(scope="module")
def runs(model):
    bau = make_policy("bau", model.features, model.catalog)
    timed = CampaignRunner(model).run(bau, 6000, 21, seed=5)
    vector = simulate(model, bau, 6000, 21, seed=6)
    return timed, vector


@pytest.mark.slow
def test_aggregate_rates_agree_within_sampling_error(runs):
    timed, vector = runs
    for rate, per in (("opened", "send"), ("clicked", "send"), ("purchased", "decision")):
        a, b = timed.decisions, vector
        if per == "send":
            a, b = a[a["action"] > 0], b[b["action"] > 0]
        p1, p2 = a[rate].mean(), b[rate].mean()
        se = np.sqrt(p1 * (1 - p1) / len(a) + p2 * (1 - p2) / len(b))
        assert abs(p1 - p2) < 4 * se, (rate, p1, p2)


def test_event_log(runs):
    timed, _ = runs
    ev, dec = timed.events, timed.decisions
    assert list(ev.columns) == ["customer_id", "timestamp", "campaign_id", "event", "offer", "revenue"]
    assert set(ev["event"].unique()) <= set(EVENT_TYPES)
    assert ev["timestamp"].is_monotonic_increasing
    counts = ev["event"].value_counts()
    assert counts["sent"] == (dec["action"] > 0).sum()
    assert counts["opened"] == dec["opened"].sum() and counts["clicked"] == dec["clicked"].sum()
    buys = ev[ev["event"] == "purchased"]
    assert (buys["revenue"] > 0).all()
    # the decision log stops at a customer's unsubscribe while the ESP keeps seeing their organic
    # purchases, so compare the customers who stayed for the whole campaign
    stayed = dec.groupby("customer_id")["terminated"].sum() == 0
    stayed = stayed[stayed].index
    logged = dec[dec["customer_id"].isin(stayed)]
    seen = buys[buys["customer_id"].isin(stayed)]
    assert len(seen) == logged["purchased"].sum()
    assert np.isclose(seen["revenue"].sum(), logged["revenue"].sum(), rtol=1e-5)
    # every event but organic purchases belongs to a campaign; opens come after sends
    assert (ev.loc[ev["event"] != "purchased", "campaign_id"] != "").all()
    first_send = ev[ev["event"] == "sent"].groupby("campaign_id")["timestamp"].min()
    first_open = ev[ev["event"] == "opened"].groupby("campaign_id")["timestamp"].min()
    assert (first_open >= first_send[first_open.index]).all()


def test_throughput_limit_delays_sends_and_costs_opens(model):
    evening = BAUPolicy(model.features, model.catalog, slot="evening")
    slow = CampaignRunner(model, send_rate_per_hour=60).run(evening, 3000, 14, seed=9)
    fast = CampaignRunner(model).run(evening, 3000, 14, seed=9)
    sent = slow.events[slow.events["event"] == "sent"]
    night = sent["timestamp"].dt.hour < 6
    assert night.mean() > 0.2  # the 19:30 backlog drains past midnight
    # every delivery, late or not, is booked on the day it happened (its send cost is in that day's row)
    dec = slow.decisions
    stayed = dec.groupby("customer_id")["terminated"].sum() == 0
    stayed = stayed[stayed].index
    in_horizon = sent["timestamp"] < dec["decision_time"].max() + pd.Timedelta(days=1)
    delivered = sent[sent["customer_id"].isin(stayed) & in_horizon]
    assert len(delivered) == (dec.loc[dec["customer_id"].isin(stayed), "send_cost"] > 0).sum()
    # the same customers and decisions, but mail read at night is opened less
    rate = {
        name: r.decisions.loc[r.decisions["action"] > 0, "opened"].mean()
        for name, r in (("slow", slow), ("fast", fast))
    }
    n = (slow.decisions["action"] > 0).sum()
    assert rate["fast"] - rate["slow"] > 3 * np.sqrt(2 * rate["fast"] * (1 - rate["fast"]) / n), rate
