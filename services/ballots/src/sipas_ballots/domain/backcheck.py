"""Back-checks (phúc tra, METHODOLOGY §6): which accepted ballots to call back, and what a result means.

Selection, per enumerator: ``min(n, max(2, ⌈share · n⌉))`` of their ``n`` accepted ballots (share 10%
by default, exact arithmetic), the ones with the smallest

    HMAC-SHA256(key = seed as ASCII, "sipas-backcheck/v1" ‖ 0x00 ‖ campaign ‖ enumerator ‖ ballot id)

(labels length-prefixed; ties, practically impossible, broken by ballot id). HMAC is a pseudo-random
function of the ballot, so this is a uniform random subset, and it is a pure function of the seed and
the ballots: the input order does not matter, anyone given the seed can re-run it, and a ballot
accepted later does not reshuffle the others. The seed is lowercase hex of at least 128 bits; publishing
its SHA-256 before the call-backs start and the seed after lets enumerators check they were not
targeted. Python's ``random`` is not used (its algorithms may change between releases).

A ``fabricated`` result (the respondent confirms no interview took place) voids that ballot and puts
every other ballot of the enumerator under review; ``confirmed`` and ``unreachable`` change nothing.
"""

from __future__ import annotations

import math
import string
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from sipas_ballots.domain.errors import InvalidParameter, UnknownBallot
from sipas_ballots.domain.hashing import keyed_hash

Outcome = Literal["confirmed", "fabricated", "unreachable"]
OUTCOMES: tuple[Outcome, ...] = ("confirmed", "fabricated", "unreachable")
DEFAULT_SHARE = Fraction(1, 10)
DEFAULT_MINIMUM = 2
MIN_SEED_HEX_DIGITS = 32
_DOMAIN = b"sipas-backcheck/v1"


@dataclass(frozen=True)
class AcceptedBallot:
    ballot_id: str
    enumerator_id: str


def check_seed(seed: str) -> bytes:
    if len(seed) < MIN_SEED_HEX_DIGITS or any(ch not in string.hexdigits or ch.isupper() for ch in seed):
        raise InvalidParameter(f"the seed must be at least {MIN_SEED_HEX_DIGITS} lowercase hex digits "
                               "(128 random bits)", field="seed")
    return seed.encode("ascii")


def backcheck_count(accepted: int, share: Fraction | Decimal = DEFAULT_SHARE, minimum: int = DEFAULT_MINIMUM) -> int:
    """How many of an enumerator's ``accepted`` ballots to call back."""
    if not 0 <= share <= 1:
        raise InvalidParameter("the back-check share lies between 0 and 1", field="share")
    if minimum < 0 or accepted < 0:
        raise InvalidParameter("counts cannot be negative", field="minimum")
    return min(accepted, max(minimum, math.ceil(Fraction(share) * accepted)))


def select_backchecks(ballots: Iterable[AcceptedBallot], seed: str, campaign_id: str,
                      share: Fraction | Decimal = DEFAULT_SHARE,
                      minimum: int = DEFAULT_MINIMUM) -> dict[str, tuple[str, ...]]:
    """Per enumerator, the ballot ids to call back, in draw order (first = first to call)."""
    key = check_seed(seed)
    by_enumerator: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for b in ballots:
        if b.ballot_id in seen:
            raise InvalidParameter(f"ballot {b.ballot_id} is listed twice", field="ballots")
        seen.add(b.ballot_id)
        by_enumerator[b.enumerator_id].append(b.ballot_id)
    chosen = {}
    for enumerator, ids in sorted(by_enumerator.items()):
        ranked = sorted(ids, key=lambda i: (keyed_hash(key, _DOMAIN, campaign_id, enumerator, i), i))
        chosen[enumerator] = tuple(ranked[:backcheck_count(len(ids), share, minimum)])
    return chosen


@dataclass(frozen=True)
class BackcheckResult:
    ballot_id: str
    enumerator_id: str
    outcome: Outcome


@dataclass(frozen=True)
class BackcheckDecision:
    outcome: Outcome
    void: tuple[str, ...]
    review: tuple[str, ...]
    reason: str | None


def decide_backcheck(result: BackcheckResult, enumerator_ballots: Collection[str]) -> BackcheckDecision:
    """What a recorded call-back changes. ``enumerator_ballots``: the enumerator's accepted ballots
    not yet voided, the called-back one among them."""
    if result.outcome not in OUTCOMES:
        raise InvalidParameter(f"a back-check outcome is one of {', '.join(OUTCOMES)}", field="outcome")
    if result.ballot_id not in enumerator_ballots:
        raise UnknownBallot(f"ballot {result.ballot_id} is not an accepted, unvoided ballot of enumerator "
                            f"{result.enumerator_id}", field="ballot_id")
    if result.outcome != "fabricated":
        return BackcheckDecision(result.outcome, (), (), None)
    others = tuple(sorted(b for b in set(enumerator_ballots) if b != result.ballot_id))
    reason = f"back-check confirmed ballot {result.ballot_id} fabricated by enumerator {result.enumerator_id}"
    return BackcheckDecision("fabricated", (result.ballot_id,), others, reason)
