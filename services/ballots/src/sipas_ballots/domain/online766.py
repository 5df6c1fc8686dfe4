"""Kiosk and portal ratings for the ``online-766`` scheme: one record per dossier, from raw rows.

A batch arrives from a source system (the province's one-stop portal, a kiosk fleet…) as rows of
loose values. Each row becomes a ``DossierRating`` or a list of precise errors (0-based row index,
field, message); every error of a row is reported, not just the first. The idempotency key is
``(source_system, dossier_id)``: within a batch, a row repeating an earlier one exactly is a harmless
duplicate (dropped); rows with the same key but different content are a conflict and all of them are
refused, since nothing says which one is right. Across batches the store enforces the same key.
Flags left out are false: a dossier with no rating counts as satisfied (METHODOLOGY §3c).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

TEXT_FIELDS = ("source_system", "dossier_id", "agency_code")
FLAG_FIELDS = ("rated_unsatisfied", "complained", "overdue")
FIELDS = (*TEXT_FIELDS, "completed_on", *FLAG_FIELDS)
MAX_TEXT = 100
_TRUE, _FALSE = ("true", "1"), ("false", "0")
T = TypeVar("T")


@dataclass(frozen=True)
class DossierRating:
    source_system: str
    dossier_id: str
    agency_code: str
    completed_on: dt.date
    rated_unsatisfied: bool = False
    complained: bool = False
    overdue: bool = False

    @property
    def idempotency_key(self) -> tuple[str, str]:
        return self.source_system, self.dossier_id


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


@dataclass(frozen=True)
class RatingBatch:
    ratings: tuple[DossierRating, ...]
    errors: tuple[ItemError, ...]
    duplicates: tuple[int, ...]  # indices of rows that repeat an earlier row exactly
    rows: tuple[int, ...] = ()   # the index in the batch of each rating, so later errors name the right row


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    return text


def _date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date without a time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"must be a date as YYYY-MM-DD, not {value!r}")


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).strip().lower() in (*_TRUE, *_FALSE):
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"must be true or false, not {value!r}")


def _take(row: Mapping[str, object], name: str, parse: Callable[[object], T], errors: list[ItemError],
          index: int, default: T | None = None) -> T | None:
    if name not in row:
        if default is None:
            errors.append(ItemError(index, name, "is required"))
        return default
    try:
        return parse(row[name])
    except ValueError as problem:
        errors.append(ItemError(index, name, str(problem)))
        return None


def parse_rating(row: Mapping[str, object], index: int = 0,
                 not_after: dt.date | None = None) -> DossierRating | list[ItemError]:
    """One row as a rating, or every problem with it."""
    errors = [ItemError(index, name, "unknown field") for name in sorted(map(str, row)) if name not in FIELDS]
    source, dossier, agency = (_take(row, name, _text, errors, index) for name in TEXT_FIELDS)
    completed = _take(row, "completed_on", _date, errors, index)
    unsatisfied, complained, overdue = (_take(row, name, _flag, errors, index, False) for name in FLAG_FIELDS)
    if not_after is not None and completed is not None and completed > not_after:
        errors.append(ItemError(index, "completed_on", f"{completed.isoformat()} is after {not_after.isoformat()}"))
    if errors or source is None or dossier is None or agency is None or completed is None:
        return errors
    return DossierRating(source, dossier, agency, completed, bool(unsatisfied), bool(complained), bool(overdue))


def validate_batch(rows: Sequence[Mapping[str, object]], not_after: dt.date | None = None) -> RatingBatch:
    """Every valid, distinct rating of the batch, the errors of the others, and the exact repeats."""
    errors: list[ItemError] = []
    by_key: dict[tuple[str, str], list[tuple[int, DossierRating]]] = {}
    for index, row in enumerate(rows):
        parsed = parse_rating(row, index, not_after)
        if isinstance(parsed, list):
            errors += parsed
        else:
            by_key.setdefault(parsed.idempotency_key, []).append((index, parsed))
    ratings, duplicates = [], []
    for (source, dossier), found in by_key.items():
        first_index, first = found[0]
        if all(rating == first for _, rating in found):
            ratings.append((first_index, first))
            duplicates += [i for i, _ in found[1:]]
            continue
        rows_named = ", ".join(str(i) for i, _ in found)
        errors += [ItemError(i, "dossier_id", f"dossier {dossier} from {source} appears in rows {rows_named} "
                             "with different content") for i, _ in found]
    kept = sorted(ratings, key=lambda pair: pair[0])
    return RatingBatch(
        ratings=tuple(r for _, r in kept), rows=tuple(i for i, _ in kept),
        errors=tuple(sorted(errors, key=lambda e: (e.index, FIELDS.index(e.field) if e.field in FIELDS else -1))),
        duplicates=tuple(sorted(duplicates)),
    )
