"""Domain errors of ballots: no HTTP codes here; the edge maps each class to a problem+json status.

A *rejected submission* is not an error: ``validation.validate`` returns ``Rejected`` with a reason
code, because a rejection is a recorded outcome. Errors are for commands the domain refuses.
"""

from __future__ import annotations


class BallotsError(Exception):
    """A command the ballots domain refuses; ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        error = {"field": f"body.{field}", "message": message, "type": "domain"}
        self.problem_extra = {"errors": [error]} if field else {}


class InvalidParameter(BallotsError):
    """A setting or argument is out of range (a share, a seed, a key, a reason left blank…)."""


class InvalidCode(BallotsError):
    """Text that is not a well-formed ballot code."""


class BadCodeLength(InvalidCode):
    """The code has too few or too many characters (after spaces and hyphens are dropped)."""


class BadCodeCharacter(InvalidCode):
    """The code holds a character outside the alphabet; ``position`` counts from 1 in the normalised text."""

    def __init__(self, message: str, position: int, character: str) -> None:
        super().__init__(message, field="code")
        self.position = position
        self.character = character


class BadCodeCheck(InvalidCode):
    """Every character is valid but the check character does not match: a typo or a made-up code."""


class UnknownBallot(BallotsError):
    """No ballot was issued with this code (or to this unit)."""


class AlreadyIssued(BallotsError):
    """The unit already holds a live ballot (or the new code is already taken)."""


class AlreadyCancelled(BallotsError):
    """The ballot's code was cancelled; it can be neither used nor cancelled again."""


class AlreadyUsed(BallotsError):
    """The ballot's code has been used by an accepted submission."""


class NotAllowed(BallotsError):
    """The actor may not take this step (a clerk keying the same ballot twice, a keyer adjudicating)."""


class IncompleteAdjudication(BallotsError):
    """The adjudication does not settle exactly the fields the two keyings disagree on."""
