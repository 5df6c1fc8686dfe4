"""Domain errors: no HTTP codes here; the edge maps each class to a problem+json status."""

from __future__ import annotations


class RegistryError(Exception):
    """A command the registry refuses; ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        error = {"field": f"body.{field}", "message": message, "type": "domain"}
        self.problem_extra = {"errors": [error]} if field else {}


class AlreadyExists(RegistryError):
    """The thing to create exists (or its code is taken for an overlapping period)."""


class NotFound(RegistryError):
    """A referenced unit, instrument, scheme or campaign is not in the registry."""


class Immutable(RegistryError):
    """A published instrument or scheme version, or a campaign step already taken, cannot change."""


class NotAllowed(RegistryError):
    """The caller's role may not take this step (e.g. a province operator closing a national campaign)."""
