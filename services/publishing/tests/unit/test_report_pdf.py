"""The PDF report renders every Vietnamese letter with an embedded Unicode font: no glyph missing,
and a reader extracting its text gets the letters back."""

from __future__ import annotations

import datetime as dt
import io
import logging
import unicodedata
from typing import Any

import pytest
from pypdf import PdfReader

from sipas_publishing.entrypoints.report_pdf import release_pdf

TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")  # level, huyền, sắc, hỏi, ngã, nặng
VOWELS = "aăâeêioôơuưy"
ALPHABET = "".join(unicodedata.normalize("NFC", v + tone) for v in VOWELS + VOWELS.upper() for tone in TONES) + "đĐ"


def unit(level: str, ident: str, name: str, value: str | None, **extra: Any) -> dict[str, Any]:
    return {"level": level, "id": ident, "name": name, "province": extra.pop("province", None),
            "suppressed": extra.pop("suppressed", None),
            "overall": {"value": value, "n": 40, "ci": None if value is None else ["60.00", "70.00"]}} | extra


def release(name: str) -> dict[str, Any]:
    return {"release_id": "r1", "title": "SIPAS 2026 — Báo cáo", "status": "published", "retraction": None,
            "published_at": dt.datetime(2026, 12, 15, tzinfo=dt.UTC), "superseded_by": None,
            "manifest_sha256": "ab" * 32, "key_id": "cd" * 8, "comparison": None, "document": {"units": [
                unit("national", "VN", "Việt Nam", "65.00", factors={"F1": {"value": "66.00"}}),
                unit("province", "01", name, "65.00", province="01", rank={"rank": 1, "best": 1, "worst": 1}),
                unit("agency", "a1", f"Sở {name}", "65.00", province="01"),
                unit("agency", "a2", "Sở Y tế", None, province="01", suppressed="insufficient_sample"),
            ]}}


def test_every_vietnamese_letter_renders_and_reads_back(caplog: pytest.LogCaptureFixture) -> None:
    assert len(ALPHABET) == 2 * 12 * 6 + 2
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        content = release_pdf(release(ALPHABET), "vi")
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    unwrapped = "".join(text.split())  # a 146-letter name wraps in its table cell
    assert unwrapped.count(ALPHABET) == 3  # the ranking, the province heading, the agency ("Sở …")
    assert "không đủ mẫu" in text and "Chỉ số toàn quốc: 65.00" in text
    fonts = {str(f["/BaseFont"]) for page in reader.pages for f in page["/Resources"]["/Font"].values()}
    assert fonts and all("DejaVu" in f for f in fonts)


def test_english_on_request() -> None:
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(release_pdf(release("Hà Nội"), "en"))).pages)
    assert "National index: 65.00" in text and "insufficient sample" in text and "Hà Nội" in text
