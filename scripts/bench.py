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
