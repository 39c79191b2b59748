"""The evaluation report and `nextbest evaluate`."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import nextbest
from nextbest.evaluation.report import evaluate, write_report
from nextbest.scripts.cli import main
from nextbest.simulator import make_policy, simulate_to_file


@pytest.fixture(scope="module")
def logs_path(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("logs") / "logs.parquet"
    simulate_to_file(model, make_policy("bau-softmax", model.features, model.catalog), 2000, path, 7, seed=4)
    return path


def test_report_files_and_numbers(tmp_path, logs_path, model):
    logs = nextbest.load_logs(logs_path)
    policies = [make_policy(n, model.features, model.catalog) for n in ("bau", "random")]
    report = evaluate(logs, policies, ground_truth=True, n_boot=50, seed=1)
    write_report(report, tmp_path / "rep")
    files = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert files == ["report.html", "report.json", "report.md"]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<img" in html and "src='http" not in html
    assert data["logger"] == "bau-softmax" and data["seed"] == 1 and data["rows"] == len(logs)
    for pol in data["policies"]:
        assert pol["truth"] is not None
        for est in pol["estimates"]:
            # every number shown in the HTML table is in the JSON
            for number in (est["value"], est["lower"], est["upper"]):
                assert f"{number:.4f}" in html
            assert est["covers_truth"] == (est["lower"] <= pol["truth"] <= est["upper"])
            assert est["relative_error"] == pytest.approx(abs(est["value"] - pol["truth"]) / abs(pol["truth"]))
        mix = pol["action_mix"]
        assert all(sum(shares.values()) == pytest.approx(1.0) for shares in mix.values())
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## bau\n" in md and "value per decision (ground truth" in md and "| dr |" in md


def test_same_seed_same_report(tmp_path, logs_path, model):
    logs = nextbest.load_logs(logs_path)
    policies = [make_policy("bau-epsilon", model.features, model.catalog)]
    a = evaluate(logs, policies, n_boot=30, seed=3).to_dict()
    b = evaluate(logs, policies, n_boot=30, seed=3).to_dict()
    assert a == b


def test_evaluate_command(tmp_path, logs_path, capsys):
    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--logs",
                str(logs_path),
                "--policy",
                "bau",
                "--policy",
                "random",
                "--ground-truth",
                "--report",
                str(out),
                "--n-boot",
                "30",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert re.search(r"bau: DR -?\d+\.\d{4} \[.*\] per decision \(truth", text)
    assert (out / "report.html").exists()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nextbest.scripts.cli", *args], capture_output=True, text=True)


def _bad_csv(tmp_path, logs_path, edit):
    frame = nextbest.load_logs(logs_path).frame
    path = tmp_path / "bad.csv"
    edit(frame).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda f: f.assign(propensity=np.where(np.arange(len(f)) == 3, 0.0, f["propensity"])),
            "column 'propensity', row 3: must be in (0, 1]",
        ),
        (
            lambda f: f.assign(reward=np.where(np.arange(len(f)) == 8, np.nan, f["reward"])),
            "column 'reward', row 8: must be a finite number",
        ),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "duplicate (customer_id, decision_time)"),
        (lambda f: f.assign(**{"prob_no_email": f["prob_no_email"] + 0.5}), "must be >= 0 and sum to 1"),
        (
            lambda f: f.drop(columns=[c for c in f.columns if c.startswith("prob_")]).assign(action=f["action"] + 20),
            "does not match",
        ),
        (lambda f: f.iloc[:0], "no rows|cannot read"),
    ],
)
def test_bad_logs_exit_2_and_write_nothing(tmp_path, logs_path, edit, message):
    bad = _bad_csv(tmp_path, logs_path, edit)
    result = _run("evaluate", "--logs", str(bad), "--policy", "bau", "--report", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert any(alt in result.stderr for alt in message.split("|")), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_catalog_mismatch_is_named(tmp_path, logs_path):
    frame = nextbest.load_logs(logs_path).frame
    keep = [c for c in frame.columns if not c.startswith("prob_")]
    small = frame[keep].copy()
    small = small[small["action"] < 4]
    for name in ("no_email", "newsletter@morning", "newsletter@midday", "newsletter@evening"):
        small[f"prob_{name}"] = 0.25
    small["propensity"] = 0.25
    path = tmp_path / "four.csv"
    small.to_csv(path, index=False)
    result = _run("evaluate", "--logs", str(path), "--policy", "bau", "--report", str(tmp_path / "out"))
    assert result.returncode == 2 and "does not match" in result.stderr, result.stderr


def test_episode_values_in_report(tmp_path, logs_path, model):
    logs = nextbest.load_logs(logs_path)
    policy = make_policy("bau-epsilon", model.features, model.catalog)
    report = evaluate(logs, [policy], ground_truth=True, episodes=True, n_boot=30)
    write_report(report, tmp_path / "rep")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())["policies"][0]
    assert [e["estimator"] for e in data["episode_estimates"]] == ["pdis", "wpdis", "fqe", "dr"]
    assert data["episode_truth"] > 0
    assert "value per customer over the logged days" in (tmp_path / "rep" / "report.md").read_text()


def test_evaluate_a_policy_artifact(tmp_path, logs_path, model, capsys):
    from nextbest.policies import save_policy

    rng = np.random.default_rng(1)
    features = ["recency_days", "frequency", "days_since_email", "sends_7d"]
    artifact = save_policy(
        tmp_path / "linear.zip",
        kind="linear",
        name="candidate",
        features=features,
        actions=model.catalog.names,
        arrays={"coef": rng.normal(size=(4, 16)), "intercept": rng.normal(size=16)},
        feature_mean=[100, 2, 5, 1],
        feature_scale=[100, 2, 5, 1],
        temperature=1.0,
        epsilon=0.05,
    )
    out = tmp_path / "rep"
    assert (
        main(
            [
                "evaluate",
                "--logs",
                str(logs_path),
                "--policy",
                str(artifact),
                "--ground-truth",
                "--report",
                str(out),
                "--n-boot",
                "30",
            ]
        )
        == 0
    )
    assert "candidate: DR" in capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    assert data["policies"][0]["policy"] == "candidate" and data["policies"][0]["truth"] is not None

    wrong = save_policy(
        tmp_path / "wrong.zip",
        kind="linear",
        name="w",
        features=features,
        actions=["a", "b"],
        arrays={"coef": np.zeros((4, 2)), "intercept": np.zeros(2)},
    )
    assert main(["evaluate", "--logs", str(logs_path), "--policy", str(wrong), "--report", str(tmp_path / "r2")]) == 2
    assert "do not match the logs' action catalog" in capsys.readouterr().err
