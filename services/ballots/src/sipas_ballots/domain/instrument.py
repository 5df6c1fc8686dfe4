"""What validation needs to know of a questionnaire version: item codes by factor, scale values,
expectation options. Built from the registry's ``InstrumentDefinition`` (the single source) or by hand.

*Criteria* are the items of the factors (the 22 tiêu chí of ``sipas-2017``); a factor's overall
satisfaction item and the instrument's overall item are valid answers but not criteria, so they do not
count towards the minimum answered share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sipas_ballots.domain.errors import InvalidParameter
from sipas_events.catalogue.registry import InstrumentDefinition


@dataclass(frozen=True)
class FactorItems:
    code: str
    criteria: tuple[str, ...]
    overall_item: str | None = None


@dataclass(frozen=True)
class Instrument:
    factors: tuple[FactorItems, ...]
    scale: frozenset[int]
    overall_item: str | None = None
    expectation_options: frozenset[str] = frozenset()
    max_choices: int = 0

    def __post_init__(self) -> None:
        codes = [*self.criteria, *(f.overall_item for f in self.factors if f.overall_item)]
        codes += [self.overall_item] if self.overall_item else []
        if len(set(codes)) != len(codes):
            raise InvalidParameter("an item code appears twice in the instrument", field="instrument")
        if len({f.code for f in self.factors}) != len(self.factors) or not all(f.criteria for f in self.factors):
            raise InvalidParameter("factor codes must be distinct and every factor needs criteria",
                                   field="instrument")
        if len(self.scale) < 2:
            raise InvalidParameter("a scale has at least two values", field="instrument")
        if not 0 <= self.max_choices <= len(self.expectation_options):
            raise InvalidParameter("max_choices must lie between 0 and the number of options", field="instrument")

    @cached_property
    def criteria(self) -> tuple[str, ...]:
        return tuple(code for f in self.factors for code in f.criteria)

    @cached_property
    def items(self) -> frozenset[str]:
        """Every code an answer may carry: criteria and overall items."""
        overall = {f.overall_item for f in self.factors if f.overall_item}
        return frozenset({*self.criteria, *overall, *([self.overall_item] if self.overall_item else [])})

    @cached_property
    def factor_codes(self) -> frozenset[str]:
        return frozenset(f.code for f in self.factors)

    @classmethod
    def from_definition(cls, d: InstrumentDefinition) -> Instrument:
        factors = tuple(
            FactorItems(f.code, tuple(i.code for i in f.items), f.overall_item.code if f.overall_item else None)
            for f in d.factors
        )
        expectations = d.expectations
        return cls(
            factors=factors,
            scale=frozenset(level.value for level in d.scale),
            overall_item=d.overall_item.code if d.overall_item else None,
            expectation_options=frozenset(o.code for o in expectations.options) if expectations else frozenset(),
            max_choices=expectations.max_choices if expectations else 0,
        )
