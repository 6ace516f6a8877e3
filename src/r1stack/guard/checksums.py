"""Check characters and structural rules of the identifiers we recognise: GB 11643 resident IDs (ISO 7064
MOD 11-2), Luhn card numbers, GB 32100 unified social credit codes (with their GB 11714 organisation code)."""

from __future__ import annotations

import datetime as dt

# Province-level prefixes of GB/T 2260 region codes that appear on resident IDs (83: Taiwan residence permits).
_PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
    + [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83]
)
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]  # 2^(17-i) mod 11
_ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an 18-character resident ID."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= born <= dt.date.today()


def valid_region(code: str) -> bool:
    return code.isdigit() and int(code[:2]) in _PROVINCES and code[2:] != "0000"


def id18_structure_ok(s: str) -> bool:
    """Region and birth date plausible; says nothing of the check character."""
    return (
        len(s) == 18
        and s[:17].isdigit()
        and valid_region(s[:6])
        and _valid_date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    )


def valid_id18(s: str) -> bool:
    s = s.upper()
    return id18_structure_ok(s) and s[17] == id_check_char(s[:17])


def valid_id15(s: str) -> bool:
    """Legacy 15-digit ID (before 1999): region, 19YYMMDD birth date, 3-digit sequence; no check digit."""
    return (
        len(s) == 15
        and s.isdigit()
        and valid_region(s[:6])
        and _valid_date(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]))
    )


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload + digit` pass Luhn."""
    for d in "0123456789":
        if luhn_valid(payload + d):
            return d
    raise AssertionError("unreachable")


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]  # 3^i mod 31
_USCC_AUTHORITIES = "123456789ANY"
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """GB 11714 check character of a 9-character organisation code (positions 9-17 of a USCC)."""
    total = sum(
        (int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True)
    )
    r = 11 - total % 11
    return "X" if r == 10 else "0" if r == 11 else str(r)


def valid_uscc(s: str) -> bool:
    """GB 32100 code: authority, 6-digit region, GB 11714 organisation code, and the mod-31 check character."""
    if len(s) != 18 or any(c not in _USCC_CHARS for c in s):
        return False
    if s[0] not in _USCC_AUTHORITIES or not s[2:8].isdigit():
        return False
    return s[16] == org_code_check_char(s[8:16]) and s[17] == uscc_check_char(s[:17])
