"""Rows of the resident design's stage files, checked one at a time like frame rows (METHODOLOGY §5).

- communes: ``commune_code, households`` — the measure of size of each commune of the province;
- villages: ``commune_code, village_code, village_name, households`` — for the communes stage 1 selected;
- households: ``village_code, household_id, head_name, phone, address`` — the listing of each village
  stage 2 selected. Household ids need only be distinct within their village (listings number them
  1, 2, 3… per village); village codes identify a village on their own within a round.

Every fault names its field and a stable code, never the rejected value (a name or phone number must
not reach a report). Text is normalised as in frames (``clean_text``); counts are whole numbers,
written plainly or with thousands grouped by ``.`` ``,`` or a space (``1.250`` is 1250 households:
a count cannot be fractional, so the Vietnamese grouping is not mistaken for a decimal point).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sipas_sampling.domain.frame import ErrorCode, RowError, clean_text
from sipas_sampling.domain.phone import DEFAULT_PHONE_PLAN, MalformedPhone, PhonePlan, normalise_phone

CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,49}")
_COUNT = re.compile(r"\d{1,3}(?:([.,\u00a0 ])\d{3})?(?:\1\d{3})*|\d+")
MAX_TEXT = 500
T = TypeVar("T")


@dataclass(frozen=True)
class CommuneSize:
    code: str
    households: int


@dataclass(frozen=True)
class VillageRow:
    commune_code: str
    code: str
    name: str
    households: int


@dataclass(frozen=True)
class HouseholdRow:
    village_code: str
    household_id: str
    head_name: str
    phone: str | None
    address: str | None


@dataclass(frozen=True)
class Checked(Generic[T]):
    """A clean ``row``, or ``None`` and every error found."""

    row: T | None
    errors: tuple[RowError, ...] = ()


class _Row:
    """One raw row being checked: cleaned text per field, and the errors met so far."""

    def __init__(self, raw: Mapping[str, object], line: int | None) -> None:
        self.raw, self.line, self.errors = raw, line, list[RowError]()

    def fail(self, name: str, code: ErrorCode, message: str) -> None:
        self.errors.append(RowError(name, code, message, self.line))

    def text(self, name: str, *, required: bool = True) -> str:
        value = self.raw.get(name)
        cleaned = "" if value is None else clean_text(value if isinstance(value, str) else str(value))
        if required and not cleaned:
            self.fail(name, "missing", f"{name} is required")
        elif len(cleaned) > MAX_TEXT:
            self.fail(name, "malformed", f"{name} is longer than {MAX_TEXT} characters")
        return cleaned

    def code(self, name: str) -> str:
        value = self.text(name)
        if value and not CODE.fullmatch(value):
            self.fail(name, "malformed", f"{name} must be 1 to 50 letters, digits, '.', '_' or '-'")
        return value

    def count(self, name: str) -> int | None:
        value = self.raw.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value >= 0:
                return value
        else:
            text = self.text(name)
            if not text:
                return None  # reported as missing
            if _COUNT.fullmatch(text):
                return int(re.sub(r"\D", "", text))
        self.fail(name, "malformed", f"{name} must be a whole number of households, 0 or more")
        return None

    def done(self, build: Callable[[], T]) -> Checked[T]:
        return Checked(None, tuple(self.errors)) if self.errors else Checked(build())


def check_commune(raw: Mapping[str, object], known: Callable[[str], bool], seen: set[str],
                  line: int | None = None) -> Checked[CommuneSize]:
    """``known(code)``: is it a commune of the campaign's province(s) on the reference day?"""
    row = _Row(raw, line)
    code, households = row.text("commune_code"), row.count("households")
    if code:
        if not known(code):
            row.fail("commune_code", "unknown_agency", f"{code} is not a commune of this campaign in the registry")
        elif code in seen:
            row.fail("commune_code", "duplicate", f"commune {code} appears earlier in this file")
        seen.add(code)
    return row.done(lambda: CommuneSize(code, households or 0))


def check_village(raw: Mapping[str, object], communes: Collection[str], seen: set[str],
                  line: int | None = None) -> Checked[VillageRow]:
    """``communes``: the communes stage 1 selected; ``seen``: village codes met so far in the file."""
    row = _Row(raw, line)
    commune, code = row.text("commune_code"), row.code("village_code")
    name, households = row.text("village_name"), row.count("households")
    if commune and commune not in communes:
        row.fail("commune_code", "not_selected", f"commune {commune} was not selected at stage 1 of this round")
    if code:
        if code in seen:
            row.fail("village_code", "duplicate", f"village {code} appears earlier in this file")
        seen.add(code)
    return row.done(lambda: VillageRow(commune, code, name, households or 0))


def check_household(raw: Mapping[str, object], villages: Collection[str], seen: set[tuple[str, str]],
                    line: int | None = None, phone_plan: PhonePlan = DEFAULT_PHONE_PLAN) -> Checked[HouseholdRow]:
    """``villages``: the villages stage 2 selected; ``seen``: (village, household) pairs met so far."""
    row = _Row(raw, line)
    village, household = row.text("village_code"), row.text("household_id")
    head, address = row.text("head_name"), row.text("address", required=False)
    phone_text = row.text("phone", required=False)
    phone = _phone(row, phone_text, phone_plan)
    if not (phone_text or address):
        row.fail("phone", "missing", "a phone number or an address is required to reach the household")
    if village and village not in villages:
        row.fail("village_code", "not_selected", f"village {village} was not selected at stage 2 of this round")
    if village and household:
        if (village, household) in seen:
            row.fail("household_id", "duplicate", f"household {household} of village {village} appears earlier")
        seen.add((village, household))
    return row.done(lambda: HouseholdRow(village, household, head, phone, address or None))


def _phone(row: _Row, text: str, plan: PhonePlan) -> str | None:
    if not text:
        return None
    try:
        return normalise_phone(text, plan)
    except MalformedPhone as exc:  # never repeat the number itself
        row.fail("phone", "malformed", f"the phone number is malformed: {exc.reason}")
        return None


def unlisted(wanted: Mapping[str, str], listed: Collection[str], what: str, why: str) -> list[RowError]:
    """One error per wanted unit (code -> description) the file left without an accepted row."""
    return [RowError(what, "unlisted", f"{description} has no accepted row: {why}", 0)
            for code, description in sorted(wanted.items()) if code not in listed]
