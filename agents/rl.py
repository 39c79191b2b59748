"""Online RL in the simulator with stable-baselines3 / sb3-contrib, used as they are.

:func:`train_online` trains PPO, A2C, DQN or MaskablePPO on ``nextbest/EmailPopulation-v0`` (many
customers stepped in one numpy call, behind SB3's ``VecEnv``), with:

* observations scaled by a fixed affine map measured on a BAU-run population (:class:`Scaling`): SB3's
  ``VecNormalize`` keeps running statistics that drift during training and would have to travel with the
  policy; a fixed map goes into the artifact as its feature normalisation;
* a progress bar and a :class:`GroundTruthCallback` that values the current policy on a fresh simulated
  population (exact expected rewards, 95% interval) every ``eval_every`` steps;
* defaults that work on the built-in ``retail`` scenario (:data:`DEFAULTS`, documented there).

The trained policy is :class:`SB3Policy` (a :class:`~nextbest.policy.BasePolicy`: ground truth, OPE and
the simulator treat it like any other) and exports to the MLP artifact the numpy runtime runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize
from tqdm.auto import tqdm

from nextbest.agents.scaling import Scaling
from nextbest.envs._common import ScenarioLike, build_model
from nextbest.envs.sb3 import PopulationVecEnv
from nextbest.errors import NextbestError
from nextbest.policy import BasePolicy, exploration_probs
from nextbest.simulator import PolicyValue, policy_value
from nextbest.simulator.model import CustomerModel

__all__ = ["ALGORITHMS", "DEFAULTS", "GroundTruthCallback", "OnlineRL", "SB3Policy", "Scaling", "train_online"]

ALGORITHMS: dict[str, type] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "maskable-ppo": MaskablePPO}

#: Hyper-parameters per algorithm on ``retail`` (90 daily decisions per customer, rewards of a few
#: currency units a month, 16 actions). ``n_envs`` customers are stepped together; the discount
#: ``gamma=0.99`` (a ~100-day look-ahead) covers the horizon, so fatigue, habituation and unsubscribes
#: weeks later count against today's discount. Anything passed to :func:`train_online` overrides these.
#: Measured on ``retail`` (true value per customer over 90 days; BAU 3.35): MaskablePPO 3.93 after 15M
#: steps (``nextbest bench rl``); A2C ~3.40 after 3M steps and DQN 2.63 after 1M (2,000-customer checks,
#: +-0.22) - PPO-family is the one to use here.
DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "n_envs": 256,
        "n_steps": 64,
        "batch_size": 2048,
        "n_epochs": 4,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "a2c": {  # SB3's lr 7e-4 and entropy bonus 0.01 left it at random's value after 3M steps
        "n_envs": 256,
        "n_steps": 16,
        "learning_rate": 2e-3,
        "gamma": 0.99,
        "ent_coef": 0.0,
        "normalize_advantage": True,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "dqn": {
        "n_envs": 64,
        "learning_rate": 1e-4,
        "buffer_size": 500_000,
        "learning_starts": 20_000,
        "batch_size": 256,
        "train_freq": 1,
        "gradient_steps": 4,
        "target_update_interval": 20_000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.02,
        "gamma": 0.99,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
}
DEFAULTS["maskable-ppo"] = dict(DEFAULTS["ppo"])


class ScaledVecEnv(VecEnvWrapper):
    """Applies a :class:`Scaling` to every observation (terminal ones included); MaskablePPO's
    ``env_method("action_masks")`` passes through to the population."""

    def __init__(self, venv: PopulationVecEnv, scaling: Scaling) -> None:
        super().__init__(venv)
        self.scaling = scaling

    def reset(self) -> np.ndarray:
        return self.scaling(self.venv.reset())

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = self.scaling(info["terminal_observation"][None])[0]
        return self.scaling(obs), rewards, dones, infos


class SB3Policy(BasePolicy):
    """A trained SB3 model as a nextbest policy: softmax of the actor's logits (``temperature`` 1, SB3's
    own sampling distribution) or argmax (``temperature`` None), over the allowed actions; for DQN the
    greedy action of the Q-network mixed with uniform by ``epsilon``."""

    def __init__(
        self,
        sb3_model: Any,
        scaling: Scaling,
        name: str,
        temperature: float | None = 1.0,
        epsilon: float = 0.0,
    ) -> None:
        self.sb3_model = sb3_model
        self.scaling = scaling
        self.name = name
        self.is_q = isinstance(sb3_model, DQN)
        self.temperature = None if self.is_q else temperature
        self.epsilon = epsilon

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """Logits (actor-critic) or Q-values (DQN), ``(n, n_actions)``."""
        policy = self.sb3_model.policy
        with torch.no_grad():
            x = torch.as_tensor(self.scaling(np.asarray(obs)), device=policy.device)
            out = policy.q_net(x) if self.is_q else policy.get_distribution(x).distribution.logits
        return out.cpu().numpy().astype(np.float64)

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return exploration_probs(self.scores(obs), mask, self.temperature, self.epsilon)

    def export(
        self, path: str | os.PathLike[str], *, features: Sequence[str], actions: Sequence[str], **manifest: Any
    ) -> Path:
        """Write the MLP policy artifact (observation normalisation inside it)."""
        from nextbest.agents.sb3_export import export_sb3

        return export_sb3(
            self.sb3_model,
            path,
            name=self.name,
            features=features,
            actions=actions,
            temperature=self.temperature,
            epsilon=self.epsilon,
            feature_mean=self.scaling.mean.tolist(),
            feature_scale=self.scaling.scale.tolist(),
            **manifest,
        )


class GroundTruthCallback(BaseCallback):
    """Every ``every`` environment steps, the current policy's true value per customer over the horizon
    (``policy_value`` on ``n_customers`` fresh simulated customers, the same seed each time so that the
    curve compares like with like). Values are kept in :attr:`history`, logged as ``ground_truth/value``
    and written above the progress bar."""

    def __init__(
        self,
        model: CustomerModel,
        scaling: Scaling,
        name: str,
        every: int,
        n_customers: int = 2_000,
        seed: int = 10_000,
        report: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.sim = model
        self.scaling = scaling
        self.name = name
        self.every = every
        self.n_customers = n_customers
        self.eval_seed = seed
        self.report = report
        self.history: list[tuple[int, PolicyValue]] = []
        self.seconds = 0.0  # spent evaluating
        self._next = every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.evaluate()
        return True

    def evaluate(self) -> PolicyValue:
        start = time.perf_counter()
        policy = SB3Policy(self.model, self.scaling, self.name)
        value = policy_value(policy, self.sim, self.n_customers, seed=self.eval_seed)
        self.seconds += time.perf_counter() - start
        self.history.append((self.num_timesteps, value))
        self.logger.record("ground_truth/value", value.mean)
        if self.report is not None:
            self.report(
                f"{self.num_timesteps:>10,} steps: true value {value.mean:.3f} [{value.lower:.3f}, {value.upper:.3f}] "
                f"per customer, {value.sends_per_customer:.1f} sends, {value.discount_share:.0%} discounts, "
                f"{value.unsubscribe_rate:.1%} unsubscribed"
            )
        return value


class _ProgressBar(BaseCallback):
    """A tqdm bar over environment steps (SB3's own needs ``rich``)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, unit="step", unit_scale=True)

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


@dataclass
class OnlineRL:
    """A trained online agent: the SB3 model, its observation scaling, the ground-truth curve, and the
    training time (``seconds``, ground-truth evaluations excluded) and speed."""

    algo: str
    sb3_model: Any
    scaling: Scaling
    features: tuple[str, ...]
    actions: tuple[str, ...]
    history: list[tuple[int, PolicyValue]] = field(default_factory=list)
    seconds: float = float("nan")
    steps_per_s: float = float("nan")

    def policy(self, temperature: float | None = 1.0, epsilon: float = 0.0) -> SB3Policy:
        return SB3Policy(self.sb3_model, self.scaling, self.algo, temperature, epsilon)

    def export(
        self, path: str | os.PathLike[str], temperature: float | None = 1.0, epsilon: float = 0.0, **manifest: Any
    ) -> Path:
        return self.policy(temperature, epsilon).export(path, features=self.features, actions=self.actions, **manifest)


def train_online(
    algo: str,
    steps: int,
    scenario: ScenarioLike = "retail",
    seed: int = 0,
    *,
    eval_every: int | None = None,
    eval_customers: int = 2_000,
    reward: str = "expected",
    unsubscribe_penalty: float = 60.0,
    normalize_reward: bool = True,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
    **overrides: Any,
) -> OnlineRL:
    """Train ``algo`` (``ppo``, ``a2c``, ``dqn``, ``maskable-ppo``) for ``steps`` customer-days.

    Args:
        steps: environment steps (one customer-day each) in total over all ``n_envs``.
        scenario: a :class:`~nextbest.Scenario`, a built-in name or a YAML path.
        seed: seeds the population, SB3 and torch.
        eval_every: ground-truth evaluation period in steps (None: only at the end).
        eval_customers: customers per ground-truth evaluation.
        reward: the training reward, ``"expected"`` (default: the exact expected reward of the day's
            action, same objective, much less noise) or ``"realised"``.
        unsubscribe_penalty: currency per unsubscribe charged while training: a subscriber's worth after
            the horizon (60 on ``retail``: ~18 quarters of BAU's 3.4 per customer). Without it the policy
            buys this quarter's margin with unsubscribes (measured on ``retail``, MaskablePPO, 6M steps:
            penalty 0 -> 32% of customers unsubscribed, 5 -> 19%, 20 -> 5.5%, 60 -> 2.7%, BAU 2.9%).
            The ground-truth values never include it.
        normalize_reward: scale rewards by a running estimate of the return's spread while training
            (SB3's ``VecNormalize`` on rewards only; the exported policy does not depend on it).
        progress: show a progress bar.
        report: called with a line of text per evaluation (e.g. ``print``).
        overrides: SB3 hyper-parameters (and ``n_envs``) replacing :data:`DEFAULTS`.
    """
    if algo not in ALGORITHMS:
        raise NextbestError(f"unknown online RL algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    if steps < 1:
        raise NextbestError(f"steps must be >= 1, got {steps}")
    model = build_model(scenario)
    options = {**DEFAULTS[algo], **overrides}
    n_envs = int(options.pop("n_envs"))
    scaling = Scaling.measure(model, seed=seed)
    venv: Any = ScaledVecEnv(PopulationVecEnv(n_envs, model.scenario, seed, reward, unsubscribe_penalty), scaling)
    if normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=options.get("gamma", 0.99))
    sb3_model = ALGORITHMS[algo]("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **options)
    truth = GroundTruthCallback(model, scaling, algo, eval_every or steps, eval_customers, report=report)
    callbacks: list[BaseCallback] = [truth]
    if progress:
        callbacks.append(_ProgressBar(steps, algo))
    start = time.perf_counter()
    sb3_model.learn(steps, callback=CallbackList(callbacks))
    seconds = time.perf_counter() - start - truth.seconds
    if not truth.history or truth.history[-1][0] != sb3_model.num_timesteps:
        truth.evaluate()
    features, actions = tuple(model.features), tuple(model.catalog.names)
    rate = sb3_model.num_timesteps / seconds
    return OnlineRL(algo, sb3_model, scaling, features, actions, truth.history, seconds, rate)
