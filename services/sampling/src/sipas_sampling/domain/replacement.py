"""Replacement: a unit that cannot be surveyed gives its slot to the next reserve of its stratum.

Reserves are used strictly in their drawn order, so which unit replaces which is itself determined by
the draw and can be checked afterwards. A replacement takes the replaced unit's slot (and so its
stratum weight); it may itself be replaced later, by the next reserve again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipas_sampling.domain.draw import DrawnUnit, StratumDraw
from sipas_sampling.domain.errors import InvalidParameter, ReservesExhausted, UnitNotActive
from sipas_sampling.domain.strata import label


@dataclass(frozen=True)
class Replacement:
    replaced: DrawnUnit
    replacement: DrawnUnit
    reason: str


@dataclass(frozen=True)
class Roster:
    """The live sample of one stratum: its draw and the replacements made so far, in order."""

    draw: StratumDraw
    replacements: tuple[Replacement, ...] = ()

    @property
    def active(self) -> tuple[DrawnUnit, ...]:
        """The units currently to survey, one per slot, in the sample's draw order."""
        swaps = {r.replaced.unit_id: r.replacement for r in self.replacements}
        slots = []
        for unit in self.draw.selected:
            while unit.unit_id in swaps:
                unit = swaps[unit.unit_id]
            slots.append(unit)
        return tuple(slots)

    @property
    def reserves_left(self) -> tuple[DrawnUnit, ...]:
        return self.draw.reserves[len(self.replacements):]

    def replace(self, unit_id: str, reason: str) -> tuple[Roster, Replacement]:
        """Replace an active unit by the next reserve; the new roster and the replacement to record."""
        if not reason.strip():
            raise InvalidParameter("a replacement needs a reason", field="reason")
        unit = next((u for u in self.active if u.unit_id == unit_id), None)
        if unit is None:
            raise UnitNotActive(f"unit {unit_id} is not an active unit of stratum {label(self.draw.key)}",
                                field="unit_id")
        if not self.reserves_left:
            raise ReservesExhausted(self.draw.key, len(self.draw.reserves))
        replacement = Replacement(unit, self.reserves_left[0], reason.strip())
        return Roster(self.draw, (*self.replacements, replacement)), replacement
