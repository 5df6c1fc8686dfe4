"""Validity of a ballot (METHODOLOGY §2): one pure function, ``validate(submission, context)``.

A submission is accepted only if every check passes; otherwise it is rejected with the reason of the
**first** failing check, in this fixed order (code, then campaign and window, then content):

 1. ``unknown_code``     the text is not a well-formed code, or no ballot was issued with it;
 2. ``cancelled_code``   the code was cancelled (e.g. replaced by a reissue);
 3. ``used_code``        the code was already used by an accepted submission (a duplicate);
 4. ``wrong_campaign``   the code belongs to another campaign than the one submitted to;
 5. ``outside_window``   received outside the campaign's collection window (inclusive dates);
 6. ``not_sampled``      the code's unit is not in the sample nor an approved replacement;
 7. ``unknown_item``     an answer to an item (or a not-applicable mark on a factor) the instrument lacks;
 8. ``off_scale``        an answer that is not a value of the instrument's scale (``None`` is missing);
 9. ``unknown_option``   an expectation the instrument does not offer;
10. ``too_many_choices`` more expectations chosen than the instrument's ``max_choices``;
11. ``too_few_answers``  fewer criteria answered than the campaign's minimum share (default 80%) of
                         *all* the instrument's criteria, or a factor that applies has none answered.

*Missing, never zero*: ``None`` (or an absent item) is "not applicable / no answer"; it answers nothing.
*A factor applies* unless the submission marks the whole factor not applicable
(``not_applicable_factors``, e.g. "I gave no feedback" for factor 5); a marked factor still keeps any
answers given in it. The share's denominator stays all criteria either way, as §2 reads.

Within one check the offending items are reported sorted, the first one as ``field``. ``validate``
never raises for any answer map or expectation set: a value of the wrong type is ``off_scale``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from sipas_ballots.domain.codes import parse_code
from sipas_ballots.domain.errors import InvalidCode, InvalidParameter
from sipas_ballots.domain.instrument import Instrument
from sipas_ballots.domain.issuance import Ballot, Status
from sipas_events.catalogue.types import Channel

Reason = Literal[
    "unknown_code", "cancelled_code", "used_code", "wrong_campaign", "outside_window", "not_sampled",
    "unknown_item", "off_scale", "unknown_option", "too_many_choices", "too_few_answers",
]
DEFAULT_MIN_SHARE = Fraction(4, 5)
MAX_DETAIL = 500
SHOWN = 5


@dataclass(frozen=True, kw_only=True)
class Submission:
    """One ballot as submitted: the code as typed or scanned, answers by item code (``None`` = not
    applicable / no answer), chosen expectation options, and the factors marked not applicable whole."""

    code: str
    campaign_id: str
    received_on: dt.date
    answers: Mapping[str, int | None]
    channel: Channel
    expectations: frozenset[str] = frozenset()
    entered_by: str | None = None
    entry_seconds: float | None = None
    not_applicable_factors: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.received_on, dt.datetime):
            # a UTC timestamp's date can be the wrong day in Vietnam: the edge must pick the local date
            raise InvalidParameter("received_on is a date (local to Vietnam), not a timestamp", field="received_on")


@dataclass(frozen=True)
class CampaignRules:
    campaign_id: str
    window_start: dt.date
    window_end: dt.date
    min_answered_share: Fraction | Decimal = DEFAULT_MIN_SHARE

    def __post_init__(self) -> None:
        if self.window_end < self.window_start:
            raise InvalidParameter("the collection window ends before it starts", field="collection_window")
        if not 0 <= self.min_answered_share <= 1:
            raise InvalidParameter("the minimum answered share lies between 0 and 1", field="min_answered_share")


@dataclass(frozen=True)
class ValidationContext:
    """``ballots`` maps canonical codes to their ballots (the application loads at least the one the
    submission names); ``sampled_units`` are the campaign's active units, replacements included."""

    campaign: CampaignRules
    instrument: Instrument
    ballots: Mapping[str, Ballot]
    sampled_units: frozenset[str]


@dataclass(frozen=True)
class Accepted:
    ballot: Ballot
    answers: Mapping[str, int | None]
    expectations: frozenset[str]
    answered_criteria: int


@dataclass(frozen=True)
class Rejected:
    reason_code: Reason
    detail: str
    field: str | None = None


Outcome = Accepted | Rejected


def _listing(values: list[str]) -> str:
    shown = ", ".join(values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def _reject(reason: Reason, detail: str, field_name: str | None) -> Rejected:
    return Rejected(reason, detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL - 1] + "…", field_name)


def _find_ballot(s: Submission, c: ValidationContext) -> Ballot | Rejected:
    if not isinstance(s.code, str):
        return _reject("unknown_code", "the code must be text", "code")
    try:
        code = parse_code(s.code)
    except InvalidCode as error:
        return _reject("unknown_code", f"not a ballot code: {error}", "code")
    ballot = c.ballots.get(code)
    if ballot is None:
        return _reject("unknown_code", "no ballot was issued with this code", "code")
    return ballot


def _check_status(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    if b.status is Status.CANCELLED:
        return _reject("cancelled_code", f"the code was cancelled ({b.cancel_reason or 'no reason given'})", "code")
    if b.status is Status.USED:
        return _reject("used_code", "the code was already used: this is a duplicate submission", "code")
    return None


def _check_campaign(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    campaign = c.campaign.campaign_id
    if b.campaign_id != campaign or s.campaign_id != campaign:
        return _reject("wrong_campaign", f"the code belongs to another campaign, not to {s.campaign_id}",
                       "campaign_id")
    return None


def _check_window(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    rules = c.campaign
    if not rules.window_start <= s.received_on <= rules.window_end:
        return _reject("outside_window", f"received on {s.received_on.isoformat()}, outside the collection window "
                       f"{rules.window_start.isoformat()} to {rules.window_end.isoformat()}", "received_on")
    return None


def _check_sampled(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    if b.unit_id not in c.sampled_units:
        return _reject("not_sampled", f"unit {b.unit_id} is not in the sample nor an approved replacement", "code")
    return None


def _check_items(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    unknown = sorted(str(k) for k in s.answers if k not in c.instrument.items)
    if unknown:
        return _reject("unknown_item", f"the instrument has no item {_listing(unknown)}", f"answers.{unknown[0]}")
    factors = sorted(str(f) for f in s.not_applicable_factors if f not in c.instrument.factor_codes)
    if factors:
        return _reject("unknown_item", f"the instrument has no factor {_listing(factors)}", "not_applicable_factors")
    return None


def _on_scale(value: object, scale: frozenset[int]) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value in scale)


def _check_scale(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    off = sorted(((str(k), v) for k, v in s.answers.items() if not _on_scale(v, c.instrument.scale)),
                 key=lambda kv: kv[0])
    if off:
        scale = ", ".join(str(v) for v in sorted(c.instrument.scale))
        shown = _listing([f"{k} = {v!r}" for k, v in off])
        return _reject("off_scale", f"answers off the scale ({scale}, or none): {shown}", f"answers.{off[0][0]}")
    return None


def _check_expectations(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    unknown = sorted(str(o) for o in s.expectations if o not in c.instrument.expectation_options)
    if unknown:
        return _reject("unknown_option", f"the instrument offers no expectation {_listing(unknown)}", "expectations")
    if len(s.expectations) > c.instrument.max_choices:
        return _reject("too_many_choices", f"{len(s.expectations)} expectations chosen, at most "
                       f"{c.instrument.max_choices} allowed", "expectations")
    return None


def _answered(s: Submission, criteria: tuple[str, ...]) -> int:
    return sum(1 for item in criteria if s.answers.get(item) is not None)


def _check_enough(s: Submission, c: ValidationContext, b: Ballot) -> Rejected | None:
    criteria = c.instrument.criteria
    answered = _answered(s, criteria)
    need = Fraction(c.campaign.min_answered_share)
    if Fraction(answered, len(criteria)) < need:
        return _reject("too_few_answers", f"{answered} of {len(criteria)} criteria answered; the campaign needs "
                       f"at least {float(need) * 100:g}%", "answers")
    for factor in c.instrument.factors:
        if factor.code not in s.not_applicable_factors and not _answered(s, factor.criteria):
            return _reject("too_few_answers", f"factor {factor.code} applies but none of its criteria is answered",
                           "answers")
    return None


Check = Callable[[Submission, ValidationContext, Ballot], Rejected | None]
CHECKS: tuple[Check, ...] = (
    _check_status, _check_campaign, _check_window, _check_sampled,
    _check_items, _check_scale, _check_expectations, _check_enough,
)


def validate(submission: Submission, context: ValidationContext) -> Outcome:
    """Accepted, or Rejected with the first failing check's reason (order in the module docstring)."""
    ballot = _find_ballot(submission, context)
    if isinstance(ballot, Rejected):
        return ballot
    for check in CHECKS:
        rejected = check(submission, context, ballot)
        if rejected is not None:
            return rejected
    return Accepted(ballot, dict(submission.answers), frozenset(submission.expectations),
                    _answered(submission, context.instrument.criteria))
