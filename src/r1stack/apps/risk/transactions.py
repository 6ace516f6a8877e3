"""Transactions in: CSV or JSON files parsed and validated row by row, so one bad row costs only itself."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from r1stack.errors import UserError

# ISO 4217 codes we accept; an unknown code is a bad row, not a guess.
CURRENCIES = frozenset(
    "AUD BRL CAD CHF CNY CZK DKK EUR GBP HKD HUF IDR ILS INR JPY KRW MXN MYR NOK NZD PHP PLN RUB SAR SEK SGD "
    "THB TRY TWD USD VND ZAR AED".split()
)
CHANNELS = ("pos", "online", "atm", "mobile", "transfer")


class Transaction(BaseModel):
    """One transaction with the account-history fields the features need (pydantic: this is an input edge)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    transaction_id: str = Field(min_length=1, max_length=64)
    account_id: str = Field(min_length=1, max_length=64)
    amount: float = Field(gt=0, le=1e9)
    currency: str
    timestamp: dt.datetime
    merchant: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    counterparty: str = Field("", max_length=200)
    channel: str
    device_id: str = Field("", max_length=128)
    country: str = Field(min_length=2, max_length=2)
    city: str = Field("", max_length=100)
    card_number: str = Field("", max_length=32)
    id_number: str = Field("", max_length=32)
    # account history
    home_country: str = Field(min_length=2, max_length=2)
    account_age_days: int = Field(ge=0)
    avg_amount_90d: float = Field(ge=0)
    std_amount_90d: float = Field(ge=0)
    txn_count_24h: int = Field(0, ge=0)
    known_devices: list[str] = Field(default_factory=list)
    known_countries: list[str] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        v = v.upper()
        if v not in CURRENCIES:
            raise ValueError(f"unknown currency {v!r} (use an ISO 4217 code such as USD, EUR, CNY)")
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        v = v.lower()
        if v not in CHANNELS:
            raise ValueError(f"unknown channel {v!r}; use one of {', '.join(CHANNELS)}")
        return v

    @field_validator("country", "home_country")
    @classmethod
    def _country(cls, v: str) -> str:
        return v.upper()

    @field_validator("known_devices", "known_countries", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        # CSV cells carry lists as "a;b;c".
        if isinstance(v, str):
            return [x.strip() for x in v.split(";") if x.strip()]
        return v


FIELDS = list(Transaction.model_fields)


@dataclass
class RowError:
    row: int  # 1-based data row (CSV: excluding the header) or list index + 1
    transaction_id: str | None
    message: str


def _explain(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def validate_rows(records: list[Any]) -> tuple[list[Transaction], list[RowError]]:
    good, bad = [], []
    for i, rec in enumerate(records, 1):
        if isinstance(rec, str):  # the parser already knows what is wrong with this row
            bad.append(RowError(i, None, rec))
            continue
        if not isinstance(rec, dict):
            bad.append(RowError(i, None, "not an object with transaction fields"))
            continue
        clean = {
            k: (
                None
                if v == "" and k not in ("counterparty", "device_id", "city", "card_number", "id_number")
                else v
            )
            for k, v in rec.items()
            if k
        }
        clean = {k: v for k, v in clean.items() if v is not None}
        try:
            good.append(Transaction.model_validate(clean))
        except ValidationError as e:
            tid = rec.get("transaction_id") if isinstance(rec.get("transaction_id"), str) else None
            bad.append(RowError(i, tid, _explain(e)))
    return good, bad


def parse_text(text: str, fmt: str) -> list[Any]:
    """Raw records from CSV or JSON text (a list, {"transactions": [...]}, or one object per line)."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "transaction_id" not in reader.fieldnames:
            raise UserError("the CSV needs a header row naming the fields, starting with transaction_id")
        rows = []
        for rec in reader:
            if None in rec or None in rec.values():  # cells and header names disagree: reported per row
                rows.append(f"malformed CSV row: {len(reader.fieldnames)} fields expected")
                continue
            rows.append(rec)
        return rows
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            try:
                return [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON or JSON lines: {e}") from None
        if isinstance(data, dict):
            data = data.get("transactions", [data])
        if not isinstance(data, list):
            raise UserError('the JSON must be a list of transactions or {"transactions": [...]}')
        return data
    raise UserError(f"unknown format {fmt!r}; use csv or json")


def load_file(path: Path) -> tuple[list[Transaction], list[RowError]]:
    if not path.is_file():
        raise UserError(f"{path} is not a file; give a .csv or .json file of transactions")
    fmt = (
        "csv"
        if path.suffix.lower() == ".csv"
        else "json"
        if path.suffix.lower() in (".json", ".jsonl")
        else ""
    )
    if not fmt:
        raise UserError(f"{path.name}: unknown file type; use .csv, .json or .jsonl")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not UTF-8 text") from None
    records = parse_text(text, fmt)
    return validate_rows(records)
