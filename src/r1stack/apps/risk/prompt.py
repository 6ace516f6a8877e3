"""The risk prompt: the transaction (identifiers masked by the guard) and its computed features, as chat messages."""

from __future__ import annotations

from r1stack.apps.risk.features import Features
from r1stack.apps.risk.transactions import Transaction

SYSTEM = (
    "You are a bank's transaction risk analyst. Assess the fraud risk of the transaction from its data and the "
    "computed risk features. Answer only with JSON holding risk_level (low, medium, high or critical), score "
    "(an integer from 0, no risk, to 100, certain fraud) and reasons (up to three risk signals you relied on)."
)


def transaction_text(t: Transaction, f: Features) -> str:
    lines = [
        f"Transaction {t.transaction_id}: {t.amount:.2f} {t.currency} at {t.merchant} ({t.category}), "
        f"channel {t.channel}, {t.timestamp.isoformat()}",
        f"Location: {t.city + ', ' if t.city else ''}{t.country}; account home country {t.home_country}",
    ]
    if t.counterparty:
        lines.append(f"Counterparty: {t.counterparty}")
    if t.card_number:
        lines.append(f"Card: {t.card_number}")
    if t.id_number:
        lines.append(f"Customer ID: {t.id_number}")
    lines.append(
        f"Account: {t.account_age_days} days old, 90-day mean {t.avg_amount_90d:.2f}, sd {t.std_amount_90d:.2f}, "
        f"{t.txn_count_24h} transactions in 24h"
    )
    lines.append(
        f"Features: amount z-score {f.amount_z:.1f}; {f.velocity_1h} transactions in the last hour; "
        f"new device {_yn(f.new_device)}; new location {_yn(f.new_location)}; cross-border {_yn(f.cross_border)}; "
        f"night-time {_yn(f.night_time)}; round amount {_yn(f.round_amount)}; new account {_yn(f.new_account)}"
    )
    flags = f.flags()
    lines.append("Risk signals: " + (", ".join(flags) if flags else "none"))
    return "\n".join(lines)


def messages(masked_text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": masked_text}]


def _yn(v: bool) -> str:
    return "yes" if v else "no"
