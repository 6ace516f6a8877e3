"""A labelled corpus, generated from a seed: valid identifiers of every type in Chinese and English sentences,
and the things that look like them but are not (wrong check characters, unused mobile prefixes, order ids,
tracking numbers, timestamps, versions). Shared by the tests and benchmarks/guard.py."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from r1stack.guard import checksums as cs

REGIONS = [
    "110105",
    "310104",
    "440305",
    "320102",
    "510107",
    "330106",
    "420111",
    "610113",
    "620102",
    "370202",
    "340104",
    "500103",
    "120101",
    "210102",
    "350203",
    "650102",
    "130102",
    "450103",
    "530102",
    "230103",
]
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "145",
    "147",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "162",
    "166",
    "170",
    "171",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "190",
    "191",
    "192",
    "193",
    "195",
    "196",
    "197",
    "198",
    "199",
]
BAD_MOBILE_PREFIXES = [
    "140",
    "141",
    "142",
    "143",
    "144",
    "154",
    "160",
    "161",
    "163",
    "164",
    "168",
    "169",
    "179",
    "194",
]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
NAMES = [
    "zhang.wei",
    "li_na",
    "wang.fang88",
    "liu.yang",
    "chen.jing",
    "john.smith",
    "mary-jones",
    "a.kumar",
    "yang123",
]
DOMAINS = ["example.com", "corp.cn", "mail.bank.com.cn", "hospital.org", "163.com", "qq.com", "uni.edu"]


@dataclass
class Sample:
    text: str
    spans: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # (entity, start, end) of true identifiers


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[str, int, int]] = []
        self.at = 0

    def add(self, s: str, entity: str | None = None) -> None:
        if entity:
            self.spans.append((entity, self.at, self.at + len(s)))
        self.parts.append(s)
        self.at += len(s)

    def sample(self) -> Sample:
        return Sample("".join(self.parts), self.spans)


def _digits(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789") for _ in range(n))


def id18(r: random.Random, valid: bool = True) -> str:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=r.randrange(365 * 68))
    body = r.choice(REGIONS) + born.strftime("%Y%m%d") + _digits(r, 3)
    check = cs.id_check_char(body)
    if not valid:
        check = r.choice([c for c in "0123456789X" if c != check])
    return body + check


def id15(r: random.Random) -> str:
    born = dt.date(1930, 1, 1) + dt.timedelta(days=r.randrange(365 * 60))
    return r.choice(REGIONS) + born.strftime("%y%m%d") + _digits(r, 3)


def mobile(r: random.Random, prefixes: list[str] = MOBILE_PREFIXES) -> str:
    n = r.choice(prefixes) + _digits(r, 8)
    style = r.randrange(6)
    if style == 1:
        return f"{n[:3]}-{n[3:7]}-{n[7:]}"
    if style == 2:
        return f"{n[:3]} {n[3:7]} {n[7:]}"
    if style == 3:
        return "+86" + n
    if style == 4:
        return f"+86 {n[:3]} {n[3:7]} {n[7:]}"
    return n


def landline(r: random.Random) -> str:
    area = r.choice(["010", "021", "020", "022", "028", "0755", "0571", "0512", "0731", "0351"])
    # four-digit areas (0755, 0571, ...) also have seven-digit local numbers
    local = r.choice("2345678") + _digits(r, 6 if len(area) == 4 and r.random() < 0.3 else 7)
    style = r.randrange(4)
    if style == 1:
        return f"({area}){local}"
    if style == 2:
        return f"+86-{area[1:]}-{local}"
    if style == 3:
        return f"{area} {local[:-4]} {local[-4:]}"  # 0755 2345 6789, 0755 234 5678
    return f"{area}-{local}"


def card(r: random.Random, valid: bool = True) -> str:
    kind = r.randrange(4)
    if kind == 0:
        payload = "62" + _digits(r, r.choice([13, 14, 15, 16]))  # UnionPay, 16-19 digits
    elif kind == 1:
        payload = "4" + _digits(r, 14)
    elif kind == 2:
        payload = r.choice(["51", "52", "53", "54", "55"]) + _digits(r, 13)
    else:
        payload = r.choice(["34", "37"]) + _digits(r, 12)
    check = cs.luhn_check_digit(payload)
    if not valid:
        check = r.choice([d for d in "0123456789" if d != check])
    n = payload + check
    if r.random() < 0.4 and len(n) in (16, 19):
        return " ".join(n[i : i + 4] for i in range(0, len(n), 4))
    return n


def uscc(r: random.Random, valid: bool = True) -> str:
    org8 = "".join(r.choice(USCC_CHARS[:10] if i < 2 else USCC_CHARS) for i in range(8))
    org9 = org8 + cs.org_code_check_char(org8)
    first17 = r.choice("9915") + r.choice("1239") + r.choice(REGIONS) + org9
    check = cs.uscc_check_char(first17)
    if not valid:
        check = r.choice([c for c in USCC_CHARS if c != check])
    return first17 + check


def passport(r: random.Random) -> str:
    style = r.randrange(3)
    if style == 0:
        return "E" + _digits(r, 8)
    if style == 1:
        return "E" + r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + _digits(r, 7)
    return "G" + _digits(r, 8)


def email(r: random.Random) -> str:
    return f"{r.choice(NAMES)}{r.choice(['', str(r.randrange(100))])}@{r.choice(DOMAINS)}"


def ipv4(r: random.Random) -> str:
    return ".".join(
        str(x) for x in [r.choice([10, 172, 192, 61, 114, 202, 8]), *(r.randrange(256) for _ in range(3))]
    )


def ipv6(r: random.Random) -> str:
    groups = [f"{r.randrange(65536):x}" for _ in range(8)]
    if r.random() < 0.5:
        return ":".join(groups)
    return "fe80::" + ":".join(groups[:4])


# (entity, generator, Chinese contexts, English contexts); "{}" is where the value goes.
POSITIVE = [
    (
        "ID_CARD",
        id18,
        ["身份证号：{}。", "他的身份证号码是{}，请核对。", "证件号{}已登记", "请提供{}的复印件"],
        ["ID card number: {}.", "National ID {} was verified.", "Please check {} again."],
    ),
    (
        "ID_CARD",
        id15,
        ["老身份证号{}仍在使用", "身份证：{}"],
        ["Old resident ID {} on file.", "identity card no. {}"],
    ),
    (
        "MOBILE",
        mobile,
        ["请拨打{}联系我", "手机：{}", "有问题找{}，谢谢", "联系方式{}（微信同号）"],
        ["Call me at {} tomorrow.", "Mobile: {}", "You can reach her on {} after six."],
    ),
    (
        "LANDLINE",
        landline,
        ["办公电话{}", "座机：{}，分机请转人工", "请致电{}"],
        ["Office phone {}.", "Tel: {}", "Fax it to {} today."],
    ),
    (
        "BANK_CARD",
        card,
        ["银行卡号{}", "请把款打到{}，户名张三", "信用卡：{}"],
        ["Card number {} expires soon.", "Pay to account {} please.", "Visa {} was charged."],
    ),
    (
        "USCC",
        uscc,
        ["统一社会信用代码：{}", "营业执照号{}", "公司代码为{}"],
        ["Unified social credit code {}.", "Business license {} is valid."],
    ),
    (
        "PASSPORT",
        passport,
        ["护照号码{}", "持护照{}入境"],
        ["Passport No. {}", "passport {} expires in 2030"],
    ),
    ("EMAIL", email, ["邮箱：{}", "请发邮件到{}", "联系{}"], ["Email {} for details.", "write to {}"]),
    (
        "IP_ADDRESS",
        ipv4,
        ["服务器地址{}", "来自{}的请求"],
        ["Server IP {} is down.", "Requests from {} were blocked."],
    ),
    ("IP_ADDRESS", ipv6, ["IPv6地址：{}", "主机{}"], ["host {} answered", "IPv6 address {}."]),
]


def _order_id(r: random.Random) -> str:
    return r.choice(["2023", "2024", "2025"]) + _digits(r, r.choice([12, 14, 15]))


def _ts10(r: random.Random) -> str:
    return str(r.randrange(1_500_000_000, 1_800_000_000))


def _ts13(r: random.Random) -> str:
    return str(r.randrange(1_500_000_000_000, 1_800_000_000_000))


def _datetime14(r: random.Random) -> str:
    return (dt.datetime(2020, 1, 1) + dt.timedelta(seconds=r.randrange(10**8))).strftime("%Y%m%d%H%M%S")


def _tracking(r: random.Random) -> str:
    return r.choice(["SF", "YT", "JD", "ZTO"]) + _digits(r, r.choice([12, 13]))


def _version(r: random.Random) -> str:
    return ".".join(str(r.randrange(20)) for _ in range(r.choice([3, 4])))


def _luhn_order(r: random.Random) -> str:
    payload = r.choice(["2023", "2024", "4000", "6200"]) + _digits(r, 11)
    return payload + cs.luhn_check_digit(payload)


# Look-alikes: (generator, Chinese contexts, English contexts). None of these is an identifier.
NEGATIVE = [
    (lambda r: id18(r, valid=False), ["身份证号{}（校验位有误）", "编号{}"], ["ID {} failed validation."]),
    (lambda r: card(r, valid=False), ["卡号{}无效", "请核对{}"], ["card {} was declined as invalid"]),
    (lambda r: uscc(r, valid=False), ["信用代码{}校验失败"], ["credit code {} is malformed"]),
    (lambda r: mobile(r, BAD_MOBILE_PREFIXES), ["号码{}不存在", "数据{}"], ["number {} is not assigned"]),
    (_order_id, ["订单号{}已发货", "您的订单{}正在处理"], ["Order {} has shipped.", "order no. {}"]),
    (_luhn_order, ["订单编号：{}", "交易号{}"], ["Order reference {} confirmed.", "invoice {} is paid"]),
    (_ts10, ["时间戳{}", "created_at={}"], ["timestamp {}", "at unix time {}"]),
    (_ts13, ["毫秒时间戳{}", "ts={}"], ["timestamp {} ms", "event time {}"]),
    (_datetime14, ["流水号{}", "批次{}"], ["batch {} done", "serial {}"]),
    (_tracking, ["快递单号{}", "运单{}已签收"], ["tracking number {}", "Your parcel {} arrived."]),
    (_version, ["版本{}已发布", "升级到版本 {}"], ["version {} released", "upgrade to v{}"]),
    (lambda r: f"400-{_digits(r, 3)}-{_digits(r, 4)}", ["客服热线{}"], ["hotline {}"]),
    (lambda r: f"{r.randrange(1, 99999)}.{r.randrange(100):02d}", ["金额{}元", "共计{}"], ["total {} USD"]),
    (
        lambda r: f"{r.randrange(2000, 2030)}年{r.randrange(1, 13)}月{r.randrange(1, 29)}日",
        ["日期{}"],
        ["on {}"],
    ),
]


def corpus(n: int = 2000, seed: int = 7) -> list[Sample]:
    """n sentences: about half carry one or two identifiers, the rest look-alikes (some sentences mix both)."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        b = _Builder()
        for j in range(r.choice([1, 1, 2])):
            if j:
                b.add(r.choice(["；另外，", "; also ", "，以及", " and "]))
            if (i + j) % 2 == 0:
                entity, gen, zh, en = r.choice(POSITIVE)
                template = r.choice(zh if r.random() < 0.6 else en)
                value = gen(r)
                head, tail = template.split("{}")
                b.add(head)
                b.add(value, entity)
                b.add(tail)
            else:
                gen, zh, en = r.choice(NEGATIVE)
                template = r.choice(zh if r.random() < 0.6 else en)
                head, tail = template.split("{}")
                b.add(head + gen(r) + tail)
        out.append(b.sample())
    return out


def score(samples: list[Sample], predict) -> dict[str, float]:
    """Exact-span, same-type matching. `predict(text)` returns (entity, start, end) triples."""
    tp = fp = fn = 0
    misses, false_alarms = [], []
    for s in samples:
        gold = set(s.spans)
        pred = set(predict(s.text))
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
        if gold - pred:
            misses.append((s.text, sorted(gold - pred)))
        if pred - gold:
            false_alarms.append((s.text, sorted(pred - gold)))
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "misses": misses,
        "false_alarms": false_alarms,
    }
