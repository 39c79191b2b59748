"""Online learning in the simulator's contextual-bandit view (``nextbest/EmailBandit-v0``).

``n_envs`` independent bandit environments are served in lock-step: the agent picks actions for their
contexts as one batch, each environment answers with that day's reward, and the agent updates on the
batch. Regret is measured against the exact expected reward of the best allowed action (the
environment's ground truth), not against noisy rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nextbest.envs.bandit import EmailBanditEnv

__all__ = ["OnlineResult", "run_online"]


@dataclass(frozen=True)
class OnlineResult:
    """Cumulative expected regret and reward after ``rounds[i]`` rounds; ``checkpoints`` maps a round to
    the exact cumulative regret then; ``references`` the cumulative expected reward each reference policy
    would have earned on the same contexts."""

    rounds: list[int]
    regret: list[float]
    reward: list[float]
    checkpoints: dict[int, float] = field(default_factory=dict)
    references: dict[str, float] = field(default_factory=dict)


def run_online(
    agent: Any,
    steps: int,
    seed: int = 0,
    *,
    n_envs: int = 64,
    scenario: Any = "retail",
    checkpoints: tuple[int, ...] = (),
    comparator: Any = None,
    references: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> OnlineResult:
    """Let ``agent`` (anything with ``act_online(obs, mask, rng)`` and ``update(obs, actions, rewards)``)
    learn for ``steps`` rounds.

    Args:
        agent: an online learner (LinUCB, LinTS, the non-contextual baselines, ...).
        steps: rounds (one customer decision each).
        seed: seeds the environments and the agent's exploration.
        n_envs: rounds decided together in one batch.
        checkpoints: rounds at which to record the cumulative regret exactly.
        comparator: a policy with ``action_probs(obs, mask)`` to measure regret against, instead of the
            best action given the customer's latent state (which no policy of observations can match, so
            regret against it grows linearly for every agent). Its greedy choice is the benchmark.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    root = np.random.SeedSequence(seed)
    env_seeds = root.spawn(n_envs)
    rng = np.random.default_rng(root.spawn(1)[0])
    envs = [EmailBanditEnv(scenario) for _ in range(n_envs)]
    first = [env.reset(seed=int(s.generate_state(1)[0])) for env, s in zip(envs, env_seeds, strict=True)]
    obs = np.stack([o for o, _ in first])
    masks = np.stack([i["action_mask"] for _, i in first])
    truth = np.stack([i["expected_rewards"] for _, i in first])
    references = dict(references or {})
    reference_reward = dict.fromkeys(references, 0.0)
    done, regret, reward = 0, 0.0, 0.0
    rounds, regrets, rewards, marks = [], [], [], {}
    pending = sorted(checkpoints)
    bar = tqdm(total=steps, desc="online", unit="round", disable=not progress)
    while done < steps:
        take = min(n_envs, steps - done)
        context = obs[:take].copy()
        actions = np.asarray(agent.act_online(context, masks[:take], rng), dtype=np.int64)
        if comparator is None:
            best = np.where(masks[:take], truth[:take], -np.inf).max(axis=1)
        else:
            pick = comparator.action_probs(context, masks[:take]).argmax(axis=1)
            best = truth[np.arange(take), pick]
        gap = best - truth[np.arange(take), actions]
        expected = truth[np.arange(take), actions]
        for name, policy in references.items():
            reference_reward[name] += float((policy.action_probs(context, masks[:take]) * truth[:take]).sum())
        got = np.empty(take)
        for i in range(take):
            got[i] = envs[i].step(int(actions[i]))[1]
            o, info = envs[i].reset()
            obs[i], masks[i], truth[i] = o, info["action_mask"], info["expected_rewards"]
        agent.update(context, actions, got)
        running = regret + np.cumsum(gap)
        while pending and pending[0] <= done + take:
            mark = pending.pop(0)
            marks[mark] = float(running[mark - done - 1])
        regret, reward, done = float(running[-1]), reward + float(expected.sum()), done + take
        rounds.append(done)
        regrets.append(regret)
        rewards.append(reward)
        bar.update(take)
    bar.close()
    return OnlineResult(rounds, regrets, rewards, marks, reference_reward)
