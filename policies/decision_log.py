"""The decision log and the loop back to logged feedback.

Every decision the runtime makes is appended to a log, with the customer id replaced by an
HMAC-SHA256 pseudonym (key from ``NEXTBEST_ID_KEY``; the key is never written anywhere). Joined with the
ESP's outcome events (pseudonymised with the same key) over an attribution window, the log becomes
logged feedback in the contract of :mod:`nextbest.logs`: next quarter's training and evaluation data.

Formats: JSON Lines (``.jsonl``, appended line by line) or Parquet (a directory of part files, one per
append, since a Parquet file cannot be appended to).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError

__all__ = ["ID_KEY_ENV", "DecisionLog", "join_outcomes", "pseudonymise", "read_decisions"]

ID_KEY_ENV = "NEXTBEST_ID_KEY"


def _id_key(key: str | bytes | None) -> bytes:
    key = key if key is not None else os.environ.get(ID_KEY_ENV)
    if not key:
        raise NextbestError(f"set {ID_KEY_ENV} (the key that pseudonymises customer ids in decision logs)")
    return key.encode() if isinstance(key, str) else key


def pseudonymise(ids: pd.Series | list[Any], key: str | bytes | None = None) -> np.ndarray:
    """HMAC-SHA256 of each id (as text), hex, first 32 characters; the same id and key give the same pseudonym."""
    secret = _id_key(key)
    return np.array([hmac.new(secret, str(i).encode(), hashlib.sha256).hexdigest()[:32] for i in ids], dtype=object)


class DecisionLog:
    """Append-only log of decisions with pseudonymised customer ids.

    Args:
        path: ``*.jsonl`` file, or a directory for Parquet part files.
        key: pseudonymisation key (default: ``NEXTBEST_ID_KEY``).
    """

    def __init__(self, path: str | os.PathLike[str], key: str | bytes | None = None) -> None:
        self.path = Path(path)
        self._key = _id_key(key)
        self.jsonl = self.path.suffix.lower() == ".jsonl"
        if not self.path.parent.is_dir():
            raise NextbestError(f"{self.path}: directory {str(self.path.parent)!r} does not exist")

    def append(self, decisions: pd.DataFrame) -> int:
        """Append decisions (from ``Runtime.decide_batch(..., with_context=True)``); returns rows written."""
        if "customer_id" not in decisions.columns:
            raise NextbestError("decisions lack column 'customer_id'")
        rows = decisions.copy()
        rows["customer_id"] = pseudonymise(rows["customer_id"], self._key)
        if "decision_time" not in rows.columns:
            rows["decision_time"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        if self.jsonl:
            text = rows.to_json(orient="records", lines=True, date_format="iso")
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text if text.endswith("\n") else text + "\n")
                f.flush()
                os.fsync(f.fileno())
        else:
            self.path.mkdir(exist_ok=True)
            existing = len(list(self.path.glob("part-*.parquet")))
            tmp = self.path / f".part-{existing:06d}.tmp"
            rows.to_parquet(tmp, index=False)
            os.replace(tmp, self.path / f"part-{existing:06d}.parquet")
        return len(rows)


def read_decisions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """All decisions in a log written by :class:`DecisionLog`."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        if not path.is_file():
            raise NextbestError(f"{path}: no such decision log")
        frame = pd.read_json(path, lines=True)
    else:
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
        if not parts:
            raise NextbestError(f"{path}: no decision log parts")
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    frame["decision_time"] = pd.to_datetime(frame["decision_time"])
    return frame


def join_outcomes(
    decisions: pd.DataFrame,
    events: pd.DataFrame,
    window: pd.Timedelta,
    *,
    key: str | bytes | None = None,
    margin_rate: float = 1.0,
    send_cost: float = 0.0,
) -> pd.DataFrame:
    """Logged feedback from decisions and ESP events (``customer_id, timestamp, event, revenue``).

    For each decision, the customer's events in ``[decision_time, decision_time + window)`` give
    ``opened``, ``clicked``, ``purchased``, ``unsubscribed`` and ``revenue``; ``reward = margin_rate *
    revenue - send_cost * (an email was sent)``. Event customer ids are pseudonymised with the same key.
    """
    needed = {"customer_id", "timestamp", "event"}
    missing = sorted(needed - set(events.columns))
    if missing:
        raise NextbestError(f"events lack column {missing[0]!r}")
    ev = events.assign(
        customer_id=pseudonymise(events["customer_id"], key),
        timestamp=pd.to_datetime(events["timestamp"]),
        revenue=pd.to_numeric(events.get("revenue", 0.0), errors="coerce").fillna(0.0),
    )
    out = decisions.reset_index(drop=True).copy()
    out["_row"] = np.arange(len(out))
    pairs = out[["_row", "customer_id", "decision_time"]].merge(ev, on="customer_id")
    inside = (pairs["timestamp"] >= pairs["decision_time"]) & (pairs["timestamp"] < pairs["decision_time"] + window)
    pairs = pairs[inside]
    for flag in ("opened", "clicked", "purchased", "unsubscribed"):
        hit = pairs.loc[pairs["event"] == flag, "_row"].unique()
        out[flag] = np.isin(out["_row"], hit).astype(np.int8)
    revenue = pairs[pairs["event"] == "purchased"].groupby("_row")["revenue"].sum()
    out["revenue"] = out["_row"].map(revenue).fillna(0.0).to_numpy()
    out["send_cost"] = send_cost * (out["action"] != 0)
    out["reward"] = margin_rate * out["revenue"] - out["send_cost"]
    out["policy_id"] = out.get("policy", "unknown")
    return out.drop(columns="_row")
