"""``nextbest bench sim``: throughput of the simulator's drivers and environments (JSON figures).

Each figure is the best of a few repeats (the machines are noisy; the best run is the least disturbed).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["bench_sim"]


def _best_rate(work: Callable[[], float], repeats: int) -> float:
    """Units per second of ``work`` (which returns the units it did), best of ``repeats``."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        units = work()
        best = max(best, units / (time.perf_counter() - t0))
    return best


def bench_sim(quick: bool = False) -> dict[str, Any]:
    """Measure the four simulator throughputs of issue #2.

    * ``sim_customer_days_per_s``: vectorized driver (``rollout``) under BAU, 100,000 customers x 30 days.
    * ``env_steps_per_s``: ``gymnasium.make("nextbest/EmailCampaign-v0")`` with random actions.
    * ``vec_env_customer_steps_per_s``: EmailPopulation-v0 with 10,000 customers, random actions.
    * ``simpy_events_per_s``: event-log rows per second of the SimPy campaign runner under BAU.
    """
    import gymnasium as gym

    import nextbest.envs  # noqa: F401  (registers the environments)
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel, make_policy, rollout
    from nextbest.simulator.campaign import CampaignRunner

    model = CustomerModel(Scenario.load("retail"))
    bau = make_policy("bau", model.features, model.catalog)
    n_sim, days = (10_000, 5) if quick else (100_000, 30)
    n_env_steps = 2_000 if quick else 50_000
    n_vec, vec_steps = (1_000, 10) if quick else (10_000, 60)
    n_simpy, simpy_days = (2_000, 5) if quick else (50_000, 14)
    repeats = 1 if quick else 3

    def sim() -> float:
        rollout(model, bau, n_sim, days, seed=0)
        return n_sim * days

    def env_steps() -> float:
        env = gym.make("nextbest/EmailCampaign-v0")
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, env.action_space.n, n_env_steps).tolist()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return n_env_steps

    def vec_steps_fn() -> float:
        env = gym.make_vec("nextbest/EmailPopulation-v0", num_envs=n_vec)
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, env.single_action_space.n, (vec_steps, n_vec))
        for a in actions:
            env.step(a)
        return n_vec * vec_steps

    runner = CampaignRunner(model, send_rate_per_hour=200_000)

    def simpy_events() -> float:
        return len(runner.run(bau, n_simpy, simpy_days, seed=0).events)

    return {
        "sim_customer_days_per_s": round(_best_rate(sim, repeats)),
        "env_steps_per_s": round(_best_rate(env_steps, repeats)),
        "vec_env_customer_steps_per_s": round(_best_rate(vec_steps_fn, repeats)),
        "simpy_events_per_s": round(_best_rate(simpy_events, repeats)),
        "sizes": {
            "sim": [n_sim, days],
            "env_steps": n_env_steps,
            "vec_env": [n_vec, vec_steps],
            "simpy": [n_simpy, simpy_days],
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "quick": quick,
    }


#: Evaluation policies of the OPE benchmark, by distance from the softmax-of-BAU logger.
OPE_POLICIES = {"near": "bau-epsilon", "far": "always:free_shipping@evening", "random": "random"}


def bench_ope(quick: bool = False, seeds: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Accuracy and speed of the bandit estimators (issue #3).

    Accuracy: for each seed, ~100,000 logged decisions of the softmax-of-BAU logger (10,000 customers x
    10 days); each estimator's relative error against the exact value on the logged contexts
    (re-simulation), and whether its 95% bootstrap interval covers it. Reported: median relative error
    and coverage over seeds, for a policy near the logger, one far from it, and uniform random.

    Speed: all estimators with a 200-resample bootstrap on ~1,000,000 logged decisions (``ope_1m_rows_s``;
    reward-model fit included).
    """
    from tqdm.auto import tqdm

    from nextbest.evaluation import bandit_ground_truth, default_estimators, estimate_all
    from nextbest.logs import validate_logs
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel, make_policy, simulate

    model = CustomerModel(Scenario.load("retail"))
    logger = make_policy("bau-softmax", model.features, model.catalog)
    policies = {k: make_policy(v, model.features, model.catalog) for k, v in OPE_POLICIES.items()}
    names = [e.label for e in default_estimators()]
    n_seeds = seeds if seeds is not None else (3 if quick else 50)
    customers = 1_000 if quick else 10_000
    errors = {(e, k): [] for e in names for k in policies}
    covered = {(e, k): [] for e in names for k in policies}
    truths: dict[str, list[float]] = {k: [] for k in policies}
    for seed in tqdm(range(n_seeds), desc="bench ope", unit="seed", disable=not progress):
        frame = simulate(model, logger, customers, 10, seed=seed)
        logs = validate_logs(frame, f"seed {seed}", frame.attrs["nextbest"])
        truth = bandit_ground_truth(logs, list(policies.values()))
        for key, policy in policies.items():
            t = truth[policy.name]
            truths[key].append(t)
            probs = policy.action_probs(logs.contexts, logs.allowed)
            for est in estimate_all(logs, probs, seed=seed):
                errors[(est.estimator, key)].append(abs(est.value - t) / abs(t))
                covered[(est.estimator, key)].append(est.covers(t))

    figures: dict[str, Any] = {}
    for (name, key), values in errors.items():
        figures[f"{name}_median_rel_error_{key}"] = round(float(np.median(values)), 4)
        figures[f"{name}_coverage_{key}"] = round(float(np.mean(covered[(name, key)])), 3)

    big_customers = 11_000 if quick else 110_000
    frame = simulate(model, logger, big_customers, 10, seed=10_000)
    logs = validate_logs(frame, "speed", frame.attrs["nextbest"])
    probs = policies["near"].action_probs(logs.contexts, logs.allowed)
    _ = logs.contexts, logs.clusters  # typed arrays are built once per file, not per evaluation
    t0 = time.perf_counter()
    estimate_all(logs, probs, n_boot=200, seed=0)
    figures["ope_1m_rows_s"] = round(time.perf_counter() - t0, 3)
    figures["sizes"] = {
        "decisions_per_seed": int(np.mean([customers * 10])),
        "seeds": n_seeds,
        "speed_rows": len(logs),
        "policies": OPE_POLICIES,
        "mean_true_value": {k: round(float(np.mean(v)), 5) for k, v in truths.items()},
    }
    figures["quick"] = quick
    return figures
