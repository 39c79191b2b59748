"""Logs from outside the simulator: mapping, encoding, validation that names the export's columns."""

import numpy as np
import pandas as pd
import pytest

from nextbest import DataError, NextbestError
from nextbest.external import LogMapping, import_logs
from nextbest.scripts.cli import main


@pytest.fixture
def export(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "customer": np.arange(n) % 100,
            "sent_at": pd.Timestamp("2026-09-01") + pd.to_timedelta(np.arange(n) // 100 * 7, unit="D"),
            "arm": rng.choice(["control", "newsletter", "pct10"], n),
            "margin_eur": rng.gamma(1.0, 5.0, n).round(2),
            "rfm_segment": rng.choice(["vip", "regular"], n),
            "days_since_order": rng.integers(0, 200, n),
        }
    )
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path, frame


MAPPING = LogMapping(id="customer", action="arm", reward="margin_eur", propensity=1 / 3, time="sent_at")


def test_import_maps_and_encodes(export):
    path, frame = export
    logs = import_logs(path, MAPPING)
    assert logs.action_names == ("control", "newsletter", "pct10")
    assert logs.features == ("rfm_segment=regular", "rfm_segment=vip", "days_since_order")
    x = logs.contexts
    assert x[:, 2].mean() == pytest.approx(0, abs=1e-9) and x[:, 2].std() == pytest.approx(1)
    np.testing.assert_array_equal(x[:, 1], (frame["rfm_segment"] == "vip").to_numpy())
    np.testing.assert_allclose(logs.propensities, 1 / 3)
    np.testing.assert_array_equal(np.asarray(logs.action_names)[logs.actions], frame["arm"])
    assert logs.metadata["encoding"]["days_since_order"]["kind"] == "standardised"


def test_mapping_file(tmp_path, export):
    path, _ = export
    spec = tmp_path / "map.yaml"
    spec.write_text(
        "id: customer\naction: arm\nreward: margin_eur\npropensity: 0.3333333333\ntime: sent_at\n"
        "context: [rfm_segment]\nactions: [control, newsletter, pct10]\n"
    )
    logs = import_logs(path, LogMapping.load(spec))
    assert logs.features == ("rfm_segment=regular", "rfm_segment=vip")
    spec.write_text("id: customer\naction: arm\nreward: margin_eur\npropensity: 0.3\ncolour: red\n")
    with pytest.raises(NextbestError, match="colour: unknown key"):
        LogMapping.load(spec)
    spec.write_text("id: customer\naction: arm\nreward: margin_eur\npropensity: 1.5\n")
    with pytest.raises(NextbestError, match=r"propensity: a constant propensity must be in \(0, 1\]"):
        LogMapping.load(spec)


@pytest.mark.parametrize(
    ("edit", "mapping", "message"),
    [
        (lambda f: f, MAPPING.replace(reward="profit"), "missing column 'profit'"),
        (
            lambda f: f.assign(margin_eur=np.where(np.arange(len(f)) == 7, np.nan, f["margin_eur"])),
            MAPPING,
            "column 'margin_eur', row 7: must be a finite number",
        ),
        (
            lambda f: f.assign(p=np.where(np.arange(len(f)) == 3, 0.0, 0.5)),
            MAPPING.replace(propensity="p"),
            "column 'p', row 3: must be in (0, 1]",
        ),
        (
            lambda f: f.assign(sent_at=np.where(np.arange(len(f)) == 5, "someday", f["sent_at"].astype(str))),
            MAPPING,
            "column 'sent_at', row 5: not a date-time",
        ),
        (lambda f: f, MAPPING.replace(actions=("control", "newsletter")), "'pct10' is not in the actions list"),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), MAPPING, "duplicate (customer_id, decision_time)"),
        (
            lambda f: f.assign(days_since_order=np.where(np.arange(len(f)) == 9, np.inf, f["days_since_order"])),
            MAPPING,
            "column 'days_since_order', row 9: must be a finite number",
        ),
    ],
)
def test_bad_exports_name_file_column_row(tmp_path, export, edit, mapping, message):
    _, frame = export
    path = tmp_path / "bad.csv"
    edit(frame).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        import_logs(path, mapping)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_evaluate_an_export_from_the_command_line(tmp_path, export, capsys):
    path, _ = export
    args = [
        "evaluate",
        "--logs",
        str(path),
        "--id-col",
        "customer",
        "--action-col",
        "arm",
        "--reward-col",
        "margin_eur",
        "--propensity",
        "0.333333333",
        "--time-col",
        "sent_at",
    ]
    assert (
        main(
            [*args, "--policy", "always:pct10", "--policy", "random", "--report", str(tmp_path / "r"), "--n-boot", "30"]
        )
        == 0
    )
    assert "always:pct10: DR" in capsys.readouterr().out
    assert main([*args, "--policy", "bau", "--report", str(tmp_path / "r2")]) == 2
    assert "reads context column 'recency_days'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
