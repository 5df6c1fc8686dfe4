"""Publishing's domain errors (no HTTP codes here: the app maps them)."""

from __future__ import annotations


class PublishingError(Exception):
    """A request publishing cannot carry out as asked."""


class ReleaseConflict(PublishingError):
    """The release is not in a state that allows this step (e.g. it is already published)."""


class FourEyes(PublishingError):
    """The same person may not both draft and approve a release."""


class FiguresMismatch(PublishingError):
    """The figures fetched for a snapshot do not hash to the snapshot's recorded digest."""


class ScoringUnavailable(PublishingError):
    """Scoring did not answer (or refused) when asked for a snapshot's figures or a comparison."""
