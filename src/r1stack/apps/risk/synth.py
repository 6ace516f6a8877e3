"""A synthetic labelled transaction set: normal traffic plus fraud patterns injected at known rates.

Each account has a home country, a few known devices and a spending profile. Normal rows draw amounts from that
profile at day-time hours. A fraud row (rate `fraud_rate`, default 5%) follows one pattern, chosen uniformly:
  account takeover - new device, new country, large amount, night-time;
  card testing     - a burst of 4-8 small round or near-round charges within minutes on a new device;
  cash-out         - amount 6-15 sd above the mean, round, at an ATM or by transfer;
  mule             - new account, cross-border transfer to an unknown counterparty.
Some normal rows carry one innocent signal (travel, a new phone, a big purchase) so that no single rule is an
oracle. Card and ID numbers are valid-looking (Luhn-valid card numbers) so the guard has something to mask.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

COUNTRIES = ["US", "GB", "DE", "FR", "CN", "JP", "SG", "BR", "IN", "NG", "RU", "AE"]
CURRENCY = {
    "US": "USD",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "CN": "CNY",
    "JP": "JPY",
    "SG": "SGD",
    "BR": "BRL",
    "IN": "INR",
    "NG": "USD",
    "RU": "RUB",
    "AE": "AED",
}
MERCHANTS = [
    ("FreshMart", "grocery"),
    ("QuickFuel", "fuel"),
    ("Bookworm", "books"),
    ("CityCafe", "restaurant"),
    ("TechHub", "electronics"),
    ("StyleCo", "clothing"),
    ("SkyAir", "travel"),
    ("PharmaPlus", "pharmacy"),
    ("GameZone", "gaming"),
    ("CryptoX", "crypto"),
    ("GiftCards4U", "gift_cards"),
]
PATTERNS = ("account_takeover", "card_testing", "cash_out", "mule")


@dataclass
class Account:
    account_id: str
    home: str
    devices: list[str]
    mean: float
    sd: float
    age_days: int
    card: str


def luhn_card(rng: random.Random) -> str:
    digits = [6, 2] + [rng.randrange(10) for _ in range(13)]  # UnionPay-like 16 digits
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def _account(rng: random.Random, i: int) -> Account:
    mean = round(rng.lognormvariate(4.0, 0.7), 2)
    return Account(
        f"A{i:05d}",
        rng.choice(COUNTRIES),
        [f"dev-{i}-{k}" for k in range(rng.randint(1, 3))],
        mean,
        round(mean * rng.uniform(0.2, 0.6), 2),
        rng.randint(40, 3000),
        luhn_card(rng),
    )


def _row(
    rng,
    acct: Account,
    when: dt.datetime,
    amount: float,
    country: str,
    device: str,
    channel: str,
    merchant: tuple[str, str],
    label: int,
    pattern: str,
    tid: int,
    age: int | None = None,
) -> dict:
    return {
        "transaction_id": f"T{tid:07d}",
        "account_id": acct.account_id,
        "amount": round(amount, 2),
        "currency": CURRENCY[country],
        "timestamp": when.isoformat(),
        "merchant": merchant[0],
        "category": merchant[1],
        "counterparty": "" if channel != "transfer" else f"ACC-{rng.randrange(10**8)}",
        "channel": channel,
        "device_id": device,
        "country": country,
        "city": "",
        "card_number": acct.card,
        "id_number": "",
        "home_country": acct.home,
        "account_age_days": acct.age_days if age is None else age,
        "avg_amount_90d": acct.mean,
        "std_amount_90d": acct.sd,
        "txn_count_24h": rng.randint(0, 6),
        "known_devices": ";".join(acct.devices),
        "known_countries": acct.home,
        "label": label,
        "pattern": pattern,
    }


def generate(n: int, fraud_rate: float = 0.05, seed: int = 0, accounts: int | None = None) -> list[dict]:
    """About n rows (card-testing bursts may add a few), sorted by time; `label` 1 marks injected fraud."""
    rng = random.Random(seed)
    accts = [_account(rng, i) for i in range(accounts or max(10, n // 8))]
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    rows: list[dict] = []
    tid = 0
    while len(rows) < n:
        acct = rng.choice(accts)
        when = start + dt.timedelta(
            days=rng.randrange(30), hours=rng.randint(8, 22), minutes=rng.randrange(60)
        )
        if rng.random() >= fraud_rate:
            amount, country, device = (
                max(1.0, rng.gauss(acct.mean, acct.sd)),
                acct.home,
                rng.choice(acct.devices),
            )
            channel, merchant = rng.choice(["pos", "online", "mobile"]), rng.choice(MERCHANTS[:8])
            innocent = rng.random()
            if innocent < 0.08:
                country = rng.choice(COUNTRIES)  # travel
            elif innocent < 0.14:
                device = f"dev-new-{tid}"  # a new phone
            elif innocent < 0.18:
                amount = acct.mean + acct.sd * rng.uniform(3, 6)  # a big purchase
            rows.append(_row(rng, acct, when, amount, country, device, channel, merchant, 0, "normal", tid))
            tid += 1
            continue
        pattern = rng.choice(PATTERNS)
        if pattern == "account_takeover":
            when = when.replace(hour=rng.randint(0, 5))
            country = rng.choice([c for c in COUNTRIES if c != acct.home])
            rows.append(
                _row(
                    rng,
                    acct,
                    when,
                    acct.mean + acct.sd * rng.uniform(4, 12),
                    country,
                    f"dev-x-{tid}",
                    "online",
                    rng.choice(MERCHANTS[4:]),
                    1,
                    pattern,
                    tid,
                )
            )
            tid += 1
        elif pattern == "card_testing":
            device = f"dev-x-{tid}"
            for k in range(rng.randint(4, 8)):
                rows.append(
                    _row(
                        rng,
                        acct,
                        when + dt.timedelta(minutes=3 * k),
                        rng.choice([1, 2, 5, 10]) + 0.0,
                        acct.home,
                        device,
                        "online",
                        MERCHANTS[10],
                        1,
                        pattern,
                        tid,
                    )
                )
                tid += 1
        elif pattern == "cash_out":
            amount = round((acct.mean + acct.sd * rng.uniform(6, 15)) / 100 + 1) * 100
            rows.append(
                _row(
                    rng,
                    acct,
                    when,
                    amount,
                    acct.home,
                    rng.choice(acct.devices),
                    rng.choice(["atm", "transfer"]),
                    MERCHANTS[0],
                    1,
                    pattern,
                    tid,
                )
            )
            tid += 1
        else:
            country = rng.choice([c for c in COUNTRIES if c != acct.home])
            rows.append(
                _row(
                    rng,
                    acct,
                    when,
                    acct.mean * rng.uniform(1, 4),
                    country,
                    rng.choice(acct.devices),
                    "transfer",
                    MERCHANTS[9],
                    1,
                    pattern,
                    tid,
                    age=rng.randint(1, 20),
                )
            )
            tid += 1
    rows.sort(key=lambda r: r["timestamp"])
    return rows
