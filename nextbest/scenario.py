"""Scenario configuration: frozen dataclasses, loaded from and dumped to YAML.

A scenario is everything the simulator needs to know about a retailer: its customer personas, product
categories, offers, send slots, costs and the campaign horizon. The YAML file is these dataclasses written
out (``Scenario.dump``); there is no second schema. The meaning of each parameter is documented in the
built-in scenario file ``nextbest/scenarios/retail.yaml``.

Loading rejects unknown keys, missing keys, wrong types and out-of-range values with a
:class:`~nextbest.errors.ScenarioError` whose message starts with the key path, e.g.
``personas.bargain_hunter.price_sensitivity: must be >= 0``.

Example:
    >>> from nextbest import Scenario
    >>> s = Scenario.load("retail")
    >>> s.horizon_days, sorted(s.slots)
    (90, ['evening', 'midday', 'morning'])
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nextbest.errors import ScenarioError

__all__ = ["Category", "Dynamics", "Offer", "Persona", "Scenario", "builtin_scenarios"]


def _rng(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Any:
    """Dataclass field carrying its allowed range, checked by ``_check_ranges``."""
    return field(metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


def _check_ranges(obj: Any, path: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        lo, hi, lo_open = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("lo_open", False)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        where = f"{path}.{f.name}" if path else f.name
        if not math.isfinite(value):
            raise ScenarioError(f"{where}: must be a finite number, got {value!r}")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise ScenarioError(f"{where}: must be {'>' if lo_open else '>='} {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise ScenarioError(f"{where}: must be <= {hi}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Persona:
    """One customer segment of the population mixture; see retail.yaml for each trait's meaning."""

    weight: float = _rng(0.0, lo_open=True)
    engagement: float = _rng(0.0, 1.0)
    open_rate: float = _rng(0.0, 1.0)
    click_given_open: float = _rng(0.0, 1.0)
    reminder_visit_given_open: float = _rng(0.0, 1.0)
    unsubscribe_given_open: float = _rng(0.0, 1.0)
    visit_rate: float = _rng(0.0, 1.0)
    buy_given_visit: float = _rng(0.0, 1.0)
    buy_given_click: float = _rng(0.0, 1.0)
    price_sensitivity: float = _rng(0.0)
    fatigue_tolerance: float = _rng(0.0, lo_open=True)
    initial_habituation: float = _rng(0.0)
    preferred_hour_mean: float = _rng(0.0, 24.0)
    preferred_hour_sd: float = _rng(0.0, 12.0)
    order_value_mean: float = _rng(0.0, lo_open=True)
    order_value_sigma: float = _rng(0.0, 3.0)
    category_concentration: float = _rng(0.0, lo_open=True)
    churn_hazard: float = _rng(0.0, 1.0)
    recency_days_mean: float = _rng(0.0)
    tenure_days_mean: float = _rng(0.0)
    consent_rate: float = _rng(0.0, 1.0)
    trait_spread: float = _rng(0.0, 3.0)

    def __post_init__(self) -> None:
        _check_ranges(self, "")


@dataclass(frozen=True, kw_only=True)
class Category:
    """A product category: how often it is bought and its gross margin rate."""

    popularity: float = _rng(0.0, lo_open=True)
    margin_rate: float = _rng(0.0, 1.0)

    def __post_init__(self) -> None:
        _check_ranges(self, "")


@dataclass(frozen=True, kw_only=True)
class Offer:
    """An email content type; ``discount`` and ``free_shipping`` make it an incentive."""

    discount: float = _rng(0.0, 0.9)
    free_shipping: bool = False
    recommends_category: bool = False
    open_lift: float = _rng(-5.0, 5.0)
    click_lift: float = _rng(-5.0, 5.0)

    def __post_init__(self) -> None:
        _check_ranges(self, "")

    @property
    def is_incentive(self) -> bool:
        """True when a purchase through this offer costs the retailer money (discount or shipping)."""
        return self.discount > 0 or self.free_shipping


@dataclass(frozen=True, kw_only=True)
class Dynamics:
    """How state evolves from day to day; see retail.yaml for each parameter's meaning."""

    fatigue_decay: float = _rng(0.0, 1.0)
    fatigue_open_penalty: float = _rng(0.0)
    fatigue_unsubscribe_boost: float = _rng(0.0)
    habituation_per_discount: float = _rng(0.0)
    habituation_decay: float = _rng(0.0, 1.0)
    habituation_penalty: float = _rng(0.0)
    satiation_penalty: float = _rng(0.0)
    satiation_days: float = _rng(0.0, lo_open=True)
    engagement_reversion: float = _rng(0.0, 1.0)
    engagement_gain_open: float = _rng(0.0, 1.0)
    engagement_gain_purchase: float = _rng(0.0, 1.0)
    engagement_loss_ignored: float = _rng(0.0, 1.0)
    engagement_open_weight: float = _rng(0.0)
    reminder_decay: float = _rng(0.0, 0.99)
    slot_bonus: float = _rng(0.0)
    slot_width_hours: float = _rng(0.0, 24.0, lo_open=True)
    recommendation_relevance: float = _rng(0.0)
    recommendation_share: float = _rng(0.0, 1.0)
    discount_appeal: float = _rng(0.0)
    free_shipping_appeal: float = _rng(0.0)
    incentive_click_share: float = _rng(0.0, 1.0)
    coupon_validity_days: int = _rng(1, 60)
    churn_inactivity_days: float = _rng(0.0, lo_open=True)
    churn_engagement_protection: float = _rng(0.0)

    def __post_init__(self) -> None:
        _check_ranges(self, "")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A complete, validated simulation scenario.

    Attributes:
        name: short identifier written into logs and reports.
        description: one line for humans.
        horizon_days: campaign length in days (episode length of the environments).
        send_cost: cost of one email send, in currency units.
        shipping_cost: what free shipping costs the retailer per order, in currency units.
        frequency_cap_per_week: guardrail; at most this many emails in any 7 days.
        personas: persona name -> :class:`Persona`; weights are normalised to sum to 1.
        categories: category name -> :class:`Category`.
        offers: offer name -> :class:`Offer`.
        slots: slot name -> send hour (0-24, local time of the customer).
        dynamics: day-to-day state dynamics.
    """

    name: str
    description: str = ""
    horizon_days: int = _rng(1, 3650)
    send_cost: float = _rng(0.0)
    shipping_cost: float = _rng(0.0)
    frequency_cap_per_week: int = _rng(1, 7)
    personas: dict[str, Persona]
    categories: dict[str, Category]
    offers: dict[str, Offer]
    slots: dict[str, float]
    dynamics: Dynamics

    def __post_init__(self) -> None:
        _check_ranges(self, "")
        for key in ("personas", "categories", "offers", "slots"):
            if not getattr(self, key):
                raise ScenarioError(f"{key}: must define at least one entry")
        for name, hour in self.slots.items():
            if not 0.0 <= hour < 24.0:
                raise ScenarioError(f"slots.{name}: must be an hour in [0, 24), got {hour!r}")

    # ----------------------------------------------------------------------------------------- I/O
    @classmethod
    def load(cls, source: str | os.PathLike[str]) -> Scenario:
        """Load a built-in scenario by name (e.g. ``"retail"``) or a YAML file by path.

        Raises:
            ScenarioError: the file is missing, not YAML, or fails validation; the message names the
                file and the key path.
        """
        text, origin = _read_source(source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{origin}: not valid YAML: {exc}".replace("\n", " ")) from None
        try:
            return cls.from_dict(data)
        except ScenarioError as exc:
            raise ScenarioError(f"{origin}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Scenario:
        """Build and validate a scenario from plain data (as parsed from YAML)."""
        return _build(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form; ``Scenario.from_dict(s.to_dict()) == s``."""
        return dataclasses.asdict(self)

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the scenario as YAML (without the comments of the built-in file)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------------- derived
    @property
    def persona_names(self) -> tuple[str, ...]:
        return tuple(self.personas)

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(self.categories)


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped inside the package."""
    folder = resources.files("nextbest") / "scenarios"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_source(source: str | os.PathLike[str]) -> tuple[str, str]:
    text_source = os.fspath(source)
    if text_source in builtin_scenarios():
        res = resources.files("nextbest") / "scenarios" / f"{text_source}.yaml"
        return res.read_text(encoding="utf-8"), f"built-in scenario {text_source!r}"
    path = Path(text_source)
    if not path.is_file():
        known = ", ".join(builtin_scenarios())
        raise ScenarioError(f"{text_source}: no such scenario file (built-in scenarios: {known})")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(cls: type, data: Any, path: str) -> Any:
    """Recursively build dataclass ``cls`` from ``data``, naming the key path of every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{path or '<top>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ScenarioError(f"{_join(path, str(unknown[0]))}: unknown key (allowed: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        where = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScenarioError(f"{where}: missing required key")
            continue
        kwargs[name] = _convert(hints[name], data[name], where)
    try:
        return cls(**kwargs)
    except ScenarioError as exc:
        msg = str(exc)
        raise ScenarioError(f"{path}.{msg}" if path and not msg.startswith(path) else msg) from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a mapping of name -> entry")
        return {str(k): _convert(val_tp, v, _join(where, str(k))) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported annotation {tp}")  # pragma: no cover - schema bug
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp}")  # pragma: no cover - schema bug
