"""The policy artifact: one zip file, ``manifest.json`` plus ``.npy`` members, no pickle.

The manifest says what the policy reads and does: format version, model kind (``linear``, ``mlp``,
``table``), feature names with the normalisation applied before the model, the action catalog,
exploration (epsilon, softmax temperature), guardrails, a hash of the training data, the OPE estimate at
export, and the sha256 of every member. :func:`load` checks all of it and refuses a tampered file, an
unknown format version or a missing member. With a key (argument or ``NEXTBEST_POLICY_KEY``), the
manifest must carry a valid HMAC-SHA256 signature; since the manifest holds every member's hash, the
signature covers the whole file.

Only numpy and the standard library are used: the live send path loads this without torch.

Example:
    >>> import numpy as np
    >>> from nextbest.policies.artifact import save_policy, load
    >>> save_policy("p.zip", kind="linear", name="demo", features=["x"], actions=["no_email", "newsletter"],
    ...             arrays={"coef": np.array([[0.0, 1.0]]), "intercept": np.zeros(2)})  # doctest: +SKIP
    >>> policy = load("p.zip")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.policy import BasePolicy, exploration_probs

__all__ = ["FORMAT", "FORMAT_VERSION", "KEY_ENV", "ArtifactError", "LoadedPolicy", "load", "save_policy"]

FORMAT = "nextbest-policy"
FORMAT_VERSION = 1
KEY_ENV = "NEXTBEST_POLICY_KEY"
KINDS = ("linear", "mlp", "table")
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}
#: subtracted from the score of an action outside an MLP's support network's support (see ``save_policy``)
UNSUPPORTED = 1e6


class ArtifactError(NextbestError):
    """A policy file that cannot be trusted or read; the message names the file and the problem."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def _key(key: str | bytes | None) -> bytes | None:
    if key is None:
        key = os.environ.get(KEY_ENV)
    if key is None or key == "":
        return None
    return key.encode() if isinstance(key, str) else key


def save_policy(
    path: str | os.PathLike[str],
    *,
    kind: str,
    name: str,
    features: Sequence[str],
    actions: Sequence[str],
    arrays: Mapping[str, np.ndarray],
    feature_mean: Sequence[float] | None = None,
    feature_scale: Sequence[float] | None = None,
    epsilon: float = 0.0,
    temperature: float | None = None,
    activation: str = "tanh",
    table_feature: str | None = None,
    table_edges: Sequence[float] | None = None,
    support: Mapping[str, Any] | None = None,
    guardrails: Mapping[str, Any] | None = None,
    training_data_sha256: str | None = None,
    ope: Mapping[str, Any] | None = None,
    version: str = "1",
    key: str | bytes | None = None,
) -> Path:
    """Write a policy artifact atomically (temp file + rename).

    Args:
        kind: ``"linear"`` (arrays ``coef`` ``(d, k)``, ``intercept`` ``(k,)``), ``"mlp"`` (arrays
            ``w0, b0, w1, b1, ...``; hidden layers use ``activation``, the last layer gives scores) or
            ``"table"`` (array ``scores`` ``(len(table_edges) + 1, k)`` indexed by the bucket of
            ``table_feature``).
        features: names of the raw features, in the order the policy reads them.
        actions: action catalog in id order (action 0 is "no email").
        feature_mean, feature_scale: normalisation ``(x - mean) / scale`` before the model (default none).
        epsilon, temperature: exploration: probabilities are the softmax of scores / temperature
            (argmax when ``None``), mixed with uniform over the allowed actions with weight ``epsilon``.
        support: MLPs only: ``{"threshold": tau, "arrays": {"w0": ..., "b0": ..., ...}}``, a second MLP
            (same activation) giving behaviour-model logits ``g``; an action with
            ``softmax(g)[a] < tau * max softmax(g)`` loses :data:`UNSUPPORTED` from its score, so the
            policy keeps to actions the training data showed (batch-constrained Q-learning).
        guardrails, training_data_sha256, ope: recorded in the manifest.
        key: sign the manifest with HMAC-SHA256 (default: ``NEXTBEST_POLICY_KEY`` if set).
    """
    if kind not in KINDS:
        raise ArtifactError(f"{path}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    d = len(features)
    mean = np.zeros(d) if feature_mean is None else np.asarray(feature_mean, dtype=np.float64)
    scale = np.ones(d) if feature_scale is None else np.asarray(feature_scale, dtype=np.float64)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "kind": kind,
        "features": {"names": list(features), "mean": mean.tolist(), "scale": scale.tolist()},
        "actions": list(actions),
        "exploration": {"epsilon": float(epsilon), "temperature": temperature},
        "guardrails": dict(guardrails or {}),
        "training_data_sha256": training_data_sha256,
        "ope": dict(ope) if ope is not None else None,
        "members": {},
    }
    if kind == "mlp":
        manifest["activation"] = activation
    arrays = dict(arrays)
    if support is not None:
        if kind != "mlp":
            raise ArtifactError(f"{path}: only MLP policies take a support network")
        manifest["support"] = {"threshold": float(support["threshold"])}
        arrays.update({f"support_{m}": a for m, a in support["arrays"].items()})
    if kind == "table":
        manifest["table"] = {"feature": table_feature, "edges": list(table_edges or [])}
    members = {}
    for member, array in arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        members[f"{member}.npy"] = buf.getvalue()
        manifest["members"][f"{member}.npy"] = _sha256(buf.getvalue())
    secret = _key(key)
    if secret is not None:
        manifest["signature"] = hmac.new(secret, _canonical(manifest), hashlib.sha256).hexdigest()
    LoadedPolicy(manifest, {m: np.load(io.BytesIO(b), allow_pickle=False) for m, b in members.items()}, str(path))
    path = Path(path)
    if not path.parent.is_dir():
        raise ArtifactError(f"{path}: output directory {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=2))
            for member, data in members.items():
                zf.writestr(member, data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike[str], *, key: str | bytes | None = None) -> LoadedPolicy:
    """Read and verify a policy artifact.

    Raises:
        ArtifactError: not a zip, no or unreadable manifest, unknown format or version, a member missing,
            extra or altered (sha256 mismatch), a bad or missing signature when a key is set, or arrays
            whose shapes do not fit the manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such policy file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "manifest.json" not in names:
                raise ArtifactError(f"{path}: not a nextbest policy (no manifest.json)")
            manifest = json.loads(zf.read("manifest.json"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ArtifactError(f"{path}: not a nextbest policy (format is not {FORMAT!r})")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ArtifactError(
                    f"{path}: unknown format version {manifest.get('format_version')!r} "
                    f"(this nextbest reads version {FORMAT_VERSION})"
                )
            declared = manifest.get("members", {})
            missing = sorted(set(declared) - names)
            if missing:
                raise ArtifactError(f"{path}: member {missing[0]!r} is missing")
            extra = sorted(names - set(declared) - {"manifest.json"})
            if extra:
                raise ArtifactError(f"{path}: member {extra[0]!r} is not in the manifest")
            arrays = {}
            for member, digest in declared.items():
                data = zf.read(member)
                if _sha256(data) != digest:
                    raise ArtifactError(f"{path}: member {member!r} was altered (sha256 mismatch)")
                arrays[member] = np.load(io.BytesIO(data), allow_pickle=False)
    except (zipfile.BadZipFile, json.JSONDecodeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{path}: unreadable policy file: {exc}") from None
    secret = _key(key)
    if secret is not None:
        expected = hmac.new(secret, _canonical(manifest), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(str(manifest.get("signature", "")), expected):
            raise ArtifactError(f"{path}: signature missing or invalid for the configured key")
    return LoadedPolicy(manifest, arrays, str(path))


class LoadedPolicy(BasePolicy):
    """A verified artifact as a :class:`~nextbest.Policy`: raw features in, action probabilities out.

    Attributes:
        manifest: the manifest as read.
        features: the raw feature names the policy reads, in order.
        actions: the action catalog.
    """

    def __init__(self, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray], source: str) -> None:
        self.manifest = dict(manifest)
        self.source = source
        try:
            self.name = str(manifest["name"])
            self.kind = str(manifest["kind"])
            spec = manifest["features"]
            self.features = tuple(spec["names"])
            self._mean = np.asarray(spec["mean"], dtype=np.float64)
            self._scale = np.asarray(spec["scale"], dtype=np.float64)
            self.actions = tuple(manifest["actions"])
            exploration = manifest["exploration"]
            self.epsilon = float(exploration["epsilon"])
            self.temperature = exploration["temperature"]
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{source}: manifest lacks {exc}") from None
        d, k = len(self.features), len(self.actions)
        if self._mean.shape != (d,) or self._scale.shape != (d,) or (self._scale == 0).any():
            raise ArtifactError(f"{source}: feature normalisation must give {d} means and non-zero scales")
        if not 0 <= self.epsilon <= 1 or (self.temperature is not None and not float(self.temperature) > 0):
            raise ArtifactError(f"{source}: exploration needs 0 <= epsilon <= 1 and temperature > 0")
        arrays = {m.removesuffix(".npy"): a for m, a in arrays.items()}
        self.n_actions = k
        if self.kind == "linear":
            self._layers = [(self._need(arrays, "coef", (d, k)), self._need(arrays, "intercept", (k,)))]
        elif self.kind == "mlp":
            self._layers = self._mlp(arrays, "", d, k)
            activation = manifest.get("activation", "tanh")
            if activation not in ACTIVATIONS:
                raise ArtifactError(f"{source}: unknown activation {activation!r}")
            self._activation = ACTIVATIONS[activation]
        elif self.kind == "table":
            table = manifest.get("table") or {}
            if table.get("feature") not in self.features:
                raise ArtifactError(f"{source}: the table's feature must be one of the policy's features")
            self._table_column = self.features.index(table["feature"])
            self._edges = np.asarray(table.get("edges", []), dtype=np.float64)
            self._scores = self._need(arrays, "scores", (self._edges.size + 1, k))
        else:
            raise ArtifactError(f"{source}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        self._support: list[tuple[np.ndarray, np.ndarray]] = []
        if "support" in manifest:
            try:
                threshold = float(manifest["support"]["threshold"])
            except (KeyError, TypeError, ValueError):
                raise ArtifactError(f"{source}: support needs a numeric threshold") from None
            if self.kind != "mlp" or not 0 < threshold <= 1:
                raise ArtifactError(f"{source}: a support network needs an MLP policy and 0 < threshold <= 1")
            self._support = self._mlp(arrays, "support_", d, k)
            self._log_threshold = float(np.log(threshold))
        if self.kind != "table":
            # MLPs run in float32 (like the torch networks they come from): twice the rows per second; the
            # scores are then taken to float64 for the probabilities, identically on every path.
            self._dtype = np.float32 if self.kind == "mlp" else np.float64
            self._layers = self._fold(self._layers)
            self._support = self._fold(self._support) if self._support else []

    def _mlp(
        self, arrays: Mapping[str, np.ndarray], prefix: str, d: int, k: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        layers, width, i = [], d, 0
        while f"{prefix}w{i}" in arrays:
            w = arrays[f"{prefix}w{i}"]
            if w.ndim != 2 or w.shape[0] != width:
                raise ArtifactError(f"{self.source}: {prefix}w{i} has shape {w.shape}, expected ({width}, ...)")
            layers.append((w.astype(np.float64), self._need(arrays, f"{prefix}b{i}", (w.shape[1],))))
            width, i = w.shape[1], i + 1
        if not layers or width != k:
            raise ArtifactError(f"{self.source}: the {prefix}MLP's last layer must have {k} outputs (one per action)")
        return layers

    def _fold(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The normalisation folded into the first layer, in the run dtype:
        (x - mean) / scale @ W + b == x @ (W / scale) + (b - (mean / scale) @ W), one matmul fewer."""
        w, b = layers[0]
        layers = [(w / self._scale[:, None], b - (self._mean / self._scale) @ w), *layers[1:]]
        return [(w.astype(self._dtype), b.astype(self._dtype)) for w, b in layers]

    def _forward(self, layers: list[tuple[np.ndarray, np.ndarray]], h: np.ndarray) -> np.ndarray:
        """Layers with the activation between them (a linear policy is one layer)."""
        last = len(layers) - 1
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < last:
                h = self._activation(h)
        return h.astype(np.float64, copy=False)

    def _constrain(self, scores: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Scores of actions outside the support network's support, lowered by ``UNSUPPORTED``."""
        g = self._forward(self._support, h)
        outside = g < g.max(axis=-1, keepdims=True) + self._log_threshold
        return np.where(outside, scores - UNSUPPORTED, scores)

    def _need(self, arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in arrays:
            raise ArtifactError(f"{self.source}: member '{name}.npy' is missing")
        if arrays[name].shape != shape:
            raise ArtifactError(f"{self.source}: {name} has shape {arrays[name].shape}, expected {shape}")
        return arrays[name].astype(np.float64)

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, k)`` action scores for raw features ``obs`` ``(n, d)`` in :attr:`features` order."""
        x = np.asarray(obs, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ArtifactError(f"{self.source}: expected features of shape (n, {len(self.features)}), got {x.shape}")
        if self.kind == "table":
            bucket = np.searchsorted(self._edges, x[:, self._table_column], side="right")
            return self._scores[bucket]
        h = x.astype(self._dtype, copy=False)
        scores = self._forward(self._layers, h)
        return self._constrain(scores, h) if self._support else scores

    def decide_one(self, x: np.ndarray, may_email: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, probabilities)`` for one customer's raw features ``(d,)``: the same numbers as
        :meth:`action_probs` on one row whose mask allows everything or only "no email", written for a
        single row because the generic masked path costs ~10x more numpy calls on the live-send path."""
        if self.kind == "table":
            scores = self._scores[int(np.searchsorted(self._edges, x[self._table_column], side="right"))]
        else:
            h = x.astype(self._dtype, copy=False)
            scores = self._forward(self._layers, h)
            if self._support:
                scores = self._constrain(scores, h)
        k = self.n_actions
        probs = np.zeros(k)
        if not may_email:
            probs[0] = 1.0
            return scores, probs
        if self.temperature is None:
            probs[int(np.argmax(scores))] = 1.0
        else:
            z = scores / float(self.temperature)
            z = np.exp(z - z.max())
            probs = z / z.sum()
        if self.epsilon > 0:
            probs = probs * (1 - self.epsilon) + self.epsilon / k
        return scores, probs

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Greedy (or softmax at ``temperature``) over the allowed actions, mixed with uniform by epsilon."""
        return exploration_probs(self.scores(obs), mask, self.temperature, self.epsilon)

    def reading(self, features: Sequence[str]) -> BasePolicy:
        """This policy as one that reads observations with columns ``features`` (e.g. logged contexts),
        picking its own features by name.

        Raises:
            ArtifactError: a feature the policy needs is not among ``features``.
        """
        missing = [f for f in self.features if f not in features]
        if missing:
            raise ArtifactError(f"{self.source}: the policy reads feature {missing[0]!r}, which the data do not have")
        return _Columns(self, [list(features).index(f) for f in self.features])


class _Columns(BasePolicy):
    """A policy reading a subset of the columns, in its own order."""

    def __init__(self, policy: LoadedPolicy, columns: list[int]) -> None:
        self.policy = policy
        self.columns = columns
        self.name = policy.name

    def action_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.policy.action_probs(np.asarray(obs)[:, self.columns], mask)
