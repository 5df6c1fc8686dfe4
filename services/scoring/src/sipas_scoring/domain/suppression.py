"""Small-cell suppression: never publish a figure resting on too few ballots, nor one that can be
recovered by subtraction.

Primary: a cell with n below the threshold (default 30 valid ballots) is shown as "insufficient
sample" and not ranked. Complementary: a parent's figure is built from its children's ballots, so if
the parent is shown and exactly one child is hidden, that child's counts are the parent's minus its
siblings'. The smallest shown sibling (by n, then key) is hidden too; a hidden only child hides its
parent instead. And a hidden parent whose children are all shown is their sum, so its smallest child
is hidden too. Hiding a cell may expose another group, so the rules run until nothing changes.

A group is the set of cells naming the same parent; a parent that is not itself a cell here is
treated as unpublished (nothing to subtract from).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Reason = Literal["insufficient_sample", "complementary"]
INSUFFICIENT_SAMPLE_LABEL = "insufficient sample"


@dataclass(frozen=True)
class Cell:
    key: str
    n: int
    parent: str | None = None


@dataclass(frozen=True)
class Suppression:
    reasons: Mapping[str, Reason]

    def suppressed(self, key: str) -> bool:
        return key in self.reasons

    def shown(self, key: str) -> bool:
        return key not in self.reasons


def suppress(cells: Iterable[Cell], min_n: int = 30) -> Suppression:
    """Which cells to hide, and why."""
    if min_n < 1:
        raise ValueError("min_n must be at least 1")
    by_key = {cell.key: cell for cell in cells}
    children: dict[str, list[Cell]] = defaultdict(list)
    for cell in by_key.values():
        if cell.parent is not None:
            children[cell.parent].append(cell)
    reasons: dict[str, Reason] = {key: "insufficient_sample" for key, c in by_key.items() if c.n < min_n}
    changed = True
    while changed:
        changed = False
        for parent, group in children.items():
            if parent not in by_key or parent in reasons:
                continue
            hidden = [c for c in group if c.key in reasons]
            if len(hidden) != 1:
                continue
            shown = [c for c in group if c.key not in reasons]
            target = min(shown, key=lambda c: (c.n, c.key)).key if shown else parent
            reasons[target] = "complementary"
            changed = True
        for parent, group in children.items():
            # A hidden parent whose children are all shown is their sum: hide the smallest child too.
            if parent in by_key and parent in reasons and group and not any(c.key in reasons for c in group):
                reasons[min(group, key=lambda c: (c.n, c.key)).key] = "complementary"
                changed = True
    return Suppression(reasons)


def unrecoverable(cells: Iterable[Cell], suppression: Suppression) -> bool:
    """No shown parent has exactly one hidden child, and no hidden parent has all its children shown:
    the invariants :func:`suppress` guarantees."""
    hidden: dict[str, int] = defaultdict(int)
    members: dict[str, int] = defaultdict(int)
    keys = set()
    for cell in cells:
        keys.add(cell.key)
        if cell.parent is not None:
            members[cell.parent] += 1
            if suppression.suppressed(cell.key):
                hidden[cell.parent] += 1
    for parent in members:
        if parent not in keys:
            continue
        if suppression.shown(parent) and hidden[parent] == 1:
            return False
        if suppression.suppressed(parent) and hidden[parent] == 0:
            return False
    return True
