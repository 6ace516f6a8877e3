"""The recognisers: one pattern per identifier type, a validator that turns a match into a base confidence
(or rejects it), and the context words that raise or lower that confidence."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import regex

from r1stack.errors import UserError
from r1stack.guard import checksums as cs

Scorer = Callable[[str], float | None]


@dataclass(frozen=True)
class Recognizer:
    entity: str
    pattern: regex.Pattern
    score: Scorer  # matched text -> base confidence, None when the text fails validation
    context: tuple[str, ...] = ()  # lower-case words near a match that make it more likely
    # Phrases that, when they hold a context word, are about something else ("identity card no." holds "card no")
    context_unless: tuple[str, ...] = ()


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


# Mobile prefixes in use (MIIT allocations: carriers, virtual operators, IoT/data 14x, satellite 174).
_MOBILE_PREFIXES = frozenset(
    [*range(130, 140), *range(145, 150), 150, 151, 152, 153, 155, 156, 157, 158, 159, 162, 165, 166, 167]
    + [*range(170, 179), *range(180, 190), 190, 191, 192, 193, 195, 196, 197, 198, 199]
)


def _score_id18(s: str) -> float | None:
    return 0.9 if cs.valid_id18(s) else None


def _score_id15(s: str) -> float | None:
    # No check digit: a region and a date alone are weak evidence, so context has to carry it.
    return 0.4 if cs.valid_id15(s) else None


def _score_mobile(s: str) -> float | None:
    d = _digits(s)
    has_country = len(d) > 11
    if has_country and not d[:-11].endswith("86"):
        return None
    if int(d[-11:-8]) not in _MOBILE_PREFIXES:
        return None
    return 0.85 if has_country else 0.6


def _score_landline(s: str) -> float | None:
    m = _LANDLINE_PARTS.fullmatch(s)
    if m is None:
        return None
    country = s.startswith(("+", "00"))
    if not country and not m["area"].startswith("0"):
        return None  # without +86 the trunk 0 is written; "400-…" and "800-…" are hotlines, not landlines
    area, local = m["area"].lstrip("0"), _digits(m["local"])
    if area == "10" or (len(area) == 2 and area[0] == "2"):
        ok = len(local) == 8
    elif len(area) == 3 and area[0] in "3456789":
        ok = len(local) in (7, 8)
    else:
        ok = False
    if not ok:
        return None
    separated = s[0] in "(+" or s.startswith("00") or any(c in s for c in " -)")
    return 0.6 if separated else 0.35  # eleven bare digits starting with 0 are as often an order id


def _score_card(s: str) -> float | None:
    d = _digits(s)
    n = len(d)
    if not 13 <= n <= 19 or not cs.luhn_valid(d):
        return None
    if n == 18 and cs.id18_structure_ok(d):
        return 0.3  # an ID with a wrong check digit is likelier than a card of that length
    if n == 15 and cs.valid_id15(d):
        # Legacy Anhui (34) and Shandong (37) IDs share Amex's prefixes: redact either way, and let an ID
        # context word (which lifts the ID reading higher) decide the label.
        return 0.5 if d[:2] in ("34", "37") else 0.3
    i2, i4 = int(d[:2]), int(d[:4])
    if d.startswith("62") and n >= 16:
        base = 0.8  # UnionPay: 16 to 19 digits
    elif (
        (d[0] == "4" and n in (13, 16, 19))
        or ((51 <= i2 <= 55 or 2221 <= i4 <= 2720) and n == 16)
        or (i2 in (34, 37) and n == 15)
        or (3528 <= i4 <= 3589 and n >= 16)
        or ((d.startswith("6011") or d.startswith("65") or 644 <= int(d[:3]) <= 649) and n >= 16)
        or (i2 in (30, 36, 38, 39) and n >= 14)
    ):
        base = 0.7
    else:
        return 0.3  # Luhn alone passes one random number in ten
    return base + (0.1 if any(c in s for c in " -") else 0.0)


def _score_uscc(s: str) -> float | None:
    if not cs.valid_uscc(s):
        return None
    # Eighteen digits with a region and a birth date where an ID has them: one check in 341 lets a mistyped ID
    # pass both USCC checks, so only a USCC context word makes it one.
    return 0.3 if cs.id18_structure_ok(s) else 0.85


_PASSPORT_CN = regex.compile(r"E\d{8}|E[A-HJ-NP-Z]\d{7}|G\d{8}")
_PASSPORT_CN_OFFICIAL = regex.compile(r"[DSP]E?\d{7}")


def _score_passport(s: str) -> float | None:
    if _PASSPORT_CN.fullmatch(s):
        return 0.55
    if _PASSPORT_CN_OFFICIAL.fullmatch(s):
        return 0.45
    return 0.25  # another country's format: only with the word passport nearby


def _score_email(s: str) -> float | None:
    local, _, domain = s.rpartition("@")
    if ".." in s or local.endswith(".") or len(domain) > 253:
        return None
    return 0.9


def _score_ipv4(s: str) -> float | None:
    try:
        ipaddress.IPv4Address(s)
    except ValueError:
        return None
    return 0.6


def _score_ipv6(s: str) -> float | None:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return None
    # "a::b" reads like code more than like an address; real ones carry more hex.
    return 0.7 if sum(c not in ":." for c in s) >= 4 else None


_LANDLINE_PARTS = regex.compile(
    r"(?:(?:\+|00)86[ -]?)?\(?(?P<area>0?[1-9]\d{1,2})\)?[ -]?(?P<local>[2-9]\d{2,3}[ -]?\d{4})"
    r"(?:[ -]?(?:转|ext\.?|x)[ -]?\d{1,5})?"
)
_USCC_CHAR = r"[0-9A-HJ-NP-RTUWXY]"

_ID_WORDS = (
    "身份证",
    "证件号",
    "公民身份",
    "身份号码",
    "id card",
    "identity",
    "national id",
    "resident id",
    "id no",
)
_PHONE_WORDS = (
    "手机",
    "电话",
    "联系方式",
    "致电",
    "拨打",
    "来电",
    "号码",
    "mobile",
    "phone",
    "cell",
    "call",
    "tel",
    "contact",
)

BUILTIN: tuple[Recognizer, ...] = (
    Recognizer(
        "ID_CARD", regex.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])"), _score_id18, _ID_WORDS
    ),
    Recognizer("ID_CARD", regex.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])"), _score_id15, _ID_WORDS),
    Recognizer(
        "MOBILE",
        regex.compile(
            r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ -]?|\(\+?86\)[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![0-9A-Za-z])"
        ),
        _score_mobile,
        _PHONE_WORDS + ("微信",),
    ),
    Recognizer(
        "LANDLINE",
        regex.compile(r"(?<![0-9+])" + _LANDLINE_PARTS.pattern + r"(?![0-9A-Za-z])"),
        _score_landline,
        _PHONE_WORDS + ("座机", "固话", "传真", "分机", "fax", "landline", "office"),
    ),
    Recognizer(
        "BANK_CARD",
        regex.compile(
            # "+" before digits starts an international phone number, never a card
            r"(?<![0-9A-Za-z+])(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,4})?|\d{4}[ -]\d{6}[ -]\d{4,5})(?![0-9A-Za-z])"
        ),
        _score_card,
        (
            "卡号",
            "户名",
            "汇款",
            "转账",
            "打款",
            "收款",
            "银行卡",
            "信用卡",
            "借记卡",
            "储蓄卡",
            "账号",
            "账户",
            "银联",
            "开户",
            # Not plain "card": "identity card" would lift a legacy ID's bank-card reading.
            "card number",
            "card no",
            "credit card",
            "debit card",
            "bank card",
            "account",
            "visa",
            "mastercard",
            "unionpay",
            "iban",
        ),
        ("identity card", "id card", "resident card"),
    ),
    Recognizer(
        "USCC",
        regex.compile(rf"(?<![0-9A-Za-z]){_USCC_CHAR}{{2}}\d{{6}}{_USCC_CHAR}{{10}}(?![0-9A-Za-z])"),
        _score_uscc,
        (
            "统一社会信用代码",
            "信用代码",
            "营业执照",
            "社会信用",
            "税号",
            "纳税人识别号",
            "credit code",
            "uscc",
            "business license",
            "registration",
        ),
    ),
    Recognizer(
        "PASSPORT",
        regex.compile(r"(?<![0-9A-Za-z])[A-Z]{1,2}\d{6,8}(?![0-9A-Za-z])"),
        _score_passport,
        ("护照", "passport", "travel document"),
    ),
    Recognizer(
        "EMAIL",
        regex.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
        _score_email,
        ("邮箱", "邮件", "电邮", "email", "e-mail", "mail"),
    ),
    Recognizer(
        "IP_ADDRESS",
        regex.compile(r"(?<![0-9A-Za-z.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9]|\.\d)"),
        _score_ipv4,
        ("ip", "地址", "服务器", "主机", "address", "server", "host"),
    ),
    Recognizer(
        "IP_ADDRESS",
        regex.compile(
            r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
            r"(?![0-9A-Za-z:]|\.\d)"
        ),
        _score_ipv6,
        ("ip", "ipv6", "地址", "服务器", "主机", "address", "server", "host"),
    ),
)

# Words that say a number is not about a person: order ids, tracking numbers, versions, timestamps.
NEGATIVE_CONTEXT: tuple[str, ...] = (
    "订单",
    "单号",
    "流水号",
    "编号",
    "序列号",
    "批次",
    "快递",
    "运单",
    "时间戳",
    "版本",
    "交易号",
    "工单",
    "发票",
    "order",
    "tracking",
    "invoice",
    "serial",
    "timestamp",
    "version",
    "sku",
    "ref",
    "build",
    "batch",
)

LABELS: dict[str, tuple[str, str]] = {  # entity -> (Chinese label, English label)
    "ID_CARD": ("身份证号", "ID_CARD"),
    "MOBILE": ("手机号", "PHONE"),
    "LANDLINE": ("固定电话", "PHONE"),
    "BANK_CARD": ("银行卡号", "BANK_CARD"),
    "USCC": ("统一社会信用代码", "USCC"),
    "PASSPORT": ("护照号", "PASSPORT"),
    "EMAIL": ("邮箱", "EMAIL"),
    "IP_ADDRESS": ("IP地址", "IP_ADDRESS"),
}


def custom_recognizers(patterns: dict[str, str]) -> tuple[Recognizer, ...]:
    """Recognisers for `guard.custom_patterns` (label -> regex): an operator's pattern is trusted as is."""
    out = []
    for label, source in patterns.items():
        try:
            pattern = regex.compile(f"(?:{source})")
        except regex.error as e:
            raise UserError(
                f"guard.custom_patterns[{label!r}] is not a valid regular expression ({e}); fix or remove it"
            ) from None
        out.append(Recognizer(label, pattern, lambda s: 1.0))
    return tuple(out)
