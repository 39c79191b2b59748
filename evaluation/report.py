"""The evaluation report: every estimator for every candidate policy, with intervals, diagnostics,
ground truth when the logs are simulated, and plots; written as HTML (self-contained), JSON and Markdown.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest import __version__
from nextbest.errors import NextbestError
from nextbest.evaluation.estimators import Estimate, Estimator, estimate_all
from nextbest.evaluation.ground_truth import bandit_ground_truth, sequential_ground_truth
from nextbest.evaluation.sequential import estimate_sequential
from nextbest.logs import LoggedFeedback
from nextbest.policy import Policy

__all__ = ["EvaluationReport", "PolicyEvaluation", "evaluate", "report_files", "summary_rows", "write_report"]

#: Customer segments of the action-mix plots: RFM-style rules on observable features (orders so far,
#: days since the last one), each row ``(label, min orders, max orders, min days, max days)``.
SEGMENTS = (
    ("prospects (no order yet)", 0, 0, 0, np.inf),
    ("repeat buyers, ordered <= 60 d ago", 2, np.inf, 0, 60),
    ("one-time buyers, ordered <= 60 d ago", 1, 1, 0, 60),
    ("lapsing (61-120 d)", 1, np.inf, 61, 120),
    ("lapsed (121+ d)", 1, np.inf, 121, np.inf),
)


def _relative_error(estimate: Estimate, truth: float | None) -> float | None:
    if truth is None or truth == 0:
        return None
    return abs(estimate.value - truth) / abs(truth)


@dataclass(frozen=True)
class PolicyEvaluation:
    """One candidate policy's estimates, its ground truth (or None) and its action mix by segment.

    ``estimates``/``truth`` are per decision (bandit estimators); ``episode_estimates``/``episode_truth``
    per customer over the logged horizon (sequential estimators), when asked for.
    """

    policy: str
    estimates: list[Estimate]
    truth: float | None
    action_mix: dict[str, dict[str, float]]
    weight_quantiles: dict[str, float]
    weights: np.ndarray = field(repr=False, compare=False)  # (n,) importance weights, for the plot
    slot_mix: dict[str, dict[str, float]] = field(default_factory=dict)
    episode_estimates: list[Estimate] = field(default_factory=list)
    episode_truth: float | None = None

    def relative_error(self, estimate: Estimate) -> float | None:
        truth = self.episode_truth if estimate in self.episode_estimates else self.truth
        return _relative_error(estimate, truth)


@dataclass(frozen=True)
class EvaluationReport:
    """What was evaluated (data, logger, seed) and the answer for each policy."""

    logs: str
    rows: int
    customers: int
    logger: str
    seed: int
    interval: str
    confidence: float
    n_boot: int
    nextbest_version: str
    logger_mix: dict[str, dict[str, float]]
    policies: list[PolicyEvaluation]
    logger_slot_mix: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per policy, its true value per customer over the whole horizon on fresh customers (simulated
    #: scenarios): ``value``, ``lower``, ``upper``, ``sends_per_customer``, ``unsub_rate`` (per email),
    #: ``unsubscribed_share``, ``discount_share``
    lifetime: dict[str, dict[str, float]] = field(default_factory=dict)
    lifetime_note: str = ""
    #: per trained RL policy, its ground-truth learning curve: ``steps``, ``value``, ``lower``, ``upper``
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    choice: str = ""  # which policy was chosen and why

    def to_dict(self) -> dict[str, Any]:
        """Plain data: every number of the HTML report."""
        out = {k: v for k, v in vars(self).items() if k != "policies"}
        out["policies"] = []

        def rows(estimates: list[Estimate], truth: float | None) -> list[dict[str, Any]]:
            result = []
            for est in estimates:
                row = asdict(est)
                row["relative_error"] = _relative_error(est, truth)
                row["covers_truth"] = None if truth is None else est.covers(truth)
                result.append(row)
            return result

        for pol in self.policies:
            out["policies"].append(
                {
                    "policy": pol.policy,
                    "truth": pol.truth,
                    "estimates": rows(pol.estimates, pol.truth),
                    "episode_truth": pol.episode_truth,
                    "episode_estimates": rows(pol.episode_estimates, pol.episode_truth),
                    "action_mix": pol.action_mix,
                    "slot_mix": pol.slot_mix,
                    "weight_quantiles": pol.weight_quantiles,
                }
            )
        return out


def _groups(logs: LoggedFeedback, by: str) -> tuple[list[str], np.ndarray]:
    """Action groups for the mix plots: by ``"offer"`` ('no_email' and each action's offer) or by
    ``"slot"`` ('no email' and each action's send slot), from the ``offer@slot`` action names."""
    names = logs.action_names or tuple(str(a) for a in range(logs.n_actions))
    if by == "offer":
        group_of = [n.split("@")[0] for n in names]
    else:
        group_of = [n.split("@")[1] if "@" in n else "no email" for n in names]
    labels = list(dict.fromkeys(group_of))
    return labels, np.array([labels.index(g) for g in group_of])


def _segments(logs: LoggedFeedback) -> list[tuple[str, np.ndarray]]:
    if not {"recency_days", "frequency"} <= set(logs.frame.columns):
        return [("all customers", np.ones(len(logs), dtype=bool))]
    recency = logs.frame["recency_days"].to_numpy()
    orders = logs.frame["frequency"].to_numpy()
    return [
        (label, (orders >= f_lo) & (orders <= f_hi) & (recency >= r_lo) & (recency <= r_hi))
        for label, f_lo, f_hi, r_lo, r_hi in SEGMENTS
    ]


def _mix(logs: LoggedFeedback, probs: np.ndarray, by: str = "offer") -> dict[str, dict[str, float]]:
    labels, group = _groups(logs, by)
    by_group = np.zeros((probs.shape[0], len(labels)))
    for g in range(len(labels)):
        by_group[:, g] = probs[:, group == g].sum(axis=1)
    mix = {}
    for segment, rows in _segments(logs):
        if rows.any():
            mix[segment] = {label: float(v) for label, v in zip(labels, by_group[rows].mean(axis=0), strict=True)}
    return mix


def evaluate(
    logs: LoggedFeedback,
    policies: Sequence[Policy],
    *,
    ground_truth: bool = False,
    episodes: bool = False,
    estimators: list[Estimator] | None = None,
    interval: str = "bootstrap",
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> EvaluationReport:
    """Estimate every policy's value on ``logs`` with every estimator.

    Args:
        logs: validated logged feedback.
        policies: candidates; each sees the logged contexts and the guardrail mask of each decision.
        ground_truth: also compute the exact value by re-simulation (simulated logs only).
        episodes: also estimate the value per customer over the logged horizon with the sequential
            estimators (sequential logs only; intervals are always bootstrap over customers).
        estimators, interval, confidence, n_boot, seed: see :func:`estimate_all`.
    """
    if not policies:
        raise NextbestError("no policy to evaluate")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise NextbestError(f"policy names must differ, got {names}")
    truth = bandit_ground_truth(logs, policies) if ground_truth else {}
    if episodes and not logs.is_sequential:
        raise NextbestError(f"{logs.source}: per-customer (episode) values need episode_id and step columns")
    episode_truth = sequential_ground_truth(logs, policies) if ground_truth and episodes else {}
    logging = logs.action_probs
    if logging is None:
        logging = np.zeros((len(logs), logs.n_actions))
        logging[np.arange(len(logs)), logs.actions] = 1.0
    results = []
    for policy in policies:
        probs = policy.action_probs(logs.contexts, logs.allowed)
        estimates = estimate_all(
            logs, probs, estimators, interval=interval, confidence=confidence, n_boot=n_boot, seed=seed
        )
        weights = probs[np.arange(len(logs)), logs.actions] / logs.propensities
        q = np.quantile(weights, [0.5, 0.9, 0.99, 1.0])
        per_episode = (
            estimate_sequential(logs, probs, confidence=confidence, n_boot=n_boot, seed=seed) if episodes else []
        )
        episode_value = episode_truth.get(policy.name)
        results.append(
            PolicyEvaluation(
                policy=policy.name,
                estimates=estimates,
                truth=truth.get(policy.name),
                action_mix=_mix(logs, probs),
                slot_mix=_mix(logs, probs, "slot"),
                weight_quantiles={"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2]), "max": float(q[3])},
                weights=weights,
                episode_estimates=per_episode,
                episode_truth=None if episode_value is None else episode_value.mean,
            )
        )
    return EvaluationReport(
        logs=logs.source,
        rows=len(logs),
        customers=int(logs.clusters.max()) + 1,
        logger=str(logs.metadata.get("policy", "unknown")),
        seed=seed,
        interval=interval,
        confidence=confidence,
        n_boot=n_boot,
        nextbest_version=__version__,
        logger_mix=_mix(logs, logging),
        policies=results,
        logger_slot_mix=_mix(logs, logging, "slot"),
    )


# ----------------------------------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(report: EvaluationReport) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    n = len(report.policies)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 0.45 * len(report.policies[0].estimates) * n + 0.8), squeeze=False)
    for ax, pol in zip(axes[:, 0], report.policies, strict=True):
        labels = [e.estimator for e in pol.estimates]
        y = np.arange(len(labels))
        values = np.array([e.value for e in pol.estimates])
        err = np.array([[e.value - e.lower for e in pol.estimates], [e.upper - e.value for e in pol.estimates]])
        ax.errorbar(values, y, xerr=err, fmt="o", color="tab:blue", capsize=3, label="estimate, 95% interval")
        if pol.truth is not None:
            ax.axvline(pol.truth, color="tab:red", linestyle="--", label="ground truth")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_title(f"{pol.policy}: value per decision")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("expected reward per decision (currency)")
    plots["estimates"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    positive = np.concatenate([p.weights[p.weights > 0] for p in report.policies])
    if positive.size:
        lo, hi = positive.min(), positive.max()
        bins = np.logspace(np.log10(lo) - 0.05, np.log10(hi) + 0.05, 40)
        for pol in report.policies:
            w = pol.weights
            share = np.full(w.size, 1.0 / w.size)
            label = f"{pol.policy} ({(w == 0).mean():.0%} of weights are 0)"
            ax.hist(w[w > 0], bins=bins, weights=share[w > 0], histtype="step", linewidth=1.5, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("importance weight pi(a|x) / p(a|x) of the logged action")
    ax.set_ylabel("share of decisions")
    ax.legend(fontsize=8)
    plots["weights"] = _png(fig)

    kinds = [("offer", report.logger_mix, [p.action_mix for p in report.policies])]
    if report.logger_slot_mix:
        kinds.append(("send slot", report.logger_slot_mix, [p.slot_mix for p in report.policies]))
    names = ["logger: " + report.logger] + [p.policy for p in report.policies]
    segments = list(report.logger_mix)
    fig, axes = plt.subplots(
        len(segments),
        len(kinds),
        figsize=(5.2 * len(kinds), (0.28 * len(names) + 0.7) * len(segments) + 0.6),
        squeeze=False,
        sharex=True,
    )
    colors = plt.get_cmap("tab10")
    y = np.arange(len(names))
    for c, (kind, logger_mix, mixes) in enumerate(kinds):
        columns = [logger_mix, *mixes]
        groups = list(next(iter(logger_mix.values())))
        for r, segment in enumerate(segments):
            ax = axes[r, c]
            left = np.zeros(len(columns))
            for g, group in enumerate(groups):
                shares = np.array([mix.get(segment, {}).get(group, 0.0) for mix in columns])
                ax.barh(y, shares, left=left, color=colors(g), label=group)
                left += shares
            ax.set_yticks(y, names if c == 0 else [""] * len(names), fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{segment}: by {kind}", fontsize=9)
        axes[-1, c].set_xlabel("share of decisions")
        axes[0, c].legend(fontsize=7, ncol=4, loc="lower left", bbox_to_anchor=(0, 1.25))
    fig.tight_layout()
    plots["action_mix"] = _png(fig)

    if report.lifetime:
        fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(report.lifetime) + 1.2))
        names = list(report.lifetime)
        y = np.arange(len(names))
        rows = [report.lifetime[n] for n in names]
        values = np.array([r["value"] for r in rows])
        err = np.array([[r["value"] - r["lower"] for r in rows], [r["upper"] - r["value"] for r in rows]])
        ax.errorbar(values, y, xerr=err, fmt="o", color="tab:red", capsize=3)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlabel("true value per customer over the horizon (simulator, 95% interval)")
        ax.grid(axis="x", alpha=0.3)
        plots["lifetime"] = _png(fig)

    if report.curves:
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        for name, curve in report.curves.items():
            steps = np.array([c["steps"] for c in curve])
            ax.plot(steps, [c["value"] for c in curve], marker="o", label=name)
            ax.fill_between(steps, [c["lower"] for c in curve], [c["upper"] for c in curve], alpha=0.2)
        for name, style in (("bau", "--"), ("random", ":")):
            if name in report.lifetime:
                value = report.lifetime[name]["value"]
                ax.axhline(value, linestyle=style, color="grey", linewidth=1, label=f"{name} ({value:.3f})")
        ax.set_xlabel("customer-days of training")
        ax.set_ylabel("true value per customer")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        plots["curves"] = _png(fig)
    return plots


# ----------------------------------------------------------------------------------------- files
def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _rows(estimates: list[Estimate], truth: float | None) -> list[list[str]]:
    rows = []
    for e in estimates:
        rel = _relative_error(e, truth)
        rows.append(
            [
                e.estimator,
                _fmt(e.value),
                f"[{_fmt(e.lower)}, {_fmt(e.upper)}]",
                _fmt(e.std_error),
                "—" if rel is None else f"{rel:.1%}",
                "—" if truth is None else ("yes" if e.covers(truth) else "no"),
                f"{e.diagnostics.ess:,.0f}",
            ]
        )
    return rows


def _tables(pol: PolicyEvaluation) -> list[tuple[str, list[list[str]], tuple[str, ...]]]:
    """(caption, rows, warnings) of each table of one policy: per decision, then per customer."""
    tables = [
        (
            "value per decision" + ("" if pol.truth is None else f" (ground truth {pol.truth:.4f})"),
            _rows(pol.estimates, pol.truth),
            pol.estimates[0].diagnostics.warnings if pol.estimates else (),
        )
    ]
    if pol.episode_estimates:
        truth = "" if pol.episode_truth is None else f" (ground truth {pol.episode_truth:.4f}, Monte Carlo)"
        tables.append(
            (
                "value per customer over the logged days" + truth,
                _rows(pol.episode_estimates, pol.episode_truth),
                pol.episode_estimates[0].diagnostics.warnings,
            )
        )
    return tables


_HEAD = ["estimator", "value", "95% interval", "s.e.", "rel. error", "covers truth", "ESS"]

SUMMARY_HEAD = (
    "policy",
    "DR per decision [95%]",
    "true per decision",
    "rel. error",
    "true value per customer [95%]",
    "emails per customer",
    "unsubscribes per email",
    "discount share",
)


def summary_rows(report: EvaluationReport) -> list[list[str]]:
    """One row per policy with a lifetime value: the DR estimate from the logs beside the truth, then
    what the policy earns and does over the whole horizon (see :data:`SUMMARY_HEAD`)."""
    rows = []
    for pol in report.policies:
        life = report.lifetime.get(pol.policy)
        if life is None:
            continue
        dr = next((e for e in pol.estimates if e.estimator == "dr"), None)
        rel = None if dr is None else pol.relative_error(dr)
        rows.append(
            [
                pol.policy,
                "—" if dr is None else f"{dr.value:.4f} [{dr.lower:.4f}, {dr.upper:.4f}]",
                _fmt(pol.truth),
                "—" if rel is None else f"{rel:.1%}",
                f"{life['value']:.3f} [{life['lower']:.3f}, {life['upper']:.3f}]",
                f"{life['sends_per_customer']:.1f}",
                f"{life['unsub_rate']:.3%}",
                f"{life['discount_share']:.0%}",
            ]
        )
    return rows


def _md_table(head: Sequence[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _html_table(head: Sequence[str], rows: list[list[str]]) -> str:
    esc = html.escape
    lines = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join([*lines, "</table>"])


def _markdown(report: EvaluationReport) -> str:
    lines = [
        "# nextbest evaluation report",
        "",
        f"- logs: `{report.logs}` ({report.rows:,} decisions, {report.customers:,} customers)",
        f"- logger: `{report.logger}`; seed {report.seed}",
        f"- intervals: {report.confidence:.0%} {report.interval} over customers ({report.n_boot} resamples)",
        f"- nextbest {report.nextbest_version}; values are expected reward per decision (currency)",
        "",
    ]
    if report.lifetime:
        lines += ["## Summary", "", report.lifetime_note, ""]
        lines += [*_md_table(SUMMARY_HEAD, summary_rows(report)), ""]
        lines += [report.choice, ""] if report.choice else []
    for pol in report.policies:
        lines += [f"## {pol.policy}", ""]
        for caption, rows, warnings in _tables(pol):
            lines += [f"{caption}:", "", *_md_table(_HEAD, rows)]
            lines += [""] + [f"> warning: {w}" for w in warnings] + ([""] if warnings else [])
        q = pol.weight_quantiles
        lines += [
            f"Importance weights: median {q['p50']:.2f}, p90 {q['p90']:.2f}, p99 {q['p99']:.2f}, max {q['max']:.2f}.",
            "",
        ]
    lines += ["Plots (estimates, weight distribution, action mix by segment) are in report.html.", ""]
    return "\n".join(lines)


_CSS = " ".join(
    [
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}",
        "table{border-collapse:collapse;margin:.5rem 0}",
        "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}",
        "th{background:#f3f3f3} td:first-child{text-align:left}",
        ".warn{background:#fff4e5;border-left:4px solid #f90;padding:.4rem .8rem} img{max-width:100%}",
    ]
)


def _html(report: EvaluationReport, plots: dict[str, str]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>nextbest evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>nextbest evaluation report</h1>",
        f"<p>Logs <code>{esc(report.logs)}</code>: {report.rows:,} decisions of {report.customers:,} customers, "
        f"logged by <code>{esc(report.logger)}</code>. Values are expected reward per decision (currency); "
        f"intervals are {report.confidence:.0%} {esc(report.interval)} over customers ({report.n_boot} resamples), "
        f"seed {report.seed}. nextbest {esc(report.nextbest_version)}.</p>",
    ]
    if report.lifetime:
        parts += [
            "<h2>Summary</h2>",
            f"<p>{esc(report.lifetime_note)}</p>",
            _html_table(SUMMARY_HEAD, summary_rows(report)),
        ]
        if report.choice:
            parts.append(f"<p><strong>{esc(report.choice)}</strong></p>")
        parts.append(f"<img alt='true value per customer' src='data:image/png;base64,{plots['lifetime']}'>")
    if report.curves:
        parts += [
            "<h2>Learning curve</h2>",
            "<p>True value per customer of the policy being trained, measured in the simulator during training.</p>",
            f"<img alt='learning curve' src='data:image/png;base64,{plots['curves']}'>",
        ]
    for pol in report.policies:
        parts.append(f"<h2>{esc(pol.policy)}</h2>")
        for caption, rows, warnings in _tables(pol):
            parts += [f"<p>{esc(caption)}</p>", _html_table(_HEAD, rows)]
            parts += [f"<p class='warn'>{esc(w)}</p>" for w in warnings]
    parts += [
        "<h2>Estimates</h2>",
        f"<img alt='estimates by estimator' src='data:image/png;base64,{plots['estimates']}'>",
        "<h2>Importance weights</h2>",
        f"<img alt='importance weight distribution' src='data:image/png;base64,{plots['weights']}'>",
        "<h2>What each policy does, by customer segment</h2>",
        "<p>Share of decisions by offer and by send slot, in RFM-style segments of the logged customers.</p>",
        f"<img alt='action mix' src='data:image/png;base64,{plots['action_mix']}'>",
        "</body></html>",
    ]
    return "\n".join(parts)


def report_files(report: EvaluationReport) -> dict[str, str]:
    """The text of ``report.json``, ``report.md`` and ``report.html`` (plots embedded)."""
    return {
        "report.json": json.dumps(report.to_dict(), indent=2),
        "report.md": _markdown(report),
        "report.html": _html(report, _plots(report)),
    }


def write_report(report: EvaluationReport, directory: str | os.PathLike[str]) -> Path:
    """Write ``report.html``, ``report.json`` and ``report.md`` into ``directory`` (created if missing;
    its parent must exist). Files are written to a temp folder first and moved in only when all three
    are complete."""
    directory = Path(directory)
    if not directory.parent.is_dir():
        raise NextbestError(f"{directory}: parent directory {str(directory.parent)!r} does not exist")
    contents = report_files(report)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, text in contents.items():
            (staging / name).write_text(text, encoding="utf-8")
        directory.mkdir(exist_ok=True)
        for name in contents:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
