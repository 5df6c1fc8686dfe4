"""Stratification: which attributes of a frame row make up its stratum.

A stratum key is a tuple of text values, one per dimension. Dimensions are either a ``FrameRow``
attribute (``agency_code``, ``service_field``, ``procedure``, ``respondent_type``) or a derived value
the caller supplies from the registry (``level``, ``commune``, ``area``…), e.g.::

    Stratification.of("agency_code", "service_field", level=lambda row: levels[row.agency_code])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.frame import FrameRow, clean_text

StratumKey = tuple[str, ...]
Extractor = Callable[[FrameRow], str]
ROW_ATTRIBUTES = frozenset(f.name for f in fields(FrameRow))


@dataclass(frozen=True)
class Stratification:
    names: tuple[str, ...]
    extractors: tuple[Extractor, ...]

    @classmethod
    def of(cls, *attributes: str, **derived: Extractor) -> Stratification:
        """Row attributes first, in the order given, then derived dimensions in keyword order.
        No dimension at all means a single stratum ``()``."""
        unknown = [a for a in attributes if a not in ROW_ATTRIBUTES]
        if unknown:
            raise InvalidParameter(f"not frame row attributes: {', '.join(unknown)}", field="stratification")
        clash = set(attributes) & set(derived)
        if clash or len(set(attributes)) != len(attributes):
            raise InvalidParameter("each stratification dimension may be named once", field="stratification")
        names = (*attributes, *derived)
        extractors = (*(_attribute(a) for a in attributes), *derived.values())
        return cls(names, extractors)

    def key(self, row: FrameRow) -> StratumKey:
        return tuple(clean_text(str(extract(row))) for extract in self.extractors)

    def populations(self, rows: Iterable[FrameRow]) -> dict[StratumKey, int]:
        """Frame units per stratum, in key order."""
        counts = Counter(self.key(row) for row in rows)
        return dict(sorted(counts.items()))


def _attribute(name: str) -> Extractor:
    return lambda row: str(getattr(row, name))


def label(key: StratumKey) -> str:
    """A readable stratum label, e.g. ``H29.05/land`` (``(all)`` for the single stratum)."""
    return "/".join(key) or "(all)"
