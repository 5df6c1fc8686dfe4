"""``python -m sipas_ballots``: run the ballots service."""

from __future__ import annotations

from sipas_ballots.entrypoints.app import create_app
from sipas_ballots.settings import BallotsSettings
from sipas_kit.runner import serve


def main() -> None:
    serve(create_app, BallotsSettings())  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
