"""``python -m sipas_scoring``: run the scoring service."""

from __future__ import annotations

from sipas_kit.runner import serve
from sipas_scoring.entrypoints.app import create_app
from sipas_scoring.settings import ScoringSettings


def main() -> None:
    serve(create_app, ScoringSettings())  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
