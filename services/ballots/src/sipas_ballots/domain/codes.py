"""Ballot codes: short, unguessable, typed and read aloud without ambiguity, with a check character.

A code is 10 symbols of Crockford's base32 alphabet ``0-9 A-Z`` without ``I L O U`` (50 random
bits) followed by one check symbol from the same alphabet: 11 characters, shown as ``7K3M-Q9TX-2HC``.

*Unguessable*: with 40,000 codes live in a campaign a guess hits one with probability 40,000 ÷ 2⁵⁰
≈ 4·10⁻¹¹, and a random string passes the check only once in 32 tries, so guessing shows up as a
stream of ``BadCodeCheck`` long before it succeeds.

*Check symbol* — Damm's scheme over the field GF(32) = GF(2)[x] / (x⁵ + x² + 1). A symbol is a field
element (its 5-bit value); the state starts at 0 and each symbol ``y`` moves it to ``s ∘ y = x·s + y``.
The check symbol is the one that brings the state back to 0, so a code is valid iff folding all 11
symbols ends at 0. Proof that every single substitution and adjacent transposition is caught:

- ``t ↦ x·t + y`` is a bijection for every ``y`` (x is invertible), so two different states stay
  different to the end, and at most one of them can be 0;
- a substitution ``a → b`` at one position gives states ``x·s + a ≠ x·s + b`` right after it;
- swapping neighbours ``a ≠ b`` gives ``x²s + x·a + b`` against ``x²s + x·b + a``, which differ by
  ``(x + 1)(a + b)`` — not 0, as ``x + 1 ≠ 0`` and ``a + b ≠ 0`` in a field (``+`` is XOR).

The check symbol itself is covered: it is folded like the others. (Crockford's own mod-37 check
needs the extra symbols ``* ~ $ = U``, awkward to print and read aloud; this one needs none.)

Input is forgiving where no information is lost: case, spaces and hyphens are ignored, and the
look-alikes ``O → 0`` and ``I, L → 1`` are mapped, as Crockford intends.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import Protocol

from sipas_ballots.domain.errors import BadCodeCharacter, BadCodeCheck, BadCodeLength, InvalidParameter
from sipas_ballots.domain.hashing import MIN_KEY_BYTES, keyed_hash

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_SYMBOLS = 10
CODE_LENGTH = RANDOM_SYMBOLS + 1
RANDOM_BITS = 5 * RANDOM_SYMBOLS
GROUP = 4
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_.]+")  # spaces, hyphens and dashes, "_", "."
_POLY = 0b100101  # x⁵ + x² + 1, irreducible over GF(2)
_DERIVED = b"sipas-ballot-code/v1"


class RandomBits(Protocol):
    def getrandbits(self, k: int, /) -> int: ...


def _times_x(state: int) -> int:
    state <<= 1
    return state ^ _POLY if state & 0b100000 else state


def _fold(symbols: str) -> int:
    state = 0
    for ch in symbols:
        state = _times_x(state) ^ _VALUE[ch]
    return state


def check_symbol(symbols: str) -> str:
    """The symbol that completes ``symbols`` (alphabet characters) into a valid code."""
    return ALPHABET[_times_x(_fold(symbols))]


def _from_bits(bits: int) -> str:
    symbols = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(RANDOM_SYMBOLS)))
    return symbols + check_symbol(symbols)


def new_code(rng: RandomBits | None = None) -> str:
    """A fresh random code in canonical form (11 characters, no hyphens).

    ``rng`` defaults to the operating system's CSPRNG (``secrets.SystemRandom``); tests may pass any
    object with ``getrandbits``. Uniqueness is the caller's to enforce (the store's unique index): a
    collision is possible in principle, so on one the caller draws again."""
    source = rng if rng is not None else secrets.SystemRandom()
    return _from_bits(source.getrandbits(RANDOM_BITS))


def derived_code(key: bytes, campaign_id: str, unit_id: str, counter: int) -> str:
    """A code derived, not drawn: the first 50 bits of
    ``HMAC-SHA256(key, "sipas-ballot-code/v1" ‖ 0x00 ‖ campaign_id ‖ unit_id ‖ counter)`` (labels
    length-prefixed). Whoever holds the key can (re)print a unit's ballot offline and get the same code;
    the counter (the unit's issue number, from 1) gives a reissued ballot a new one. The key is secret,
    at least 128 bits and per campaign: anyone who has it can compute every code."""
    if len(key) < MIN_KEY_BYTES:
        raise InvalidParameter(f"the code key must be at least {MIN_KEY_BYTES} random bytes", field="key")
    if counter < 1:
        raise InvalidParameter("the issue counter starts at 1", field="counter")
    digest = keyed_hash(key, _DERIVED, campaign_id, unit_id, str(counter))
    return _from_bits(int.from_bytes(digest[:8], "big") >> (64 - RANDOM_BITS))


def normalise(text: str) -> str:
    """What the user meant, before any check: Unicode NFKC (full-width letters), upper case, no spaces or
    hyphens, ``O → 0`` and ``I, L → 1``. Keying clerks' versions of one code compare equal after this."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper().translate(_LOOK_ALIKES)


def parse_code(text: str) -> str:
    """The canonical code typed, pasted or read in ``text``; ``InvalidCode`` (bad character, bad length,
    bad check) with a precise message otherwise."""
    code = normalise(text)
    for position, ch in enumerate(code, start=1):
        if ch not in _VALUE:
            hint = " (U is not used: did you mean V?)" if ch == "U" else ""
            raise BadCodeCharacter(f"character {position} of the code, {ch!r}, is not a code character{hint}",
                                   position, ch)
    if len(code) != CODE_LENGTH:
        raise BadCodeLength(f"a ballot code has {CODE_LENGTH} characters, not {len(code)}", field="code")
    if _fold(code) != 0:
        raise BadCodeCheck("the code's check character does not match: a character is mistyped, "
                           "or two are swapped", field="code")
    return code


def is_valid(text: str) -> bool:
    try:
        parse_code(text)
    except (BadCodeCharacter, BadCodeLength, BadCodeCheck):
        return False
    return True


def display(code: str) -> str:
    """The printed form: groups of four separated by hyphens (``7K3M-Q9TX-2HC``)."""
    code = parse_code(code)
    return "-".join(code[i:i + GROUP] for i in range(0, len(code), GROUP))


def qr_url(base_url: str, code: str) -> str:
    """The content of the ballot's QR code: ``{base}/b/{code}``, the code in canonical form (shortest)."""
    base = base_url.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base):
        raise InvalidParameter(f"the form's base URL must be an http(s) URL without query, not {base_url!r}",
                               field="base_url")
    return f"{base}/b/{parse_code(code)}"
