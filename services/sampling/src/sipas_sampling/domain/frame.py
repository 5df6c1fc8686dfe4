"""Frame rows and their validation: every rejected row says which field failed and why.

A frame lists the people and organisations who completed a procedure in the campaign's window
(METHODOLOGY §5). Agencies send it as a spreadsheet; the adapter turns each line into a mapping of
column name → cell value and ``validate_row`` turns that into a clean ``FrameRow`` or a list of
``RowError``s. Nothing is silently dropped or repaired beyond the documented normalisations:

- text: Unicode NFC, surrounding whitespace removed, inner runs of whitespace collapsed to one space
  (so ``Nguyễn  Văn A`` typed with combining accents equals the precomposed form);
- dates: ``date`` values, ISO ``YYYY-MM-DD`` or Vietnamese day-first ``DD/MM/YYYY`` text;
- respondent type: ``individual`` / ``cá nhân``, ``organisation`` / ``organization`` / ``tổ chức``
  (case- and accent-insensitive for the unaccented spellings);
- phone: the national form of ``phone.normalise_phone``.

Dossier ids are unique across the whole frame, not per agency: the same dossier listed by two
agencies would otherwise get two chances of selection.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sipas_sampling.domain.phone import DEFAULT_PHONE_PLAN, MalformedPhone, PhonePlan, normalise_phone

RespondentType = Literal["individual", "organisation"]
ErrorCode = Literal["missing", "malformed", "invalid", "outside_window", "unknown_agency", "duplicate",
                    "not_selected", "unlisted"]
Fail = Callable[[str, ErrorCode, str], None]
AgencyCheck = Callable[[str, dt.date], bool]
"""``(agency_code, day) -> bool``: is this agency in the registry and valid on that day?"""

TEXT_FIELDS = ("agency_code", "procedure", "service_field", "dossier_id", "name", "phone", "address")
REQUIRED = ("agency_code", "procedure", "service_field", "dossier_id", "completed_on", "respondent_type", "name")
RESPONDENT_TYPES: dict[str, RespondentType] = {
    "individual": "individual", "ca nhan": "individual", "cá nhân": "individual",
    "organisation": "organisation", "organization": "organisation", "to chuc": "organisation",
    "tổ chức": "organisation",
}
_DAY_FIRST = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


@dataclass(frozen=True)
class Window:
    """The campaign's frame window, both ends inclusive."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end


@dataclass(frozen=True)
class FrameRow:
    agency_code: str
    procedure: str
    service_field: str
    dossier_id: str
    completed_on: dt.date
    respondent_type: RespondentType
    name: str
    phone: str | None
    address: str | None


@dataclass(frozen=True)
class RowError:
    """One reason a row was rejected: ``code`` is stable for machines, ``message`` for people."""

    field: str
    code: ErrorCode
    message: str
    line: int | None = None


@dataclass(frozen=True)
class RowCheck:
    """The outcome for one row: a clean ``row`` or, when anything failed, every ``errors`` found."""

    row: FrameRow | None
    errors: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.row is not None


@dataclass(frozen=True)
class FrameRules:
    """What a row must satisfy; ``require_phone`` for phone surveys, else a phone or an address will do."""

    window: Window
    agency_known: AgencyCheck
    phone_plan: PhonePlan = field(default=DEFAULT_PHONE_PLAN)
    require_phone: bool = False


def known_agencies(codes: Collection[str]) -> AgencyCheck:
    """An ``AgencyCheck`` from a fixed set of codes valid throughout the window."""
    frozen = frozenset(clean_text(c) for c in codes)
    return lambda code, _day: code in frozen


def clean_text(value: str) -> str:
    """NFC, trimmed, inner whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def validate_row(raw: Mapping[str, object], rules: FrameRules, seen: set[str], line: int | None = None) -> RowCheck:
    """Check one frame line. ``seen`` holds the dossier ids met so far in this file; a present dossier id
    is added to it even when the row fails for another reason, so every later repeat is reported."""
    errors: list[RowError] = []

    def fail(name: str, code: ErrorCode, message: str) -> None:
        errors.append(RowError(name, code, message, line))

    text = {name: _text(raw.get(name)) for name in TEXT_FIELDS}
    for name in REQUIRED:
        if not _text(raw.get(name)):
            fail(name, "missing", f"{name} is required")
    completed_on = _completed_on(raw.get("completed_on"), rules, text["agency_code"], fail)
    respondent_type = _respondent_type(raw.get("respondent_type"), fail)
    phone = _phone(text["phone"], rules, fail)
    if not text["phone"] and (rules.require_phone or not text["address"]):
        wanted = "a phone number" if rules.require_phone else "a phone number or an address"
        fail("phone", "missing", f"{wanted} is required to reach the respondent")
    dossier_id = text["dossier_id"]
    if dossier_id:
        if dossier_id in seen:
            fail("dossier_id", "duplicate", f"dossier {dossier_id} appears earlier in this frame")
        seen.add(dossier_id)
    if errors or completed_on is None or respondent_type is None:
        return RowCheck(None, tuple(errors))
    row = FrameRow(
        agency_code=text["agency_code"], procedure=text["procedure"], service_field=text["service_field"],
        dossier_id=dossier_id, completed_on=completed_on, respondent_type=respondent_type,
        name=text["name"], phone=phone, address=text["address"] or None,
    )
    return RowCheck(row)


def _text(value: object) -> str:
    if value is None:
        return ""
    return clean_text(value if isinstance(value, str) else str(value))


def _completed_on(value: object, rules: FrameRules, agency: str, fail: Fail) -> dt.date | None:
    if not _text(value):
        return None  # reported as missing already
    day = parse_day(value)
    if day is None:
        fail("completed_on", "malformed", f"{value!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")
        return None
    if day not in rules.window:
        fail("completed_on", "outside_window",
             f"{day.isoformat()} is outside the frame window {rules.window.start} … {rules.window.end}")
    if agency and not rules.agency_known(agency, day):
        fail("agency_code", "unknown_agency", f"agency {agency} is not in the registry on {day.isoformat()}")
    return day


def parse_day(value: object) -> dt.date | None:
    """A ``date`` from a date, a datetime (its date part), ISO text or day-first ``DD/MM/YYYY`` text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if match := _DAY_FIRST.fullmatch(text):
            day, month, year = (int(g) for g in match.groups())
            return dt.date(year, month, day)
        if len(text) == 10:
            return dt.date.fromisoformat(text)
    except ValueError:
        return None
    return None


def _respondent_type(value: object, fail: Fail) -> RespondentType | None:
    if not _text(value):
        return None  # reported as missing already
    key = clean_text(str(value)).casefold()
    kind = RESPONDENT_TYPES.get(key)
    if kind is None:
        fail("respondent_type", "invalid", f"{value!r} is neither 'individual' (cá nhân) nor 'organisation' (tổ chức)")
    return kind


def _phone(text: str, rules: FrameRules, fail: Fail) -> str | None:
    if not text:
        return None
    try:
        return normalise_phone(text, rules.phone_plan)
    except MalformedPhone as exc:
        # Never repeat the number itself: reports and logs must not carry personal data.
        fail("phone", "malformed", f"the phone number is malformed: {exc.reason}")
        return None
