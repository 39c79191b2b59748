"""``nextbest bench sim``: throughput of the simulator's drivers and environments (JSON figures).

Each figure is the best of a few repeats (the machines are noisy; the best run is the least disturbed).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
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


def _percentiles_us(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e6
    return round(float(np.percentile(arr, 50)), 2), round(float(np.percentile(arr, 99)), 2)


def _time_calls(fn: Callable[[], Any], n: int) -> list[float]:
    for _ in range(min(n, 500)):  # warm-up
        fn()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def bench_decide(quick: bool = False) -> dict[str, Any]:
    """Live-send decision speed (issue #4), side by side with stable-baselines3's ``predict`` on the same MLP.

    Single decisions time the whole ``Runtime.decide`` on a customer record (feature extraction,
    guardrails, exploration, propensity). Batch decisions time ``decide_batch`` on a DataFrame. HTTP
    sends single-customer requests to ``nextbest serve`` on loopback at 500 requests/s (open loop).
    """
    import tempfile

    import gymnasium as gym
    import pandas as pd
    import torch
    from stable_baselines3 import PPO

    import nextbest.envs  # noqa: F401
    from nextbest.agents.sb3_export import export_sb3
    from nextbest.policies import Runtime, load, save_policy

    torch.set_num_threads(1)
    env = gym.make("nextbest/EmailCampaign-v0")
    model_env = env.unwrapped.model
    features, actions = list(model_env.features), list(model_env.catalog.names)
    d, k = len(features), len(actions)
    rng = np.random.default_rng(0)
    n_single = 2_000 if quick else 20_000
    n_batch = 100_000 if quick else 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    linear = save_policy(
        folder / "linear.zip",
        kind="linear",
        name="linear",
        features=features,
        actions=actions,
        arrays={"coef": rng.normal(size=(d, k)), "intercept": rng.normal(size=k)},
        temperature=1.0,
        epsilon=0.05,
    )
    sb3 = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [64, 64]}, seed=0, device="cpu")
    mlp = export_sb3(sb3, folder / "mlp.zip", name="mlp", features=features, actions=actions)
    obs, _ = env.reset(seed=0)
    record = {f: float(v) for f, v in zip(features, obs, strict=True)} | {"customer_id": 42, "consent": 1.0}
    frame = pd.DataFrame(rng.random((n_batch, d)), columns=features)
    frame["customer_id"] = np.arange(n_batch)
    frame["consent"] = 1.0

    figures: dict[str, Any] = {}
    for label, path in (("", linear), ("mlp_", mlp)):
        runtime = Runtime(load(path))
        p50, p99 = _percentiles_us(_time_calls(lambda rt=runtime: rt.decide(record, "bench"), n_single))
        figures[f"{label}decide_p50_us"], figures[f"{label}decide_p99_us"] = p50, p99
        figures[f"{label}batch_decisions_per_s"] = round(
            _best_rate(lambda rt=runtime: (rt.decide_batch(frame, "bench"), n_batch)[1], repeats=3)
        )
    p50, p99 = _percentiles_us(_time_calls(lambda: sb3.predict(obs, deterministic=False), n_single))
    figures["sb3_predict_p50_us"], figures["sb3_predict_p99_us"] = p50, p99
    figures["mlp_vs_sb3_p50_ratio"] = round(figures["sb3_predict_p50_us"] / figures["mlp_decide_p50_us"], 1)
    rows = frame[features].to_numpy(dtype=np.float32)

    def sb3_batch() -> float:
        for start in range(0, n_batch, 100_000):
            sb3.predict(rows[start : start + 100_000], deterministic=False)
        return n_batch

    figures["sb3_batch_rows_per_s"] = round(_best_rate(sb3_batch, repeats=3))
    figures["http_p99_ms"] = _bench_http(linear, record, seconds=1.0 if quick else 4.0)
    figures["sizes"] = {"single_calls": n_single, "batch_rows": n_batch, "features": d, "actions": k}
    figures["quick"] = quick
    return figures


def _bench_http(policy: Path, record: dict[str, Any], seconds: float, rate: int = 500) -> float:
    """p99 latency (ms) of single decisions over HTTP at ``rate`` requests/s, open loop, 8 client threads."""
    import http.client
    import json
    import threading
    from urllib.parse import urlsplit

    from nextbest.policies.service import running_server

    with running_server(policy, "--no-auth") as base:
        port = urlsplit(base).port
        body = json.dumps({"campaign_id": "bench", "customer": record}).encode()
        headers = {"Content-Type": "application/json"}
        latencies: list[float] = []
        lock = threading.Lock()
        threads = 8
        per_thread = int(rate * seconds / threads)
        start = time.perf_counter() + 0.2

        def client(offset: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            mine = []
            for i in range(per_thread):
                due = start + (i * threads + offset) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                conn.request("POST", "/v1/decide", body, headers)
                conn.getresponse().read()
                mine.append(time.perf_counter() - t0)
            conn.close()
            with lock:
                latencies.extend(mine)

        workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return round(float(np.percentile(np.asarray(latencies) * 1e3, 99)), 3)


def bench_bandits(quick: bool = False) -> dict[str, Any]:
    """Quality and speed of the bandit agents (issue #5).

    * ``bau_true_value`` / ``dr_policy_true_value`` (with 95% intervals over customers): the exact one-step
      value per decision, on fresh contexts of a BAU-run population, of BAU and of the DR-learned policy
      trained on ~50,000 logged decisions of the epsilon-BAU logger (BAU needs exploration in its logs to
      be learned from: a deterministic logger supports nothing else).
    * ``lints_regret_10k/_50k/_100k``, ``egreedy_regret_100k``: cumulative expected regret online in
      EmailBandit-v0, against the best linear policy of the observations (per-action least squares on the
      exact expected rewards of fresh contexts) - the best policy the linear agents can represent; against
      the latent-state oracle every observation-based agent's regret grows linearly.
      ``lints_regret_per_round_to_*`` is the regret per round within each stretch (falling = sublinear).
    * ``best_fixed_true_value`` / ``best_linear_true_value``: the best single action for everyone, and the
      best linear policy, on the same fresh contexts - the gap the contextual agents have to learn;
      ``dm_uniform_true_value``: a linear reward model fitted on ``uniform_decisions`` uniformly explored
      decisions (how much data the contextual part needs at this reward noise).
    * ``bandit_updates_per_s``: LinTS batch updates with 16 actions and 30 features.
    """
    from nextbest.agents.basic import EpsilonGreedyBandit
    from nextbest.agents.linear import DirectMethod, LinTS, PolicyLearner
    from nextbest.agents.online import run_online
    from nextbest.evaluation.ground_truth import bandit_truth_rows
    from nextbest.evaluation.intervals import ClusterSums, clt_interval
    from nextbest.logs import validate_logs
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel, make_policy, simulate

    model = CustomerModel(Scenario.load("retail"))
    logger = make_policy("bau-epsilon", model.features, model.catalog)
    customers = 1_000 if quick else 5_000
    frame = simulate(model, logger, customers, 10, seed=1)
    train = validate_logs(frame, "train", frame.attrs["nextbest"])
    learner = PolicyLearner(model.features, model.catalog.names, weighting="dr", epsilon=0.0, name="dr-policy")
    learner.fit(train, seed=0)
    explored = simulate(model, make_policy("random", model.features, model.catalog), customers * 5, 10, seed=3)
    uniform = DirectMethod(model.features, model.catalog.names, ridge=100.0, name="dm-uniform")
    uniform.fit(validate_logs(explored, "uniform", explored.attrs["nextbest"]))
    frame = simulate(model, logger, customers, 10, seed=2)
    fresh = validate_logs(frame, "fresh", frame.attrs["nextbest"])
    bau = make_policy("bau", model.features, model.catalog)
    comparator = _best_linear_policy(model, n=5_000 if quick else 20_000)
    fixed = [make_policy(f"always:{a}", model.features, model.catalog) for a in model.catalog.names]
    truth = bandit_truth_rows(fresh, [bau, learner, comparator, uniform, *fixed])
    truth["best-fixed"] = max((truth[p.name] for p in fixed), key=np.mean)
    figures: dict[str, Any] = {}
    zeros = np.zeros(len(fresh))
    names = ("bau", "dr-policy", "best-fixed", "best-linear", "dm-uniform")
    for key, name in ((n.replace("-", "_"), n) for n in names):
        sums = ClusterSums(
            np.bincount(fresh.clusters, weights=truth[name]),
            np.bincount(fresh.clusters, weights=zeros),
            np.bincount(fresh.clusters, weights=zeros),
            np.bincount(fresh.clusters).astype(np.float64),
        )
        lower, upper, _ = clt_interval(sums, 0.95)
        figures[f"{key}_true_value"] = round(float(truth[name].mean()), 5)
        figures[f"{key}_true_value_lower"], figures[f"{key}_true_value_upper"] = round(lower, 5), round(upper, 5)

    steps = 10_000 if quick else 100_000
    marks = (1_000, 5_000, 10_000) if quick else (10_000, 50_000, 100_000)
    lints = run_online(
        LinTS(model.features, model.catalog.names), steps, seed=0, checkpoints=marks, comparator=comparator
    )
    previous = (0, 0.0)
    for mark, label in zip(marks, ("10k", "50k", "100k"), strict=True):
        figures[f"lints_regret_{label}"] = round(lints.checkpoints[mark], 2)
        # regret per round within each stretch: falling = sublinear growth
        rate = (lints.checkpoints[mark] - previous[1]) / (mark - previous[0])
        figures[f"lints_regret_per_round_to_{label}"] = round(rate, 5)
        previous = (mark, lints.checkpoints[mark])
    egreedy = run_online(
        EpsilonGreedyBandit(model.features, model.catalog.names),
        steps,
        seed=0,
        checkpoints=(steps,),
        comparator=comparator,
    )
    figures["egreedy_regret_100k"] = round(egreedy.checkpoints[steps], 2)

    rng = np.random.default_rng(0)
    d, k, n = 30, 16, 100_000
    agent = LinTS(
        [f"f{i}" for i in range(d)], [f"a{i}" for i in range(k)], feature_mean=np.zeros(d), feature_scale=np.ones(d)
    )
    x, a, r = rng.normal(size=(n, d)), rng.integers(0, k, n), rng.normal(size=n)
    figures["bandit_updates_per_s"] = round(
        _best_rate(lambda: (agent.update(x, a, r), n)[1], repeats=1 if quick else 3)
    )
    figures["sizes"] = {
        "logged_decisions": len(train),
        "uniform_decisions": uniform.n_updates,
        "online_rounds": steps,
        "quick": quick,
    }
    return figures


def _best_linear_policy(model: Any, n: int) -> Any:
    """The greedy policy of per-action least squares of the exact expected rewards on ``n`` fresh contexts."""
    from nextbest.agents.linear import LinearAgent
    from nextbest.envs.bandit import EmailBanditEnv

    env = EmailBanditEnv(model.scenario)
    obs, info = env.reset(seed=12_345)
    contexts, truth = [], []
    for _ in range(n):
        contexts.append(obs)
        truth.append(info["expected_rewards"])
        env.step(0)
        obs, info = env.reset()
    x, t = np.array(contexts), np.array(truth)
    best = LinearAgent(model.features, model.catalog.names, name="best-linear")
    for a in range(t.shape[1]):
        best.update(x, np.full(len(x), a), t[:, a])
    return best


def bench_rl(
    quick: bool = False,
    ppo_steps: int | None = None,
    unsubscribe_penalty: float = 60.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Lifetime value of RL policies against BAU, random and the best myopic bandit (issue #6).

    Every policy is valued by the simulator over the scenario's 90 days on the same 20,000 fresh
    customers (``policy_value``, exact expected rewards, 95% interval) and described by what it did:
    emails per customer, the share of them carrying a discount, unsubscribes per email sent
    (``_unsub_rate``, the industry's unsubscribe rate) and the share of customers who unsubscribed.

    * ``bandit``: the better (by true value) of the one-step DR-learned policy (from 90 days of
      epsilon-BAU logs of 5,000 customers) and LinTS after 100,000 online rounds - both myopic;
    * ``maskable_ppo``: MaskablePPO trained online on ``ppo_steps`` customer-days with the expected
      daily reward and ``unsubscribe_penalty`` per unsubscribe (the worth of a subscriber after the
      horizon; a training aid only - the values below never include it); ``ppo_train_steps_per_s``;
    * ``cql``: discrete CQL on 90 days of epsilon-BAU logs (BAU with 10% uniform exploration) of 20,000
      customers, with the same unsubscribe penalty on the logged rewards.
    """
    from nextbest.agents.linear import LinTS, PolicyLearner
    from nextbest.agents.offline import DiscreteCQL
    from nextbest.agents.online import run_online
    from nextbest.agents.rl import train_online
    from nextbest.logs import validate_logs
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel, make_policy, policy_value, simulate

    model = CustomerModel(Scenario.load("retail"))
    n_eval = 2_000 if quick else 20_000
    eval_seed = 10_000
    figures: dict[str, Any] = {}
    sizes: dict[str, Any] = {"eval_customers": n_eval, "quick": quick}

    def record(key: str, policy: Any) -> float:
        value = policy_value(policy, model, n_eval, seed=eval_seed)
        figures[f"{key}_value"] = round(value.mean, 4)
        figures[f"{key}_value_lower"], figures[f"{key}_value_upper"] = round(value.lower, 4), round(value.upper, 4)
        figures[f"{key}_unsub_rate"] = round(value.unsubscribes_per_email, 5)
        figures[f"{key}_unsubscribed_share"] = round(value.unsubscribe_rate, 4)
        figures[f"{key}_sends_per_customer"] = round(value.sends_per_customer, 2)
        figures[f"{key}_discount_share"] = round(value.discount_share, 3)
        return value.mean

    for key in ("bau", "random"):
        record(key, make_policy(key, model.features, model.catalog))

    logger = make_policy("bau-epsilon", model.features, model.catalog)
    frame = simulate(model, logger, 1_000 if quick else 5_000, None, seed=1)
    one_step = validate_logs(frame, "bandit-train", frame.attrs["nextbest"])
    dr = PolicyLearner(model.features, model.catalog.names, weighting="dr", name="dr-policy").fit(one_step)
    lints = LinTS(model.features, model.catalog.names)
    run_online(lints, 10_000 if quick else 100_000, seed=0)
    bandits = {"dr-policy": dr, "lints": lints}
    scores = {name: policy_value(p, model, n_eval // 4, seed=eval_seed + 1).mean for name, p in bandits.items()}
    best = max(scores, key=scores.get)
    record("bandit", bandits[best])
    sizes["bandit"] = best

    steps = ppo_steps or (200_000 if quick else 15_000_000)
    trained = train_online(
        "maskable-ppo", steps, model.scenario, seed=0, unsubscribe_penalty=unsubscribe_penalty, progress=progress
    )
    record("maskable_ppo", trained.policy())
    figures["ppo_train_steps_per_s"] = round(trained.steps_per_s)
    sizes.update(ppo_steps=steps, unsubscribe_penalty=unsubscribe_penalty, ppo_train_seconds=round(trained.seconds))

    frame = simulate(model, logger, 2_000 if quick else 20_000, None, seed=2)
    bau_logs = validate_logs(frame, "bau-epsilon", frame.attrs["nextbest"])
    cql = DiscreteCQL(
        model.features,
        model.catalog.names,
        steps=2_000 if quick else 30_000,
        unsubscribe_penalty=unsubscribe_penalty,
        seed=0,
    )
    cql.fit(bau_logs, progress=progress)
    record("cql", cql)
    sizes["cql_logged_decisions"] = len(bau_logs)
    figures["sizes"] = sizes
    return figures
