"""A random stream that is a pure function of a seed and labels, stable across Python versions.

Python's ``random`` is not used: its algorithms are an implementation detail that may change between
releases, and a published draw must re-run identically for years. Instead, block ``i`` of a stream is

    HMAC-SHA256(key = seed as ASCII, message = label₁ ‖ label₂ ‖ … ‖ i as 8-byte big-endian)

where each label is its UTF-8 bytes preceded by their length as 4-byte big-endian (so no two label
lists give the same message). Each block yields four 64-bit big-endian words, used in order.
An integer below ``m`` is drawn by rejection: words at or above the largest multiple of ``m`` not
exceeding 2⁶⁴ are discarded, then the word is reduced mod ``m`` — exactly uniform, no modulo bias.

Commit-reveal: the seed is lowercase hex of at least 128 bits (32 hex digits) so its commitment
``sha256(seed as ASCII)`` cannot be brute-forced before it is revealed; anyone can check a revealed
seed with ``printf %s <seed> | sha256sum``.
"""

from __future__ import annotations

import hashlib
import hmac
import string

from sipas_sampling.domain.errors import InvalidParameter

MIN_SEED_HEX_DIGITS = 32
WORD_SPACE = 1 << 64


def check_seed(seed: str) -> str:
    """The seed, if it is lowercase hex of at least 128 bits; ``InvalidParameter`` otherwise."""
    if len(seed) < MIN_SEED_HEX_DIGITS or any(ch not in string.hexdigits or ch.isupper() for ch in seed):
        raise InvalidParameter(f"the seed must be at least {MIN_SEED_HEX_DIGITS} lowercase hex digits "
                               "(128 random bits)", field="seed")
    return seed


def seed_commitment(seed: str) -> str:
    """SHA-256 (hex) of the seed's text: published before the draw, checked against the seed after."""
    return hashlib.sha256(check_seed(seed).encode("ascii")).hexdigest()


def encode_labels(labels: tuple[str, ...]) -> bytes:
    parts = []
    for text in labels:
        data = text.encode("utf-8")
        parts.append(len(data).to_bytes(4, "big") + data)
    return b"".join(parts)


class RandomStream:
    """Deterministic stream of unbiased integers for one purpose (one stratum, one stage…)."""

    def __init__(self, seed: str, *labels: str) -> None:
        self._key = check_seed(seed).encode("ascii")
        self._prefix = encode_labels(labels)
        self._counter = 0
        self._words: list[int] = []

    def word(self) -> int:
        """The next 64-bit word."""
        if not self._words:
            block = hmac.new(self._key, self._prefix + self._counter.to_bytes(8, "big"), hashlib.sha256).digest()
            self._counter += 1
            self._words = [int.from_bytes(block[i:i + 8], "big") for i in range(24, -1, -8)]
        return self._words.pop()

    def below(self, bound: int) -> int:
        """A uniform integer in ``[0, bound)``."""
        if not 0 < bound <= WORD_SPACE:
            raise InvalidParameter(f"cannot draw below {bound}", field="bound")
        limit = WORD_SPACE - WORD_SPACE % bound
        while True:
            word = self.word()
            if word < limit:
                return word % bound


def ordered_sample(stream: RandomStream, population: int, size: int) -> list[int]:
    """``size`` distinct indices of ``range(population)`` in random order: the first ``size`` steps of a
    Fisher-Yates shuffle (swaps kept in a dict, so memory grows with ``size``, not ``population``).
    Every ordered selection is equally likely, and a longer draw extends a shorter one: the first
    ``n`` indices do not depend on how many more are taken after them (e.g. as reserves)."""
    if not 0 <= size <= population:
        raise InvalidParameter(f"cannot take {size} distinct units from {population}", field="size")
    swapped: dict[int, int] = {}
    chosen = []
    for i in range(size):
        j = i + stream.below(population - i)
        chosen.append(swapped.get(j, j))
        swapped[j] = swapped.get(i, i)
    return chosen
