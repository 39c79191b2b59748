"""The customer response and transition model: pure functions, state in, arrays out.

One model, two calling conventions. Every function takes an ``ops`` namespace and works either on numpy
arrays of shape ``(n,)`` (``ARRAY`` - the vectorized daily driver, the population env, the SimPy runner's
batches) or on plain Python numbers (``SCALAR`` - the single-customer env, where numpy's per-call
overhead on length-1 arrays would cost ~10x). Flags (sent, opened, unsubscribed, ...) are floats 0.0/1.0
so the same arithmetic serves both.

Per customer and day, given an action (no email, or an offer at a send hour):

* open ~ sigmoid(open_logit + offer lift + slot fit - fatigue + engagement), only if emailed and not churned
* click | open ~ sigmoid(click_logit + offer lift + share * price_sensitivity * incentive + recommendation fit)
* purchase | click ~ sigmoid(buy_click_logit + price_sensitivity * incentive - habituation if full price
  - satiation after a recent purchase)
* unsubscribe | open ~ sigmoid(unsubscribe_logit + fatigue)
* organic visit ~ visit_rate * engagement factor + reminder boost (decaying visits caused by past opens);
  organic purchase | visit ~ like purchase | click, with the coupon in force
* reward = margin of purchases - discount cost - free-shipping cost - send cost

Open, click and email purchase are nested events drawn from one uniform; this gives the right marginals
and conditionals with fewer random draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nextbest.actions import BASE_FEATURES, FEATURE_HIGH, ActionCatalog, observation_features
from nextbest.scenario import Scenario

__all__ = [
    "ARRAY",
    "FLOAT",
    "INT",
    "SCALAR",
    "CustomerModel",
    "Outcome",
    "Probabilities",
    "Rows",
    "State",
    "Traits",
]

#: Array dtypes of traits, state and outcomes. The daily step is memory-bound, so 32-bit arrays run ~1.5x
#: faster than 64-bit ones; per-day money and probabilities need no more than float32's 7 digits, and
#: totals over customers and days are accumulated in float64 by the drivers.
FLOAT = np.float32
INT = np.int32

_MASK30 = (1 << 30) - 1
_MASK7 = (1 << 7) - 1


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class _ArrayOps:
    """numpy implementation of the few non-arithmetic operations the model uses."""

    exp = staticmethod(np.exp)
    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    popcount = staticmethod(np.bitwise_count)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def take(table: Any, idx: Any) -> Any:
        return table["np"][idx]

    @staticmethod
    def pick(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(matrix, idx[:, None], axis=1)[:, 0]

    @staticmethod
    def as_int(x: Any) -> Any:
        return x.astype(INT)

    @staticmethod
    def as_flag(x: Any) -> Any:
        return x.astype(FLOAT)

    as_float = as_flag

    @staticmethod
    def uniforms(rng: np.random.Generator, k: int, like: np.ndarray) -> Any:
        return rng.random((k, like.shape[0]), dtype=FLOAT)

    @staticmethod
    def stack(columns: list[Any]) -> np.ndarray:
        # Filled feature by feature in a (d, n) buffer and returned transposed: contiguous writes here,
        # and contiguous feature columns for the policies that read them.
        out = np.empty((len(columns), np.shape(columns[0])[0]), dtype=np.float32)
        for j, col in enumerate(columns):
            out[j] = col
        return out.T


class _ScalarOps:
    """Plain-Python implementation for one customer (the single-customer env's hot path)."""

    exp = staticmethod(math.exp)
    minimum = staticmethod(min)
    maximum = staticmethod(max)
    popcount = staticmethod(int.bit_count)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return a if cond else b

    @staticmethod
    def sigmoid(x: float) -> float:
        if x < -700:
            return 0.0
        return 1.0 / (1.0 + math.exp(-x))

    @staticmethod
    def take(table: Any, idx: int) -> Any:
        return table["py"][idx]

    @staticmethod
    def pick(row: list[float], idx: int) -> float:
        return row[idx]

    @staticmethod
    def as_int(x: Any) -> int:
        return int(x)

    @staticmethod
    def as_flag(x: Any) -> float:
        return 1.0 if x else 0.0

    as_float = staticmethod(float)

    @staticmethod
    def uniforms(rng: np.random.Generator, k: int, like: Any) -> list[float]:
        return rng.random(k).tolist()

    @staticmethod
    def stack(columns: list[Any]) -> np.ndarray:
        return np.array(columns, dtype=np.float32)


ARRAY = _ArrayOps()
SCALAR = _ScalarOps()


def _fields_to_row(obj: Any, i: int) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name)[i].tolist() for f in fields(obj)}


class Rows:
    """The customers ``idx`` of a :class:`Traits` or :class:`State`, gathered field by field on first
    access: a batch of a few thousand customers then copies only the fields the model reads."""

    def __init__(self, whole: Any, idx: np.ndarray) -> None:
        self._whole = whole
        self._idx = idx

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._whole, name)[self._idx]
        setattr(self, name, value)
        return value

    def __len__(self) -> int:
        return len(self._idx)


def _narrow(obj: Any) -> Any:
    """The same traits or state with arrays in the model's 32-bit dtypes."""
    return type(obj)(**{k: v.astype(FLOAT if v.dtype.kind == "f" else INT) for k, v in vars(obj).items()})


def _take(obj: Any, idx: np.ndarray) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name)[idx] for f in fields(obj)}


def _put(obj: Any, idx: np.ndarray, part: Any) -> dict[str, Any]:
    out = {}
    for f in fields(obj):
        arr = getattr(obj, f.name).copy()
        arr[idx] = getattr(part, f.name)
        out[f.name] = arr
    return out


@dataclass(frozen=True)
class Traits:
    """Latent, fixed customer traits (never observed by the business). Arrays of shape ``(n,)``
    (``affinity``: ``(n, n_categories)``) or, after :meth:`row`, Python numbers for one customer."""

    persona: Any
    open_logit: Any
    click_logit: Any
    unsubscribe_logit: Any
    buy_click_logit: Any
    buy_visit_logit: Any
    visit_rate: Any
    reminder: Any
    price_sensitivity: Any
    fatigue_tolerance: Any
    engagement_base: Any
    preferred_hour: Any
    order_value_mu: Any
    order_value_sigma: Any
    order_value_mean: Any
    churn_hazard: Any
    affinity: Any
    affinity_cum: Any
    margin_rate: Any

    def take(self, idx: np.ndarray) -> Traits:
        return Traits(**_take(self, idx))

    def put(self, idx: np.ndarray, part: Traits) -> Traits:
        """A copy with the customers ``idx`` replaced by ``part``."""
        return Traits(**_put(self, idx, part))

    def row(self, i: int) -> Traits:
        return Traits(**_fields_to_row(self, i))

    def __len__(self) -> int:
        return int(np.shape(self.persona)[0]) if np.ndim(self.persona) else 1


@dataclass(frozen=True)
class State:
    """What changes from day to day. Flags are 0.0/1.0 floats; ``*_hist`` are bitmasks of the last 30
    days (bit 0 = yesterday), so 7- and 30-day counts are popcounts."""

    t: Any  # day of the customer's episode (campaign day), 0-based
    engagement: Any
    fatigue: Any
    habituation: Any
    reminder: Any
    days_since_purchase: Any
    days_since_email: Any
    tenure_days: Any
    n_purchases: Any
    n_discounted: Any
    revenue_total: Any
    last_category: Any
    send_hist: Any
    open_hist: Any
    click_hist: Any
    coupon_offer: Any
    coupon_days_left: Any
    consent: Any
    unsubscribed: Any
    churned: Any

    def take(self, idx: np.ndarray) -> State:
        return State(**_take(self, idx))

    def row(self, i: int) -> State:
        return State(**_fields_to_row(self, i))

    def put(self, idx: np.ndarray, part: State) -> State:
        """A copy with the customers ``idx`` replaced by ``part`` (the inverse of :meth:`take`)."""
        return State(**_put(self, idx, part))

    def __len__(self) -> int:
        return int(np.shape(self.engagement)[0]) if np.ndim(self.engagement) else 1


@dataclass(frozen=True)
class Probabilities:
    """Response probabilities for one day and action. ``q_open``/``q_closed``: probability of an
    organic purchase today if the email is / is not opened (a coupon opened today is in force)."""

    sent: Any
    p_open: Any
    p_click: Any  # given open
    p_buy_click: Any  # given click
    p_unsubscribe: Any  # given open
    p_visit: Any
    q_open: Any
    q_closed: Any
    coupon_after_open: Any  # offer index of the coupon in force once the email is opened (-1 none)
    coupon_now: Any  # offer index of the coupon in force without opening (-1 none)
    recommends: Any
    incentive: Any


@dataclass(frozen=True)
class Outcome:
    """What happened today, per customer (flags 0.0/1.0; money in currency units)."""

    sent: Any
    opened: Any
    clicked: Any
    visited: Any
    purchased: Any
    purchased_via_email: Any
    unsubscribed: Any
    churned: Any
    category: Any  # category index of today's purchase, -1 if none
    coupon_used: Any  # offer index of the coupon applied to today's purchase, -1 if none
    revenue: Any
    margin: Any
    discount_cost: Any
    shipping_cost: Any
    send_cost: Any
    reward: Any


class CustomerModel:
    """The scenario compiled into lookup tables, and the model's functions.

    Args:
        scenario: a validated scenario.

    Example:
        >>> import numpy as np
        >>> from nextbest import Scenario
        >>> from nextbest.simulator import CustomerModel
        >>> m = CustomerModel(Scenario.load("retail"))
        >>> traits, state = m.sample_population(1000, np.random.default_rng(0))
        >>> m.expected_reward(traits, state, np.zeros(1000, dtype=int)).shape
        (1000,)
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.catalog = ActionCatalog.from_scenario(scenario)
        self.features = observation_features(scenario)
        self.n_categories = len(scenario.categories)
        self.n_features = len(self.features)
        dyn = scenario.dynamics
        self.dyn = dyn
        offers = list(scenario.offers.values())
        cat = self.catalog
        # Per-offer tables indexed by offer index + 1 (0 = no offer / no coupon).
        o_discount = np.array([0.0] + [o.discount for o in offers])
        o_ship = np.array([0.0] + [float(o.free_shipping) for o in offers])
        o_incentive = o_discount * dyn.discount_appeal + o_ship * dyn.free_shipping_appeal
        o_index = np.arange(-1, len(offers))
        a_offer = cat.offer_index + 1

        def table(values: np.ndarray) -> dict[str, Any]:
            arr = np.ascontiguousarray(values, dtype=FLOAT if values.dtype.kind == "f" else INT)
            return {"np": arr, "py": tuple(values.tolist())}

        self._coupon_discount = table(o_discount)
        self._coupon_shipping = table(o_ship * scenario.shipping_cost)
        self._coupon_incentive = table(o_incentive)
        self._a = {
            "sent": table(cat.sends),
            "hour": table(np.nan_to_num(cat.hour, nan=0.0)),
            "offer": table(o_index[a_offer]),
            "incentive": table(o_incentive[a_offer]),
            "open_lift": table(np.array([0.0] + [offers[i].open_lift for i in cat.offer_index[1:]])),
            "click_lift": table(np.array([0.0] + [offers[i].click_lift for i in cat.offer_index[1:]])),
            "recommends": table(np.array([0.0] + [float(offers[i].recommends_category) for i in cat.offer_index[1:]])),
        }
        #: actions whose offer is an incentive (a discount or free shipping), ``(n_actions,)`` bool
        self.discount_actions = o_incentive[a_offer] > 0
        self.margins = np.array([c.margin_rate for c in scenario.categories.values()])
        self.popularity = np.array([c.popularity for c in scenario.categories.values()])
        self.popularity = self.popularity / self.popularity.sum()
        self._margins = table(self.margins)

    # ------------------------------------------------------------------------------ population
    def sample_population(self, n: int, rng: np.random.Generator) -> tuple[Traits, State]:
        """Draw ``n`` customers' traits and their state on day 0 (history drawn to match the persona).

        Args:
            n: number of customers (>= 1).
            rng: the population's random generator.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        sc = self.scenario
        personas = list(sc.personas.values())
        w = np.array([p.weight for p in personas])
        persona = rng.choice(len(personas), size=n, p=w / w.sum())

        def col(attr: str) -> np.ndarray:
            return np.array([getattr(p, attr) for p in personas])[persona]

        spread = col("trait_spread")

        def noisy_logit(attr: str) -> np.ndarray:
            return _logit(col(attr)) + spread * rng.standard_normal(n)

        def noisy_rate(attr: str) -> np.ndarray:
            return col(attr) * np.exp(spread * rng.standard_normal(n) - 0.5 * spread**2)

        conc = col("category_concentration")[:, None] * self.popularity[None, :] * self.n_categories
        affinity = rng.gamma(np.maximum(conc, 1e-3))
        affinity /= affinity.sum(axis=1, keepdims=True)
        sigma = col("order_value_sigma")
        mean_value = col("order_value_mean") * np.exp(0.5 * spread * rng.standard_normal(n))
        mu = np.log(mean_value) - 0.5 * sigma**2
        traits = Traits(
            persona=persona.astype(np.int64),
            open_logit=noisy_logit("open_rate"),
            click_logit=noisy_logit("click_given_open"),
            unsubscribe_logit=noisy_logit("unsubscribe_given_open"),
            buy_click_logit=noisy_logit("buy_given_click"),
            buy_visit_logit=noisy_logit("buy_given_visit"),
            visit_rate=np.minimum(noisy_rate("visit_rate"), 0.5),
            reminder=np.minimum(noisy_rate("reminder_visit_given_open"), 0.9),
            price_sensitivity=noisy_rate("price_sensitivity"),
            fatigue_tolerance=noisy_rate("fatigue_tolerance"),
            engagement_base=col("engagement"),
            preferred_hour=np.mod(col("preferred_hour_mean") + col("preferred_hour_sd") * rng.standard_normal(n), 24.0),
            order_value_mu=mu,
            order_value_sigma=sigma,
            order_value_mean=mean_value,
            churn_hazard=noisy_rate("churn_hazard"),
            affinity=affinity,
            affinity_cum=np.cumsum(affinity, axis=1),
            margin_rate=affinity @ self.margins,
        )
        tenure = 1 + rng.exponential(col("tenure_days_mean")).astype(np.int64)
        recency = rng.exponential(col("recency_days_mean")).astype(np.int64)
        bought = recency < tenure
        rate = col("visit_rate") * col("buy_given_visit")
        n_purchases = np.where(bought, 1 + rng.poisson(rate * tenure), 0)
        n_discounted = rng.binomial(n_purchases, np.clip(0.3 * col("initial_habituation"), 0, 1))
        last_cat = np.where(bought, (traits.affinity_cum < rng.random(n)[:, None]).sum(axis=1), -1)
        last_cat = np.minimum(last_cat, self.n_categories - 1)
        # Everyone has been on a weekly newsletter: the last email 1-7 days ago, and one every 7 days
        # before that, in the 30-day send history and in the fatigue it left behind.
        since_email = rng.integers(1, 8, n)
        ages = since_email[:, None] + 7 * np.arange(5)[None, :]  # days since each of the last sends
        send_hist = np.where(ages <= 30, 1 << np.minimum(ages - 1, 29), 0).sum(axis=1)
        fatigue = (self.dyn.fatigue_decay ** (ages - 1)).sum(axis=1)
        zeros = np.zeros(n)
        state = State(
            t=np.zeros(n, dtype=np.int64),
            engagement=col("engagement").copy(),
            fatigue=fatigue,
            habituation=col("initial_habituation") * rng.uniform(0.5, 1.5, n),
            reminder=zeros.copy(),
            days_since_purchase=np.where(bought, recency, tenure),
            days_since_email=since_email,
            tenure_days=tenure,
            n_purchases=n_purchases,
            n_discounted=n_discounted,
            revenue_total=n_purchases * mean_value,
            last_category=last_cat.astype(np.int64),
            send_hist=send_hist,
            open_hist=np.zeros(n, dtype=np.int64),
            click_hist=np.zeros(n, dtype=np.int64),
            coupon_offer=np.full(n, -1, dtype=np.int64),
            coupon_days_left=np.zeros(n, dtype=np.int64),
            consent=(rng.random(n) < col("consent_rate")).astype(np.float64),
            unsubscribed=zeros.copy(),
            churned=zeros.copy(),
        )
        return _narrow(traits), _narrow(state)

    # -------------------------------------------------------------------------------- response
    def probabilities(
        self, traits: Traits, state: State, actions: Any, hour: Any = None, ops: Any = ARRAY
    ) -> Probabilities:
        """Response probabilities of each customer to ``actions`` today.

        Args:
            traits, state: customers (arrays ``(n,)``, or scalars with ``ops=SCALAR``).
            actions: action ids ``(n,)``.
            hour: actual delivery hour ``(n,)`` if it differs from the slot's hour (SimPy runner).
            ops: ``ARRAY`` or ``SCALAR``.
        """
        T, S, dyn = traits, state, self.dyn
        alive = 1.0 - S.churned
        coupon_now = ops.where(S.coupon_days_left > 0, S.coupon_offer, -1)
        habit = dyn.habituation_penalty * S.habituation
        sated = dyn.satiation_penalty * ops.exp(ops.as_float(S.days_since_purchase) * (-1.0 / dyn.satiation_days))
        visit = ops.minimum(alive * (T.visit_rate * (0.5 + S.engagement) / (0.5 + T.engagement_base) + S.reminder), 1.0)
        level_now = ops.take(self._coupon_incentive, coupon_now + 1)
        q_closed = visit * ops.sigmoid(self._buy_logit(T.buy_visit_logit, T, level_now, habit, sated, ops))
        sent = ops.take(self._a["sent"], actions)
        organic = (visit, coupon_now, habit, sated)
        if ops is not ARRAY:
            if sent:
                email = self._email_terms(T, S, actions, hour, organic, ops)
            else:
                email = (0.0, 0.0, 0.0, 0.0, q_closed, coupon_now, 0.0, 0.0)
        else:
            # Only emailed customers (a few percent a day under most policies) need the email terms.
            n = sent.shape[0]
            idx = np.flatnonzero(sent)
            zero = np.zeros(n, dtype=FLOAT)
            email = (
                zero,
                zero.copy(),
                zero.copy(),
                zero.copy(),
                q_closed.copy(),
                coupon_now.copy(),
                zero.copy(),
                zero.copy(),
            )
            if idx.size:
                sub = self._email_terms(
                    Rows(T, idx),
                    Rows(S, idx),
                    actions[idx],
                    None if hour is None else hour[idx],
                    tuple(x[idx] for x in organic),
                    ops,
                )
                for full, part in zip(email, sub, strict=True):
                    full[idx] = part
        p_open, p_click, p_buy_click, p_unsub, q_open, coupon_after, recommends, incentive = email
        return Probabilities(
            sent=sent,
            p_open=p_open,
            p_click=p_click,
            p_buy_click=p_buy_click,
            p_unsubscribe=p_unsub,
            p_visit=visit,
            q_open=q_open,
            q_closed=q_closed,
            coupon_after_open=coupon_after,
            coupon_now=coupon_now,
            recommends=recommends,
            incentive=incentive,
        )

    def _buy_logit(self, base: Any, T: Traits, level: Any, habit: Any, sated: Any, ops: Any) -> Any:
        """Purchase log-odds with a coupon of incentive ``level`` in force (habituation bites at full price)."""
        return base + T.price_sensitivity * level - habit * ops.as_flag(level <= 0) - sated

    def _email_terms(self, T: Traits, S: State, actions: Any, hour: Any, organic: tuple, ops: Any) -> tuple:
        """Open, click, purchase-through-click and unsubscribe probabilities of emailed customers, with
        the organic purchase probability and coupon once the email is opened."""
        dyn, a = self.dyn, self._a
        visit, coupon_now, habit, sated = organic
        if hour is None:
            hour = ops.take(a["hour"], actions)
        incentive = ops.take(a["incentive"], actions)
        gap = abs(hour - T.preferred_hour)
        gap = ops.minimum(gap, 24.0 - gap) / dyn.slot_width_hours
        fatigue = S.fatigue / T.fatigue_tolerance
        open_logit = (
            T.open_logit
            + ops.take(a["open_lift"], actions)
            + dyn.slot_bonus * (ops.exp(-0.5 * gap * gap) - 1.0)
            + dyn.engagement_open_weight * (S.engagement - T.engagement_base)
            - dyn.fatigue_open_penalty * fatigue
        )
        p_open = (1.0 - S.churned) * ops.sigmoid(open_logit)
        recommends = ops.take(a["recommends"], actions) * ops.as_flag(S.last_category >= 0)
        fit = ops.pick(T.affinity, ops.maximum(S.last_category, 0)) * self.n_categories - 1.0
        click_logit = (
            T.click_logit
            + ops.take(a["click_lift"], actions)
            + dyn.incentive_click_share * T.price_sensitivity * incentive
            + recommends * dyn.recommendation_relevance * ops.minimum(fit, 2.0)
        )
        coupon_after = ops.where(incentive > 0, ops.take(a["offer"], actions), coupon_now)
        level_after = ops.take(self._coupon_incentive, coupon_after + 1)
        p_buy_click = ops.sigmoid(self._buy_logit(T.buy_click_logit, T, level_after, habit, sated, ops))
        q_open = visit * ops.sigmoid(self._buy_logit(T.buy_visit_logit, T, level_after, habit, sated, ops))
        p_unsub = ops.sigmoid(T.unsubscribe_logit + dyn.fatigue_unsubscribe_boost * fatigue)
        p_click = ops.sigmoid(click_logit)
        return p_open, p_click, p_buy_click, p_unsub, q_open, coupon_after, recommends, incentive

    def _coupon_cost(self, coupon: Any, value: Any, ops: Any) -> Any:
        return ops.take(self._coupon_discount, coupon + 1) * value + ops.take(self._coupon_shipping, coupon + 1)

    def _email_margin_rate(self, traits: Traits, state: State, recommends: Any, ops: Any) -> Any:
        share = self.dyn.recommendation_share * recommends
        rec_margin = ops.take(self._margins, ops.maximum(state.last_category, 0))
        return (1.0 - share) * traits.margin_rate + share * rec_margin

    def expected_reward(
        self,
        traits: Traits,
        state: State,
        actions: Any,
        hour: Any = None,
        ops: Any = ARRAY,
        probs: Probabilities | None = None,
    ) -> Any:
        """Exact expected reward today of ``actions`` for each customer (currency units, shape ``(n,)``).

        E[r] = P(buy via email) * (V m_email - cost_after)
             + P(open) (1 - P(click) P(buy|click)) q_open (V m - cost_after)
             + (1 - P(open)) q_closed (V m - cost_now) - send_cost * sent,
        with V the customer's mean order value and m the expected margin rate over categories.
        ``probs``: :meth:`probabilities` of the same arguments, if the caller already has them.
        """
        p = self.probabilities(traits, state, actions, hour, ops) if probs is None else probs
        value = traits.order_value_mean
        cost_after = self._coupon_cost(p.coupon_after_open, value, ops)
        cost_now = self._coupon_cost(p.coupon_now, value, ops)
        m_email = self._email_margin_rate(traits, state, p.recommends, ops) * value
        m_org = traits.margin_rate * value
        chain = p.p_click * p.p_buy_click
        return (
            p.p_open * chain * (m_email - cost_after)
            + p.p_open * (1.0 - chain) * p.q_open * (m_org - cost_after)
            + (1.0 - p.p_open) * p.q_closed * (m_org - cost_now)
            - self.scenario.send_cost * p.sent
        )

    def expected_reward_all(self, traits: Traits, state: State) -> np.ndarray:
        """Exact expected reward of every action, shape ``(n, n_actions)`` (arrays only)."""
        n = len(state)
        return np.stack(
            [self.expected_reward(traits, state, np.full(n, a)) for a in range(self.catalog.n_actions)], axis=1
        )

    # --------------------------------------------------------------------------------- sampling
    def sample_outcome(
        self,
        traits: Traits,
        state: State,
        actions: Any,
        rng: np.random.Generator,
        hour: Any = None,
        ops: Any = ARRAY,
        probs: Probabilities | None = None,
    ) -> Outcome:
        """Draw today's outcome for each customer (``probs``: :meth:`probabilities` of the same arguments,
        if the caller already has them)."""
        T, S = traits, state
        p = self.probabilities(T, S, actions, hour, ops) if probs is None else probs
        u = ops.uniforms(rng, 4, S.engagement)
        p_clicked = p.p_open * p.p_click
        opened = ops.as_flag(u[0] < p.p_open)
        clicked = ops.as_flag(u[0] < p_clicked)
        via_email = ops.as_flag(u[0] < p_clicked * p.p_buy_click)
        q = ops.where(opened > 0, p.q_open, p.q_closed)
        organic = ops.as_flag(u[1] < q) * (1.0 - via_email)
        visited = ops.maximum(clicked, ops.as_flag(u[1] < p.p_visit))
        purchased = ops.maximum(via_email, organic)
        unsub = opened * ops.as_flag(u[2] < p.p_unsubscribe)
        hazard = T.churn_hazard * ops.exp(
            ops.minimum(ops.as_float(S.days_since_purchase) * (1.0 / self.dyn.churn_inactivity_days), 30.0)
            - self.dyn.churn_engagement_protection * S.engagement
        )
        churned = (1.0 - S.churned) * ops.as_flag(u[3] < hazard)
        coupon = ops.where(purchased > 0, ops.where(opened > 0, p.coupon_after_open, p.coupon_now), -1)
        rec = via_email * p.recommends
        if ops is ARRAY:
            value, category = self._draw_orders_array(T, S, purchased, rec, rng)
        else:
            value, category = self._draw_order_scalar(T, S, purchased, rec, rng)
        margin = value * ops.take(self._margins, ops.maximum(category, 0))
        discount_cost = ops.take(self._coupon_discount, coupon + 1) * value
        shipping_cost = ops.take(self._coupon_shipping, coupon + 1) * purchased
        send_cost = self.scenario.send_cost * p.sent
        return Outcome(
            sent=p.sent,
            opened=opened,
            clicked=clicked,
            visited=visited,
            purchased=purchased,
            purchased_via_email=via_email,
            unsubscribed=unsub,
            churned=churned,
            category=category,
            coupon_used=coupon,
            revenue=value,
            margin=margin,
            discount_cost=discount_cost,
            shipping_cost=shipping_cost,
            send_cost=send_cost,
            reward=margin - discount_cost - shipping_cost - send_cost,
        )

    def _draw_orders_array(
        self, T: Traits, S: State, purchased: np.ndarray, rec: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n = purchased.shape[0]
        value = np.zeros(n, dtype=FLOAT)
        category = np.full(n, -1, dtype=INT)
        idx = np.flatnonzero(purchased)
        if idx.size:
            z = rng.standard_normal(idx.size)
            u = rng.random((2, idx.size))
            value[idx] = np.exp(T.order_value_mu[idx] + T.order_value_sigma[idx] * z)
            cat = (T.affinity_cum[idx] < u[0][:, None]).sum(axis=1)
            cat = np.minimum(cat, self.n_categories - 1)
            take_rec = (rec[idx] > 0) & (u[1] < self.dyn.recommendation_share)
            category[idx] = np.where(take_rec, S.last_category[idx], cat)
        return value, category

    def _draw_order_scalar(
        self, T: Traits, S: State, purchased: float, rec: float, rng: np.random.Generator
    ) -> tuple[float, int]:
        if not purchased:
            return 0.0, -1
        z = float(rng.standard_normal())
        u0, u1 = rng.random(2).tolist()
        value = math.exp(T.order_value_mu + T.order_value_sigma * z)
        if rec and u1 < self.dyn.recommendation_share:
            return value, int(S.last_category)
        cat = sum(1 for c in T.affinity_cum if c < u0)
        return value, min(cat, self.n_categories - 1)

    # ------------------------------------------------------------------------------ transitions
    def transition(self, traits: Traits, state: State, actions: Any, out: Outcome, ops: Any = ARRAY) -> State:
        """The next day's state after ``out`` (deterministic given the outcome)."""
        T, S, dyn = traits, state, self.dyn
        sent_i, open_i, click_i = ops.as_int(out.sent), ops.as_int(out.opened), ops.as_int(out.clicked)
        incentive = ops.take(self._a["incentive"], actions)
        new_coupon = out.opened * ops.as_flag(incentive > 0)
        used = out.purchased * ops.as_flag(out.coupon_used >= 0)
        days_left = ops.where(
            used > 0,
            0,
            ops.where(new_coupon > 0, dyn.coupon_validity_days, ops.maximum(S.coupon_days_left - 1, 0)),
        )
        coupon_offer = ops.where(
            days_left > 0, ops.where(new_coupon > 0, ops.take(self._a["offer"], actions), S.coupon_offer), -1
        )
        e = S.engagement + dyn.engagement_reversion * (T.engagement_base - S.engagement)
        e = e + dyn.engagement_gain_open * out.opened * (1.0 - e)
        e = e + dyn.engagement_gain_purchase * out.purchased * (1.0 - e)
        e = e - dyn.engagement_loss_ignored * out.sent * (1.0 - out.opened) * e
        purchased_i = ops.as_int(out.purchased)
        return State(
            t=S.t + 1,
            engagement=e,
            fatigue=S.fatigue * dyn.fatigue_decay + out.sent,
            habituation=S.habituation * dyn.habituation_decay + dyn.habituation_per_discount * new_coupon * incentive,
            reminder=S.reminder * dyn.reminder_decay + out.opened * T.reminder * (1.0 - dyn.reminder_decay),
            days_since_purchase=ops.where(purchased_i > 0, 0, S.days_since_purchase + 1),
            days_since_email=ops.where(sent_i > 0, 0, S.days_since_email + 1),
            tenure_days=S.tenure_days + 1,
            n_purchases=S.n_purchases + purchased_i,
            n_discounted=S.n_discounted + ops.as_int(used),
            revenue_total=S.revenue_total + out.revenue,
            last_category=ops.where(purchased_i > 0, out.category, S.last_category),
            send_hist=((S.send_hist << 1) | sent_i) & _MASK30,
            open_hist=((S.open_hist << 1) | open_i) & _MASK30,
            click_hist=((S.click_hist << 1) | click_i) & _MASK30,
            coupon_offer=coupon_offer,
            coupon_days_left=days_left,
            consent=S.consent,
            unsubscribed=ops.maximum(S.unsubscribed, out.unsubscribed),
            churned=ops.maximum(S.churned, out.churned),
        )

    def step(
        self, traits: Traits, state: State, actions: Any, rng: np.random.Generator, ops: Any = ARRAY
    ) -> tuple[State, Outcome]:
        """One day: draw the outcome of ``actions`` and move to the next state."""
        out = self.sample_outcome(traits, state, actions, rng, ops=ops)
        return self.transition(traits, state, actions, out, ops), out

    # ------------------------------------------------------------------------------- what we see
    def observe(self, state: State, ops: Any = ARRAY) -> np.ndarray:
        """The business's view of each customer: float32 ``(n, n_features)`` (or ``(n_features,)``)."""
        S = state
        n_buy = S.n_purchases
        denom = ops.maximum(n_buy, 1)
        cap = FEATURE_HIGH
        columns = [
            ops.minimum(S.days_since_purchase, cap["recency_days"]),
            ops.minimum(n_buy, cap["frequency"]),
            ops.minimum(S.revenue_total / denom, cap["monetary_avg"]),
            ops.minimum(S.days_since_email, cap["days_since_email"]),
            ops.popcount(S.send_hist & _MASK7),
            ops.popcount(S.send_hist),
            ops.popcount(S.open_hist & _MASK7),
            ops.popcount(S.open_hist),
            ops.popcount(S.click_hist & _MASK7),
            ops.popcount(S.click_hist),
            ops.minimum(S.tenure_days, cap["tenure_days"]),
            S.n_discounted / denom,
            S.coupon_days_left,
            S.consent * (1.0 - S.unsubscribed),
            ops.minimum(S.t, cap["campaign_day"]),
        ]
        columns += [ops.as_flag(S.last_category == c) for c in range(self.n_categories)]
        assert len(columns) == len(BASE_FEATURES) + self.n_categories
        return ops.stack(columns)

    def may_email(self, state: State, ops: Any = ARRAY) -> Any:
        """1.0 where guardrails allow an email today: consent, not unsubscribed, under the weekly cap.

        The cap counts sends in the 6 previous days, so today's send keeps any 7-day window at the cap.
        """
        recent = ops.popcount(state.send_hist & ((1 << 6) - 1))
        return state.consent * (1.0 - state.unsubscribed) * ops.as_flag(recent < self.scenario.frequency_cap_per_week)

    def action_mask(self, state: State) -> np.ndarray:
        """Boolean ``(n, n_actions)``: True where the action is allowed (no email always is)."""
        allowed = self.may_email(state) > 0
        mask = np.repeat(allowed[:, None], self.catalog.n_actions, axis=1)
        mask[:, 0] = True
        return mask

    def action_mask_one(self, state: State) -> np.ndarray:
        """Boolean ``(n_actions,)`` mask for one customer held as scalars."""
        mask = np.full(self.catalog.n_actions, self.may_email(state, SCALAR) > 0)
        mask[0] = True
        return mask
