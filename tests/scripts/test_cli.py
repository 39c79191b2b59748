"""Every subcommand with a tiny budget, and the bad inputs of issue #2."""

import json
import subprocess
import sys

import pytest
import yaml

import nextbest
from nextbest.scripts.cli import main


def test_simulate_writes_valid_logs(tmp_path, capsys):
    def simulate(out):
        args = ["simulate", "--customers", "50", "--days", "5", "--policy", "bau-softmax", "--seed", "1"]
        return main([*args, "--out", str(out), "--no-progress"])

    out = tmp_path / "logs.parquet"
    assert simulate(out) == 0
    logs = nextbest.load_logs(out)
    assert len(logs) <= 250 and logs.metadata["policy"] == "bau-softmax" and logs.metadata["seed"] == 1
    out_csv = tmp_path / "logs.csv"
    assert simulate(out_csv) == 0
    again = nextbest.load_logs(out_csv)
    assert (again.actions == logs.actions).all()


def test_simulate_with_events(tmp_path):
    out, events = tmp_path / "logs.parquet", tmp_path / "events.csv"
    assert (
        main(
            [
                "simulate",
                "--customers",
                "200",
                "--days",
                "7",
                "--out",
                str(out),
                "--events",
                str(events),
                "--send-rate",
                "5000",
                "--no-progress",
            ]
        )
        == 0
    )
    assert nextbest.load_logs(out).is_sequential
    assert "sent" in events.read_text()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nextbest.scripts.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "0"], "--customers: must be >= 1"),
        (["--customers", "5", "--days", "-3"], "--days: must be >= 1"),
        (["--customers", "5", "--policy", "genius"], "unknown policy 'genius'"),
        (["--customers", "5", "--scenario", "nope.yaml"], "no such scenario file"),
        (["--customers", "5", "--seed", "-1"], "--seed: must be >= 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_file(tmp_path, args, message):
    out = tmp_path / "logs.parquet"
    result = _run("simulate", *args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_output_must_be_parquet_or_csv(tmp_path):
    result = _run("simulate", "--customers", "5", "--out", str(tmp_path / "logs.xlsx"))
    assert result.returncode == 2 and "expected a .parquet or .csv file name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_output_directory(tmp_path):
    result = _run("simulate", "--customers", "5", "--out", str(tmp_path / "missing" / "logs.parquet"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_broken_scenario_file(tmp_path, scenario):
    data = scenario.to_dict()
    data["personas"]["bargain_hunter"]["price_sensitivity"] = -2
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _run("simulate", "--customers", "5", "--scenario", str(path), "--out", str(tmp_path / "x.parquet"))
    assert result.returncode == 2
    assert "personas.bargain_hunter.price_sensitivity: must be >= 0" in result.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_calibration_prints_the_figures(capsys):
    assert main(["calibration", "--customers", "500"]) == 0
    text = capsys.readouterr().out
    assert "open" in text and "bau:" in text and "one email vs none" in text


def test_bench_quick_prints_json(capsys):
    assert main(["bench", "sim", "--json", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("sim_customer_days_per_s", "env_steps_per_s", "vec_env_customer_steps_per_s", "simpy_events_per_s"):
        assert figures[key] > 0


def test_bench_ope_quick_prints_every_key(capsys):
    assert main(["bench", "ope", "--json", "--quick", "--seeds", "2"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for estimator in ("dm", "ips", "snips", "dr", "sndr", "switch-dr", "dr-os"):
        for policy in ("near", "far", "random"):
            assert figures[f"{estimator}_median_rel_error_{policy}"] >= 0
            assert 0 <= figures[f"{estimator}_coverage_{policy}"] <= 1
    assert figures["ope_1m_rows_s"] > 0


@pytest.mark.slow
def test_bench_decide_quick_prints_every_key(capsys):
    assert main(["bench", "decide", "--json", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "decide_p50_us",
        "decide_p99_us",
        "batch_decisions_per_s",
        "mlp_decide_p50_us",
        "sb3_predict_p50_us",
        "mlp_vs_sb3_p50_ratio",
        "http_p99_ms",
    ):
        assert figures[key] > 0


@pytest.mark.slow
def test_bench_bandits_quick_prints_every_key(capsys):
    assert main(["bench", "bandits", "--json", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "bau_true_value",
        "dr_policy_true_value_lower",
        "lints_regret_10k",
        "lints_regret_100k",
        "egreedy_regret_100k",
        "bandit_updates_per_s",
    ):
        assert key in figures
    assert figures["dr_policy_true_value_lower"] > figures["bau_true_value_upper"]


@pytest.mark.slow
def test_bench_rl_quick_prints_every_key(capsys):
    assert main(["bench", "rl", "--json", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for policy in ("bau", "random", "bandit", "maskable_ppo", "cql"):
        for suffix in ("value", "value_lower", "value_upper", "unsub_rate", "sends_per_customer", "discount_share"):
            assert f"{policy}_{suffix}" in figures
    assert figures["ppo_train_steps_per_s"] > 0
    assert figures["bau_value_lower"] <= figures["bau_value"] <= figures["bau_value_upper"]


def test_bench_all_prints_one_object_with_every_group(monkeypatch, capsys):
    from nextbest.scripts import bench

    for group in ("sim", "ope", "decide", "bandits", "rl"):
        monkeypatch.setattr(bench, f"bench_{group}", lambda group=group, **kwargs: {f"{group}_figure": 1.0})
    assert main(["bench", "all", "--json", "--quick"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        group: {f"{group}_figure": 1.0} for group in ("sim", "ope", "decide", "bandits", "rl")
    }
