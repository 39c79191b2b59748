"""The decision contract: what the live-send runtime answers for one customer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One customer's action for one campaign.

    Attributes:
        customer_id, campaign_id: what was decided for.
        action: action id in the policy's catalog (0 = no email); action_name, offer, slot: its parts.
        propensity: probability the policy gave this action, exactly as used to draw it (log it).
        scores: the policy's score of every action.
        policy, policy_version: which policy decided.
        guardrail: why no email was forced (``"no_consent"``, ``"unsubscribed"``, ``"frequency_cap"``),
            or None.
    """

    customer_id: Any
    campaign_id: str
    action: int
    action_name: str
    offer: str
    slot: str
    propensity: float
    scores: tuple[float, ...]
    policy: str
    policy_version: str
    guardrail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
