"""Vietnamese telephone numbers: one national form, so a number written five ways is one number.

The rule, in order:

1. Spaces, dots, hyphens and brackets are separators and vanish; a leading ``+`` is kept; any other
   character (a letter, ``/`` between two numbers, …) makes the number malformed.
2. The country code goes: ``+84…`` and ``0084…`` always; a bare ``84…`` only when that leaves 9 or 10
   digits (a full number), so ``0845…`` and ``845…`` are not mistaken for it. A trunk zero written
   after the country code (``+84 (0) 912…``) goes too. Any other ``+`` country code is refused.
3. A number of 9 or 10 digits not starting with 0 has lost its leading zero (spreadsheets drop it
   from numeric cells), and gets it back.
4. The national form then must be either
   - a **mobile** number: 10 digits, ``0`` + a three-digit network prefix of ``PhonePlan.mobile``; or
   - a **landline**: 11 digits, ``02`` + an area code of ``PhonePlan.landline`` (``024`` Hà Nội and
     ``028`` Hồ Chí Minh City are two digits after the 0, the 61 others three: ``0203`` … ``0299``).
   Old 11-digit mobile numbers (``01x…``), renumbered in 2018, are refused with that reason rather
   than converted: the converted number is the citizen's to confirm.

So mobiles come out as ``0XXXXXXXXX`` (10 digits) and landlines as ``02XXXXXXXXX`` (11 digits):
Vietnamese landlines have been 11 digits since the 2017 area-code change, and cutting them to 10
would make them unreachable.

The prefix lists are reconstructed from the operators' published allocations (2018 mobile
renumbering, 2017 area codes), not read from one official table; callers pass a corrected
``PhonePlan`` when the regulator allocates a new prefix, with no code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipas_sampling.domain.errors import SamplingError

SEPARATORS = frozenset(" .-()\u00a0")

MOBILE_PREFIXES = frozenset(
    {f"03{d}" for d in "23456789"}            # Viettel
    | {"052", "055", "056", "058", "059"}     # Vietnamobile, Reddi, Gmobile
    | {"070", "076", "077", "078", "079"}     # MobiFone
    | {f"08{d}" for d in "123456789"}         # Vinaphone, Viettel (086), Itelecom (087), MobiFone (089)
    | {f"09{d}" for d in "01234" "6789"}      # the original 09x networks (095 is closed)
)

LANDLINE_AREA_CODES = frozenset(
    {"024", "028"}
    | {f"02{n:02d}" for n in (
        3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19,     # northern mountains and midlands
        20, 21, 22, 25, 26, 27, 28, 29,                             # Red River delta
        32, 33, 34, 35, 36, 37, 38, 39,                             # north and central coast
        51, 52, 54, 55, 56, 57, 58, 59,                             # south-central coast, Đồng Nai
        60, 61, 62, 63, 69,                                         # Central Highlands
        70, 71, 72, 73, 74, 75, 76, 77,                             # south-east, upper Mekong delta
        90, 91, 92, 93, 94, 96, 97, 99,                             # lower Mekong delta
    )}
)


class MalformedPhone(SamplingError):
    """The text is not a Vietnamese telephone number under the rule above; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="phone")
        self.reason = reason


@dataclass(frozen=True)
class PhonePlan:
    """Which national prefixes are in service: mobile network prefixes and landline area codes."""

    mobile: frozenset[str] = field(default=MOBILE_PREFIXES)
    landline: frozenset[str] = field(default=LANDLINE_AREA_CODES)


DEFAULT_PHONE_PLAN = PhonePlan()


def normalise_phone(text: str, plan: PhonePlan = DEFAULT_PHONE_PLAN) -> str:
    """The national form of ``text`` (``0XXXXXXXXX`` mobile, ``02XXXXXXXXX`` landline), or ``MalformedPhone``."""
    national = _national_digits(_strip_separators(text))
    if national.startswith("01") and len(national) == 11:
        raise MalformedPhone("old 11-digit mobile number (01x…), renumbered to 10 digits in 2018")
    if national.startswith("02"):
        return _landline(national, plan)
    return _mobile(national, plan)


def _strip_separators(text: str) -> str:
    compact = "".join(ch for ch in text.strip() if ch not in SEPARATORS)
    if not compact:
        raise MalformedPhone("no digits")
    body = compact[1:] if compact.startswith("+") else compact
    bad = next((ch for ch in body if not ("0" <= ch <= "9")), None)
    if bad is not None:
        raise MalformedPhone(f"unexpected character {bad!r}")
    return compact


def _national_digits(compact: str) -> str:
    if compact.startswith("+"):
        if not compact.startswith("+84"):
            raise MalformedPhone("not a Vietnamese number (country code other than +84)")
        return "0" + compact[3:].removeprefix("0")
    if compact.startswith("0084"):
        return "0" + compact[4:].removeprefix("0")
    if compact.startswith("84") and len(compact) in (11, 12):
        return "0" + compact[2:]
    if not compact.startswith("0") and len(compact) in (9, 10):
        return "0" + compact
    return compact


def _landline(national: str, plan: PhonePlan) -> str:
    if len(national) != 11:
        raise MalformedPhone(f"a landline number has 11 digits (02 + area code + subscriber), not {len(national)}")
    if national[:3] not in plan.landline and national[:4] not in plan.landline:
        raise MalformedPhone(f"unknown landline area code {national[:4]}")
    return national


def _mobile(national: str, plan: PhonePlan) -> str:
    if len(national) != 10:
        raise MalformedPhone(f"a mobile number has 10 digits, not {len(national)}")
    if national[:3] not in plan.mobile:
        raise MalformedPhone(f"unknown mobile network prefix {national[:3]}")
    return national
