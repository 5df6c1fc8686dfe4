"""Answer codes: a counted ballot's answers and expectations as a few fixed-width bytes.

The tallies projection stores each counted ballot's answers as JSONB (the record) and, beside them,
as one byte per item of the instrument (the *codes*), so that a recount reads ``width`` bytes a
ballot instead of parsing JSON, and counts a whole agency's ballots at once with numpy. The codes
are lossless for what the tallies count, and :meth:`Codebook.tallies` gives exactly the bag
:func:`tallies.ballot_tallies` sums to (a property test keeps the two equal).

Layout of one ballot (``Codebook.width`` bytes):

- 4 bytes: the codebook's tag (the first bytes of a SHA-256 of its items, values and options), so
  codes written under another instrument version are never read with this one;
- one byte per item, in instrument order (criteria, the factors' overall items, the overall item):
  0 the ballot does not carry the item, 1 it carries it unanswered, ``2 + i`` the ``i``-th scale value;
- the expectation options chosen, one bit each (option ``k`` is bit ``k % 8`` of byte ``k // 8``).

A ballot the codebook cannot represent (an item or option the instrument lacks, a value off the
scale, more than 253 scale values) gets no codes (:meth:`Codebook.encode` returns ``None``): the
recount counts such a ballot from its JSONB answers instead.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.scheme import Instrument

TAG_BYTES = 4
ABSENT, UNANSWERED, FIRST_VALUE = 0, 1, 2
ARRANGEMENTS_KEPT = 64
_ABSENT = bytes([ABSENT])
_ANSWER_TYPES = {int, type(None)}


@dataclass(frozen=True)
class Codebook:
    items: tuple[str, ...]
    values: tuple[int, ...]
    options: tuple[str, ...]
    factors: tuple[tuple[str, tuple[int, ...]], ...]
    """Each factor's code and the columns of its criteria."""
    criteria: tuple[int, ...]
    factor_overall: tuple[int, ...]

    @staticmethod
    @cache
    def of(instrument: Instrument) -> Codebook:
        overall = [f.overall_item for f in instrument.factors if f.overall_item]
        items = (*instrument.criteria, *overall, *([instrument.overall_item] if instrument.overall_item else []))
        column = {code: i for i, code in enumerate(items)}
        return Codebook(
            items=items, values=tuple(sorted(level.value for level in instrument.scale)),
            options=tuple(instrument.expectation_options),
            factors=tuple((f.code, tuple(column[c] for c in f.items)) for f in instrument.factors),
            criteria=tuple(column[c] for c in instrument.criteria),
            factor_overall=tuple(column[c] for c in overall))

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of what the codes depend on (the items, the values and the options): two codebooks with
        the same digest encode every ballot alike."""
        return hashlib.sha256(repr((self.items, self.values, self.options)).encode()).digest()

    @cached_property
    def tag(self) -> bytes:
        return self.digest[:TAG_BYTES]

    @property
    def width(self) -> int:
        return TAG_BYTES + len(self.items) + (len(self.options) + 7) // 8

    @cached_property
    def columns(self) -> dict[str, int]:
        """Each item's column (its byte after the tag)."""
        return {code: i for i, code in enumerate(self.items)}

    @cached_property
    def _value_code(self) -> dict[int | None, int]:
        return {None: UNANSWERED, **{value: FIRST_VALUE + i for i, value in enumerate(self.values)}}

    @cached_property
    def _option_index(self) -> dict[str, int]:
        return {option: i for i, option in enumerate(self.options)}

    def encode(self, answers: Mapping[str, int | None] | None, expectations: Iterable[str] | None) -> bytes | None:
        """The ballot's codes, or ``None`` when it carries something the codebook cannot say."""
        if answers is None or len(self.values) > 255 - FIRST_VALUE:
            return None
        arrange = self._arrangement(tuple(answers))
        values = answers.values()
        if arrange is None or not {*map(type, values)} <= _ANSWER_TYPES:
            return None  # (True and 4.0 would find the codes of 1 and 4: only integers are answers)
        try:
            codes = bytes(map(self._value_code.__getitem__, values))
        except KeyError:
            return None
        chosen = 0
        for option in expectations or ():
            k = self._option_index.get(option)
            if k is None:
                return None
            chosen |= 1 << k
        return b"".join((self.tag, bytes(arrange(codes + _ABSENT)), chosen.to_bytes(self._option_bytes, "little")))

    def _arrangement(self, keys: tuple[str, ...]) -> Any:
        """For answers carrying ``keys`` in this order, what puts their codes (and an absent item's byte, last)
        in instrument order; None if an item is not the instrument's. Kept per order of keys: ballots of one
        source carry theirs in one order (the events' canonical JSON sorts them)."""
        found = self._arrangements.get(keys)
        if found is None:
            columns = self.columns
            if not all(k in columns for k in keys):
                return None
            where = {k: i for i, k in enumerate(keys)}
            order = [where.get(item, len(keys)) for item in self.items]
            found = itemgetter(*order) if len(order) > 1 else (lambda codes, k=order[0]: (codes[k],))
            if len(self._arrangements) >= ARRANGEMENTS_KEPT:
                self._arrangements.clear()
            self._arrangements[keys] = found
        return found

    @cached_property
    def _arrangements(self) -> dict[tuple[str, ...], Any]:
        return {}

    @cached_property
    def _option_bytes(self) -> int:
        return (len(self.options) + 7) // 8

    def matrix(self, blob: bytes) -> NDArray[np.uint8]:
        """Concatenated codes as rows; refuses bytes that are not whole rows of this codebook."""
        if len(blob) % self.width:
            raise ValueError(f"{len(blob)} bytes are not whole rows of {self.width}")
        rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, self.width)
        if rows.size and not (rows[:, :TAG_BYTES] == np.frombuffer(self.tag, dtype=np.uint8)).all():
            raise ValueError("codes written under another codebook")
        return rows

    def tallies(self, rows: NDArray[np.uint8]) -> Counter[str]:
        """The sum of :func:`tallies.ballot_tallies` over the ballots whose codes are ``rows``."""
        return Counter(self.tallies_of(rows, np.zeros(len(rows), dtype=np.int64), 1)[0])

    def tallies_of(self, rows: NDArray[np.uint8], owners: Any, count: int) -> list[dict[str, int]]:
        """Per owner ``0..count-1``, :meth:`tallies` of its rows (``owners[i]`` owns ``rows[i]``), counted
        for all owners at once (keys with a count of zero left out)."""
        out: list[dict[str, int]] = [{} for _ in range(count)]
        if not len(rows):
            return out
        k = len(self.items)
        wide: Any = np.int32 if count * k * 256 < 2**31 else np.int64  # half the memory for a recount's agency
        owners = np.asarray(owners, dtype=wide)  # a sequence or an array of ints
        body = rows[:, TAG_BYTES:TAG_BYTES + k]
        slots = (owners[:, None] * (k * 256) + (body.astype(wide) + np.arange(k, dtype=wide) * 256)).ravel()
        if count * k * 256 > 8 * len(slots):  # few ballots an owner (a run, a refresh's delta): sort the slots
            found, tally = np.unique(slots, return_counts=True)  # rather than count into a mostly empty array
        else:  # many (a recount): one pass over every slot
            counts = np.bincount(slots, minlength=count * k * 256)
            found = np.flatnonzero(counts)
            tally = counts[found]
        # The slots are sorted, so each owner's are a run: its dictionary is filled from slices of the names
        # and counts (at C speed), not one slot at a time.
        counted = self._counted_slots[found % (k * 256)]
        found, tally = found[counted], tally[counted]
        names = self._answer_name_array[found % (k * 256)].tolist()
        tallies = tally.tolist()
        at_owner = found // (k * 256)
        bounds = np.flatnonzero(np.r_[True, at_owner[1:] != at_owner[:-1], True]).tolist() if len(found) else [0]
        for owner, a, b in zip(at_owner[bounds[:-1]].tolist(), bounds[:-1], bounds[1:], strict=True):
            out[owner].update(zip(names[a:b], tallies[a:b], strict=True))

        def per_owner(name: str, flags: Any) -> None:
            held = np.bincount(owners[flags], minlength=count)
            for owner, n in zip(np.flatnonzero(held).tolist(), held[held > 0].tolist(), strict=True):
                out[owner][name] = n

        per_owner("ballots", np.ones(len(rows), dtype=bool))
        valid = body >= FIRST_VALUE
        for factor, columns in self.factors:
            per_owner(f"factor:{factor}", valid[:, list(columns)].any(axis=1))
        per_owner("criteria", valid[:, list(self.criteria)].any(axis=1))
        if self.factor_overall:
            per_owner("factor-overall", valid[:, list(self.factor_overall)].any(axis=1))
        if self.options:
            chosen = np.unpackbits(rows[:, TAG_BYTES + k:], axis=1, bitorder="little")[:, :len(self.options)]
            per_owner("expect", chosen.any(axis=1))
            for j, option in enumerate(self.options):
                per_owner(f"expect:{option}", chosen[:, j].astype(bool))
        return out

    @cached_property
    def _answer_name_array(self) -> NDArray[np.object_]:
        return np.array(self._answer_names, dtype=object)

    @cached_property
    def _counted_slots(self) -> NDArray[np.bool_]:
        """Per slot (see :attr:`_answer_names`): whether a tally counts it."""
        return np.array([name is not None for name in self._answer_names], dtype=bool)

    @cached_property
    def _answer_names(self) -> list[str | None]:
        """Per (item, code) slot ``item * 256 + code``: the tally key an answer with that code counts under
        (``item:<code>:na`` unanswered, ``item:<code>:<value>``), None for a code no tally counts."""
        names: list[str | None] = [None] * (len(self.items) * 256)
        for i, code in enumerate(self.items):
            names[i * 256 + UNANSWERED] = f"item:{code}:na"
            for j, value in enumerate(self.values):
                names[i * 256 + FIRST_VALUE + j] = f"item:{code}:{value}"
        return names
