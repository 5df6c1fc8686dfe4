"""How the demo's respondents answer: satisfaction that varies by province, agency and factor.

Each answer is "satisfied" (4 or 5) with probability ``logistic(base + province + agency + factor +
respondent + noise)``: a baseline near the 82-83% of recent national rounds, a fixed effect per
province and per agency drawn once from the run's seed, the factors in the order real reports show
them (results and civil servants best, feedback handling worst), and a respondent effect that makes
one person's answers hang together. About a third of respondents never gave feedback and mark
factor 5 not applicable, as the paper form allows. A fabricating enumerator fills ballots with
nearly the same answers, which is what gives them away.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

BASE = 1.8
FACTOR_EFFECT = {"F1": 0.15, "F2": -0.05, "F3": 0.35, "F4": 0.55, "F5": -0.75}
EXPECTATION_FOR = {"F1": ["E1", "E2"], "F2": ["E3", "E4"], "F3": ["E5", "E6"], "F4": ["E4"], "F5": ["E7"]}


@dataclass(frozen=True)
class Instrument:
    factors: dict[str, list[str]]                  # factor code -> its criteria, in order
    overall_item: str | None = None

    @property
    def criteria(self) -> list[str]:
        return [c for items in self.factors.values() for c in items]

    @classmethod
    def of(cls, definition: dict[str, object]) -> Instrument:
        factors = {f["code"]: [i["code"] for i in f["items"]] for f in definition["factors"]}  # type: ignore[attr-defined]
        overall = definition.get("overall_item")
        return cls(factors, overall["code"] if isinstance(overall, dict) else None)


@dataclass
class Ballot:
    answers: dict[str, int | None]
    expectations: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    seconds: float | None = None


def _effect(seed: int, what: str, spread: float) -> float:
    """A fixed effect for ``what``: a normal deviate from a hash, the same on every call of a run."""
    digest = hashlib.sha256(f"{seed}:{what}".encode()).digest()
    return random.Random(digest).gauss(0.0, spread)  # noqa: S311 - synthetic data, not a secret


class Respondents:
    def __init__(self, seed: int, instrument: Instrument) -> None:
        self.seed, self.instrument = seed, instrument

    def province_effect(self, province: str) -> float:
        return _effect(self.seed, f"province:{province}", 0.35)

    def agency_effect(self, agency_code: str) -> float:
        return _effect(self.seed, f"agency:{agency_code}", 0.2)

    def answer(self, rng: random.Random, province: str, agency_code: str, *, overall: bool = True) -> Ballot:
        mood = BASE + self.province_effect(province) + self.agency_effect(agency_code) + rng.gauss(0, 0.9)
        no_feedback = rng.random() < 0.33
        answers: dict[str, int | None] = {}
        shares: dict[str, float] = {}
        for factor, items in self.instrument.factors.items():
            if factor == "F5" and no_feedback:
                answers.update(dict.fromkeys(items))
                continue
            p = 1 / (1 + math.exp(-(mood + FACTOR_EFFECT.get(factor, 0.0))))
            shares[factor] = p
            for item in items:
                answers[item] = _level(rng, p + rng.gauss(0, 0.04))
        if not no_feedback:  # one or two blanks at most, so the ballot stays above 80% answered
            for item in rng.sample(self.instrument.criteria, k=rng.choice((0, 0, 0, 1, 2))):
                answers[item] = None
        if overall and self.instrument.overall_item:
            answers[self.instrument.overall_item] = _level(rng, sum(shares.values()) / len(shares))
        worst = sorted(shares, key=shares.__getitem__)[:2] + (["F5"] if no_feedback else [])
        wishes = sorted({rng.choice(EXPECTATION_FOR[f]) for f in worst[:rng.randint(1, 3)] if f in EXPECTATION_FOR})
        return Ballot(answers, wishes, ["F5"] if no_feedback else [], round(rng.uniform(150, 420), 1))

    def fabricated(self, rng: random.Random) -> Ballot:
        """What a fabricating enumerator writes at his kitchen table: all 4s, now and then one 5."""
        answers: dict[str, int | None] = dict.fromkeys(self.instrument.criteria, 4)
        if rng.random() < 0.5:
            answers[rng.choice(self.instrument.criteria)] = 5
        return Ballot(answers, ["E3"], [], None)


def _level(rng: random.Random, p_satisfied: float) -> int:
    if rng.random() < p_satisfied:
        return 5 if rng.random() < 0.4 else 4
    return rng.choices((3, 2, 1), weights=(70, 25, 5))[0]
