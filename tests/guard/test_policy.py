import pytest

from r1stack.config import Settings
from r1stack.errors import UserError
from r1stack.guard import PiiFilter
from r1stack.guard.policy import mask


def test_label_follows_the_language_of_the_text():
    assert PiiFilter().redact("我的身份证号是11010519491231002X").text == "我的身份证号是[身份证号]"
    assert PiiFilter().redact("My ID card is 11010519491231002X").text == "My ID card is [ID_CARD]"
    # each finding follows its own clause, so a mixed reply gets both languages
    mixed = "客户的手机是13812345678。Her email is li.na@example.com, thanks"
    assert PiiFilter().redact(mixed).text == "客户的手机是[手机号]。Her email is [EMAIL], thanks"


def test_mask_keeps_last_four():
    assert mask("6217 0012 3456 7890 122") == "**** **** **** ***0 122"
    assert PiiFilter("mask").redact("手机13812345678").text == "手机*******5678"


def test_block_and_allow():
    blocked = PiiFilter("block").redact("邮箱a.b@example.com")
    assert blocked.blocked and blocked.text == "" and blocked.counts == {"EMAIL": 1}
    allowed = PiiFilter("allow").redact("邮箱a.b@example.com")
    assert not allowed.blocked and allowed.text == "邮箱a.b@example.com" and allowed.counts == {"EMAIL": 1}
    clean = PiiFilter("block").redact("nothing here")
    assert not clean.blocked and clean.text == "nothing here"


def test_policy_per_key(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        guard={
            "pii_policy": "redact",
            "key_policies": {"k-ops": "mask", "k-qa": "allow", "k-strict": "block"},
        },
    )
    text = "call 13812345678"
    assert PiiFilter.for_key(settings, None).redact(text).text == "call [PHONE]"
    assert PiiFilter.for_key(settings, "k-ops").redact(text).text == "call *******5678"
    assert PiiFilter.for_key(settings, "k-qa").redact(text).text == text
    assert PiiFilter.for_key(settings, "other").redact(text).text == "call [PHONE]"
    strict = PiiFilter.for_key(settings, "k-strict").redact(text)
    assert strict.blocked and strict.text == "" and strict.counts == {"MOBILE": 1}


def test_bad_configuration_is_a_user_error():
    with pytest.raises(UserError, match="policy"):
        PiiFilter("shred")
    with pytest.raises(UserError, match="custom_patterns"):
        PiiFilter("redact", {"BAD": "(unclosed"})
