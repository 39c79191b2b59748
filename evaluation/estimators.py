"""Off-policy estimators for the contextual-bandit view of logged feedback.

Notation, per logged row i (``n`` rows, ``k`` actions): context x_i, logged action a_i, reward r_i,
logging propensity p_i, evaluation policy pi(. | x_i) (``action_probs``, ``(n, k)``), importance weight
w_i = pi(a_i | x_i) / p_i (optionally clipped at ``clip``), reward model q(x, a) (cross-fitted, see
:mod:`nextbest.evaluation.reward_model`), and q_pi(x_i) = sum_a pi(a | x_i) q(x_i, a).

=========  ==============================================================================
DM         mean_i q_pi(x_i)
IPS        mean_i w_i r_i
SNIPS      sum_i w_i r_i / sum_i w_i
DR         mean_i [ q_pi(x_i) + w_i (r_i - q(x_i, a_i)) ]
SNDR       mean_i q_pi(x_i) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i
Switch-DR  mean_i [ q_pi(x_i) + w_i (r_i - q(x_i, a_i)) 1{w_i <= tau} ]
DRos       mean_i [ q_pi(x_i) + w~_i (r_i - q(x_i, a_i)) ],  w~ = lambda w / (w^2 + lambda)
=========  ==============================================================================

All are ``sum(a)/n + sum(b)/sum(c)`` of per-row terms, which gives one interval code path
(:mod:`nextbest.evaluation.intervals`). The estimand is the evaluation policy's expected reward per
decision on the logged contexts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nextbest.errors import NextbestError
from nextbest.evaluation.intervals import Resampler, bootstrap_interval, clt_interval
from nextbest.evaluation.reward_model import RidgeRewardModel
from nextbest.logs import LoggedFeedback

__all__ = [
    "DM",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
    "DRos",
    "Diagnostics",
    "Estimate",
    "Estimator",
    "SwitchDR",
    "default_estimators",
    "estimate_all",
]

#: Below this share of rows as effective sample size, the report warns that weights dominate.
ESS_WARN_SHARE = 0.01
#: Above this evaluation-policy mass on actions the logger never takes, the report warns about support.
UNSUPPORTED_WARN = 0.01


@dataclass(frozen=True)
class Diagnostics:
    """How far the data can be trusted for this policy.

    Attributes:
        ess: effective sample size of the weights, (sum w)^2 / sum w^2 (rows).
        ess_share: ``ess / n``.
        max_weight, mean_weight: of the (clipped) importance weights; mean ~ 1 when supports match.
        unsupported_mass: mean over rows of the evaluation policy's probability on actions the logger
            gives probability 0 in that context (from the logged probability vectors; without them, on
            actions never logged at all). Such mass is invisible to importance weighting.
        clipped_share: share of rows whose weight was clipped.
        warnings: plain-words problems, empty when the data look adequate.
    """

    ess: float
    ess_share: float
    max_weight: float
    mean_weight: float
    unsupported_mass: float
    clipped_share: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    """One estimator's answer: value (reward per decision, currency) and its interval."""

    estimator: str
    value: float
    lower: float
    upper: float
    std_error: float
    confidence: float
    interval: str
    n: int
    diagnostics: Diagnostics

    def covers(self, truth: float) -> bool:
        return self.lower <= truth <= self.upper


@dataclass(frozen=True)
class _Inputs:
    """Everything the estimators share for one (data, policy) pair; built once by :func:`estimate_all`."""

    data: LoggedFeedback
    action_probs: np.ndarray
    weights: np.ndarray  # unclipped w_i
    q_hat: np.ndarray | None  # (n, k) cross-fitted reward model, None for pure IS estimators
    diagnostics_base: dict[str, float]


def _validate(data: LoggedFeedback, action_probs: Any) -> np.ndarray:
    probs = np.asarray(action_probs, dtype=np.float64)
    n, k = len(data), data.n_actions
    if probs.ndim != 2 or probs.shape[0] != n:
        raise NextbestError(f"{data.source}: action_probs must have shape ({n}, {k}), got {probs.shape}")
    if probs.shape[1] != k:
        raise NextbestError(
            f"{data.source}: the evaluation policy has {probs.shape[1]} actions, the logs' catalog has {k}"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        bad = np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1))
        raise NextbestError(f"{data.source}: action_probs row {bad[0]}: must be finite and >= 0")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        raise NextbestError(f"{data.source}: action_probs row {bad[0]}: sums to {sums[bad[0]]:.6g}, not 1")
    return probs


def unsupported_mass(data: LoggedFeedback, probs: np.ndarray) -> float:
    """Mean over rows of the policy's probability on actions the logger gives probability 0 there (from
    the logged probability vectors; without them, on actions never logged at all)."""
    logging = data.action_probs
    if logging is not None:
        return float((probs * (logging <= 0)).sum(axis=1).mean())
    seen = np.bincount(data.actions, minlength=data.n_actions) > 0
    return float(probs[:, ~seen].sum(axis=1).mean())


def _prepare(
    data: LoggedFeedback,
    action_probs: Any,
    *,
    need_model: bool,
    reward_model: RidgeRewardModel,
    rng: np.random.Generator,
) -> _Inputs:
    probs = _validate(data, action_probs)
    rows = np.arange(len(data))
    weights = probs[rows, data.actions] / data.propensities
    unsupported = unsupported_mass(data, probs)
    q_hat = None
    if need_model:
        q_hat = reward_model.cross_fit(data.contexts, data.actions, data.rewards, data.clusters, data.n_actions, rng)
    return _Inputs(data, probs, weights, q_hat, {"unsupported_mass": unsupported})


@dataclass(frozen=True, kw_only=True)
class Estimator:
    """Base of the estimators: subclasses define the per-row terms ``(a, b, c)``.

    Attributes:
        clip: cap on importance weights (``None``: no clipping). Clipping trades variance for bias.
    """

    clip: float | None = None
    name: ClassVar[str] = "estimator"
    uses_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def estimate(
        self,
        data: LoggedFeedback,
        action_probs: Any,
        *,
        interval: str = "bootstrap",
        confidence: float = 0.95,
        n_boot: int = 200,
        seed: int | np.random.SeedSequence = 0,
        reward_model: RidgeRewardModel | None = None,
    ) -> Estimate:
        """Estimate the evaluation policy's value per decision.

        Args:
            data: validated logged feedback (``n`` rows).
            action_probs: ``(n, k)`` evaluation policy's probabilities for each logged context.
            interval: ``"bootstrap"`` (cluster percentile) or ``"clt"`` (cluster-robust normal).
            confidence: interval level.
            n_boot: bootstrap resamples.
            seed: root seed of the reward model's folds and the bootstrap.
            reward_model: for DM/DR-type estimators (default: :class:`RidgeRewardModel`).

        Raises:
            NextbestError: ``action_probs`` has the wrong shape or catalog, or rows that are not
                probability vectors.
        """
        return estimate_all(
            data,
            action_probs,
            [self],
            interval=interval,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
            reward_model=reward_model,
        )[0]

    def _estimate(self, x: _Inputs, interval: str, confidence: float, resampler: Resampler) -> Estimate:
        w = x.weights if self.clip is None else np.minimum(x.weights, self.clip)
        a, b, c = self._terms(x, w)
        sums = resampler.sums(a, b, c)
        if interval == "clt":
            lower, upper, se = clt_interval(sums, confidence)
        else:
            lower, upper, se = bootstrap_interval(sums, confidence, resampler)
        return Estimate(
            estimator=self.label,
            value=sums.value,
            lower=lower,
            upper=upper,
            std_error=se,
            confidence=confidence,
            interval=interval,
            n=len(x.data),
            diagnostics=_diagnostics(x, w),
        )

    @property
    def label(self) -> str:
        return self.name if self.clip is None else f"{self.name}(clip={self.clip:g})"


def _rngs(seed: int | np.random.SeedSequence) -> tuple[np.random.Generator, np.random.Generator]:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    model, boot = ss.spawn(2)
    return np.random.default_rng(model), np.random.default_rng(boot)


def _diagnostics(x: _Inputs, w: np.ndarray) -> Diagnostics:
    return weight_diagnostics(
        w,
        x.diagnostics_base["unsupported_mass"],
        clipped_share=float((x.weights > w).mean()),
        far="a few heavily weighted decisions drive the importance-weighted estimates; the policy is far "
        "from the logger",
        unit="rows",
    )


def weight_diagnostics(w: np.ndarray, unsupported: float, *, clipped_share: float, far: str, unit: str) -> Diagnostics:
    """Diagnostics of importance weights ``w`` (one per row or per episode), with plain-words warnings:
    ``far`` explains a small effective sample size, ``unit`` names what ``w`` is counted over."""
    n = w.size
    ess = float(w.sum() ** 2 / max(np.sum(w**2), 1e-300))
    warnings = []
    if ess < max(ESS_WARN_SHARE * n, 100):
        warnings.append(f"effective sample size is {ess:,.0f} of {n:,} {unit}: {far}")
    if unsupported > UNSUPPORTED_WARN:
        warnings.append(
            f"{unsupported:.1%} of the policy's choices are actions the logger never takes in that "
            "context; importance weighting cannot see them and only the reward model (DM/DR) speaks for them"
        )
    return Diagnostics(
        ess=ess,
        ess_share=ess / n,
        max_weight=float(w.max()),
        mean_weight=float(w.mean()),
        unsupported_mass=unsupported,
        clipped_share=clipped_share,
        warnings=tuple(warnings),
    )


def _dm_term(x: _Inputs) -> np.ndarray:
    assert x.q_hat is not None
    return (x.action_probs * x.q_hat).sum(axis=1)


def _residual(x: _Inputs) -> np.ndarray:
    assert x.q_hat is not None
    return x.data.rewards - x.q_hat[np.arange(len(x.data)), x.data.actions]


@dataclass(frozen=True, kw_only=True)
class DM(Estimator):
    """Direct method: the reward model's value of the policy (biased when the model is wrong)."""

    name: ClassVar[str] = "dm"
    uses_model: ClassVar[bool] = True

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        zero = np.zeros(len(x.data))
        return _dm_term(x), zero, zero


@dataclass(frozen=True, kw_only=True)
class IPS(Estimator):
    """Inverse propensity scoring: unbiased under full support (without clipping), high variance."""

    name: ClassVar[str] = "ips"

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.zeros(len(x.data)), w * x.data.rewards, np.ones(len(x.data))


@dataclass(frozen=True, kw_only=True)
class SNIPS(Estimator):
    """Self-normalised IPS: slightly biased, much lower variance than IPS."""

    name: ClassVar[str] = "snips"

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.zeros(len(x.data)), w * x.data.rewards, w


@dataclass(frozen=True, kw_only=True)
class DR(Estimator):
    """Doubly robust: unbiased if either the propensities or the reward model are right."""

    name: ClassVar[str] = "dr"
    uses_model: ClassVar[bool] = True

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _dm_term(x), w * _residual(x), np.ones(len(x.data))


@dataclass(frozen=True, kw_only=True)
class SNDR(Estimator):
    """Self-normalised doubly robust: DR with the correction term normalised by the weights' sum."""

    name: ClassVar[str] = "sndr"
    uses_model: ClassVar[bool] = True

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _dm_term(x), w * _residual(x), w


@dataclass(frozen=True, kw_only=True)
class SwitchDR(Estimator):
    """Switch-DR: the DR correction only where the weight is at most ``tau``; the model elsewhere."""

    tau: float = 10.0
    name: ClassVar[str] = "switch-dr"
    uses_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _dm_term(x), np.where(w <= self.tau, w, 0.0) * _residual(x), np.ones(len(x.data))


@dataclass(frozen=True, kw_only=True)
class DRos(Estimator):
    """DR with optimistic shrinkage (Su et al. 2020): weights shrunk to lambda w / (w^2 + lambda)."""

    lambda_: float = 100.0
    name: ClassVar[str] = "dr-os"
    uses_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lambda_ > 0:
            raise ValueError(f"lambda_ must be > 0, got {self.lambda_}")

    def _terms(self, x: _Inputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shrunk = self.lambda_ * w / (w**2 + self.lambda_)
        return _dm_term(x), shrunk * _residual(x), np.ones(len(x.data))


def default_estimators() -> list[Estimator]:
    """One of each estimator with its default settings."""
    return [DM(), IPS(), SNIPS(), DR(), SNDR(), SwitchDR(), DRos()]


def estimate_all(
    data: LoggedFeedback,
    action_probs: Any,
    estimators: list[Estimator] | None = None,
    *,
    interval: str = "bootstrap",
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int | np.random.SeedSequence = 0,
    reward_model: RidgeRewardModel | None = None,
) -> list[Estimate]:
    """Run several estimators on the same data and policy, fitting the reward model once.

    All estimators use the same bootstrap resamples, so differences between them are not resampling
    noise; ``Estimator.estimate`` is this function with one estimator.
    """
    if interval not in ("bootstrap", "clt"):
        raise ValueError(f"interval must be 'bootstrap' or 'clt', got {interval!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    estimators = default_estimators() if estimators is None else estimators
    model_rng, boot_rng = _rngs(seed)
    x = _prepare(
        data,
        action_probs,
        need_model=any(e.uses_model for e in estimators),
        reward_model=reward_model or RidgeRewardModel(),
        rng=model_rng,
    )
    resampler = Resampler(data.clusters, boot_rng, n_boot)
    return [e._estimate(x, interval, confidence, resampler) for e in estimators]
