"""``python -m sipas_publishing``: run the publishing service."""

from __future__ import annotations

from sipas_kit.runner import serve
from sipas_publishing.entrypoints.app import create_app
from sipas_publishing.settings import PublishingSettings


def main() -> None:
    serve(create_app, PublishingSettings())  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
