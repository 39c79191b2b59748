"""Logged feedback: one row per decision, in Parquet or CSV, and its validation.

Columns (the contract, see DESIGN.md):

* ``customer_id``, ``decision_time``, ``policy_id``
* context feature columns (any other numeric column, e.g. ``recency_days``)
* ``may_email``: whether guardrails (consent, unsubscribe, frequency cap) allowed any email; optional
* ``action`` (integer id), ``action_name``, ``propensity`` (logging policy's probability of ``action``)
* optionally the full probability vector as ``prob_<action_name>`` columns, in action-id order
* ``reward`` and its parts: ``opened``, ``clicked``, ``purchased``, ``revenue``, ``margin``,
  ``discount_cost``, ``shipping_cost``, ``send_cost``, ``unsubscribed``
* for sequential data: ``episode_id``, ``step``, ``next_<feature>`` for every context feature,
  ``terminated`` (unsubscribe/churn), ``truncated`` (horizon)

Parquet files written by nextbest carry a ``nextbest`` metadata entry (feature and action names,
scenario, policy, seed). Rows in error messages are 0-based data rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import DataError, NextbestError

__all__ = ["LoggedFeedback", "TableWriter", "load_logs", "read_table", "save_table", "validate_logs"]

REQUIRED = ("customer_id", "decision_time", "action", "propensity", "reward")
OUTCOME_PARTS = (
    "opened",
    "clicked",
    "purchased",
    "revenue",
    "margin",
    "discount_cost",
    "shipping_cost",
    "send_cost",
    "unsubscribed",
)
RESERVED = frozenset(
    REQUIRED
    + OUTCOME_PARTS
    + ("policy_id", "action_name", "episode_id", "step", "terminated", "truncated", "done", "may_email")
)
PROB_PREFIX = "prob_"
NEXT_PREFIX = "next_"
_META_KEY = b"nextbest"


@dataclass(frozen=True)
class LoggedFeedback:
    """Validated logged feedback with typed arrays (``n`` rows, ``d`` features, ``k`` actions).

    The array views are computed once and cached; treat them as read-only.

    Attributes:
        frame: the table as read.
        features: context feature column names (``d``).
        action_names: action names in id order (``k``), from metadata or ``prob_`` columns; empty if
            unknown.
        metadata: what the writer recorded (scenario, policy, seed), possibly empty.
        source: file the data came from, for messages.
    """

    frame: pd.DataFrame
    features: tuple[str, ...]
    action_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_actions(self) -> int:
        return len(self.action_names) if self.action_names else int(self.frame["action"].max()) + 1

    @cached_property
    def contexts(self) -> np.ndarray:
        """``(n, d)`` float64 context features."""
        return self.frame[list(self.features)].to_numpy(dtype=np.float64)

    @cached_property
    def actions(self) -> np.ndarray:
        """``(n,)`` int64 action ids."""
        return self.frame["action"].to_numpy(dtype=np.int64)

    @cached_property
    def rewards(self) -> np.ndarray:
        """``(n,)`` float64 rewards (currency)."""
        return self.frame["reward"].to_numpy(dtype=np.float64)

    @cached_property
    def propensities(self) -> np.ndarray:
        """``(n,)`` logging probability of the logged action."""
        return self.frame["propensity"].to_numpy(dtype=np.float64)

    @cached_property
    def action_probs(self) -> np.ndarray | None:
        """``(n, k)`` logging policy's full probability vector, if logged."""
        cols = [PROB_PREFIX + a for a in self.action_names]
        if not cols or not all(c in self.frame.columns for c in cols):
            return None
        return self.frame[cols].to_numpy(dtype=np.float64)

    @cached_property
    def allowed(self) -> np.ndarray:
        """``(n, k)`` bool: actions the guardrails allowed at each decision ("no email" always; emails
        where ``may_email``, or everywhere when the logs do not say)."""
        allowed = np.ones((len(self), self.n_actions), dtype=bool)
        if "may_email" in self.frame.columns:
            allowed[:, 1:] = self.frame["may_email"].to_numpy(dtype=bool)[:, None]
        return allowed

    @cached_property
    def clusters(self) -> np.ndarray:
        """``(n,)`` int64 customer index (0..n_customers-1): rows of one customer are not independent."""
        return pd.factorize(self.frame["customer_id"])[0].astype(np.int64)

    @property
    def is_sequential(self) -> bool:
        return {"episode_id", "step"} <= set(self.frame.columns)

    @cached_property
    def next_contexts(self) -> np.ndarray | None:
        """``(n, d)`` next-state features, if logged."""
        cols = [NEXT_PREFIX + f for f in self.features]
        if not all(c in self.frame.columns for c in cols):
            return None
        return self.frame[cols].to_numpy(dtype=np.float64)


def _where(source: str, column: str, rows: np.ndarray | pd.Index, problem: str) -> DataError:
    rows = np.asarray(rows)
    first = ", ".join(str(int(r)) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    plural = "s" if len(rows) > 1 else ""
    return DataError(f"{source}: column {column!r}, row{plural} {first}{more}: {problem}")


def _numeric(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise _where(source, column, bad, "must be a finite number")
    return values


def validate_logs(
    frame: pd.DataFrame, source: str = "<memory>", metadata: dict[str, Any] | None = None
) -> LoggedFeedback:
    """Check a logged-feedback table against the contract and type it.

    Raises:
        DataError: naming the source, column and rows of the first problem found.
    """
    metadata = dict(metadata or {})
    if len(frame) == 0:
        raise DataError(f"{source}: no rows")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing == ["propensity"]:
        raise DataError(
            f"{source}: missing column 'propensity' (the logging policy's probability of each logged action); "
            "for logs from outside nextbest name it with --propensity-col COLUMN, or give one known value "
            "for every row with --propensity P (e.g. 0.25 for a uniform four-way split)"
        )
    if missing:
        raise DataError(f"{source}: missing column {missing[0]!r} (required: {', '.join(REQUIRED)})")
    frame = frame.reset_index(drop=True)

    action_names = tuple(metadata.get("action_names", ()))
    prob_cols = [c for c in frame.columns if c.startswith(PROB_PREFIX)]
    if not action_names and prob_cols:
        action_names = tuple(c[len(PROB_PREFIX) :] for c in prob_cols)

    action = _numeric(frame, "action", source)
    bad = np.flatnonzero((action != np.round(action)) | (action < 0))
    if bad.size:
        raise _where(source, "action", bad, "must be a non-negative integer action id")
    if action_names:
        bad = np.flatnonzero(action >= len(action_names))
        if bad.size:
            raise _where(source, "action", bad, f"outside the catalog of {len(action_names)} actions")

    prop = _numeric(frame, "propensity", source)
    bad = np.flatnonzero((prop <= 0) | (prop > 1))
    if bad.size:
        raise _where(source, "propensity", bad, "must be in (0, 1]")
    _numeric(frame, "reward", source)
    for col in OUTCOME_PARTS:
        if col in frame.columns:
            _numeric(frame, col, source)

    if frame["customer_id"].isna().any():
        raise _where(source, "customer_id", np.flatnonzero(frame["customer_id"].isna()), "missing")
    times = pd.to_datetime(frame["decision_time"], errors="coerce")
    if times.isna().any():
        raise _where(source, "decision_time", np.flatnonzero(times.isna()), "not a date-time")
    frame = frame.assign(decision_time=times, action=action.astype(np.int64))
    dup = frame.duplicated(["customer_id", "decision_time"], keep="first").to_numpy()
    if dup.any():
        raise _where(source, "decision_time", np.flatnonzero(dup), "duplicate (customer_id, decision_time)")

    if action_names and all(PROB_PREFIX + a in frame.columns for a in action_names):
        probs = np.column_stack([_numeric(frame, PROB_PREFIX + a, source) for a in action_names])
        bad = np.flatnonzero((probs < 0).any(axis=1) | (np.abs(probs.sum(axis=1) - 1.0) > 1e-5))
        if bad.size:
            raise _where(source, PROB_PREFIX + "*", bad, "action probabilities must be >= 0 and sum to 1")
        logged = probs[np.arange(len(frame)), frame["action"].to_numpy()]
        bad = np.flatnonzero(np.abs(logged - prop) > 1e-5)
        if bad.size:
            raise _where(source, "propensity", bad, "differs from the probability column of the logged action")

    if {"episode_id", "step"} <= set(frame.columns):
        if frame["episode_id"].isna().any():
            raise _where(source, "episode_id", np.flatnonzero(frame["episode_id"].isna()), "missing")
        step = _numeric(frame, "step", source)
        bad = np.flatnonzero((step != np.round(step)) | (step < 0))
        if bad.size:
            raise _where(source, "step", bad, "must be a non-negative integer")
    for flag in ("terminated", "truncated", "done", "may_email"):
        if flag in frame.columns:
            values = _numeric(frame, flag, source)
            bad = np.flatnonzero((values != 0) & (values != 1))
            if bad.size:
                raise _where(source, flag, bad, "must be true/false (1/0)")

    features = tuple(metadata.get("features", ()))
    if not features:
        features = tuple(
            c
            for c in frame.columns
            if c not in RESERVED
            and not c.startswith((PROB_PREFIX, NEXT_PREFIX))
            and pd.api.types.is_numeric_dtype(frame[c])
        )
    for col in features:
        if col not in frame.columns:
            raise DataError(f"{source}: missing context column {col!r}")
        _numeric(frame, col, source)
    for col in (c for c in frame.columns if c.startswith(NEXT_PREFIX)):
        _numeric(frame, col, source)
    return LoggedFeedback(frame, features, action_names, metadata, source)


def positions_in_runs(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal consecutive ``keys`` (an episode's steps, once its rows are
    sorted together)."""
    index = np.arange(len(keys))
    first = np.r_[True, keys[1:] != keys[:-1]]
    return index - np.maximum.accumulate(np.where(first, index, 0))


def check_episodes(logs: LoggedFeedback) -> tuple[np.ndarray, np.ndarray]:
    """Check that sequential logs hold whole trajectories and return ``(order, terminal)``: the row
    indices sorted by (episode, step), and per row whether it ends its episode (a ``done``,
    ``terminated`` or ``truncated`` flag, or the episode's last logged step).

    Raises:
        DataError: no ``episode_id``/``step`` columns, a step logged twice or missing (an episode must
            run 0, 1, 2, ...), or a step after the one flagged ``terminated`` (or ``done``).
    """
    frame = logs.frame
    if not logs.is_sequential:
        raise DataError(f"{logs.source}: missing column 'episode_id' or 'step' (trajectories are needed)")
    episode = pd.factorize(frame["episode_id"])[0].astype(np.int64)
    step = frame["step"].to_numpy(dtype=np.int64)
    order = np.lexsort((step, episode))
    ep, st = episode[order], step[order]
    expected = positions_in_runs(ep)
    bad = np.flatnonzero(st != expected)
    if bad.size:
        row = int(order[bad[0]])
        problem = "logged twice" if st[bad[0]] < expected[bad[0]] else f"comes after a missing step {expected[bad[0]]}"
        raise _where(
            logs.source,
            "step",
            np.array([row]),
            f"episode {frame['episode_id'].iloc[row]}: step {st[bad[0]]} {problem}",
        )
    last = np.r_[ep[1:] != ep[:-1], True]
    ended = np.zeros(len(frame), dtype=bool)
    for flag in ("terminated", "done"):
        if flag in frame.columns:
            ended |= frame[flag].to_numpy(dtype=bool)
    after = np.flatnonzero(ended[order] & ~last)
    if after.size:
        row = int(order[after[0] + 1])
        raise _where(
            logs.source, "step", np.array([row]), f"episode {frame['episode_id'].iloc[row]} goes on after it ended"
        )
    terminal = np.zeros(len(frame), dtype=bool)
    terminal[order[last]] = True
    if "truncated" in frame.columns:
        terminal |= frame["truncated"].to_numpy(dtype=bool)
    return order, terminal | ended


def load_logs(path: str | os.PathLike[str]) -> LoggedFeedback:
    """Read logged feedback from Parquet or CSV (by suffix) and validate it.

    Raises:
        DataError: the file is missing or unreadable, or a column or row breaks the contract; the
            message names the file, the column and the rows.

    Example:
        >>> import nextbest
        >>> logs = nextbest.load_logs("logs.parquet")  # doctest: +SKIP
        >>> logs.contexts.shape  # doctest: +SKIP
        (30000, 20)
    """
    frame, metadata = read_table(path)
    return validate_logs(frame, str(path), metadata)


def read_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A Parquet or CSV file (by suffix) as a frame, with the nextbest metadata Parquet files carry.

    Raises:
        DataError: the file is missing or cannot be read as its suffix says.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    metadata: dict[str, Any] = {}
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(_META_KEY)
            if raw:
                metadata = json.loads(raw)
            frame = table.to_pandas()
    except (OSError, ValueError) as exc:
        kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
        raise DataError(f"{path}: cannot read as {kind}: {exc}") from None
    return frame, metadata


class TableWriter:
    """Write a table to Parquet (or CSV when the path ends in ``.csv``) in pieces, atomically: the rows
    go to a temp file beside ``path``, renamed over it by :meth:`close`; on error the temp file goes.

    Example:
        >>> with TableWriter("logs.parquet", metadata={"policy": "bau"}) as w:  # doctest: +SKIP
        ...     for day_frame in frames:
        ...         w.write(day_frame)
    """

    def __init__(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise NextbestError(f"{self.path}: output directory {str(self.path.parent)!r} does not exist")
        self.metadata = metadata
        self.rows = 0
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._csv = self.path.suffix.lower() == ".csv"
        self._parquet: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (same columns and dtypes every time)."""
        if self._csv:
            frame.to_csv(self._tmp, index=False, mode="a", header=self.rows == 0)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                schema = table.schema
                if self.metadata:
                    schema = schema.with_metadata({**(schema.metadata or {}), _META_KEY: json.dumps(self.metadata)})
                self._parquet = pq.ParquetWriter(self._tmp, schema)
            self._parquet.write_table(table.replace_schema_metadata(self._parquet.schema.metadata))
        self.rows += len(frame)

    def close(self) -> Path:
        """Finish the file and move it into place."""
        if self._parquet is not None:
            self._parquet.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._parquet is not None:
            self._parquet.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_table(frame: pd.DataFrame, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``frame`` to Parquet, or CSV when the path ends in ``.csv``, atomically (temp file + rename).

    Raises:
        NextbestError: the output directory does not exist.
    """
    with TableWriter(path, metadata) as writer:
        writer.write(frame)
    return writer.path
