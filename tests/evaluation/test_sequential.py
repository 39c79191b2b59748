"""Sequential estimators: hand-computed values, invalid inputs, determinism, and agreement with the
simulator's value of the policy over the logged horizon."""

import numpy as np
import pandas as pd
import pytest

from nextbest import NextbestError
from nextbest.evaluation import estimate_sequential, sequential_ground_truth
from nextbest.logs import validate_logs
from nextbest.simulator import make_policy, simulate


def two_episodes():
    # episode A: steps 0, 1; episode B: step 0 only (ended). Two actions.
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "decision_time": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-05"]),
            "episode_id": [1, 1, 2],
            "step": [0, 1, 0],
            "x": [0.0, 1.0, 2.0],
            "next_x": [1.0, 2.0, 3.0],
            "action": [0, 1, 1],
            "propensity": [0.5, 0.5, 0.25],
            "prob_a0": [0.5, 0.5, 0.75],
            "prob_a1": [0.5, 0.5, 0.25],
            "reward": [1.0, 2.0, 4.0],
            "done": [False, True, True],
        }
    )
    return validate_logs(frame)


PI = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
# ratios: A0 = 1/0.5 = 2, A1 = 0.5/0.5 = 1, B0 = 1/0.25 = 4; cumulative: A = (2, 2), B = (4, 4 padded)
# PDIS = mean(2*1 + 2*2, 4*4) = (6 + 16) / 2 = 11
# WPDIS = (2*1 + 4*4)/(2 + 4) + (2*2 + 0)/(2 + 4) = 3 + 2/3


def test_hand_computed_pdis_and_wpdis():
    pdis, wpdis = estimate_sequential(two_episodes(), PI, estimators=("pdis", "wpdis"), n_boot=50)
    assert pdis.value == pytest.approx(11.0)
    assert wpdis.value == pytest.approx(3 + 2 / 3)
    assert pdis.n == 2 and pdis.lower <= pdis.value <= pdis.upper


def test_on_policy_pdis_is_the_mean_return():
    logs = two_episodes()
    mu = logs.action_probs
    (pdis,) = estimate_sequential(logs, mu, estimators=("pdis",), n_boot=20)
    assert pdis.value == pytest.approx((1 + 2 + 4) / 2)


def test_invalid_inputs_are_named():
    logs = two_episodes()
    with pytest.raises(ValueError, match="unknown sequential estimator 'mc'"):
        estimate_sequential(logs, PI, estimators=("mc",))
    with pytest.raises(ValueError, match="gamma"):
        estimate_sequential(logs, PI, gamma=0.0)
    with pytest.raises(NextbestError, match="sums to"):
        estimate_sequential(logs, PI * 2)
    flat = validate_logs(logs.frame.drop(columns=["episode_id", "step"]))
    with pytest.raises(NextbestError, match="need episode_id and step"):
        estimate_sequential(flat, PI)


@pytest.fixture(scope="module")
def simulated(model):
    logger = make_policy("bau-softmax", model.features, model.catalog)
    frame = simulate(model, logger, 20_000, 5, seed=31)
    return validate_logs(frame, "sim", frame.attrs["nextbest"])


def test_same_seed_same_estimates(simulated, model):
    probs = make_policy("bau-epsilon", model.features, model.catalog).action_probs(
        simulated.contexts, simulated.allowed
    )
    assert estimate_sequential(simulated, probs, seed=2) == estimate_sequential(simulated, probs, seed=2)


@pytest.mark.slow
def test_pdis_and_dr_cover_the_policy_value(simulated, model):
    """Unbiased over 5-day episodes for a policy near the logger: within 4 standard errors (of the
    estimate and of the Monte Carlo truth) of the simulator's value."""
    policy = make_policy("bau-epsilon", model.features, model.catalog)
    truth = sequential_ground_truth(simulated, [policy], n_customers=50_000)[policy.name]
    probs = policy.action_probs(simulated.contexts, simulated.allowed)
    for est in estimate_sequential(simulated, probs, estimators=("pdis", "wpdis", "dr"), seed=0):
        assert abs(est.value - truth.mean) < 4 * np.hypot(est.std_error, truth.std_error), (est, truth)


def test_far_policy_warns(simulated, model):
    probs = make_policy("random", model.features, model.catalog).action_probs(simulated.contexts, simulated.allowed)
    (pdis,) = estimate_sequential(simulated, probs, estimators=("pdis",), n_boot=20)
    assert pdis.diagnostics.ess < 0.05 * pdis.n
