import pytest

from sipas_sampling.domain.phone import MOBILE_PREFIXES, MalformedPhone, PhonePlan, normalise_phone


@pytest.mark.parametrize(
    ("text", "national"),
    [
        ("0912345678", "0912345678"),
        ("0912 345 678", "0912345678"),
        ("091.234.5678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("(+84) 91-234-5678", "0912345678"),
        ("+84 (0) 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("0084 912 345 678", "0912345678"),
        ("912345678", "0912345678"),         # a spreadsheet dropped the leading zero
        ("0868123456", "0868123456"),
        ("0321234567", "0321234567"),
        ("024 3825 3536", "02438253536"),   # Hà Nội landline: 11 digits
        ("+84 28 3829 1234", "02838291234"),
        ("0203 3812 345", "02033812345"),   # Quảng Ninh: three-digit area code
        ("2438253536", "02438253536"),
        ("\u00a00912345678 ", "0912345678"),
    ],
)
def test_accepted_forms_normalise_to_the_national_form(text, national):
    assert normalise_phone(text) == national


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no digits"),
        ("   ", "no digits"),
        ("01234567890", "old 11-digit mobile number"),
        ("+1 202 555 0100", "country code other than +84"),
        ("0912 345 67", "a mobile number has 10 digits, not 9"),
        ("09123456789", "a mobile number has 10 digits, not 11"),
        ("0951234567", "unknown mobile network prefix 095"),
        ("0111234567", "unknown mobile network prefix 011"),
        ("0217 123 4567", "unknown landline area code 0217"),
        ("024 3825 353", "a landline number has 11 digits"),
        ("0912345678/0913345678", "unexpected character '/'"),
        ("0912abc678", "unexpected character 'a'"),
    ],
)
def test_refused_numbers_say_why(text, reason):
    with pytest.raises(MalformedPhone) as caught:
        normalise_phone(text)
    assert reason in caught.value.reason
    assert caught.value.field == "phone"


def test_country_code_only_stripped_when_a_full_number_follows():
    # "845…" of 9 digits is a mobile that lost its zero, not "+84" followed by 7 digits.
    assert normalise_phone("845123456") == "0845123456"
    assert normalise_phone("0845123456") == "0845123456"


def test_a_corrected_plan_needs_no_code_change():
    with pytest.raises(MalformedPhone):
        normalise_phone("0951234567")
    plan = PhonePlan(mobile=MOBILE_PREFIXES | {"095"})
    assert normalise_phone("0951234567", plan) == "0951234567"
