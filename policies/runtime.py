"""The live-send runtime: one decision per customer from a loaded policy artifact, with guardrails and
replayable exploration.

A decision's randomness is a deterministic function of (customer id, campaign id, the policy's salt):
``u = splitmix64(key(customer) XOR key(campaign, salt)) / 2^64`` picks the action by inverse CDF of the
policy's probabilities, so the same customer in the same campaign always gets the same action, and the
logged propensity is exactly the probability the runtime used. splitmix64 is written out here (a few
integer operations) because it has to give bit-identical results in the vectorized batch path (numpy
uint64) and the single-decision path (Python ints); no library offers both.

Guardrails (from the artifact's manifest, with defaults): no email without consent or after an
unsubscribe; no email when the customer already had ``frequency_cap_per_week`` sends in the last 7 days.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from nextbest.actions import NO_EMAIL
from nextbest.decision import Decision
from nextbest.errors import NextbestError
from nextbest.policies.artifact import LoadedPolicy

__all__ = ["Runtime"]

_M64 = (1 << 64) - 1
_BLOCK = 65_536
#: Guardrail reasons by code (code 0: no guardrail fired).
GUARDRAILS = (None, "no_consent", "unsubscribed", "frequency_cap", "discount_budget")
DEFAULT_GUARDRAILS = {"consent_feature": "consent", "recent_sends_feature": "sends_7d", "frequency_cap_per_week": 3}


def _mix_scalar(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mix_array(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _text_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _normal_id(customer_id: Any) -> Any:
    """An integral float id (pandas rows upcast ints in mixed-type frames) back to int."""
    if isinstance(customer_id, (float, np.floating)) and float(customer_id).is_integer():
        return int(customer_id)
    return customer_id


def _customer_key(customer_id: Any) -> int:
    if isinstance(customer_id, (int, np.integer)) and not isinstance(customer_id, bool):
        return int(customer_id) & _M64
    return _text_key(str(customer_id))


def _customer_keys(ids: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(ids):
        return ids.to_numpy().astype(np.int64).view(np.uint64)
    return np.fromiter((_text_key(str(i)) for i in ids), dtype=np.uint64, count=len(ids))


class Runtime:
    """Decisions from a verified policy artifact.

    Args:
        policy: a :class:`~nextbest.policies.LoadedPolicy`.
        salt: mixed into every decision's randomness (default: the policy's name and version), so two
            policies do not explore in lockstep.

    Example:
        >>> from nextbest.policies import load
        >>> from nextbest.policies.runtime import Runtime
        >>> rt = Runtime(load("policy.zip"))  # doctest: +SKIP
        >>> rt.decide({"customer_id": 17, "recency_days": 40, ...}, campaign_id="2026-12-07")  # doctest: +SKIP
    """

    def __init__(self, policy: LoadedPolicy, salt: str | None = None, *, discount_budget: int | None = None) -> None:
        self.policy = policy
        self.salt = salt if salt is not None else f"{policy.name}:{policy.manifest.get('version', '')}"
        rails = {**DEFAULT_GUARDRAILS, **policy.manifest.get("guardrails", {})}
        self.consent_feature = rails["consent_feature"]
        self.recent_sends_feature = rails["recent_sends_feature"]
        self.cap = int(rails["frequency_cap_per_week"])
        self.version = str(policy.manifest.get("version", ""))
        self.actions = policy.actions
        self._features = list(policy.features)
        self._campaign_keys: dict[str, int] = {}
        self._offers = [n.split("@")[0] for n in self.actions]
        self._slots = [n.split("@")[1] if "@" in n else "" for n in self.actions]
        # Optional per-campaign budget of discount emails (offers listed in guardrails.discount_offers).
        budget = discount_budget if discount_budget is not None else rails.get("discount_budget_per_campaign")
        self.discount_budget = None if budget is None else int(budget)
        discount_offers = set(rails.get("discount_offers", ()))
        if self.discount_budget is not None and not discount_offers:
            raise NextbestError("a discount budget needs guardrails.discount_offers in the policy manifest")
        self._is_discount = np.array([o in discount_offers for o in self._offers])
        self._budget_used: dict[str, int] = {}
        self._budget_lock = threading.Lock()  # the HTTP service decides in several threads

    def _campaign_key(self, campaign_id: str) -> int:
        key = self._campaign_keys.get(campaign_id)
        if key is None:
            if len(self._campaign_keys) > 10_000:
                self._campaign_keys.clear()
            key = self._campaign_keys[campaign_id] = _text_key(f"{self.salt}|{campaign_id}")
        return key

    # ------------------------------------------------------------------------------- guardrails
    def _reasons(self, consent: np.ndarray, unsubscribed: np.ndarray, recent: np.ndarray) -> np.ndarray:
        """Guardrail code per customer: index into :data:`GUARDRAILS` (0 = none)."""
        reason = np.zeros(consent.shape, dtype=np.int8)
        reason[recent >= self.cap] = 3
        reason[unsubscribed > 0] = 2
        reason[consent <= 0] = 1
        return reason

    def _mask(self, reason: np.ndarray) -> np.ndarray:
        mask = np.ones((reason.size, len(self.actions)), dtype=bool)
        mask[:, 1:] = (reason == 0)[:, None]
        return mask

    # -------------------------------------------------------------------------------- decisions
    def decide_batch(
        self,
        customers: pd.DataFrame,
        campaign_id: str,
        id_column: str = "customer_id",
        *,
        row_offset: int = 0,
        with_context: bool = False,
    ) -> pd.DataFrame:
        """One decision per row of ``customers`` (the policy's features, ``consent``, ``sends_7d``, optionally
        ``unsubscribed``). Returns ``customer_id, campaign_id, action, action_name, offer, slot, propensity,
        guardrail, policy, policy_version``; with ``with_context`` also the features, ``may_email`` and the
        full probability vector ``prob_<action>`` (what a decision log needs for later evaluation).

        Raises:
            NextbestError: a column is missing, a value is not a finite number, or an id repeats; the
                message names the column and the row (0-based, plus ``row_offset`` when deciding a long
                list in chunks).
        """
        needed = [id_column, *self.policy.features, self.consent_feature, self.recent_sends_feature]
        missing = [c for c in dict.fromkeys(needed) if c not in customers.columns]
        if missing:
            raise NextbestError(f"customer records lack column {missing[0]!r}")
        ids = customers[id_column]
        dup = ids.duplicated().to_numpy()
        if dup.any():
            row = int(np.flatnonzero(dup)[0]) + row_offset
            raise NextbestError(f"column {id_column!r}, row {row}: duplicate customer id")
        x = self._numbers(customers, list(self.policy.features), row_offset)
        consent = self._numbers(customers, [self.consent_feature], row_offset)[:, 0]
        recent = self._numbers(customers, [self.recent_sends_feature], row_offset)[:, 0]
        unsub = (
            self._numbers(customers, ["unsubscribed"], row_offset)[:, 0]
            if "unsubscribed" in customers.columns
            else np.zeros(len(customers))
        )
        reason = self._reasons(consent, unsub, recent)
        keys = _customer_keys(ids) ^ np.uint64(self._campaign_key(campaign_id))
        u = (_mix_array(keys) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        n, k = len(customers), len(self.actions)
        action = np.empty(n, dtype=np.int64)
        propensity = np.empty(n)
        probs = np.empty((n, k)) if with_context else None
        # Blocks of rows keep every temporary small: fresh multi-100 MB arrays cost more in page faults
        # than in arithmetic on these machines, and small ones stay in cache.
        for start in range(0, n, _BLOCK):
            rows = slice(start, start + _BLOCK)
            p = self.policy.action_probs(x[rows], self._mask(reason[rows]))
            a = np.minimum((np.cumsum(p, axis=1) <= u[rows, None]).sum(axis=1), k - 1)
            action[rows] = a
            propensity[rows] = p[np.arange(len(a)), a]
            if probs is not None:
                probs[rows] = p
        may_email = reason == 0
        if self.discount_budget is not None:
            self._apply_budget(campaign_id, x, reason, u, action, propensity, probs)
        reason = np.where(action == NO_EMAIL, reason, 0)
        out = pd.DataFrame(
            {
                "customer_id": ids.to_numpy(),
                "campaign_id": campaign_id,
                "action": action,
                "action_name": pd.Categorical.from_codes(action, self.actions),
                "offer": self._categorical(self._offers, action),
                "slot": self._categorical(self._slots, action),
                "propensity": propensity,
                "guardrail": pd.Categorical.from_codes(reason - 1, list(GUARDRAILS[1:])),
                "policy": self.policy.name,
                "policy_version": self.version,
            }
        )
        if with_context:
            context = pd.DataFrame(x, columns=list(self.policy.features))
            context["may_email"] = may_email
            probs_frame = pd.DataFrame(probs, columns=[f"prob_{a}" for a in self.actions])  # type: ignore[arg-type]
            out = pd.concat([out, context, probs_frame], axis=1)
        return out

    def _apply_budget(
        self,
        campaign_id: str,
        x: np.ndarray,
        reason: np.ndarray,
        u: np.ndarray,
        action: np.ndarray,
        propensity: np.ndarray,
        probs: np.ndarray | None,
    ) -> None:
        """Customers are served in row order: once the campaign's discount budget is spent, every later
        customer is drawn again, with the same uniform, from the policy restricted to non-discount
        actions, and logs that restricted draw's probabilities."""
        picks = np.flatnonzero(self._is_discount[action])
        with self._budget_lock:
            left = max(self.discount_budget - self._budget_used.get(campaign_id, 0), 0)  # type: ignore[operator]
            self._budget_used[campaign_id] = self._budget_used.get(campaign_id, 0) + min(len(picks), left)
        if len(picks) <= left:
            return
        first_after = picks[left - 1] + 1 if left > 0 else 0
        over = np.arange(first_after, len(action))
        mask = self._mask(reason[over])
        mask[:, self._is_discount] = False
        p = self.policy.action_probs(x[over], mask)
        a = np.minimum((np.cumsum(p, axis=1) <= u[over, None]).sum(axis=1), len(self.actions) - 1)
        action[over] = a
        propensity[over] = p[np.arange(len(a)), a]
        reason[over[a == NO_EMAIL]] = 4
        if probs is not None:
            probs[over] = p

    def decide(
        self, customer: Mapping[str, Any] | pd.Series, campaign_id: str, id_field: str = "customer_id"
    ) -> Decision:
        """The decision for one customer record (a dict or a pandas row); same result as in a batch."""
        record = customer if isinstance(customer, dict) else dict(customer)
        try:
            values = [float(record[f]) for f in self._features]
            consent = float(record[self.consent_feature])
            recent = float(record[self.recent_sends_feature])
            unsub = float(record.get("unsubscribed", 0))
            customer_id = _normal_id(record[id_field])
        except KeyError as exc:
            raise NextbestError(f"customer record lacks field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise NextbestError(f"customer record: a feature is not a number ({exc})") from None
        if not math.isfinite(sum(values)):  # NaN and inf propagate through the sum
            bad = next(f for f, v in zip(self._features, values, strict=True) if not math.isfinite(v))
            raise NextbestError(f"customer record: field {bad!r} must be a finite number")
        x = np.array(values)
        reason = 1 if consent <= 0 else 2 if unsub > 0 else 3 if recent >= self.cap else 0
        key = _customer_key(customer_id) ^ self._campaign_key(campaign_id)
        u = (_mix_scalar(key) >> 11) * 2.0**-53
        if self.discount_budget is not None:
            return self._decide_budgeted(customer_id, campaign_id, x, reason, u)
        scores, probs = self.policy.decide_one(x, reason == 0)
        action, total = 0, 0.0
        for p in probs.tolist():  # inverse CDF; same summation order as the batch's cumsum
            total += p
            if total > u:
                break
            action += 1
        action = min(action, len(self.actions) - 1)
        return Decision(
            customer_id=customer_id,
            campaign_id=campaign_id,
            action=action,
            action_name=self.actions[action],
            offer=self._offers[action],
            slot=self._slots[action],
            propensity=float(probs[action]),
            scores=tuple(scores.tolist()),
            policy=self.policy.name,
            policy_version=self.version,
            guardrail=GUARDRAILS[reason] if action == NO_EMAIL else None,
        )

    def _decide_budgeted(self, customer_id: Any, campaign_id: str, x: np.ndarray, reason: int, u: float) -> Decision:
        """One decision under a discount budget: the batch path on one row, so both agree."""
        rows = x[None, :]
        code = np.array([reason], dtype=np.int8)
        p = self.policy.action_probs(rows, self._mask(code))
        action = np.minimum((np.cumsum(p, axis=1) <= u).sum(axis=1), len(self.actions) - 1)
        propensity = p[np.arange(1), action]
        self._apply_budget(campaign_id, rows, code, np.array([u]), action, propensity, None)
        a = int(action[0])
        return Decision(
            customer_id=customer_id,
            campaign_id=campaign_id,
            action=a,
            action_name=self.actions[a],
            offer=self._offers[a],
            slot=self._slots[a],
            propensity=float(propensity[0]),
            scores=tuple(self.policy.scores(rows)[0].tolist()),
            policy=self.policy.name,
            policy_version=self.version,
            guardrail=GUARDRAILS[int(code[0])] if a == NO_EMAIL else None,
        )

    @staticmethod
    def _categorical(per_action: list[str], action: np.ndarray) -> pd.Categorical:
        """Per-action labels (with repeats) for each decision, as a categorical column."""
        labels = list(dict.fromkeys(per_action))
        codes = np.array([labels.index(v) for v in per_action])
        return pd.Categorical.from_codes(codes[action], labels)

    @staticmethod
    def _numbers(frame: pd.DataFrame, columns: list[str], row_offset: int) -> np.ndarray:
        part = frame[columns]
        if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in part.dtypes):
            values = part.to_numpy(dtype=np.float64)
        else:
            values = part.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise NextbestError(f"column {columns[col]!r}, row {int(row) + row_offset}: must be a finite number")
        return values
