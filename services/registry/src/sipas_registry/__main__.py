"""``python -m sipas_registry``: run the registry service."""

from __future__ import annotations

from sipas_kit.runner import serve
from sipas_registry.entrypoints.app import create_app
from sipas_registry.settings import RegistrySettings


def main() -> None:
    serve(create_app, RegistrySettings())  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
