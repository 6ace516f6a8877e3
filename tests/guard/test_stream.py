"""The streaming redactor: for every split of the input, what it sends equals the whole-text redaction and never
carries a raw identifier, and it holds back no more than could still become one."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pii_corpus import corpus

from r1stack.guard import PiiFilter

CASES = [  # (entity, value) placed in a Chinese and an English sentence
    ("ID_CARD", "11010519491231002X"),
    ("ID_CARD", "110105491231002"),
    ("MOBILE", "13812345678"),
    ("MOBILE", "+86 138-1234-5678"),
    ("LANDLINE", "(0755)23456789"),
    ("BANK_CARD", "6217001234567890122"),
    ("BANK_CARD", "4111 1111 1111 1111"),
    ("USCC", "91350100M000100Y43"),
    ("PASSPORT", "E12345678"),
    ("EMAIL", "zhang.wei@bank.com.cn"),
    ("IP_ADDRESS", "192.168.10.4"),
    ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
]
CONTEXT = {
    "ID_CARD": ("身份证号", "ID card"),
    "MOBILE": ("手机", "mobile"),
    "LANDLINE": ("座机", "office phone"),
    "BANK_CARD": ("银行卡", "card"),
    "USCC": ("信用代码", "credit code"),
    "PASSPORT": ("护照", "passport"),
    "EMAIL": ("邮箱", "email"),
    "IP_ADDRESS": ("服务器", "server"),
}


def stream(pii, chunks):
    s = pii.stream()
    out = [s.feed(c) for c in chunks] + [s.flush()]
    return out, s


def texts(entity, value):
    zh, en = CONTEXT[entity]
    return [f"客户的{zh}是{value}，请勿外传。", f"The {en} is {value}, keep it private."]


@pytest.mark.parametrize("entity,value", CASES, ids=[f"{e}:{v}" for e, v in CASES])
@pytest.mark.parametrize("policy", ["redact", "mask"])
def test_every_split_position(entity, value, policy):
    pii = PiiFilter(policy)
    for text in texts(entity, value):
        whole = pii.redact(text)
        assert [f.entity for f in whole.findings] == [entity], text
        assert value not in whole.text
        for cut in range(len(text) + 1):
            chunks, s = stream(pii, [text[:cut], text[cut:]])
            assert "".join(chunks) == whole.text, (text, cut)
            assert s.counts == {entity: 1}
            assert [(f.start, f.end) for f in s.findings] == [(f.start, f.end) for f in whole.findings]
            # No chunk carries five letters or digits of the raw value in a row (mask keeps the last four).
            pieces = {value[i : i + 5] for i in range(len(value) - 4) if value[i : i + 5].isalnum()}
            assert not any(p in c for c in chunks for p in pieces if p not in text.replace(value, "")), (
                text,
                cut,
            )
        chunks, _ = stream(pii, list(text))
        assert "".join(chunks) == whole.text


@pytest.mark.parametrize("entity,value", CASES, ids=[f"{e}:{v}" for e, v in CASES])
def test_block_at_every_split_position_sends_only_the_text_before(entity, value):
    pii = PiiFilter("block")
    for text in texts(entity, value):
        before = text[: text.index(value)]
        for cut in range(len(text) + 1):
            chunks, s = stream(pii, [text[:cut], text[cut:]])
            assert s.blocked and s.counts == {entity: 1}, (text, cut)
            assert "".join(chunks) == before, (text, cut)


def test_custom_pattern_split_anywhere():
    pii = PiiFilter("redact", {"EMPLOYEE_ID": r"EMP-\d{6}"})
    text = "工号EMP-004211已离职，请停用其账号。"
    whole = pii.redact(text).text
    assert whole == "工号[EMPLOYEE_ID]已离职，请停用其账号。"
    for cut in range(len(text) + 1):
        chunks, _ = stream(pii, [text[:cut], text[cut:]])
        assert "".join(chunks) == whole and not any("EMP-" in c or "0042" in c for c in chunks), cut


def test_random_chunking_over_the_corpus():
    pii = PiiFilter()
    r = random.Random(5)
    for sample in corpus(400, seed=99):
        text = sample.text
        chunks, at = [], 0
        while at < len(text):
            n = r.randint(1, 7)
            chunks.append(text[at : at + n])
            at += n
        out, _ = stream(pii, chunks)
        assert "".join(out) == pii.redact(text).text, text


def test_holds_back_only_what_could_still_be_an_identifier():
    s = PiiFilter().stream()
    assert s.feed("今天天气很好，") == "今天天气很好，"
    assert s.feed("我的手机是138") == "我的手机是"  # "138" may become a mobile number
    assert s.held == 3
    assert s.feed("1234") == ""
    out = s.feed("5678，明天见，谢谢！")
    assert out.startswith("[手机号]")
    assert s.held == 0 or "13812345678" not in out
    assert s.feed("hello") == ""  # could be the start of hello@example.com
    assert s.feed(" world, ") == "hello world, "


def test_block_stops_the_stream_at_the_identifier():
    s = PiiFilter("block").stream()
    sent = (
        s.feed("你好，我的邮箱是")
        + s.feed("li.na@example")
        + s.feed(".com，再见")
        + s.feed("更多内容")
        + s.flush()
    )
    assert s.blocked
    assert sent == "你好，我的邮箱是"
    assert s.feed("later text") == ""


FRAGMENTS = [
    "13812345678",
    "+86 139 8765 4321",
    "11010519491231002X",
    "110105491231002",
    "6217001234567890122",
    "4111 1111 1111 1111",
    "91350100M000100Y43",
    "E12345678",
    "li.na@example.com",
    "10.1.2.3",
    "fe80::1ff:fe23:4567",
    "010-62345678",
    "订单号",
    "手机",
    "身份证",
    "card number",
    "passport",
    "version",
    "，",
    "。",
    " ",
    ", ",
    "\n",
    "2023112812345678",
    "1701158400123",
    "v1.2.3.4",
    "您好",
    "the",
    "abc",
    "12",
    "-",
    "@",
    ":",
    ".",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    policy=st.sampled_from(["redact", "mask"]),
)
def test_stream_equals_whole_text_for_any_text_and_split(parts, cuts, policy):
    pii = PiiFilter(policy)
    text = "".join(parts)
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    out, s = stream(pii, chunks)
    whole = pii.redact(text)
    assert "".join(out) == whole.text
    assert [(f.entity, f.start, f.end) for f in s.findings] == [
        (f.entity, f.start, f.end) for f in whole.findings
    ]
