"""The SimPy campaign runner: a send queue with an ESP's throughput limit, timed opens, clicks and
purchases, last-click attribution, and an ESP-style event log.

It calls the same response and transition functions as the vectorized driver (:class:`CustomerModel`);
what it adds is time. Each day the policy decides at midnight; each slot's sends join a FIFO queue at
the slot's hour; a sender process drains the queue at ``send_rate_per_hour`` in ticks. A late delivery
meets the customer at a different hour than the slot planned, which changes its open probability (the
model's slot-fit term uses the actual delivery hour). Sends still queued at midnight are delivered the
next day, first, and their customers get no new email that day (the decision log shows action 0 with
propensity 1 for them, since the guardrail left no choice).

SimPy drives the clock and the processes; the customers of one delivery tick are handled as one numpy
batch, because a SimPy event per email would cap the runner at a few thousand customers.

Event log columns: ``customer_id``, ``timestamp``, ``campaign_id`` (``<date>/<offer>@<slot>``; empty
for an unattributed organic purchase), ``event`` (sent, opened, clicked, purchased, unsubscribed),
``offer``, ``revenue``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import simpy
from tqdm.auto import tqdm

from nextbest.policy import Policy
from nextbest.simulator.driver import CAMPAIGN_START, LogCollector, Step, spawn_rngs
from nextbest.simulator.model import FLOAT, INT, CustomerModel, Outcome, Rows

__all__ = ["EVENT_TYPES", "CampaignResult", "CampaignRunner"]

EVENT_TYPES = ("sent", "opened", "clicked", "purchased", "unsubscribed")
_SENT, _OPENED, _CLICKED, _PURCHASED, _UNSUBSCRIBED = range(5)


@dataclass(frozen=True)
class CampaignResult:
    """Decision log (the logged-feedback contract, rewards booked on the day they happen) and events."""

    decisions: pd.DataFrame
    events: pd.DataFrame


@dataclass
class _Events:
    """Column buffers of the event log (one list entry per batch)."""

    customer: list[np.ndarray] = field(default_factory=list)
    hours: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    campaign: list[np.ndarray] = field(default_factory=list)
    revenue: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        customer: np.ndarray,
        hours: np.ndarray,
        kind: int,
        campaign: np.ndarray,
        revenue: np.ndarray | None = None,
    ) -> None:
        if customer.size == 0:
            return
        self.customer.append(customer)
        self.hours.append(hours)
        self.kind.append(np.full(customer.size, kind, dtype=np.int8))
        self.campaign.append(campaign)
        self.revenue.append(np.zeros(customer.size) if revenue is None else revenue)

    def __len__(self) -> int:
        return sum(c.size for c in self.customer)


class CampaignRunner:
    """Run a policy through a timed campaign and emit decisions and ESP events.

    Args:
        model: the compiled customer model.
        send_rate_per_hour: ESP throughput; ``None`` delivers every send at its slot's hour.
        tick_minutes: how often the sender drains the queue.
        open_delay_hours: mean delay from delivery to open (exponential).
        click_delay_hours: mean delay from open to click (exponential).
        purchase_delay_hours: mean delay from click to an email purchase (exponential).
        attribution_days: a purchase within this many days after a click is credited to that
            campaign (last click wins), as ESP reports do.
    """

    def __init__(
        self,
        model: CustomerModel,
        *,
        send_rate_per_hour: int | None = None,
        tick_minutes: float = 5.0,
        open_delay_hours: float = 3.0,
        click_delay_hours: float = 0.1,
        purchase_delay_hours: float = 0.5,
        attribution_days: float = 5.0,
    ) -> None:
        if send_rate_per_hour is not None and send_rate_per_hour < 1:
            raise ValueError(f"send_rate_per_hour must be >= 1, got {send_rate_per_hour}")
        self.model = model
        self.send_rate_per_hour = send_rate_per_hour
        self.tick_hours = tick_minutes / 60.0
        self.open_delay = open_delay_hours
        self.click_delay = click_delay_hours
        self.purchase_delay = purchase_delay_hours
        self.attribution_hours = attribution_days * 24.0

    def run(
        self, policy: Policy, n_customers: int, days: int, seed: int | np.random.SeedSequence, *, progress: bool = False
    ) -> CampaignResult:
        """Simulate ``days`` days of ``policy`` over ``n_customers`` customers.

        The seed's child streams for population and policy are the ones :func:`rollout` uses, so the
        same seed gives the same customers; outcomes use a separate stream (timing draws differ).
        """
        if n_customers < 1 or days < 1:
            raise ValueError("n_customers and days must be >= 1")
        m = self.model
        pop_rng, policy_rng, outcome_rng, time_rng = spawn_rngs(seed, 4)
        traits, state = m.sample_population(n_customers, pop_rng)
        env = simpy.Environment()
        events = _Events()
        collector = LogCollector(m, policy.name, days)
        campaigns: list[str] = []
        slot_hours = np.nan_to_num(m.catalog.hour, nan=0.0)
        queue: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # FIFO of (customers, actions, campaign ids)
        queued = np.zeros(n_customers, dtype=bool)
        active = np.ones(n_customers, dtype=bool)
        last_click_time = np.full(n_customers, -np.inf)
        last_click_campaign = np.full(n_customers, -1, dtype=np.int64)
        day: dict[str, object] = {}
        bar = tqdm(total=days, desc=f"campaign {policy.name}", unit="day", disable=not progress)

        def new_day_buffers() -> None:
            buf = {f.name: np.zeros(n_customers, dtype=FLOAT) for f in fields(Outcome)}
            buf["category"] = np.full(n_customers, -1, dtype=INT)
            buf["coupon_used"] = np.full(n_customers, -1, dtype=INT)
            day["outcome"] = buf
            day["delivered"] = np.zeros(n_customers, dtype=bool)
            day["executed"] = np.zeros(n_customers, dtype=INT)

        def respond(idx: np.ndarray, actions: np.ndarray, campaign: np.ndarray) -> None:
            """Deliver emails to customers ``idx`` now; sample and time their responses."""
            now = env.now
            hour = np.full(idx.size, now % 24.0)
            out = m.sample_outcome(Rows(traits, idx), Rows(state, idx), actions, outcome_rng, hour=hour)
            buf = day["outcome"]
            for name, values in vars(out).items():
                buf[name][idx] = values  # type: ignore[index]
            day["delivered"][idx] = True  # type: ignore[index]
            day["executed"][idx] = actions  # type: ignore[index]
            sent_t = np.full(idx.size, now)
            events.add(idx, sent_t, _SENT, campaign)
            o = out.opened > 0
            open_t = sent_t + time_rng.exponential(self.open_delay, idx.size)
            events.add(idx[o], open_t[o], _OPENED, campaign[o])
            c = out.clicked > 0
            click_t = open_t + time_rng.exponential(self.click_delay, idx.size)
            events.add(idx[c], click_t[c], _CLICKED, campaign[c])
            u = out.unsubscribed > 0
            events.add(idx[u], open_t[u] + time_rng.exponential(0.05, idx.size)[u], _UNSUBSCRIBED, campaign[u])
            last_click_time[idx[c]] = click_t[c]
            last_click_campaign[idx[c]] = campaign[c]
            e = out.purchased_via_email > 0
            events.add(
                idx[e],
                click_t[e] + time_rng.exponential(self.purchase_delay, idx.size)[e],
                _PURCHASED,
                campaign[e],
                out.revenue[e],
            )
            organic = (out.purchased > 0) & ~e
            if organic.any():
                start = np.where(o, open_t, now)[organic]
                end = np.maximum(start, 24.0 * (now // 24.0 + 1))
                t = start + time_rng.random(start.size) * (end - start)
                self._organic(events, idx[organic], t, out.revenue[organic], last_click_time, last_click_campaign)

        def sender():
            allowance = 0.0  # sends the ESP may still make in this tick (carries fractions over)
            per_tick = np.inf if self.send_rate_per_hour is None else self.send_rate_per_hour * self.tick_hours
            # Ticks fall half-way between the round times of midnights and slot releases, so a delivery
            # is never booked into a day whose outcomes were already closed.
            yield env.timeout(self.tick_hours / 2)
            while True:
                allowance = allowance + per_tick if queue else 0.0
                while queue and allowance >= 1:
                    idx, actions, camp = queue[0]
                    take = int(min(allowance, idx.size))
                    respond(idx[:take], actions[:take], camp[:take])
                    queued[idx[:take]] = False
                    allowance -= take
                    if take == idx.size:
                        queue.pop(0)
                    else:
                        queue[0] = (idx[take:], actions[take:], camp[take:])
                yield env.timeout(self.tick_hours)

        def release(idx: np.ndarray, actions: np.ndarray, camp: np.ndarray, at: float):
            yield env.timeout(at - env.now)
            queue.append((idx, actions, camp))
            queued[idx] = True
            if self.send_rate_per_hour is None:  # unlimited: deliver at once
                respond(idx, actions, camp)
                queued[idx] = False
                queue.pop()

        def campaign_day(d: int):
            nonlocal state, active
            new_day_buffers()
            obs = m.observe(state)
            mask = m.action_mask(state)
            mask[queued, 1:] = False
            actions, propensity = policy.act(obs, mask, policy_rng)
            actions = np.where(active, actions, 0)
            date = (CAMPAIGN_START + pd.Timedelta(days=d)).date().isoformat()
            for a in np.unique(actions[actions > 0]):
                idx = np.flatnonzero(actions == a)
                campaigns.append(f"{date}/{m.catalog.names[a]}")
                camp = np.full(idx.size, len(campaigns) - 1)
                env.process(release(idx, np.full(idx.size, a), camp, 24.0 * d + slot_hours[a]))
            yield env.timeout(24.0 - 1e-6)
            # Midnight: everyone not emailed today gets the no-email outcome (organic purchases only).
            # Drawn for the whole population and kept for the rest: cheaper than gathering the rest.
            delivered = day["delivered"]
            out = m.sample_outcome(traits, state, np.zeros(n_customers, dtype=INT), outcome_rng)
            outcome = Outcome(
                **{name: np.where(delivered, day["outcome"][name], values) for name, values in vars(out).items()}  # type: ignore[index]
            )
            bought = np.flatnonzero(~delivered & (out.purchased > 0))  # type: ignore[operator]
            t = 24.0 * d + time_rng.random(bought.size) * 24.0
            self._organic(events, bought, t, out.revenue[bought], last_click_time, last_click_campaign)
            executed = day["executed"]
            next_state = m.transition(traits, state, executed, outcome)
            terminated = active & ((outcome.unsubscribed > 0) | (outcome.churned > 0))
            next_obs = m.observe(next_state)
            collector(
                Step(d, obs, mask, policy, actions, propensity, outcome, next_obs, active, terminated, state, traits)
            )
            active = active & ~terminated
            state = next_state
            bar.update(1)
            yield env.timeout(1e-6)

        def driver():
            for d in range(days):
                yield env.process(campaign_day(d))

        env.process(sender())
        env.run(until=env.process(driver()))
        bar.close()
        return CampaignResult(collector.frame(), self._event_frame(events, campaigns))

    def _organic(
        self,
        events: _Events,
        idx: np.ndarray,
        t: np.ndarray,
        revenue: np.ndarray,
        last_click_time: np.ndarray,
        last_click_campaign: np.ndarray,
    ) -> None:
        """Log organic purchases, crediting the last clicked campaign inside the attribution window."""
        credited = (t - last_click_time[idx]) <= self.attribution_hours
        events.add(idx, t, _PURCHASED, np.where(credited, last_click_campaign[idx], -1), revenue)

    def _event_frame(self, events: _Events, campaigns: list[str]) -> pd.DataFrame:
        if not len(events):
            return pd.DataFrame(columns=["customer_id", "timestamp", "campaign_id", "event", "offer", "revenue"])
        camp = np.concatenate(events.campaign)
        hours = np.concatenate(events.hours)
        names = np.asarray(campaigns + [""], dtype=object)
        offers = np.asarray([c.split("/")[1].split("@")[0] for c in campaigns] + [""], dtype=object)
        frame = pd.DataFrame(
            {
                "customer_id": np.concatenate(events.customer),
                "timestamp": CAMPAIGN_START + pd.to_timedelta(hours, unit="h"),
                "campaign_id": names[camp],
                "event": pd.Categorical.from_codes(np.concatenate(events.kind), EVENT_TYPES),
                "offer": offers[camp],
                "revenue": np.concatenate(events.revenue),
            }
        )
        return frame.sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)
