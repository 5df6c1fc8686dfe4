"""Balanced field assignment: keep each area's units together, spread the load evenly.

Areas (e.g. a commune or agency) are handed out largest first, each to the currently least-loaded
enumerator (ties by name), the longest-processing-time rule: no enumerator ends more than one area's
size above another, and nobody travels between areas needlessly. Pure and deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sipas_sampling.domain.errors import InvalidParameter


def assign(units_by_area: Mapping[str, Sequence[str]], enumerators: Sequence[str]) -> dict[str, str]:
    """unit id -> enumerator."""
    if not enumerators:
        raise InvalidParameter("name at least one enumerator", field="enumerators")
    if len(set(enumerators)) != len(enumerators):
        raise InvalidParameter("an enumerator is listed twice", field="enumerators")
    load: dict[str, int] = defaultdict(int, {e: 0 for e in enumerators})
    out: dict[str, str] = {}
    for area in sorted(units_by_area, key=lambda a: (-len(units_by_area[a]), a)):
        who = min(enumerators, key=lambda e: (load[e], e))
        for unit in units_by_area[area]:
            out[unit] = who
        load[who] += len(units_by_area[area])
    return out
