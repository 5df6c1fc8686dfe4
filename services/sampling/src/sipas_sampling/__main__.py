"""``python -m sipas_sampling``: run the sampling service."""

from __future__ import annotations

from sipas_kit.runner import serve
from sipas_sampling.entrypoints.app import create_app
from sipas_sampling.settings import SamplingSettings


def main() -> None:
    serve(create_app, SamplingSettings())  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
