"""Printable documents: the Unicode font every service prints Vietnamese with.

The font comes from the OS (Debian: fonts-dejavu-core, which `.ci/run` installs); ``SIPAS_PDF_FONT``
points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf")


def font_path() -> Path:
    for candidate in (os.environ.get("SIPAS_PDF_FONT"), *FONT_CANDIDATES):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise RuntimeError("no Unicode TTF font found: install fonts-dejavu-core or set SIPAS_PDF_FONT")
