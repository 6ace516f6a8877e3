from r1stack.guard import checksums as cs


def test_resident_id_check_character():
    assert cs.valid_id18("11010519491231002X")  # the example printed in GB 11643
    assert cs.valid_id18("11010519491231002x")
    assert not cs.valid_id18("110105194912310021")  # wrong check character
    assert not cs.valid_id18("11010519491331002X")  # month 13
    assert not cs.valid_id18("99010519491231002X")  # no province 99


def test_every_wrong_check_character_is_rejected():
    body = "44030519900307123"
    right = cs.id_check_char(body)
    assert cs.valid_id18(body + right)
    assert all(not cs.valid_id18(body + c) for c in "0123456789X" if c != right)


def test_legacy_15_digit_id():
    assert cs.valid_id15("110105491231002")
    assert not cs.valid_id15("110105491331002")


def test_luhn():
    assert cs.luhn_valid("4111111111111111")
    assert not cs.luhn_valid("4111111111111112")
    payload = "621700123456789012"
    assert cs.luhn_valid(payload + cs.luhn_check_digit(payload))


def test_uscc_check_characters():
    assert cs.valid_uscc("91350100M000100Y43")  # GB 32100's worked example
    assert cs.valid_uscc("91440300708461136T")
    assert not cs.valid_uscc("91350100M000100Y44")
    assert not cs.valid_uscc("91350100M000101Y43")  # organisation code check broken too
    assert not cs.valid_uscc("91350100M0001O0Y43")  # O is not in the GB 32100 alphabet
