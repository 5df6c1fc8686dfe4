"""Double entry of paper ballots: two clerks key the same paper independently; the keyings are compared
field by field, and a third person settles every field they disagree on by reading the paper.

Fields are ``code`` (compared after ``codes.normalise``, so case and hyphens do not count), one
``answers.<item>`` per item either clerk keyed (an item one clerk left out equals one keyed as ``None``:
both are a blank), ``expectations`` and ``not_applicable_factors`` (each compared as a whole set).
The adjudicator may choose either clerk's value or a third one read from the paper; the result is not
yet validated — it goes through ``validation.validate`` like any other submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sipas_ballots.domain.codes import normalise
from sipas_ballots.domain.errors import IncompleteAdjudication, InvalidParameter, NotAllowed

ANSWERS = "answers."
SET_FIELDS = ("expectations", "not_applicable_factors")


@dataclass(frozen=True)
class PaperBallot:
    """What is keyed from one paper ballot."""

    code: str
    answers: Mapping[str, int | None]
    expectations: frozenset[str] = frozenset()
    not_applicable_factors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Keying:
    clerk_id: str
    ballot: PaperBallot
    entry_seconds: float | None = None


@dataclass(frozen=True)
class Disagreement:
    field: str
    first: object
    second: object


@dataclass(frozen=True)
class Agreed:
    ballot: PaperBallot


@dataclass(frozen=True)
class Disagreed:
    disagreements: tuple[Disagreement, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(d.field for d in self.disagreements)


def _fields(ballot: PaperBallot, items: list[str]) -> dict[str, object]:
    values: dict[str, object] = {"code": normalise(ballot.code)}
    values |= {ANSWERS + item: ballot.answers.get(item) for item in items}
    values |= {"expectations": frozenset(ballot.expectations),
               "not_applicable_factors": frozenset(ballot.not_applicable_factors)}
    return values


def _items(first: PaperBallot, second: PaperBallot) -> list[str]:
    return sorted({*first.answers, *second.answers})


def _code(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"{value!r} is not a ballot code", field=f"choices.{name}")
    return normalise(value)


def _answer(name: str, value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidParameter(f"{value!r} is not an answer (a scale value or none)", field=f"choices.{name}")
    return value


def _choice_set(name: str, value: object) -> frozenset[str]:
    if not isinstance(value, set | frozenset) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"{value!r} is not a set of codes", field=f"choices.{name}")
    return frozenset(value)


def _merge(base: PaperBallot, items: list[str], choices: Mapping[str, object]) -> PaperBallot:
    """``base`` with every field named in ``choices`` replaced by its (checked) chosen value."""
    answers = {item: base.answers.get(item) for item in items}
    answers |= {name.removeprefix(ANSWERS): _answer(name, v) for name, v in choices.items()
                if name.startswith(ANSWERS)}
    sets = {name: _choice_set(name, choices[name]) if name in choices else frozenset(getattr(base, name))
            for name in SET_FIELDS}
    return PaperBallot(
        code=_code("code", choices["code"]) if "code" in choices else normalise(base.code),
        answers=answers,
        expectations=sets["expectations"],
        not_applicable_factors=sets["not_applicable_factors"],
    )


def compare(first: Keying, second: Keying) -> Agreed | Disagreed:
    """The agreed ballot, or every field the two keyings disagree on (in field order)."""
    if first.clerk_id == second.clerk_id:
        raise NotAllowed(f"clerk {first.clerk_id} keyed this ballot already; the second keying must be "
                         "another clerk's", field="clerk_id")
    items = _items(first.ballot, second.ballot)
    a, b = _fields(first.ballot, items), _fields(second.ballot, items)
    disagreements = tuple(Disagreement(name, a[name], b[name]) for name in a if a[name] != b[name])
    return Disagreed(disagreements) if disagreements else Agreed(_merge(first.ballot, items, {}))


def adjudicate(first: Keying, second: Keying, adjudicator_id: str, choices: Mapping[str, object]) -> PaperBallot:
    """The final ballot: the agreed fields, and ``choices[field]`` for each field the keyings disagree on.
    ``choices`` must settle exactly those fields."""
    if adjudicator_id in (first.clerk_id, second.clerk_id):
        raise NotAllowed(f"{adjudicator_id} keyed this ballot and cannot adjudicate it", field="adjudicator_id")
    outcome = compare(first, second)
    if isinstance(outcome, Agreed):
        if choices:
            raise IncompleteAdjudication("the keyings agree: there is nothing to adjudicate", field="choices")
        return outcome.ballot
    wanted = set(outcome.fields)
    missing, extra = sorted(wanted - set(choices)), sorted(set(choices) - wanted)
    if missing or extra:
        parts = ([f"unsettled: {', '.join(missing)}"] if missing else []) + (
            [f"not in dispute: {', '.join(extra)}"] if extra else [])
        raise IncompleteAdjudication("; ".join(parts), field="choices")
    return _merge(first.ballot, _items(first.ballot, second.ballot), choices)
