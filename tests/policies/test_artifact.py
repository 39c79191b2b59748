"""The policy artifact: save/load parity for every kind, and refusal of anything that cannot be trusted."""

import io
import json
import zipfile

import numpy as np
import pytest

from nextbest.policies import ArtifactError, load, save_policy

FEATURES = ["recency_days", "frequency", "consent"]
ACTIONS = ["no_email", "newsletter@morning", "pct10@evening"]
RNG = np.random.default_rng(0)


def _save(path, kind, **extra):
    arrays = {
        "linear": {"coef": RNG.normal(size=(3, 3)), "intercept": RNG.normal(size=3)},
        "mlp": {
            "w0": RNG.normal(size=(3, 8)),
            "b0": RNG.normal(size=8),
            "w1": RNG.normal(size=(8, 3)),
            "b1": RNG.normal(size=3),
        },
        "table": {"scores": RNG.normal(size=(3, 3))},
    }[kind]
    table = {"table_feature": "recency_days", "table_edges": [30, 90]} if kind == "table" else {}
    return save_policy(
        path,
        kind=kind,
        name=f"test-{kind}",
        features=FEATURES,
        actions=ACTIONS,
        arrays=arrays,
        feature_mean=[60, 2, 0.5],
        feature_scale=[40, 1.5, 0.5],
        **table,
        **extra,
    ), arrays


def _reference(kind, arrays, x):
    """The policy's scores computed by hand, independently of the runtime."""
    if kind == "table":
        return arrays["scores"][np.searchsorted([30, 90], x[:, 0], side="right")]
    h = (x - np.array([60, 2, 0.5])) / np.array([40, 1.5, 0.5])
    if kind == "linear":
        return h @ arrays["coef"] + arrays["intercept"]
    return np.tanh(h @ arrays["w0"] + arrays["b0"]) @ arrays["w1"] + arrays["b1"]


@pytest.mark.parametrize("kind", ["linear", "mlp", "table"])
def test_round_trip_parity(tmp_path, kind):
    path, arrays = _save(tmp_path / "p.zip", kind, epsilon=0.1, temperature=0.5)
    policy = load(path)
    x = np.column_stack([RNG.uniform(0, 200, 50), RNG.poisson(2, 50), RNG.integers(0, 2, 50)])
    tolerance = 1e-5 if kind == "mlp" else 1e-12  # MLPs run in float32, like the networks they come from
    np.testing.assert_allclose(policy.scores(x), _reference(kind, arrays, x), rtol=tolerance, atol=tolerance)
    mask = np.ones((50, 3), dtype=bool)
    mask[::3, 1:] = False
    probs = policy.action_probs(x, mask)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~mask] == 0).all()
    z = np.where(mask, _reference(kind, arrays, x) / 0.5, -np.inf)
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    uniform = mask / mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, 0.9 * soft + 0.1 * uniform, rtol=tolerance * 100, atol=1e-9)


def _rewrite(path, edit):
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _set_manifest(members, **changes):
    manifest = json.loads(members["manifest.json"])
    manifest.update(changes)
    members["manifest.json"] = json.dumps(manifest).encode()


def _tamper_member(members):
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 3)))
    members["coef.npy"] = buf.getvalue()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_tamper_member, "member 'coef.npy' was altered"),
        (lambda m: m.pop("intercept.npy"), "member 'intercept.npy' is missing"),
        (lambda m: m.update({"extra.npy": b"x"}), "member 'extra.npy' is not in the manifest"),
        (lambda m: _set_manifest(m, format_version=2), "unknown format version 2"),
        (lambda m: _set_manifest(m, format="other"), "not a nextbest policy"),
        (lambda m: m.pop("manifest.json"), "no manifest.json"),
    ],
)
def test_untrusted_files_are_refused(tmp_path, edit, message):
    path, _ = _save(tmp_path / "p.zip", "linear")
    _rewrite(path, edit)
    with pytest.raises(ArtifactError, match=message):
        load(path)


def test_not_a_zip_and_missing(tmp_path):
    (tmp_path / "p.zip").write_text("hello")
    with pytest.raises(ArtifactError, match="unreadable policy file"):
        load(tmp_path / "p.zip")
    with pytest.raises(ArtifactError, match="no such policy file"):
        load(tmp_path / "none.zip")


def test_signature(tmp_path, monkeypatch):
    path, _ = _save(tmp_path / "signed.zip", "linear", key="s3cret")
    assert load(path, key="s3cret").name == "test-linear"
    with pytest.raises(ArtifactError, match="signature missing or invalid"):
        load(path, key="other")
    unsigned, _ = _save(tmp_path / "plain.zip", "linear")
    monkeypatch.setenv("NEXTBEST_POLICY_KEY", "s3cret")
    with pytest.raises(ArtifactError, match="signature missing or invalid"):
        load(unsigned)
    assert load(path).name == "test-linear"


def test_shapes_are_checked_before_writing(tmp_path):
    with pytest.raises(ArtifactError, match=r"coef has shape \(2, 3\), expected \(3, 3\)"):
        save_policy(
            tmp_path / "bad.zip",
            kind="linear",
            name="x",
            features=FEATURES,
            actions=ACTIONS,
            arrays={"coef": np.zeros((2, 3)), "intercept": np.zeros(3)},
        )
    assert not (tmp_path / "bad.zip").exists()


def test_reading_picks_columns_by_name(tmp_path):
    path, arrays = _save(tmp_path / "p.zip", "linear")
    policy = load(path)
    wide = ["tenure_days", "consent", "recency_days", "frequency"]
    x = np.column_stack([np.arange(5.0), np.ones(5), np.arange(5.0) * 10, np.arange(5.0)])
    mask = np.ones((5, 3), dtype=bool)
    np.testing.assert_array_equal(
        policy.reading(wide).action_probs(x, mask), policy.action_probs(x[:, [2, 3, 1]], mask)
    )
    with pytest.raises(ArtifactError, match="reads feature 'frequency'"):
        policy.reading(["recency_days", "consent"])


def test_support_network_keeps_scores_to_the_supported_actions(tmp_path):
    rng = np.random.default_rng(0)
    layers = {"w0": rng.normal(size=(2, 4)), "b0": np.zeros(4), "w1": rng.normal(size=(4, 3)), "b1": np.zeros(3)}
    behaviour = {"w0": np.zeros((2, 3)), "b0": np.log([0.7, 0.25, 0.05])}  # action 2 is rare in the data
    path = save_policy(
        tmp_path / "bcq.zip",
        kind="mlp",
        name="bcq",
        features=["x", "y"],
        actions=["no_email", "a", "b"],
        arrays=layers,
        activation="relu",
        support={"threshold": 0.3, "arrays": behaviour},
    )
    policy = load(path)
    x = rng.normal(size=(200, 2))
    mask = np.ones((200, 3), dtype=bool)
    assert (policy.action_probs(x, mask)[:, 2] == 0).all()  # 0.05 < 0.3 * 0.7: never chosen
    assert policy.action_probs(x, mask)[:, 1].max() == 1  # 0.25 >= 0.21: still in play
    for i in range(10):
        np.testing.assert_array_equal(policy.decide_one(x[i], True)[1], policy.action_probs(x[i : i + 1], mask[:1])[0])
    with pytest.raises(ArtifactError, match="only MLP policies"):
        save_policy(
            tmp_path / "lin.zip",
            kind="linear",
            name="lin",
            features=["x", "y"],
            actions=["no_email", "a", "b"],
            arrays={"coef": np.zeros((2, 3)), "intercept": np.zeros(3)},
            support={"threshold": 0.3, "arrays": behaviour},
        )
