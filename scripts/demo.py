"""``nextbest demo``: the whole loop on the built-in scenario, from logs to a chosen policy and a report.

1. simulate 90 days of BAU campaigns (with 10% uniform exploration, so that the logs say something about
   other actions) for a population;
2. learn a bandit from the logs (DR policy learning), 3. an offline RL policy (CQL) from the logs, and
4. an online RL policy (MaskablePPO) in the simulator, with its ground-truth learning curve;
5. evaluate them, BAU and random with every OPE estimator on the logs, beside the simulator's exact
   per-decision truth and each policy's true value per customer over 90 days on fresh customers;
6. choose the learned policy with the best lower 95% bound of that value (measured on a second group of
   fresh customers, so that the choice does not flatter the reported figure) and export it;
7. score a sample send list with the runtime;
8. write ``report.html`` (plus ``report.json``, ``report.md``) next to the logs, policy and decisions.

Everything is built in a temporary folder beside ``out`` and moved in at the end: an interrupted or
failed run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError

__all__ = ["SIZES", "DemoResult", "DemoSizes", "run_demo"]


@dataclass(frozen=True)
class DemoSizes:
    """How big each stage is."""

    customers: int  # in the logs
    eval_customers: int  # per true-value measurement
    cql_steps: int
    ppo_steps: int
    curve_points: int  # ground-truth evaluations during PPO training
    send_list: int
    n_boot: int
    min_free_mb: int  # disk needed for the outputs, checked before starting


#: ``full`` runs in ~5 minutes on 2 cores (PPO ~170 s, CQL ~70 s), ``quick`` in ~30 s.
SIZES = {
    "full": DemoSizes(20_000, 20_000, 30_000, 6_000_000, 6, 1_000, 200, 200),
    "quick": DemoSizes(2_000, 2_000, 2_000, 300_000, 3, 200, 50, 50),
}

UNSUBSCRIBE_PENALTY = 60.0  # the RL agents' training aid (see nextbest.agents.rl.train_online)
LEARNED = ("dr-bandit", "cql", "maskable-ppo")


@dataclass(frozen=True)
class DemoResult:
    out: Path
    chosen: str
    summary: list[list[str]]  # rows of nextbest.evaluation.report.SUMMARY_HEAD
    seconds: dict[str, float]


def run_demo(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    quick: bool = False,
    force: bool = False,
    progress: bool = False,
    say: Callable[[str], None] = print,
    sizes: DemoSizes | None = None,
) -> DemoResult:
    """Run the demo into directory ``out`` (see the module docstring); ``sizes`` overrides ``quick``.

    Raises:
        NextbestError: ``out`` exists and is not empty (without ``force``), its parent does not exist,
            or the disk is too full; nothing is written.
    """
    out = Path(out)
    sizes = sizes or SIZES["quick" if quick else "full"]
    if not out.parent.is_dir():
        raise NextbestError(f"{out}: parent directory {str(out.parent)!r} does not exist")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise NextbestError(f"{out}: exists and is not empty (use --force to replace it)")
    free_mb = shutil.disk_usage(out.parent).free / 2**20
    if free_mb < sizes.min_free_mb:
        raise NextbestError(f"{out.parent}: {free_mb:.0f} MB free; the demo needs about {sizes.min_free_mb} MB")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        chosen, summary, seconds = _run(staging, sizes, seed, progress, say)
        _move_in(staging, out)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NextbestError(f"{out.parent}: no space left on the device; nothing was written to {out}") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DemoResult(out, chosen, summary, seconds)


def _move_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``staging`` folder (a rename; the old folder goes last)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()


class _Stages:
    """Prints ``[i/n] what ...`` before each stage and its wall time after it."""

    def __init__(self, total: int, say: Callable[[str], None]) -> None:
        self.total, self.say, self.done, self.seconds = total, say, 0, {}

    def __call__(self, key: str, what: str) -> _Stages:
        self.key = key
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {what}")
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.seconds[self.key] = time.perf_counter() - self.start
        if kind is None:
            self.say(f"      ({self.seconds[self.key]:.0f} s)")


def _run(
    folder: Path, sizes: DemoSizes, seed: int, progress: bool, say: Callable[[str], None]
) -> tuple[str, list[list[str]], dict[str, float]]:
    from nextbest.agents.linear import PolicyLearner
    from nextbest.agents.offline import DiscreteCQL
    from nextbest.agents.rl import train_online
    from nextbest.evaluation.report import evaluate, report_files, summary_rows
    from nextbest.logs import save_table, validate_logs
    from nextbest.policies import Runtime, load
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel, make_policy, policy_value, simulate

    model = CustomerModel(Scenario.load("retail"))
    days = model.scenario.horizon_days
    features, names = model.features, model.catalog.names
    stage = _Stages(8, say)

    with stage("simulate", f"simulating {days} days of BAU campaigns for {sizes.customers:,} customers"):
        logger = make_policy("bau-epsilon", features, model.catalog)
        frame = simulate(model, logger, sizes.customers, days, seed=seed, progress=progress)
        save_table(frame, folder / "logs.parquet", frame.attrs["nextbest"])
        # learners see one half of the customers, OPE the other: evaluated on its own training data, a
        # learned policy looks better than it is (it picked the actions where the noise was kind)
        held_out = np.random.default_rng(seed).random(sizes.customers) < 0.5
        rows = held_out[frame["customer_id"].to_numpy()]
        logs = validate_logs(
            frame[~rows].reset_index(drop=True), "logs.parquet (training half)", frame.attrs["nextbest"]
        )
        test = validate_logs(
            frame[rows].reset_index(drop=True), "logs.parquet (evaluation half)", frame.attrs["nextbest"]
        )
        say(
            f"      {len(frame):,} logged decisions (BAU, 10% of them a uniformly random allowed action): "
            f"{held_out.sum():,} customers held out for evaluation"
        )

    with stage("bandit", "learning a contextual bandit from the logs (DR policy learning)"):
        bandit = PolicyLearner(features, names, weighting="dr", name="dr-bandit").fit(logs, seed, progress)

    with stage("cql", f"learning an offline RL policy from the logs (discrete CQL, {sizes.cql_steps:,} steps)"):
        cql = DiscreteCQL(
            features, names, steps=sizes.cql_steps, unsubscribe_penalty=UNSUBSCRIBE_PENALTY, seed=seed, name="cql"
        ).fit(logs, progress)

    with stage("ppo", f"training MaskablePPO in the simulator ({sizes.ppo_steps:,} customer-days)"):
        trained = train_online(
            "maskable-ppo",
            sizes.ppo_steps,
            model.scenario,
            seed,
            eval_every=max(sizes.ppo_steps // sizes.curve_points, 1),
            eval_customers=min(sizes.eval_customers, 2_000),
            unsubscribe_penalty=UNSUBSCRIBE_PENALTY,
            progress=progress,
            report=lambda line: say(f"      {line}"),
        )
        ppo = trained.policy()
        ppo.name = "maskable-ppo"

    learned = {"dr-bandit": bandit, "cql": cql, "maskable-ppo": ppo}
    policies = [make_policy("bau", features, model.catalog), make_policy("random", features, model.catalog)]
    policies += list(learned.values())
    with stage("evaluate", "evaluating every policy: OPE on the logs, ground truth in the simulator"):
        report = evaluate(test, policies, ground_truth=True, n_boot=sizes.n_boot, seed=seed)
        lifetime, choosing = {}, {}
        for policy in policies:
            value = policy_value(policy, model, sizes.eval_customers, seed=seed + 20_000)
            lifetime[policy.name] = _lifetime(value)
            if policy.name in learned:
                choosing[policy.name] = policy_value(policy, model, sizes.eval_customers, seed=seed + 30_000)

    chosen = max(choosing, key=lambda name: choosing[name].lower)
    with stage("export", f"exporting the chosen policy ({chosen}) to policy.zip"):
        policy_path = folder / "policy.zip"
        if chosen == "maskable-ppo":
            trained.export(policy_path, temperature=1.0)
        else:
            learned[chosen].export(policy_path)

    with stage("decide", f"scoring a sample send list of {sizes.send_list:,} customers with the runtime"):
        send_list = _send_list(logs.frame, features, sizes.send_list, np.random.default_rng(seed))
        save_table(send_list, folder / "send_list.csv")
        decisions = Runtime(load(policy_path)).decide_batch(send_list, "demo-campaign")
        save_table(decisions, folder / "decisions.csv")
        emailed = decisions["action"].to_numpy() > 0
        offers = decisions.loc[emailed, "offer"].astype(str).value_counts(normalize=True)
        mix = ", ".join(f"{offer} {share:.0%}" for offer, share in offers.items())
        say(f"      emails {emailed.mean():.0%} of the list today ({mix or 'none'})")

    with stage("report", "writing the report"):
        bau = lifetime["bau"]
        pick = choosing[chosen]
        report = dataclasses.replace(
            report,
            lifetime=lifetime,
            lifetime_note=(
                f"DR and the per-decision truth: expected reward of one decision at the logged contexts. "
                f"True value per customer: return over {days} days on {sizes.eval_customers:,} fresh customers "
                f"(simulator, exact expected rewards, 95% interval), what a policy earns over the customer's "
                f"lifetime in the campaign. Over {days} days the importance weights of a policy far from the "
                f"logger explode, so the logs alone cannot certify a lifetime value: it comes from the simulator."
            ),
            curves={"maskable-ppo": [_point(steps, value) for steps, value in trained.history]},
            choice=(
                f"Chosen: {chosen}, the learned policy with the highest lower 95% bound of the true value per "
                f"customer ({pick.lower:.3f}, measured on another {sizes.eval_customers:,} fresh customers); "
                f"on the customers above it earns {lifetime[chosen]['value']:.3f} against BAU's {bau['value']:.3f} "
                f"({lifetime[chosen]['value'] / bau['value'] - 1:+.1%})."
            ),
        )
        for name, text in report_files(report).items():
            (folder / name).write_text(text, encoding="utf-8")
    return chosen, summary_rows(report), stage.seconds


def _lifetime(value: Any) -> dict[str, float]:
    return {
        "value": value.mean,
        "lower": value.lower,
        "upper": value.upper,
        "sends_per_customer": value.sends_per_customer,
        "unsub_rate": value.unsubscribes_per_email,
        "unsubscribed_share": value.unsubscribe_rate,
        "discount_share": value.discount_share,
    }


def _point(steps: int, value: Any) -> dict[str, float]:
    return {"steps": steps, "value": value.mean, "lower": value.lower, "upper": value.upper}


def _send_list(frame: pd.DataFrame, features: tuple[str, ...], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Customers as they stand after the logged days (each one's last state), a random sample of ``n``:
    what a CRM system would hand the runtime for the next send."""
    last = frame.sort_values("step").groupby("customer_id", sort=False).tail(1)
    next_state = last[[f"next_{f}" for f in features]].set_axis(list(features), axis=1)
    sample = rng.choice(len(last), size=min(n, len(last)), replace=False)
    customers = pd.concat([last[["customer_id"]], next_state], axis=1).iloc[np.sort(sample)]
    return customers.assign(customer_id=[f"C{c:06d}" for c in customers["customer_id"]]).reset_index(drop=True)
