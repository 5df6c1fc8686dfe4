"""Domain errors of sampling: no HTTP codes here; the edge maps each class to a problem+json status."""

from __future__ import annotations


class SamplingError(Exception):
    """A request the sampling domain refuses; ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        error = {"field": f"body.{field}", "message": message, "type": "domain"}
        self.problem_extra = {"errors": [error]} if field else {}


class InvalidParameter(SamplingError):
    """A design parameter is out of range (margin of error, floor, seed, salt, reserve policy…)."""


class InfeasibleAllocation(SamplingError):
    """No allocation meets the target within every stratum's floor and cap."""


class FrameMismatch(SamplingError):
    """The frame handed in cannot be drawn from as given: it is not the one the plan or the published draw
    was made from, or it lists a dossier twice."""


class FrameOrderError(SamplingError):
    """Rows reached the streaming digest out of canonical order, or twice."""


class UnitNotActive(SamplingError):
    """The unit to replace is not an active member of its stratum's sample."""


class ReservesExhausted(SamplingError):
    """A stratum has no reserve left to replace a unit with."""

    def __init__(self, stratum: tuple[str, ...], reserves: int) -> None:
        super().__init__(
            f"stratum {'/'.join(stratum) or '(all)'} has used all {reserves} of its reserves; "
            "draw a supplementary sample or accept the non-response",
        )
        self.stratum = stratum
        self.reserves = reserves
