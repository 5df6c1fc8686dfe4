"""Domain errors: no HTTP codes here; the edge maps each class to a problem+json status."""

from __future__ import annotations


class ScoringError(Exception):
    """Scoring refused its input: the data contradicts the instrument, the scheme or the design."""


class SchemeMismatch(ScoringError):
    """The scheme asks for something the instrument lacks (e.g. an overall item that is not there)."""


class OffScale(ScoringError):
    """An answer is not a level of the instrument's scale; accepted ballots should never carry one."""


class DesignError(ScoringError):
    """The sampling design cannot support the estimate (no weights, a stratum of one, a zero total)."""
