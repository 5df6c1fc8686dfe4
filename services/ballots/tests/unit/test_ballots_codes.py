import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_ballots.domain.codes import (
    ALPHABET,
    CODE_LENGTH,
    RANDOM_BITS,
    _fold,
    _times_x,
    check_symbol,
    derived_code,
    display,
    is_valid,
    new_code,
    normalise,
    parse_code,
    qr_url,
)
from sipas_ballots.domain.errors import BadCodeCharacter, BadCodeCheck, BadCodeLength, InvalidCode, InvalidParameter

KEY = b"campaign-2025-code-key-32-bytes!"
codes = st.integers(min_value=0, max_value=(1 << RANDOM_BITS) - 1).map(
    lambda bits: new_code(FixedBits(bits)))


class FixedBits:
    def __init__(self, bits):
        self.bits = bits
        self.asked = []

    def getrandbits(self, k):
        self.asked.append(k)
        return self.bits


def test_alphabet_is_crockford_base32():
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)


def test_the_check_operation_is_a_totally_antisymmetric_quasigroup():
    # every row and column of s ∘ y = x·s + y is a permutation …
    for s in range(32):
        assert sorted(_times_x(s) ^ y for y in range(32)) == list(range(32))
    assert sorted(_times_x(s) for s in range(32)) == list(range(32))
    # … and (s ∘ a) ∘ b = (s ∘ b) ∘ a only when a = b
    for s, a, b in itertools.product(range(32), repeat=3):
        if a != b:
            assert _times_x(_times_x(s) ^ a) ^ b != _times_x(_times_x(s) ^ b) ^ a


def test_known_vectors_pin_the_algorithm():
    assert check_symbol("0000000000") == "0"
    assert check_symbol("0000000001") == "2"
    assert new_code(FixedBits(0)) == "00000000000"
    assert new_code(FixedBits(1)) == "00000000012"


@given(codes)
def test_every_single_substitution_is_detected(code):
    for position, symbol in itertools.product(range(CODE_LENGTH), ALPHABET):
        if symbol != code[position]:
            typo = code[:position] + symbol + code[position + 1:]
            with pytest.raises(BadCodeCheck):
                parse_code(typo)


@given(codes)
def test_every_adjacent_transposition_is_detected(code):
    for position in range(CODE_LENGTH - 1):
        a, b = code[position], code[position + 1]
        if a != b:
            swapped = code[:position] + b + a + code[position + 2:]
            assert _fold(swapped) != 0
            with pytest.raises(BadCodeCheck):
                parse_code(swapped)


@given(codes)
def test_parse_reads_back_the_display_form_and_sloppy_typing(code):
    shown = display(code)
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{3}", shown)
    assert parse_code(shown) == code
    assert parse_code(f"  {shown.lower()} ") == code
    assert parse_code(" ".join(code)) == code
    sloppy = code.replace("0", "O").replace("1", "l")
    assert parse_code(sloppy) == code


def test_look_alikes_and_separators_are_normalised():
    assert normalise("ab-cd ef\u2013gh_i.o") == "ABCDEFGH10"
    assert normalise("\uff21\uff22\uff11") == "AB1"  # full-width keyboard input


def test_new_code_uses_fifty_random_bits_and_the_system_generator_by_default():
    rng = FixedBits(123456789)
    code = new_code(rng)
    assert rng.asked == [RANDOM_BITS]
    assert is_valid(code) and len(code) == CODE_LENGTH
    drawn = {new_code() for _ in range(200)}
    assert len(drawn) == 200 and all(is_valid(c) for c in drawn)


def test_derived_codes_are_reproducible_and_depend_on_every_input():
    code = derived_code(KEY, "c-2025", "unit-1", 1)
    assert is_valid(code)
    assert derived_code(KEY, "c-2025", "unit-1", 1) == code
    others = {derived_code(KEY, "c-2025", "unit-1", 2), derived_code(KEY, "c-2025", "unit-2", 1),
              derived_code(KEY, "c-2026", "unit-1", 1), derived_code(KEY[::-1], "c-2025", "unit-1", 1)}
    assert code not in others and len(others) == 4


def test_derived_codes_need_a_real_key_and_a_counter_from_one():
    with pytest.raises(InvalidParameter) as short:
        derived_code(b"short", "c", "u", 1)
    assert short.value.field == "key"
    with pytest.raises(InvalidParameter) as zero:
        derived_code(KEY, "c", "u", 0)
    assert zero.value.field == "counter"


@pytest.mark.parametrize(("text", "error", "words"), [
    ("", BadCodeLength, "11 characters, not 0"),
    ("7K3M-Q9TX", BadCodeLength, "not 8"),
    ("7K3M-Q9TX-2HCV", BadCodeLength, "not 12"),
    ("7K3M-Q9TX-2HU", BadCodeCharacter, "U is not used"),
    ("7K3M-Q9TX-2H!", BadCodeCharacter, "character 11"),
])
def test_malformed_codes_say_what_is_wrong(text, error, words):
    with pytest.raises(error) as raised:
        parse_code(text)
    assert words in str(raised.value)
    assert raised.value.field == "code"
    assert isinstance(raised.value, InvalidCode)


def test_bad_character_reports_its_position_in_the_normalised_text():
    with pytest.raises(BadCodeCharacter) as raised:
        parse_code("ab-c*")
    assert (raised.value.position, raised.value.character) == (4, "*")


def test_a_wrong_check_character_is_its_own_error():
    code = new_code(FixedBits(987654321))
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(BadCodeCheck):
        parse_code(wrong)
    assert not is_valid(wrong)


def test_qr_content_is_the_form_url_with_the_canonical_code():
    code = new_code(FixedBits(42))
    assert qr_url("https://sipas.example.gov.vn/", display(code)) == f"https://sipas.example.gov.vn/b/{code}"
    assert qr_url("https://example.vn/khao-sat", code) == f"https://example.vn/khao-sat/b/{code}"


@pytest.mark.parametrize("base", ["sipas.gov.vn", "ftp://x.vn", "https://x.vn/?q=1", ""])
def test_qr_needs_an_http_base(base):
    with pytest.raises(InvalidParameter) as raised:
        qr_url(base, new_code(FixedBits(42)))
    assert raised.value.field == "base_url"
