"""The ``nextbest`` command line: thin argument parsing over the public API.

Errors caused by input (bad scenario, bad numbers, unknown policy, missing output directory, invalid
logs) print one line ``nextbest: error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from nextbest.errors import NextbestError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _at_least(minimum: int) -> Any:
    """argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive = _at_least(1)
_seed = _at_least(0)


def _out_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a .parquet or .csv file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"output directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file path")
    return path


def _add_mapping_flags(parser: argparse.ArgumentParser) -> None:
    ext = parser.add_argument_group("logs from outside nextbest (see README: 'Your own logs')")
    ext.add_argument("--map", type=Path, default=None, help="YAML file mapping roles to the export's columns")
    ext.add_argument("--id-col", default=None, help="customer id column")
    ext.add_argument("--action-col", default=None, help="action column")
    ext.add_argument("--reward-col", default=None, help="reward column")
    ext.add_argument("--propensity-col", default=None, help="propensity column")
    ext.add_argument("--propensity", type=float, default=None, help="one propensity for every row, e.g. 0.25")
    ext.add_argument("--time-col", default=None, help="decision time column")
    ext.add_argument("--context-cols", default=None, help="comma-separated context columns (default: all others)")
    ext.add_argument(
        "--trajectories",
        action="store_true",
        default=None,
        help="offline RL: read each customer's rows in time order as an episode (next state = next row)",
    )
    ext.add_argument("--episode-col", default=None, help="with --trajectories: episode column (default: customer)")
    ext.add_argument("--terminated-col", default=None, help="true/false column: the customer left after this row")
    ext.add_argument("--unsubscribed-col", default=None, help="true/false column: the customer unsubscribed")


BANDIT_ALGOS = ("linucb", "lints", "egreedy", "ts", "ucb1", "dm", "ips-policy", "dr-policy")
ONLINE_RL_ALGOS = ("ppo", "maskable-ppo", "a2c", "dqn")
OFFLINE_RL_ALGOS = ("bc", "cql", "bcq", "fqi")


def _build_parser() -> argparse.ArgumentParser:
    from nextbest.simulator.baselines import BUILTIN_POLICIES

    parser = _Parser(prog="nextbest", description="Which email to send to which customer, and when.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    policies = ", ".join(BUILTIN_POLICIES)

    demo = sub.add_parser(
        "demo",
        help="the whole loop on the built-in scenario: simulate BAU, train a bandit, CQL and PPO, evaluate, "
        "choose, export, decide; writes DIR/report.html",
    )
    demo.add_argument("--out", type=Path, default=Path("nextbest-demo"), help="output directory (default: %(default)s)")
    demo.add_argument("--seed", type=_seed, default=0)
    demo.add_argument("--quick", action="store_true", help="small sizes: ~30 s instead of ~5 minutes")
    demo.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")

    cal = sub.add_parser("calibration", help="print the scenario's email KPIs and checks against published figures")
    cal.add_argument("--scenario", default="retail", help="built-in scenario name or YAML path")
    cal.add_argument("--customers", type=_positive, default=20_000)
    cal.add_argument("--seed", type=_seed, default=0)

    sim = sub.add_parser("simulate", help="simulate a campaign and write logged feedback (one row per decision)")
    sim.add_argument("--scenario", default="retail", help="built-in scenario name or YAML path")
    sim.add_argument("--customers", type=_positive, required=True)
    sim.add_argument("--days", type=_positive, default=None, help="default: the scenario's horizon")
    sim.add_argument("--policy", default="bau", help=f"built-in policy: {policies}")
    sim.add_argument("--seed", type=_seed, default=0)
    sim.add_argument("--out", type=_out_path, required=True, help=".parquet, or .csv")
    sim.add_argument(
        "--events",
        type=_out_path,
        default=None,
        help="simulate with the SimPy campaign runner (timed sends, rate-limited queue); write its event log here",
    )
    sim.add_argument(
        "--send-rate", type=_positive, default=None, help="ESP sends per hour for --events (default: unlimited)"
    )
    sim.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("evaluate", help="estimate candidate policies' value from logged data; write a report")
    ev.add_argument("--logs", required=True, type=Path, help="logged feedback (.parquet or .csv)")
    ev.add_argument(
        "--policy", action="append", required=True, help=f"policy file (.zip) or built-in ({policies}); repeatable"
    )
    ev.add_argument("--ground-truth", action="store_true", help="exact values by re-simulation (simulated logs)")
    ev.add_argument("--episodes", action="store_true", help="also value per customer over the logged days (PDIS, ...)")
    ev.add_argument("--report", required=True, type=Path, help="directory for report.html, report.json, report.md")
    ev.add_argument("--scenario", default="retail", help="scenario of the action catalog if the logs do not say")
    _add_mapping_flags(ev)
    ev.add_argument("--interval", choices=["bootstrap", "clt"], default="bootstrap")
    ev.add_argument("--n-boot", type=_at_least(2), default=200, help="bootstrap resamples")
    ev.add_argument("--seed", type=_seed, default=0)

    tr = sub.add_parser("train", help="learn a next-best-action policy from logged data and export it")
    tr.add_argument("--algo", required=True, choices=[*BANDIT_ALGOS, *ONLINE_RL_ALGOS, *OFFLINE_RL_ALGOS])
    tr.add_argument(
        "--logs", type=Path, default=None, help="logged feedback (.parquet or .csv); with --online, the warm start"
    )
    tr.add_argument(
        "--online", action="store_true", help="learn in the simulator (bandits: EmailBandit-v0, RL: EmailPopulation-v0)"
    )
    tr.add_argument("--scenario", default="retail", help="--online: built-in scenario name or YAML path")
    tr.add_argument(
        "--steps",
        type=_positive,
        default=None,
        help="bandits --online: rounds (100,000); RL --online: customer-days (10,000,000); "
        "offline RL: gradient steps (20,000)",
    )
    tr.add_argument(
        "--unsubscribe-penalty",
        type=float,
        default=None,
        help="RL: currency charged per unsubscribe while training (a subscriber's worth after the horizon; "
        "default 60, offline only when the logs have an 'unsubscribed' column)",
    )
    tr.add_argument("--out", required=True, type=Path, help="policy artifact to write (.zip)")
    tr.add_argument("--temperature", type=float, default=None, help="softmax temperature of the exported policy")
    tr.add_argument("--epsilon", type=float, default=0.05, help="exploration mixed into the exported policy")
    tr.add_argument("--holdout", type=float, default=0.2, help="share of customers kept out for the OPE check")
    tr.add_argument("--seed", type=_seed, default=0)
    _add_mapping_flags(tr)

    dec = sub.add_parser("decide", help="decide tonight's send list with a policy artifact")
    dec.add_argument("--policy", required=True, type=Path, help="policy artifact (.zip)")
    dec.add_argument("--customers", required=True, type=Path, help="send list (.csv or .parquet), one row per customer")
    dec.add_argument("--campaign", required=True, help="campaign id (with the customer id, it seeds exploration)")
    dec.add_argument("--out", required=True, type=_out_path, help="decisions (.csv or .parquet)")
    dec.add_argument("--id-col", default="customer_id", help="customer id column of the send list")
    dec.add_argument("--log", type=Path, default=None, help="also append to this decision log (.jsonl or a directory)")
    dec.add_argument("--no-progress", action="store_true")

    srv = sub.add_parser("serve", help="HTTP decision service for a policy artifact")
    srv.add_argument(
        "--policy", required=True, type=Path, help="policy artifact (.zip); reloaded on /v1/reload or SIGHUP"
    )
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=_at_least(1), default=8000)
    srv.add_argument("--no-auth", action="store_true", help="no bearer token (loopback hosts only)")
    srv.add_argument("--log", type=Path, default=None, help="append accepted decisions to this decision log")
    srv.add_argument("--campaign", action="append", default=None, help="accept only these campaign ids (repeat)")

    join = sub.add_parser("join-outcomes", help="decision log + ESP events -> logged feedback for train/evaluate")
    join.add_argument("--decisions", required=True, type=Path, help="decision log (.jsonl or Parquet directory)")
    join.add_argument("--events", required=True, type=Path, help="ESP events (.csv or .parquet)")
    join.add_argument("--window", default="7d", help="attribution window after each decision, e.g. 7d, 36h")
    join.add_argument("--margin-rate", type=float, default=1.0, help="reward = margin-rate x revenue - send cost")
    join.add_argument("--send-cost", type=float, default=0.0)
    join.add_argument("--out", required=True, type=_out_path, help="logged feedback (.parquet or .csv)")

    bench = sub.add_parser("bench", help="benchmarks; print JSON figures")
    bench.add_argument(
        "suite", choices=["sim", "ope", "decide", "bandits", "rl", "all"], help="a benchmark group, or all of them"
    )
    bench.add_argument("--seeds", type=_positive, default=None, help="ope: seeds of the accuracy study (default 50)")
    bench.add_argument("--json", action="store_true", help="print only the JSON object")
    bench.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not the targets)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except NextbestError as exc:
        print(f"nextbest: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nextbest: interrupted", file=sys.stderr)
        return 130


def _model(scenario: str) -> Any:
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel

    return CustomerModel(Scenario.load(scenario))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from nextbest.logs import save_table
    from nextbest.simulator import log_metadata, make_policy, simulate_to_file

    model = _model(args.scenario)
    policy = make_policy(args.policy, model.features, model.catalog)
    days = args.days or model.scenario.horizon_days
    progress = not args.no_progress and sys.stderr.isatty()
    if args.events is None:
        rows = simulate_to_file(model, policy, args.customers, args.out, days, args.seed, progress=progress)
        print(f"wrote {rows:,} decisions to {args.out}")
        return 0
    from nextbest.simulator.campaign import CampaignRunner

    runner = CampaignRunner(model, send_rate_per_hour=args.send_rate)
    result = runner.run(policy, args.customers, days, args.seed, progress=progress)
    save_table(
        result.decisions, args.out, log_metadata(model, policy.name, args.seed, args.customers, days, driver="simpy")
    )
    save_table(result.events, args.events)
    print(f"wrote {len(result.decisions):,} decisions to {args.out} and {len(result.events):,} events to {args.events}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from nextbest.evaluation.report import SUMMARY_HEAD
    from nextbest.scripts.demo import run_demo

    start = time.perf_counter()
    try:
        result = run_demo(args.out, seed=args.seed, quick=args.quick, force=args.force, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        print(f"nextbest: interrupted; nothing was written to {args.out}", file=sys.stderr)
        return 130
    widths = [max(len(h), *(len(r[i]) for r in result.summary)) for i, h in enumerate(SUMMARY_HEAD)]
    print()
    for row in [list(SUMMARY_HEAD), *result.summary]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"\nchosen: {result.chosen} -> {args.out / 'policy.zip'}")
    print(f"report: {args.out / 'report.html'} (also report.md, report.json)")
    print(f"logs: {args.out / 'logs.parquet'}; send list and its decisions: {args.out / 'send_list.csv'}, ", end="")
    print(f"{args.out / 'decisions.csv'}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    from nextbest.simulator import BUILTIN_POLICIES, make_policy, policy_value
    from nextbest.simulator.calibration import email_kpis, myopic_oracle_check, one_email_experiment

    model = _model(args.scenario)
    sc = model.scenario
    n, horizon = args.customers, sc.horizon_days
    print(f"scenario {sc.name!r}: {len(sc.personas)} personas, {model.catalog.n_actions} actions, {horizon} days")
    bau = make_policy("bau", model.features, model.catalog)
    kpis = email_kpis(model, bau, n, horizon, args.seed)
    print(
        f"BAU email KPIs over {kpis.sends:,} sends: open {kpis.open_rate:.1%}, click {kpis.click_rate:.2%}, "
        f"unsubscribe {kpis.unsubscribe_rate:.3%} per send"
    )
    exp = one_email_experiment(model, 5 * n, args.seed)
    print(
        f"one email vs none, 2 weeks: visits {exp.visit_control:.1%} -> {exp.visit_treated:.1%}, "
        f"conversion {exp.conversion_control:.2%} -> {exp.conversion_treated:.2%}"
    )
    check = myopic_oracle_check(model, n, args.seed)
    print(
        f"myopic oracle (best action today, knowing latent traits): {check.myopic:.3f} per customer at "
        f"{check.myopic_sends_per_week:.2f} emails/week; held to {check.max_per_week}/week it sends "
        f"{check.restrained_sends_per_week:.2f} and earns {check.restrained:.3f} "
        f"({check.restrained - check.myopic:+.3f} ± {1.96 * check.gain_se:.3f})"
    )
    print(f"true value per customer over {horizon} days ({n:,} customers, 95% CI):")
    for name in (n for n in BUILTIN_POLICIES if ":" not in n):
        print(f"  {policy_value(make_policy(name, model.features, model.catalog), model, n, horizon, args.seed)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nextbest.evaluation.report import evaluate, write_report

    if not args.report.parent.is_dir():
        raise NextbestError(f"{args.report}: parent directory {str(args.report.parent)!r} does not exist")
    mapping = _mapping(args)
    logs = _read_logs(args)
    if mapping is None:
        config = logs.metadata.get("scenario_config")
        model = _model(args.scenario) if config is None else _model_from(config)
        catalog = model.catalog
        catalog_differs = logs.action_names and tuple(logs.action_names) != catalog.names
        if catalog_differs or logs.n_actions > catalog.n_actions:
            raise NextbestError(
                f"{args.logs}: the logs' action catalog ({logs.n_actions} actions) does not match the "
                f"policies' ({catalog.n_actions} actions of scenario {model.scenario.name!r})"
            )
    else:
        from nextbest.actions import ActionCatalog

        catalog = ActionCatalog.from_names(logs.action_names)
    policies = [_policy(name, logs.features, catalog) for name in args.policy]
    report = evaluate(
        logs,
        policies,
        ground_truth=args.ground_truth,
        episodes=args.episodes,
        interval=args.interval,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    write_report(report, args.report)
    for pol in report.policies:
        dr = next(e for e in pol.estimates if e.estimator == "dr")
        truth = "" if pol.truth is None else f" (truth {pol.truth:.4f})"
        print(f"{pol.policy}: DR {dr.value:.4f} [{dr.lower:.4f}, {dr.upper:.4f}] per decision{truth}")
        for warning in dr.diagnostics.warnings:
            print(f"  warning: {warning}")
    print(f"report: {args.report / 'report.html'}")
    return 0


def _policy(name: str, features: Any, catalog: Any) -> Any:
    """A built-in policy by name, or a policy artifact file (checked against the logs' catalog)."""
    from nextbest.simulator import make_policy

    if not (name.endswith(".zip") or Path(name).is_file()):
        return make_policy(name, features, catalog)
    from nextbest.policies import load

    artifact = load(name)
    if artifact.actions != tuple(catalog.names):
        raise NextbestError(
            f"{name}: the policy's actions ({len(artifact.actions)}) do not match the logs' action catalog "
            f"({catalog.n_actions})"
        )
    return artifact.reading(features)


def _mapping(args: argparse.Namespace) -> Any:
    """The column mapping from ``--map`` and the column flags (flags win), or None for nextbest logs."""
    from nextbest.external import LogMapping

    flags = {
        "id": args.id_col,
        "action": args.action_col,
        "reward": args.reward_col,
        "propensity": args.propensity_col if args.propensity_col is not None else args.propensity,
        "time": args.time_col,
        "context": None if args.context_cols is None else tuple(c.strip() for c in args.context_cols.split(",")),
        "trajectories": args.trajectories,
        "episode": args.episode_col,
        "terminated": args.terminated_col,
        "unsubscribed": args.unsubscribed_col,
    }
    if args.map is None and all(v is None for v in flags.values()):
        return None
    if args.map is not None:
        return LogMapping.load(args.map).replace(**flags)
    missing = [f"--{k}-col" for k in ("id", "action", "reward") if flags[k] is None]
    if flags["propensity"] is None:
        missing.append("--propensity-col or --propensity")
    if missing:
        raise NextbestError(f"logs from outside nextbest need {', '.join(missing)} (or --map FILE)")
    return LogMapping(**{k: v for k, v in flags.items() if v is not None})


def _read_logs(args: argparse.Namespace) -> Any:
    """Logged feedback from nextbest (``load_logs``) or from outside (the column-mapping flags)."""
    from nextbest.logs import load_logs

    mapping = _mapping(args)
    if mapping is None:
        return load_logs(args.logs)
    from nextbest.external import import_logs

    return import_logs(args.logs, mapping)


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from nextbest.agents.basic import UCB1, EpsilonGreedyBandit, ThompsonBandit
    from nextbest.agents.linear import DirectMethod, LinTS, LinUCB, PolicyLearner
    from nextbest.evaluation import DR, IPS
    from nextbest.logs import validate_logs

    if args.out.suffix.lower() != ".zip" or not args.out.parent.is_dir():
        raise NextbestError(f"{args.out}: expected a .zip path in an existing directory")
    if args.algo in ONLINE_RL_ALGOS:
        if not args.online:
            raise NextbestError(
                f"{args.algo} learns online in the simulator: add --online (offline RL: bc, cql, bcq, fqi)"
            )
        return _train_rl_online(args)
    if args.algo in OFFLINE_RL_ALGOS:
        if args.online or args.logs is None:
            raise NextbestError(f"{args.algo} learns from logged trajectories: give --logs LOGS (and no --online)")
        return _train_rl_offline(args)
    if args.online:
        return _train_online(args)
    if args.logs is None:
        raise NextbestError("give --logs LOGS (offline) or --online")
    if not 0 < args.holdout < 1:
        raise NextbestError(f"--holdout: must be in (0, 1), got {args.holdout}")
    logs = _read_logs(args)
    d = len(logs.features)
    if len(logs) < 10 * (d + 1):
        raise NextbestError(f"{args.logs}: {len(logs)} rows are too few to learn {d} features (need >= {10 * (d + 1)})")
    rng = np.random.default_rng(args.seed)
    n_customers = int(logs.clusters.max()) + 1
    held = rng.random(n_customers) < args.holdout
    test_rows = held[logs.clusters]
    train = validate_logs(logs.frame[~test_rows], logs.source, logs.metadata)
    test = validate_logs(logs.frame[test_rows], logs.source, logs.metadata)
    options = {"temperature": args.temperature, "epsilon": args.epsilon, "name": args.algo}
    names = logs.action_names or tuple(str(a) for a in range(logs.n_actions))
    algos = {
        "linucb": lambda: LinUCB(logs.features, names, **options),
        "lints": lambda: LinTS(logs.features, names, **options),
        "egreedy": lambda: EpsilonGreedyBandit(logs.features, names, **options),
        "ts": lambda: ThompsonBandit(logs.features, names, **options),
        "ucb1": lambda: UCB1(logs.features, names, **options),
        "dm": lambda: DirectMethod(logs.features, names, **options),
        "ips-policy": lambda: PolicyLearner(logs.features, names, weighting="ips", **options),
        "dr-policy": lambda: PolicyLearner(logs.features, names, weighting="dr", **options),
    }
    agent = algos[args.algo]()
    if isinstance(agent, PolicyLearner):
        agent.fit(train, seed=args.seed, progress=sys.stderr.isatty())
    else:  # reward regression (linear agents) or per-action means (non-contextual ones) on the logs
        agent.fit(train)
    new = DR().estimate(test, agent.action_probs(test.contexts, test.allowed), seed=args.seed)
    logged = IPS().estimate(test, _logging_probs(test), seed=args.seed)
    ope = {"estimator": "dr", "value": new.value, "lower": new.lower, "upper": new.upper, "holdout_rows": len(test)}
    agent.export(args.out, ope=ope, training_data_sha256=_sha256_file(args.logs))
    print(
        f"{args.algo}: held-out value per decision (DR) {new.value:.4f} [{new.lower:.4f}, {new.upper:.4f}] "
        f"vs logging policy {logged.value:.4f} [{logged.lower:.4f}, {logged.upper:.4f}] on {len(test):,} decisions"
    )
    for warning in new.diagnostics.warnings:
        print(f"  warning: {warning}")
    print(f"policy: {args.out}")
    return 0


def _train_online(args: argparse.Namespace) -> int:
    from nextbest.agents.basic import UCB1, EpsilonGreedyBandit, ThompsonBandit
    from nextbest.agents.linear import LinTS, LinUCB
    from nextbest.agents.online import run_online
    from nextbest.simulator import make_policy

    online = {"linucb": LinUCB, "lints": LinTS, "egreedy": EpsilonGreedyBandit, "ts": ThompsonBandit, "ucb1": UCB1}
    if args.algo not in online:
        raise NextbestError(f"--online learns with {', '.join(online)}, not {args.algo!r}")
    model = _model(args.scenario)
    cls = online[args.algo]
    agent = cls(model.features, model.catalog.names, temperature=args.temperature, epsilon=args.epsilon)
    if args.logs is not None:  # warm start: learn from the logs first, then go on learning online
        logs = _read_logs(args)
        agent.fit(logs)
        print(f"warm start: {len(logs):,} logged decisions from {args.logs}")
    bau = make_policy("bau", model.features, model.catalog)
    steps = args.steps or 100_000
    marks = tuple(m for m in (10_000, 50_000, 100_000) if m <= steps) + (steps,)
    result = run_online(
        agent,
        steps,
        args.seed,
        scenario=model.scenario,
        checkpoints=marks,
        references={"bau": bau},
        progress=sys.stderr.isatty(),
    )
    agent.export(args.out)
    regret = ", ".join(f"{k:,}: {v:.1f}" for k, v in sorted(result.checkpoints.items()))
    print(
        f"{args.algo} online, {steps:,} rounds: cumulative expected regret {regret}; "
        f"mean expected reward {result.reward[-1] / steps:.4f} per decision "
        f"vs BAU {result.references['bau'] / steps:.4f} on the same customers (simulator ground truth)"
    )
    print(f"policy: {args.out}")
    return 0


def _describe(value: Any) -> str:
    """One policy's ground truth: value with interval, and how it got there."""
    return (
        f"{value.mean:.3f} [{value.lower:.3f}, {value.upper:.3f}] per customer "
        f"({value.sends_per_customer:.1f} emails, {value.discount_share:.0%} with a discount, "
        f"{value.unsubscribe_rate:.1%} unsubscribed)"
    )


def _train_rl_online(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from nextbest.agents.rl import train_online
    from nextbest.simulator import make_policy, policy_value

    model = _model(args.scenario)
    steps = args.steps or 10_000_000
    options = {} if args.unsubscribe_penalty is None else {"unsubscribe_penalty": args.unsubscribe_penalty}
    trained = train_online(
        args.algo,
        steps,
        model.scenario,
        args.seed,
        eval_every=max(steps // 5, 1),
        progress=sys.stderr.isatty(),
        report=lambda line: tqdm.write(line, file=sys.stderr),
        **options,
    )
    temperature = 1.0 if args.temperature is None else args.temperature
    final = trained.history[-1][1]
    trained.export(args.out, temperature=temperature, epsilon=args.epsilon)
    bau = policy_value(make_policy("bau", model.features, model.catalog), model, final.n_customers, seed=10_000)
    print(f"{args.algo} online, {trained.sb3_model.num_timesteps:,} customer-days at {trained.steps_per_s:,.0f}/s")
    print(f"true value over {final.horizon} days: {_describe(final)}")
    print(f"              BAU on the same customers: {_describe(bau)}")
    print(f"policy: {args.out}")
    return 0


def _train_rl_offline(args: argparse.Namespace) -> int:
    from nextbest.agents.offline import OFFLINE_ALGORITHMS
    from nextbest.evaluation.ground_truth import model_for_logs
    from nextbest.simulator import make_policy, policy_value

    logs = _read_logs(args)
    penalty = args.unsubscribe_penalty
    if penalty is None:  # the online default, when the logs say who unsubscribed
        penalty = 60.0 if "unsubscribed" in logs.frame.columns else 0.0
    options = {
        "epsilon": args.epsilon,
        "seed": args.seed,
        "steps": args.steps or 20_000,
        "unsubscribe_penalty": penalty,
    }
    if args.temperature is not None:
        options["temperature"] = args.temperature
    names = logs.action_names or tuple(str(a) for a in range(logs.n_actions))
    agent = OFFLINE_ALGORITHMS[args.algo](logs.features, names, **options)
    agent.fit(logs, progress=sys.stderr.isatty())
    agent.export(args.out, training_data_sha256=_sha256_file(args.logs))
    print(f"{args.algo}: trained on {len(logs):,} logged decisions")
    if logs.metadata.get("scenario_config") is not None:  # simulated logs: ground truth over the logged days
        model = model_for_logs(logs)
        days, customers = int(logs.metadata["days"]), min(int(logs.metadata["n_customers"]), 20_000)
        logger = make_policy(logs.metadata["policy"], model.features, model.catalog)
        for label, policy in (("new policy", agent), ("logging policy", logger)):
            value = policy_value(policy, model, customers, days, seed=10_000)
            print(f"  {label:>14}: true value over {days} days {_describe(value)}")
    else:
        import numpy as np

        from nextbest.evaluation.sequential import estimate_sequential

        (fqe,) = estimate_sequential(logs, agent.action_probs(logs.contexts, logs.allowed), estimators=("fqe",))
        logged = np.bincount(logs.clusters, weights=logs.rewards).mean()
        print(
            f"  value per customer by FQE {fqe.value:.3f} [{fqe.lower:.3f}, {fqe.upper:.3f}] vs logged {logged:.3f}\n"
            "  (FQE fits a linear Q model; its interval covers the sampling of customers, not the model's error:"
            " check it with `nextbest evaluate --episodes`)"
        )
    print(f"policy: {args.out}")
    return 0


def _logging_probs(logs: Any) -> Any:
    """The logging policy's probabilities (the logged vector, or one that gives the logged action its
    propensity and spreads the rest evenly: importance weight 1 either way)."""
    import numpy as np

    if logs.action_probs is not None:
        return logs.action_probs
    k = logs.n_actions
    probs = np.repeat(((1 - logs.propensities) / max(k - 1, 1))[:, None], k, axis=1)
    probs[np.arange(len(logs)), logs.actions] = logs.propensities
    return probs


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cmd_decide(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from nextbest.logs import read_table, save_table
    from nextbest.policies import Runtime, load

    runtime = Runtime(load(args.policy))
    send_list, _ = read_table(args.customers)
    if send_list.empty:
        raise NextbestError(f"{args.customers}: no customers")
    if args.id_col in send_list.columns and send_list[args.id_col].duplicated().any():  # across chunks too
        row = int(send_list[args.id_col].duplicated().to_numpy().nonzero()[0][0])
        raise NextbestError(f"{args.customers}: column {args.id_col!r}, row {row}: duplicate customer id")
    chunk = 200_000
    parts = []
    show = not args.no_progress and sys.stderr.isatty() and len(send_list) > chunk
    for start in tqdm(range(0, len(send_list), chunk), desc="deciding", unit="chunk", disable=not show):
        part = send_list.iloc[start : start + chunk]
        try:
            parts.append(
                runtime.decide_batch(
                    part, args.campaign, id_column=args.id_col, row_offset=start, with_context=args.log is not None
                )
            )
        except NextbestError as exc:
            raise NextbestError(f"{args.customers}: {exc}") from None
    decisions = pd.concat(parts, ignore_index=True)
    if args.log is not None:
        from nextbest.policies.decision_log import DecisionLog

        logged = decisions.assign(decision_time=pd.Timestamp.now(tz="UTC").tz_localize(None))
        DecisionLog(args.log).append(logged)
    save_table(decisions[[c for c in decisions.columns if not c.startswith("prob_")]], args.out)
    emails = int((decisions["action"] != 0).sum())
    print(f"{len(decisions):,} decisions ({emails:,} emails) for campaign {args.campaign!r} written to {args.out}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from nextbest.policies.service import create_app

    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if args.no_auth and not loopback:
        raise NextbestError(f"--no-auth is only allowed on a loopback host, not {args.host!r}")
    campaigns = None if args.campaign is None else set(args.campaign)
    app = create_app(args.policy, require_auth=not args.no_auth, log_path=args.log, campaigns=campaigns)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_join(args: argparse.Namespace) -> int:

    from nextbest.logs import read_table, save_table, validate_logs
    from nextbest.policies.decision_log import join_outcomes, read_decisions

    window = _duration(args.window)
    decisions = read_decisions(args.decisions)
    events, _ = read_table(args.events)
    logs = join_outcomes(decisions, events, window, margin_rate=args.margin_rate, send_cost=args.send_cost)
    features = [c for c in decisions.columns if c not in _DECISION_COLUMNS and not c.startswith("prob_")]
    action_names = [c[len("prob_") :] for c in decisions.columns if c.startswith("prob_")]
    metadata = {"features": features, "action_names": action_names, "policy": str(logs["policy_id"].iloc[0])}
    validate_logs(logs, str(args.out), metadata)
    save_table(logs, args.out, metadata)
    print(f"wrote {len(logs):,} decisions with outcomes ({int(logs['purchased'].sum()):,} purchases) to {args.out}")
    return 0


def _duration(text: str) -> Any:
    """'7d', '36h', '90min' -> a positive pandas Timedelta."""
    import re

    import pandas as pd

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(d|h|min|s)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise NextbestError(f"--window: not a positive duration: {text!r} (e.g. 7d, 36h, 90min)")
    unit = {"d": "D", "h": "h", "min": "min", "s": "s"}[match.group(2)]
    return pd.Timedelta(float(match.group(1)), unit=unit)


_DECISION_COLUMNS = frozenset(
    {
        "customer_id",
        "campaign_id",
        "decision_time",
        "action",
        "action_name",
        "offer",
        "slot",
        "propensity",
        "guardrail",
        "policy",
        "policy_version",
        "may_email",
    }
)


def _model_from(config: dict[str, Any]) -> Any:
    from nextbest.scenario import Scenario
    from nextbest.simulator import CustomerModel

    return CustomerModel(Scenario.from_dict(config))


#: Each benchmark group and the targets its figures are read against.
BENCH_TARGETS = {
    "sim": "targets: 5e6 customer-days/s, 2e4 env steps/s, 2e6 customer-steps/s, 1e5 events/s",
    "ope": "targets: dr_median_rel_error_near <= 0.05, coverage 0.90-0.98, ope_1m_rows_s <= 3",
    "decide": (
        "targets: linear p50 <= 15 us, p99 <= 60 us; MLP 10x below SB3 p50, p99 <= 100 us; "
        "batch 2M/s linear, 1M/s MLP; HTTP p99 <= 5 ms"
    ),
    "bandits": "targets: DR policy beats BAU outside both intervals; LinTS regret sublinear, below egreedy",
    "rl": (
        "targets: maskable_ppo >= 1.15 x BAU and >= 1.05 x bandit, unsubscribe rate <= BAU's; "
        "cql >= 1.05 x BAU; each online agent within 15 minutes"
    ),
}


def _cmd_bench(args: argparse.Namespace) -> int:
    from nextbest.scripts import bench

    progress = not args.json and sys.stderr.isatty()
    runs = {
        "sim": lambda: bench.bench_sim(quick=args.quick),
        "ope": lambda: bench.bench_ope(quick=args.quick, seeds=args.seeds, progress=progress),
        "decide": lambda: bench.bench_decide(quick=args.quick),
        "bandits": lambda: bench.bench_bandits(quick=args.quick),
        "rl": lambda: bench.bench_rl(quick=args.quick, progress=progress),
    }
    suites = list(runs) if args.suite == "all" else [args.suite]
    figures = {}
    for suite in suites:
        if not args.json:
            print(f"nextbest bench {suite} ({BENCH_TARGETS[suite]})", file=sys.stderr if len(suites) > 1 else None)
        figures[suite] = runs[suite]()
    print(json.dumps(figures if args.suite == "all" else figures[args.suite], indent=2))
    return 0


_COMMANDS = {
    "demo": _cmd_demo,
    "calibration": _cmd_calibration,
    "simulate": _cmd_simulate,
    "evaluate": _cmd_evaluate,
    "train": _cmd_train,
    "decide": _cmd_decide,
    "serve": _cmd_serve,
    "join-outcomes": _cmd_join,
    "bench": _cmd_bench,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
