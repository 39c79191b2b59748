"""`nextbest demo`: the whole loop writes a report that renders, a policy the runtime loads, and
nothing at all when it is refused, interrupted or out of disk."""

import errno
import json
import os
import shutil

import pandas as pd
import pytest

from nextbest.policies import load
from nextbest.scripts import demo
from nextbest.scripts.cli import main

TINY = demo.DemoSizes(
    customers=400, eval_customers=300, cql_steps=200, ppo_steps=20_000, curve_points=2, send_list=50, n_boot=20,
    min_free_mb=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    lines = []
    result = demo.run_demo(out, seed=3, sizes=TINY, say=lines.append)
    return out, result, lines


def test_the_demo_leaves_every_output(finished):
    out, result, lines = finished
    assert sorted(p.name for p in out.iterdir()) == [
        "decisions.csv",
        "logs.parquet",
        "policy.zip",
        "report.html",
        "report.json",
        "report.md",
        "send_list.csv",
    ]
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [f"[{i}/8" for i in range(1, 9)]
    report = json.loads((out / "report.json").read_text())
    assert list(report["lifetime"]) == ["bau", "random", "dr-bandit", "cql", "maskable-ppo"]
    assert result.chosen in demo.LEARNED and result.chosen in report["choice"]
    assert len(report["curves"]["maskable-ppo"]) >= 2
    for pol in report["policies"]:
        assert pol["truth"] is not None and {e["estimator"] for e in pol["estimates"]} >= {"dr", "ips"}
        assert set(pol["slot_mix"]) == set(pol["action_mix"])  # the same customer segments
    assert [row[0] for row in result.summary] == list(report["lifetime"])
    assert load(out / "policy.zip").name == result.chosen
    decisions = pd.read_csv(out / "decisions.csv")
    assert len(decisions) == TINY.send_list and decisions["propensity"].between(0, 1).all()
    assert set(decisions["customer_id"]) == set(pd.read_csv(out / "send_list.csv")["customer_id"])


def test_the_same_seed_gives_the_same_report(finished, tmp_path):
    out, result, _ = finished
    again = demo.run_demo(tmp_path / "again", seed=3, sizes=TINY, say=lambda line: None)
    assert again.summary == result.summary and again.chosen == result.chosen


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "exists and is not empty (use --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    demo.run_demo(out, sizes=TINY, force=True, say=lambda line: None)
    assert (out / "report.html").exists() and not (out / "mine.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging or old folder left


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (KeyboardInterrupt(), 130, "interrupted; nothing was written to"),
        (OSError(errno.ENOSPC, "No space left on device"), 2, "no space left on the device; nothing was written"),
    ],
)
def test_an_interrupted_or_full_run_writes_nothing(tmp_path, monkeypatch, capsys, failure, code, message):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(demo, "SIZES", {"quick": TINY, "full": TINY})
    monkeypatch.setattr(demo, "_send_list", fail)  # stage 7 of 8: most files are already written
    assert main(["demo", "--quick", "--out", str(tmp_path / "out")]) == code
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_too_little_disk_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 2**20))
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    assert "1 MB free; the demo needs about 200 MB" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


CHROMIUM = shutil.which("chromium") and shutil.which("chromedriver")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="Debian chromium/chromium-driver not installed")
def test_the_report_renders_in_headless_chromium(finished):
    """Every image decodes and the page logs no console error (CI installs chromium, so it must run there)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out, _, _ = finished
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get((out / "report.html").resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0]);"
        )
        assert len(images) >= 5 and all(ok for _, ok in images), images
        assert "Summary" in driver.find_element("tag name", "body").text
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
