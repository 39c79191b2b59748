"""Offline RL from logged campaign trajectories (torch): BC, FQI, discrete CQL and discrete BCQ.

d3rlpy would be the library for this, but it pins ``gymnasium==1.0.0`` and cannot be installed beside
Gymnasium 1.x, so these four are written here, each kept small. All learn from :class:`Transitions`
(``x, a, r, x', terminal, allowed', allowed``) built from validated sequential logs, on observations
standardised with the logs' own mean and spread, and all give scores for the MLP policy artifact:

* :class:`BehaviourCloning` - logits ``f(x)``; loss ``-log softmax(f(x))[a]`` (cross-entropy of the
  logged action). The policy is the softmax of the logits (the logger's imitation) or their argmax.
* :class:`FittedQIteration` - ``K`` rounds of regression, each on frozen targets
  ``y = r + gamma (1 - terminal) max_{a' allowed} Q_prev(x', a')``; loss ``(Q(x, a) - y)^2``.
* :class:`DiscreteCQL` (Kumar et al. 2020, CQL(H)) - Q-learning with a target network,
  loss ``huber(Q(x, a) - y) + alpha (logsumexp_a' Q(x, a') - Q(x, a))``: the second term pushes down the
  values of actions the logs did not take, so the greedy policy stays where the data say something.
* :class:`DiscreteBCQ` (Fujimoto et al. 2019) - a behaviour model ``G`` (cross-entropy, as BC) and Q with
  ``y = r + gamma (1 - terminal) Q_target(x', argmax_{a' in S(x')} Q(x', a'))``,
  ``S(x) = {a : G(a|x) / max_b G(b|x) >= tau}``; acts greedily within ``S(x)``. The artifact carries
  ``G`` as its support network.

The Q-learners act greedily on their scores (with optional ``epsilon``); ``gamma`` defaults to 0.99 over
daily decisions. The logged horizon is the planning horizon: a row that ends its episode (``done``) is
not bootstrapped from.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nextbest.agents.scaling import Scaling
from nextbest.errors import DataError, NextbestError
from nextbest.logs import LoggedFeedback, check_episodes
from nextbest.policy import BasePolicy, exploration_probs

__all__ = ["OFFLINE_ALGORITHMS", "BehaviourCloning", "DiscreteBCQ", "DiscreteCQL", "FittedQIteration", "Transitions"]


@dataclass(frozen=True)
class Transitions:
    """One row per logged decision: ``obs (n, d)``, ``actions``, ``rewards``, ``next_obs``, ``terminal``
    (episode ended: no bootstrap), ``allowed`` / ``next_allowed`` ``(n, k)`` guardrail masks."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminal: np.ndarray
    allowed: np.ndarray
    next_allowed: np.ndarray
    features: tuple[str, ...]
    action_names: tuple[str, ...]

    @classmethod
    def from_logs(
        cls, logs: LoggedFeedback, smooth_rewards: bool = False, unsubscribe_penalty: float = 0.0, seed: int = 0
    ) -> Transitions:
        """Checks that the logs are whole trajectories (see :func:`nextbest.logs.check_episodes`) with
        next-state features, then pairs every row with its successor's guardrail mask.

        Args:
            smooth_rewards: replace each logged reward by a cross-fitted per-action ridge prediction of it
                (out-of-fold by customer): a purchase follows well under 1% of decisions, so the realised
                reward is mostly noise; the prediction keeps its mean given the context and action.
            unsubscribe_penalty: currency charged per logged unsubscribe (column ``unsubscribed``): what a
                subscriber is worth after the logged horizon (see :func:`nextbest.agents.rl.train_online`).
        """
        order, terminal = check_episodes(logs)
        next_obs = logs.next_contexts
        if next_obs is None:
            missing = next(f"next_{f}" for f in logs.features if f"next_{f}" not in logs.frame.columns)
            raise DataError(f"{logs.source}: missing column {missing!r} (offline RL needs the next state's features)")
        allowed = logs.allowed
        next_allowed = np.ones_like(allowed)
        follows = order[:-1][~terminal[order[:-1]]]  # rows whose successor is the next row in order
        successor = order[1:][~terminal[order[:-1]]]
        next_allowed[follows] = allowed[successor]
        names = logs.action_names or tuple(str(a) for a in range(logs.n_actions))
        rewards = logs.rewards
        if unsubscribe_penalty:
            if "unsubscribed" not in logs.frame.columns:
                raise DataError(f"{logs.source}: missing column 'unsubscribed' (needed for an unsubscribe penalty)")
            rewards = rewards - unsubscribe_penalty * logs.frame["unsubscribed"].to_numpy(dtype=np.float64)
        if smooth_rewards:
            from nextbest.evaluation import RidgeRewardModel

            q = RidgeRewardModel().cross_fit(
                logs.contexts, logs.actions, rewards, logs.clusters, logs.n_actions, np.random.default_rng(seed)
            )
            rewards = q[np.arange(len(logs)), logs.actions]
        return cls(
            logs.contexts,
            logs.actions,
            rewards,
            next_obs,
            terminal,
            allowed,
            next_allowed,
            tuple(logs.features),
            tuple(names),
        )

    def __len__(self) -> int:
        return len(self.actions)


_DEFAULT: Any = object()


def _mlp(inputs: int, outputs: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class OfflineAgent(BasePolicy):
    """What the offline learners share: standardisation, a scoring network, minibatch training with a
    progress bar, the policy (``action_probs``) and export to the MLP artifact.

    Args:
        features, actions: the feature names and the action catalog.
        hidden: hidden layer widths (ReLU).
        steps: gradient steps; batch_size: rows per step; lr: Adam's learning rate.
        gamma: discount per decision (Q-learners).
        temperature, epsilon: the exported policy's exploration (default: greedy for the Q-learners,
            softmax at temperature 1 for BC).
        smooth_rewards, unsubscribe_penalty: how rewards are read from the logs (see
            :meth:`Transitions.from_logs`).
        seed: seeds torch, the minibatch draws and the reward model's folds.
    """

    algo = "offline"
    temperature_default: float | None = None

    def __init__(
        self,
        features: Sequence[str],
        actions: Sequence[str],
        *,
        hidden: Sequence[int] = (64, 64),
        steps: int = 20_000,
        batch_size: int = 512,
        lr: float = 3e-4,
        gamma: float = 0.99,
        temperature: Any = _DEFAULT,
        epsilon: float = 0.0,
        smooth_rewards: bool = False,
        unsubscribe_penalty: float = 0.0,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if steps < 1 or batch_size < 1 or not 0 <= gamma <= 1 or not lr > 0:
            raise ValueError("need steps >= 1, batch_size >= 1, lr > 0 and 0 <= gamma <= 1")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.features, self.actions = tuple(features), tuple(actions)
        self.hidden, self.steps, self.batch_size, self.lr, self.gamma = tuple(hidden), steps, batch_size, lr, gamma
        self.temperature = self.temperature_default if temperature is _DEFAULT else temperature
        self.epsilon = epsilon
        self.smooth_rewards = smooth_rewards
        self.unsubscribe_penalty = unsubscribe_penalty
        self.seed = seed
        self.name = name or self.algo
        self.scaling: Scaling | None = None
        torch.manual_seed(seed)
        self.net = _mlp(len(self.features), len(self.actions), self.hidden)
        self.losses: list[float] = []

    # ----------------------------------------------------------------------------------- training
    def fit(self, data: LoggedFeedback | Transitions, progress: bool = False) -> OfflineAgent:
        """Learn from logged trajectories (validated logs or ready :class:`Transitions`)."""
        t = (
            data
            if isinstance(data, Transitions)
            else Transitions.from_logs(data, self.smooth_rewards, self.unsubscribe_penalty, self.seed)
        )
        if t.features != self.features:
            raise NextbestError(f"the logs' features {list(t.features)} are not the agent's {list(self.features)}")
        if len(t.action_names) != len(self.actions):
            raise NextbestError(f"the logs have {len(t.action_names)} actions, the agent {len(self.actions)}")
        self.scaling = Scaling.of(t.obs)
        tensors = {
            "x": self._standardise(t.obs),
            "a": torch.tensor(t.actions, dtype=torch.int64),
            "r": torch.tensor(t.rewards, dtype=torch.float32),
            "x2": self._standardise(t.next_obs),
            "term": torch.tensor(t.terminal, dtype=torch.float32),
            "ok2": torch.tensor(t.next_allowed, dtype=torch.bool),
        }
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self._setup(tensors)
        bar = tqdm(range(self.steps), desc=f"{self.name} fit", unit="step", disable=not progress)
        for step in bar:
            idx = torch.randint(0, len(t), (self.batch_size,), generator=generator)
            loss = self._train_step({k: v[idx] for k, v in tensors.items()}, step)
            if step % 100 == 0:
                self.losses.append(loss)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        return self

    def _standardise(self, obs: np.ndarray) -> torch.Tensor:
        assert self.scaling is not None
        return torch.as_tensor(self.scaling(obs))

    def _setup(self, data: dict[str, torch.Tensor]) -> None:
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def _train_step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        raise NotImplementedError

    @staticmethod
    def _descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 10.0)
        optimizer.step()
        return float(loss.detach())

    # ------------------------------------------------------------------------------------ acting
    def scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, k)`` logits (BC) or Q-values (the others), for raw observations."""
        if self.scaling is None:
            raise NextbestError(f"{self.name} has not been fitted")
        with torch.no_grad():
            return self.net(self._standardise(obs)).double().numpy()

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return exploration_probs(self.scores(obs), mask, self.temperature, self.epsilon)

    # ------------------------------------------------------------------------------------ export
    @staticmethod
    def _arrays(net: nn.Sequential) -> dict[str, np.ndarray]:
        linear = [m for m in net if isinstance(m, nn.Linear)]
        arrays = {}
        for i, layer in enumerate(linear):
            arrays[f"w{i}"] = layer.weight.detach().numpy().T.astype(np.float64)
            arrays[f"b{i}"] = layer.bias.detach().numpy().astype(np.float64)
        return arrays

    def export(self, path: str | os.PathLike[str], **manifest: Any) -> Path:
        """Write the MLP policy artifact (standardisation inside it)."""
        from nextbest.policies import save_policy

        if self.scaling is None:
            raise NextbestError(f"{self.name} has not been fitted")
        return save_policy(
            path,
            kind="mlp",
            name=self.name,
            features=self.features,
            actions=self.actions,
            arrays=self._arrays(self.net),
            activation="relu",
            feature_mean=self.scaling.mean.tolist(),
            feature_scale=self.scaling.scale.tolist(),
            temperature=self.temperature,
            epsilon=self.epsilon,
            **manifest,
        )


class BehaviourCloning(OfflineAgent):
    """Imitates the logger: cross-entropy of the logged action; the policy is the softmax (temperature 1)."""

    algo = "bc"
    temperature_default = 1.0

    def _train_step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        loss = nn.functional.cross_entropy(self.net(batch["x"]), batch["a"])
        return self._descend(loss, self.optimizer)


class _QLearner(OfflineAgent):
    """Shared by the Q-learners: rewards are divided by their standard deviation while training (the
    greedy policy does not change; purchases are rare and large), and targets come from a frozen copy of
    the network refreshed every ``target_every`` steps."""

    def __init__(self, *args: Any, target_every: int = 1_000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target_every = target_every

    def _setup(self, data: dict[str, torch.Tensor]) -> None:
        super()._setup(data)
        self.reward_scale = float(data["r"].std()) or 1.0
        self.target = copy.deepcopy(self.net).requires_grad_(False)

    def _refresh(self, step: int) -> None:
        if step % self.target_every == 0:
            self.target.load_state_dict(self.net.state_dict())

    def _targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``r + gamma (1 - terminal) max_{a' allowed} Q_target(x', a')`` (scaled rewards)."""
        with torch.no_grad():
            q2 = self.target(batch["x2"]).masked_fill(~batch["ok2"], -torch.inf).max(dim=1).values
            return batch["r"] / self.reward_scale + self.gamma * (1.0 - batch["term"]) * q2

    def _taken(self, q: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return q.gather(1, batch["a"][:, None])[:, 0]


class FittedQIteration(_QLearner):
    """Fitted Q iteration: ``steps / target_every`` rounds of regression on frozen targets (squared error)."""

    algo = "fqi"

    def __init__(self, *args: Any, target_every: int = 2_000, **kwargs: Any) -> None:
        super().__init__(*args, target_every=target_every, **kwargs)

    def _train_step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        self._refresh(step)
        loss = nn.functional.mse_loss(self._taken(self.net(batch["x"]), batch), self._targets(batch))
        return self._descend(loss, self.optimizer)


class DiscreteCQL(_QLearner):
    """Conservative Q-learning, CQL(H): Huber TD loss + ``alpha`` (logsumexp over actions - logged Q)."""

    algo = "cql"

    def __init__(self, *args: Any, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = alpha

    def _train_step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        self._refresh(step)
        q = self.net(batch["x"])
        taken = self._taken(q, batch)
        td = nn.functional.smooth_l1_loss(taken, self._targets(batch))
        conservative = (torch.logsumexp(q, dim=1) - taken).mean()
        return self._descend(td + self.alpha * conservative, self.optimizer)


class DiscreteBCQ(_QLearner):
    """Batch-constrained Q-learning for discrete actions: Q is maximised only over actions whose
    behaviour-model probability is at least ``tau`` times the most likely one's."""

    algo = "bcq"

    def __init__(self, *args: Any, tau: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 <= tau <= 1:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        self.tau = tau
        self.behaviour = _mlp(len(self.features), len(self.actions), self.hidden)

    def _setup(self, data: dict[str, torch.Tensor]) -> None:
        super()._setup(data)
        self.behaviour_optimizer = torch.optim.Adam(self.behaviour.parameters(), lr=self.lr)

    def _supported(self, logits: torch.Tensor) -> torch.Tensor:
        log_ratio = logits.log_softmax(dim=1)
        return log_ratio >= log_ratio.max(dim=1, keepdim=True).values + np.log(max(self.tau, 1e-12))

    def _targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            ok = batch["ok2"] & self._supported(self.behaviour(batch["x2"]))
            best = self.net(batch["x2"]).masked_fill(~ok, -torch.inf).argmax(dim=1, keepdim=True)
            q2 = self.target(batch["x2"]).gather(1, best)[:, 0]
            return batch["r"] / self.reward_scale + self.gamma * (1.0 - batch["term"]) * q2

    def _train_step(self, batch: dict[str, torch.Tensor], step: int) -> float:
        self._refresh(step)
        imitation = nn.functional.cross_entropy(self.behaviour(batch["x"]), batch["a"])
        self._descend(imitation, self.behaviour_optimizer)
        td = nn.functional.smooth_l1_loss(self._taken(self.net(batch["x"]), batch), self._targets(batch))
        return self._descend(td, self.optimizer)

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """Q-values, pushed down by :data:`~nextbest.policies.artifact.UNSUPPORTED` outside the support."""
        from nextbest.policies.artifact import UNSUPPORTED

        q = super().scores(obs)
        with torch.no_grad():
            ok = self._supported(self.behaviour(self._standardise(obs))).numpy()
        return np.where(ok, q, q - UNSUPPORTED)

    def export(self, path: str | os.PathLike[str], **manifest: Any) -> Path:
        support = {"threshold": self.tau, "arrays": self._arrays(self.behaviour)}
        return super().export(path, support=support, **manifest)


OFFLINE_ALGORITHMS: dict[str, type[OfflineAgent]] = {
    "bc": BehaviourCloning,
    "fqi": FittedQIteration,
    "cql": DiscreteCQL,
    "bcq": DiscreteBCQ,
}
