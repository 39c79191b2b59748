"""Why offline CQL stays at BAU on epsilon-BAU logs: the experiment behind docs/offline_rl.md.

Simulates 90 days of BAU with ``--epsilon`` uniform exploration for ``--customers`` customers, trains
one offline learner on the logs and prints its true value (20,000 fresh customers, the seed of
``nextbest bench rl``). ``--reward`` chooses what the learner sees as each decision's reward, always minus
60 per unsubscribe (the penalty of ``bench rl``):

* ``realised``: the logged reward and the logged unsubscribe, as in ``bench rl``;
* ``expected``: the simulator's exact expected reward of the logged action and 60 x the probability of
  an unsubscribe (an oracle: no retailer has it; it shows what the noise of the realised reward costs);
* ``boosted``: the realised target smoothed by a gradient-boosted model of it given the context, offer and
  slot, cross-fitted over two halves of the customers (what a retailer could do).

    python docs/experiments/offline_rl.py --algo cql --alpha 1 --reward expected
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from nextbest.agents.offline import OFFLINE_ALGORITHMS, Transitions
from nextbest.logs import validate_logs
from nextbest.policy import EpsilonGreedy
from nextbest.scenario import Scenario
from nextbest.simulator import BAUPolicy, CustomerModel, policy_value
from nextbest.simulator.driver import LogCollector, log_metadata, rollout

PENALTY = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(OFFLINE_ALGORITHMS), default="cql")
    parser.add_argument("--alpha", type=float, default=1.0, help="CQL's conservative weight")
    parser.add_argument("--reward", choices=("realised", "expected", "boosted"), default="realised")
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=30_000)
    args = parser.parse_args()
    torch.set_num_threads(2)

    model = CustomerModel(Scenario.load("retail"))
    days = model.scenario.horizon_days
    logger = EpsilonGreedy(BAUPolicy(model.features, model.catalog), args.epsilon, name="bau-epsilon")
    collector = LogCollector(model, logger.name, days)
    expected: list[np.ndarray] = []

    def on_step(step):
        collector(step)
        p = model.probabilities(step.traits, step.state, step.actions)
        reward = model.expected_reward(step.traits, step.state, step.actions, probs=p)
        expected.append((reward - PENALTY * p.p_open * p.p_unsubscribe)[step.active])

    rollout(model, logger, args.customers, days, seed=2, on_step=on_step)
    logs = validate_logs(collector.frame(), "logs", log_metadata(model, logger.name, 2, args.customers, days))
    data = Transitions.from_logs(logs, unsubscribe_penalty=PENALTY)
    if args.reward == "expected":
        data = dataclasses.replace(data, rewards=np.concatenate(expected))
    elif args.reward == "boosted":
        data = dataclasses.replace(data, rewards=_boosted(model, data, logs.clusters % 2))

    kwargs = {"alpha": args.alpha} if args.algo == "cql" else {}
    agent = OFFLINE_ALGORITHMS[args.algo](model.features, model.catalog.names, steps=args.steps, seed=0, **kwargs)
    agent.fit(data, progress=True)
    value = policy_value(agent, model, 20_000, seed=10_000)
    bau = policy_value(BAUPolicy(model.features, model.catalog), model, 20_000, seed=10_000)
    print(
        f"{args.algo} alpha={args.alpha} reward={args.reward} epsilon={args.epsilon} customers={args.customers}: "
        f"{value.mean:.3f} [{value.lower:.3f}, {value.upper:.3f}] ({value.mean / bau.mean - 1:+.1%} vs BAU "
        f"{bau.mean:.3f}); {value.sends_per_customer:.1f} emails, {value.discount_share:.0%} discounts, "
        f"{value.unsubscribe_rate:.1%} unsubscribed"
    )


def _boosted(model: CustomerModel, data: Transitions, fold: np.ndarray) -> np.ndarray:
    offer = np.array([name.split("@")[0] for name in model.catalog.names])
    slot = np.array([name.split("@")[-1] for name in model.catalog.names])
    a = data.actions
    design = np.hstack(
        [data.obs]
        + [(offer[a] == o)[:, None] for o in np.unique(offer)]
        + [(slot[a] == s)[:, None] for s in np.unique(slot)]
    )
    smoothed = np.empty_like(data.rewards)
    for k in (0, 1):
        booster = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, min_samples_leaf=200, random_state=0)
        booster.fit(design[fold != k], data.rewards[fold != k])
        smoothed[fold == k] = booster.predict(design[fold == k])
    return smoothed


if __name__ == "__main__":
    main()
