"""Logged data from outside the simulator: map a retailer's own campaign export onto the contract.

The export needs one row per decision with a customer id column, an action column (any labels), a reward
column, and either a propensity column or one constant propensity (e.g. a uniform A/B split: 0.25 for
four arms). Context columns are encoded for the estimators: numeric ones standardised (mean 0, sd 1),
categorical ones (strings, or listed in ``categorical``) one-hot encoded as ``<column>=<value>``. The
encoding is recorded in the returned data's metadata so the same transform can be applied later.

A mapping file is YAML with the keys of :class:`LogMapping`, e.g.::

    id: customer
    action: arm
    reward: margin_eur
    propensity: 0.25
    time: sent_at
    context: [rfm_segment, days_since_order, orders_12m]

For offline RL the export can also be read as trajectories (``trajectories: true``): each customer's
rows (or each ``episode``'s, e.g. a quarter's campaign) in time order are one episode, one step per
logged decision; ``episode_id``, ``step``, the next decision's features (``next_<feature>``) and the end
of each episode are derived from consecutive rows. The last row of an episode is truncated (nothing is
bootstrapped past it) unless ``terminated`` or ``unsubscribed`` flags the customer leaving there; rows
after such a flag are refused. Export every decision, "no email" days included, for the steps to be
the days the policy will decide on.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nextbest.errors import DataError, NextbestError
from nextbest.logs import LoggedFeedback, positions_in_runs, read_table, validate_logs

__all__ = ["LogMapping", "import_logs"]


@dataclass(frozen=True, kw_only=True)
class LogMapping:
    """Which columns of an export play which role.

    Attributes:
        id: customer id column.
        action: action column (labels; sorted label order gives the action ids unless ``actions``).
        reward: reward column (numbers).
        propensity: a propensity column name, or one number in (0, 1] for every row.
        time: decision time column; without it, a customer's rows are taken in file order, one day apart.
        context: context columns; default: every other column.
        categorical: context columns to one-hot encode even if numeric; strings always are.
        actions: the action catalog in id order; default: the sorted distinct labels of ``action``.
        trajectories: derive episodes, steps and next-state features from consecutive rows (see above).
        episode: episode id column (with ``trajectories``); default: one episode per customer.
        terminated: true/false column: the customer left (churned) after this decision.
        unsubscribed: true/false column: the customer unsubscribed after this decision (kept as
            ``unsubscribed`` for the unsubscribe penalty of offline RL; ends the episode like ``terminated``).
    """

    id: str
    action: str
    reward: str
    propensity: str | float
    time: str | None = None
    context: tuple[str, ...] | None = None
    categorical: tuple[str, ...] = ()
    actions: tuple[str, ...] | None = None
    trajectories: bool = False
    episode: str | None = None
    terminated: str | None = None
    unsubscribed: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.propensity, bool) or (
            isinstance(self.propensity, (int, float)) and not 0 < self.propensity <= 1
        ):
            raise NextbestError(f"propensity: a constant propensity must be in (0, 1], got {self.propensity!r}")
        if not isinstance(self.trajectories, bool):
            raise NextbestError(f"trajectories: expected true or false, got {self.trajectories!r}")
        if self.episode is not None and not self.trajectories:
            raise NextbestError("episode: an episode column needs trajectories: true")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogMapping:
        """Read a YAML mapping file; unknown keys and wrong types are named."""
        path = Path(path)
        if not path.is_file():
            raise NextbestError(f"{path}: no such mapping file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise NextbestError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
        if not isinstance(data, dict):
            raise NextbestError(f"{path}: expected a mapping of role -> column")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise NextbestError(f"{path}: {key}: unknown key (allowed: {', '.join(sorted(known))})")
        for key in ("id", "action", "reward", "propensity"):
            if key not in data:
                raise NextbestError(f"{path}: {key}: missing required key")
        for key in ("context", "categorical", "actions"):
            if key in data and data[key] is not None:
                if not isinstance(data[key], list):
                    raise NextbestError(f"{path}: {key}: expected a list of column names")
                data[key] = tuple(str(v) for v in data[key])
        try:
            return cls(**data)
        except NextbestError as exc:
            raise NextbestError(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> LogMapping:
        """A copy with some roles changed (``None`` values are ignored: keep the mapping's)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def import_logs(path: str | os.PathLike[str], mapping: LogMapping) -> LoggedFeedback:
    """Read an export, map its columns onto the logged-feedback contract and validate it.

    Raises:
        DataError: a mapped column is missing, or a value is invalid; the message names the file, the
            column (as named in the export) and the rows.
    """
    raw, _ = read_table(path)
    source = str(path)
    if raw.empty:
        raise DataError(f"{source}: no rows")
    roles = [mapping.id, mapping.action, mapping.reward, mapping.time]
    roles += [mapping.episode, mapping.terminated, mapping.unsubscribed]
    if isinstance(mapping.propensity, str):
        roles.append(mapping.propensity)
    for column in [c for c in roles if c is not None] + list(mapping.context or ()) + list(mapping.categorical):
        if column not in raw.columns:
            raise DataError(f"{source}: missing column {column!r} (columns: {', '.join(map(str, raw.columns))})")

    labels = raw[mapping.action]
    if labels.isna().any():
        raise DataError(f"{source}: column {mapping.action!r}, row {int(np.flatnonzero(labels.isna())[0])}: missing")
    labels = labels.astype(str)
    catalog = tuple(mapping.actions) if mapping.actions else tuple(sorted(labels.unique()))
    index = {name: i for i, name in enumerate(catalog)}
    unknown = ~labels.isin(list(index))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{source}: column {mapping.action!r}, row {row}: {labels.iloc[row]!r} is not in the actions list"
        )

    frame = pd.DataFrame({"customer_id": raw[mapping.id].to_numpy()})
    if mapping.time is not None:
        times = pd.to_datetime(raw[mapping.time], errors="coerce")
        if times.isna().any():
            row = int(np.flatnonzero(times.isna())[0])
            raise DataError(f"{source}: column {mapping.time!r}, row {row}: not a date-time")
        frame["decision_time"] = times.to_numpy()
    else:
        order = raw.groupby(mapping.id, sort=False).cumcount().to_numpy()
        frame["decision_time"] = pd.Timestamp("2000-01-01") + pd.to_timedelta(order, unit="D")
    frame["action"] = labels.map(index).to_numpy(dtype=np.int64)
    frame["action_name"] = labels.to_numpy()
    if isinstance(mapping.propensity, str):
        frame["propensity"] = pd.to_numeric(raw[mapping.propensity], errors="coerce").to_numpy()
    else:
        frame["propensity"] = float(mapping.propensity)
    frame["reward"] = pd.to_numeric(raw[mapping.reward], errors="coerce").to_numpy()

    context = mapping.context
    if context is None:
        used = {c for c in roles if c is not None}
        context = tuple(c for c in raw.columns if c not in used)
    encoded, encoding = _encode(raw, context, set(mapping.categorical), source)
    frame = pd.concat([frame, encoded], axis=1)
    for role in ("terminated", "unsubscribed"):
        column = getattr(mapping, role)
        if column is not None:
            frame[role] = _flag(raw[column], column, source)
    if mapping.trajectories:
        frame = _trajectories(frame, raw, mapping, list(encoded.columns), source)
    metadata = {
        "source_columns": {"id": mapping.id, "action": mapping.action, "reward": mapping.reward},
        "features": list(encoded.columns),
        "action_names": list(catalog),
        "encoding": encoding,
        "policy": "logged",
    }
    renamed = {
        "customer_id": mapping.id,
        "action": mapping.action,
        "reward": mapping.reward,
        "propensity": mapping.propensity if isinstance(mapping.propensity, str) else "propensity",
        "decision_time": mapping.time or "decision_time",
        "terminated": mapping.terminated or "terminated",
        "unsubscribed": mapping.unsubscribed or "unsubscribed",
    }
    try:
        return validate_logs(frame, source, metadata)
    except DataError as exc:
        message = str(exc)
        for ours, theirs in renamed.items():  # name the export's own columns in the message
            message = message.replace(f"column '{ours}'", f"column '{theirs}'")
        raise DataError(message) from None


def _encode(
    raw: pd.DataFrame, columns: tuple[str, ...], categorical: set[str], source: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Standardise numeric context columns and one-hot encode categorical ones."""
    out: dict[str, np.ndarray] = {}
    encoding: dict[str, Any] = {}
    for column in columns:
        values = raw[column]
        if column in categorical or not pd.api.types.is_numeric_dtype(values):
            if values.isna().any():
                row = int(np.flatnonzero(values.isna())[0])
                raise DataError(f"{source}: column {column!r}, row {row}: missing category")
            levels = sorted(values.astype(str).unique())
            for level in levels:
                out[f"{column}={level}"] = (values.astype(str) == level).to_numpy(dtype=np.float64)
            encoding[column] = {"kind": "one-hot", "levels": levels}
        else:
            numbers = values.to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(numbers))
            if bad.size:
                raise DataError(f"{source}: column {column!r}, row {int(bad[0])}: must be a finite number")
            mean, sd = float(numbers.mean()), float(numbers.std())
            out[column] = (numbers - mean) / (sd if sd > 0 else 1.0)
            encoding[column] = {"kind": "standardised", "mean": mean, "sd": sd}
    return pd.DataFrame(out, index=raw.index), encoding


def _flag(values: pd.Series, column: str, source: str) -> np.ndarray:
    """A true/false column (booleans, 0/1 or the words true/false) as bool."""
    words = values.astype(str).str.strip().str.lower()
    truth = words.map({"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False})
    if truth.isna().any():
        row = int(np.flatnonzero(truth.isna())[0])
        raise DataError(f"{source}: column {column!r}, row {row}: {values.iloc[row]!r} is not true/false")
    return truth.to_numpy(dtype=bool)


def _trajectories(
    frame: pd.DataFrame, raw: pd.DataFrame, mapping: LogMapping, features: list[str], source: str
) -> pd.DataFrame:
    """Add ``episode_id``, ``step``, ``next_<feature>``, ``terminated``/``truncated``/``done`` from each
    episode's rows in time order (file order breaks no ties: equal times are refused by validation).
    Rows keep their place, so errors name the export's rows."""
    episode = raw[mapping.id].astype(str)
    if mapping.episode is not None:
        missing = raw[mapping.episode].isna()
        if missing.any():
            raise DataError(f"{source}: column {mapping.episode!r}, row {int(np.flatnonzero(missing)[0])}: missing")
        episode = episode + "/" + raw[mapping.episode].astype(str)
    code = pd.factorize(episode)[0]
    times = frame["decision_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((np.arange(len(frame)), times, code))
    last_sorted = np.r_[code[order][1:] != code[order][:-1], True]
    successor = np.empty(len(frame), dtype=np.int64)
    successor[order] = np.where(last_sorted, order, np.r_[order[1:], 0])  # the last row is its own successor
    last = np.empty(len(frame), dtype=bool)
    last[order] = last_sorted
    ended = np.zeros(len(frame), dtype=bool)
    for role in ("terminated", "unsubscribed"):
        if role in frame.columns:
            ended |= frame[role].to_numpy(dtype=bool)
    steps = np.empty(len(frame), dtype=np.int64)
    steps[order] = positions_in_runs(code[order])
    values = frame[features].to_numpy()
    derived = {
        "episode_id": episode.to_numpy(),
        "step": steps,
        **{f"next_{f}": values[successor, i] for i, f in enumerate(features)},
        "terminated": ended,
        "truncated": last & ~ended,
        "done": last | ended,
    }
    return frame.drop(columns=[c for c in derived if c in frame.columns]).assign(**derived)
