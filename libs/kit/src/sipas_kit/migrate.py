"""``python -m sipas_kit.migrate sipas_<service>``: upgrade a service's database to head.

The URL comes from ``SIPAS_<SERVICE>_DATABASE_URL`` (as the service itself reads it).
"""

from __future__ import annotations

import os
import sys

from sipas_kit.migrations import upgrade


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("sipas_"):
        print("usage: python -m sipas_kit.migrate sipas_<service>", file=sys.stderr)
        return 2
    package = argv[0]
    var = f"SIPAS_{package.removeprefix('sipas_').upper()}_DATABASE_URL"
    url = os.environ.get(var)
    if not url:
        print(f"{var} is not set", file=sys.stderr)
        return 2
    upgrade(package, url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
