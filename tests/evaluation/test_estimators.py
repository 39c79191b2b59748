"""Every bandit estimator through the same gauntlet: hand-computed values, invalid inputs,
determinism, and unbiasedness against the simulator's ground truth."""

import numpy as np
import pandas as pd
import pytest

from nextbest import NextbestError
from nextbest.evaluation import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    DRos,
    SwitchDR,
    bandit_ground_truth,
    default_estimators,
    estimate_all,
)
from nextbest.logs import validate_logs
from nextbest.simulator import make_policy, simulate

ALL = default_estimators()


class FixedModel:
    """A reward model with known predictions: q(x, a0) = 0.5, q(x, a1) = 1.0."""

    def cross_fit(self, contexts, actions, rewards, clusters, n_actions, rng):
        return np.tile([0.5, 1.0], (len(actions), 1))


def tiny(logger_probs=((0.5, 0.5), (0.5, 0.5), (0.75, 0.25), (0.75, 0.25))):
    logger = np.asarray(logger_probs)
    actions = np.array([0, 1, 1, 0])
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "decision_time": pd.Timestamp("2026-01-05"),
            "x": [0.0, 1.0, 2.0, 3.0],
            "action": actions,
            "propensity": logger[np.arange(4), actions],
            "reward": [1.0, 0.0, 2.0, 1.0],
            "prob_a0": logger[:, 0],
            "prob_a1": logger[:, 1],
        }
    )
    return validate_logs(frame)


PI = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])

# w = [2, 2, 2, 0.2667]; DM terms = [0.5, 1.0, 0.75, 0.9]; residuals = [0.5, -1, 1, 0.5]
HAND = {
    "dm": 0.7875,
    "ips": (2 + 0 + 4 + 0.2 / 0.75) / 4,
    "snips": 1.0,
    "dr": 0.7875 + (1 - 2 + 2 + 0.5 * 0.2 / 0.75) / 4,
    "sndr": 0.7875 + (1 - 2 + 2 + 0.5 * 0.2 / 0.75) / (6 + 0.2 / 0.75),
    "switch-dr": 0.7875 + (0.5 * 0.2 / 0.75) / 4,
    "dr-os": 0.7875 + (0.4 * 0.5 - 0.4 + 0.4 + (0.2 / 0.75) / ((0.2 / 0.75) ** 2 + 1) * 0.5) / 4,
    "ips(clip=1)": (1 + 0 + 2 + 0.2 / 0.75) / 4,
}


@pytest.mark.parametrize(
    "estimator", [DM(), IPS(), SNIPS(), DR(), SNDR(), SwitchDR(tau=1.5), DRos(lambda_=1.0), IPS(clip=1.0)]
)
def test_hand_computed_values(estimator):
    est = estimator.estimate(tiny(), PI, interval="clt", reward_model=FixedModel())
    assert est.value == pytest.approx(HAND[est.estimator], rel=1e-12)
    assert est.lower <= est.value <= est.upper and est.n == 4


def test_diagnostics_on_tiny_data():
    est = IPS().estimate(tiny(), PI, interval="clt")
    w = np.array([2, 2, 2, 0.2 / 0.75])
    assert est.diagnostics.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert est.diagnostics.max_weight == pytest.approx(2.0)
    assert est.diagnostics.unsupported_mass == 0
    assert IPS(clip=1.0).estimate(tiny(), PI).diagnostics.clipped_share == pytest.approx(0.75)
    # the logger never offers action 1 to customer 4, but the policy puts 0.8 there
    no_support = tiny(((0.5, 0.5), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)))
    diag = IPS().estimate(no_support, PI).diagnostics
    assert diag.unsupported_mass == pytest.approx(0.8 / 4)
    assert any("never takes" in w for w in diag.warnings)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.label)
@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.full((3, 2), 0.5), r"must have shape \(4, 2\)"),
        (np.full((4, 3), 1 / 3), "the evaluation policy has 3 actions, the logs' catalog has 2"),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.6], [0.2, 0.8]]), "row 2: sums to 1.1, not 1"),
        (np.array([[1.0, 0.0], [1.5, -0.5], [0.5, 0.5], [0.2, 0.8]]), "row 1: must be finite and >= 0"),
        (np.array([[1.0, 0.0], [np.nan, 1.0], [0.5, 0.5], [0.2, 0.8]]), "row 1: must be finite and >= 0"),
    ],
)
def test_invalid_action_probs_are_named(estimator, probs, message):
    with pytest.raises(NextbestError, match=message):
        estimator.estimate(tiny(), probs)


@pytest.mark.parametrize("bad", [{"clip": 0.0}, {"clip": -1.0}])
def test_invalid_settings(bad):
    with pytest.raises(ValueError, match="clip"):
        IPS(**bad)
    with pytest.raises(ValueError, match="tau"):
        SwitchDR(tau=0)
    with pytest.raises(ValueError, match="lambda_"):
        DRos(lambda_=-1)


@pytest.fixture(scope="module")
def simulated(model):
    logger = make_policy("bau-softmax", model.features, model.catalog)
    frame = simulate(model, logger, 20_000, 10, seed=21)
    logs = validate_logs(frame, "sim", frame.attrs["nextbest"])
    mask = logs.allowed
    policies = [make_policy(n, model.features, model.catalog) for n in ("bau", "bau-epsilon", "random")]
    probs = {p.name: p.action_probs(logs.contexts.astype(np.float32), mask) for p in policies}
    return logs, probs, bandit_ground_truth(logs, policies)


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: e.label)
def test_same_seed_same_estimate(simulated, estimator):
    logs, probs, _ = simulated
    a = estimator.estimate(logs, probs["bau"], seed=5)
    b = estimator.estimate(logs, probs["bau"], seed=5)
    c = estimator.estimate(logs, probs["bau"], seed=6)
    assert a == b
    assert (a.lower, a.upper) != (c.lower, c.upper)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["bau", "bau-epsilon", "random"])
def test_unbiased_estimators_cover_the_truth(simulated, policy):
    """IPS and DR are unbiased under full support: on ~190k decisions their error is within sampling
    error (4 cluster-robust standard errors) of the exact value."""
    logs, probs, truth = simulated
    for estimator in (IPS(), DR()):
        est = estimator.estimate(logs, probs[policy], interval="clt", seed=1)
        assert abs(est.value - truth[policy]) < 4 * est.std_error, (estimator.label, est, truth[policy])


def test_estimate_all_matches_single_calls(simulated):
    logs, probs, _ = simulated
    together = estimate_all(logs, probs["bau-epsilon"], seed=3, n_boot=50)
    alone = [e.estimate(logs, probs["bau-epsilon"], seed=3, n_boot=50) for e in ALL]
    assert together == alone


def test_bootstrap_and_clt_agree_on_large_data(simulated):
    logs, probs, _ = simulated
    boot = DR().estimate(logs, probs["bau"], interval="bootstrap", n_boot=400, seed=2)
    clt = DR().estimate(logs, probs["bau"], interval="clt", seed=2)
    assert boot.value == clt.value
    # the two standard errors agree within the bootstrap's own precision (~1/sqrt(2 * 400) relative)
    assert boot.std_error == pytest.approx(clt.std_error, rel=0.15)


def test_ground_truth_refuses_foreign_or_edited_logs(simulated, model):
    logs, _, _ = simulated
    bau = make_policy("bau", model.features, model.catalog)
    with pytest.raises(NextbestError, match="does not say how it was simulated"):
        bandit_ground_truth(validate_logs(logs.frame, "plain.csv"), [bau])
    # swap one logged action for another the logger could have taken, keeping the file valid
    probs, actions = logs.action_probs, logs.actions
    other = (actions + 1) % logs.n_actions
    row = int(np.flatnonzero(probs[np.arange(len(logs)), other] > 0)[0])
    edited = logs.frame.copy()
    edited.loc[row, "action"] = other[row]
    edited.loc[row, "propensity"] = probs[row, other[row]]
    with pytest.raises(NextbestError, match="does not reproduce them"):
        bandit_ground_truth(validate_logs(edited, "edited", logs.metadata), [bau])
