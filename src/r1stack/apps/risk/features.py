"""Risk features computed in code from a transaction, its account history and the batch around it, and the
rules-only score built from them (the baseline the model is measured against)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass

from r1stack.apps.risk.transactions import Transaction


@dataclass
class Features:
    amount_z: float  # amount against the account's 90-day mean and spread
    velocity_1h: int  # this account's transactions in the hour up to this one (this one included)
    txn_count_24h: int
    new_device: bool
    new_location: bool
    cross_border: bool
    night_time: bool  # 00:00-05:59 in the timestamp's own clock
    round_amount: bool
    new_account: bool  # younger than 30 days

    def as_dict(self) -> dict:
        return asdict(self)

    def flags(self) -> list[str]:
        """The features that point at risk, as short reasons."""
        out = []
        if self.amount_z >= 3:
            out.append(f"amount {self.amount_z:.1f} sd above the account's usual")
        if self.velocity_1h >= 4:
            out.append(f"{self.velocity_1h} transactions within an hour")
        if self.new_device:
            out.append("new device")
        if self.new_location:
            out.append("new location")
        if self.cross_border:
            out.append("cross-border")
        if self.night_time:
            out.append("night-time")
        if self.round_amount:
            out.append("round amount")
        if self.new_account:
            out.append("new account")
        return out


# Weights of the rules-only score: a documented, fixed baseline (sums to 100 when everything fires).
WEIGHTS = {
    "amount_z": 30,
    "velocity": 20,
    "new_device": 12,
    "new_location": 12,
    "cross_border": 8,
    "night_time": 7,
    "round_amount": 5,
    "new_account": 6,
}


def rules_score(f: Features) -> float:
    s = WEIGHTS["amount_z"] * min(max(f.amount_z, 0.0) / 5.0, 1.0)
    s += WEIGHTS["velocity"] * min(max(f.velocity_1h - 1, 0) / 5.0, 1.0)
    s += WEIGHTS["new_device"] * f.new_device + WEIGHTS["new_location"] * f.new_location
    s += WEIGHTS["cross_border"] * f.cross_border + WEIGHTS["night_time"] * f.night_time
    s += WEIGHTS["round_amount"] * f.round_amount + WEIGHTS["new_account"] * f.new_account
    return round(s, 2)


def compute_features(txns: list[Transaction]) -> list[Features]:
    """Features for each transaction, in input order. Velocity looks at the batch: same account, last hour."""
    by_account: dict[str, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for i, t in enumerate(txns):
        by_account[t.account_id].append((_utc(t.timestamp), i))
    velocity = [1] * len(txns)
    for events in by_account.values():
        events.sort()
        lo = 0
        for hi, (when, i) in enumerate(events):
            while when - events[lo][0] > dt.timedelta(hours=1):
                lo += 1
            velocity[i] = hi - lo + 1
    out = []
    for i, t in enumerate(txns):
        spread = max(t.std_amount_90d, 0.05 * t.avg_amount_90d, 1.0)
        out.append(
            Features(
                amount_z=round((t.amount - t.avg_amount_90d) / spread, 2),
                velocity_1h=velocity[i],
                txn_count_24h=t.txn_count_24h,
                new_device=bool(t.device_id) and t.device_id not in t.known_devices,
                new_location=bool(t.known_countries) and t.country not in t.known_countries,
                cross_border=t.country != t.home_country,
                night_time=t.timestamp.hour < 6,
                round_amount=t.amount >= 100 and t.amount % 100 == 0,
                new_account=t.account_age_days < 30,
            )
        )
    return out


def _utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
