"""Printable field lists (PDF, A4 landscape) with a Unicode font so Vietnamese prints as written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sipas_kit.printing import font_path


def field_list_pdf(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, int]]) -> bytes:
    """``columns``: (key, header, width in mm)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.add_font("DejaVu", "", str(font_path()))
    pdf.set_font("DejaVu", size=9)
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font_size(13)
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(9)
    for _key, header, width in columns:
        pdf.cell(width, 7, header, border=1)
    pdf.ln()
    for row in rows:
        for key, _header, width in columns:
            pdf.cell(width, 6, str(row.get(key, ""))[: max(4, width // 2)], border=1)
        pdf.ln()
    return bytes(pdf.output())
