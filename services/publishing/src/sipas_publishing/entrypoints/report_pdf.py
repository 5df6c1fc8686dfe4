"""The report as a PDF (A4, fpdf2 with the kit's Unicode font, so Vietnamese renders): the national
index and its factors, the province ranking with intervals, each province's agencies, year on year
when the release has it, suppressed cells said as such, and how to check the signed release."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from sipas_kit.printing import font_path
from sipas_publishing.application import queries
from sipas_publishing.entrypoints.words import WORDS, Lang

FONT = "DejaVu"
DASH = "\u2013"  # the en dash of ranges and of "no figure"
HEAD = FontFace(emphasis="BOLD", fill_color=(245, 230, 230))


class _Report(FPDF):
    def __init__(self, t: dict[str, str], reference: str) -> None:
        super().__init__(format="A4")
        self.t, self.reference = t, reference
        regular = font_path()
        bold = regular.with_name(regular.name.replace(".ttf", "-Bold.ttf"))
        self.add_font(FONT, "", str(regular))
        self.add_font(FONT, "B", str(bold if bold.exists() else regular))
        self.set_auto_page_break(True, margin=15)
        self.alias_nb_pages()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.reference} · {self.t['page']} {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)

    def heading(self, text: str, size: int = 13) -> None:
        self.set_font(FONT, "B", size)
        self.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)
        self.set_font(FONT, size=9)

    def paragraph(self, text: str, size: int = 9) -> None:
        self.set_font(FONT, size=size)
        self.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def grid(self, widths: Sequence[int], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.set_font(FONT, size=8)
        with self.table(col_widths=widths, headings_style=HEAD, line_height=4.2, padding=1,
                        text_align=["LEFT"] + ["RIGHT"] * (len(widths) - 1)) as table:
            table.row([str(h) for h in header])
            for line in rows:
                table.row(["" if v is None else str(v) for v in line])
        self.ln(3)


def figure_text(unit: dict[str, Any], t: dict[str, str]) -> str:
    if unit.get("suppressed") == "complementary":
        return t["complementary"]
    if unit.get("suppressed"):
        return t["suppressed"]
    value = (unit.get("overall") or {}).get("value")
    return DASH if value is None else str(value)


def interval(unit: dict[str, Any]) -> str:
    ci = (unit.get("overall") or {}).get("ci")
    return f"{ci[0]}{DASH}{ci[1]}" if ci and not unit.get("suppressed") else ""


def _ranking(pdf: _Report, provinces: list[dict[str, Any]], t: dict[str, str]) -> None:
    pdf.heading(t["ranking"])
    rows = []
    for u in provinces:
        rank = u.get("rank") or {}
        n = (u.get("overall") or {}).get("n")
        rows.append([rank.get("rank", DASH), u.get("name") or u["id"], figure_text(u, t), interval(u),
                     f"{rank['best']}{DASH}{rank['worst']}" if rank else "", "" if u.get("suppressed") else n])
    pdf.grid((12, 58, 34, 34, 22, 20), [t["rank"], t["province"], t["index"], t["ci"], t["rank_range"], t["n"]],
             rows)


def _agencies(pdf: _Report, document: dict[str, Any], provinces: list[dict[str, Any]], t: dict[str, str]) -> None:
    pdf.add_page()
    pdf.heading(t["agencies"])
    for p in provinces:
        agencies = queries.figures(document, level="agency", province=p.get("province") or p["id"])
        if not agencies:
            continue
        pdf.heading(f"{p.get('name') or p['id']} — {figure_text(p, t)}", size=10)
        pdf.grid((80, 34, 44, 22), [t["agency"], t["index"], t["ci"], t["n"]],
                 [[u.get("name") or u["id"], figure_text(u, t), interval(u),
                   "" if u.get("suppressed") else (u.get("overall") or {}).get("n")] for u in agencies])


def _comparison(pdf: _Report, comparison: dict[str, Any], t: dict[str, str]) -> None:
    earlier_year, year = comparison["years"]
    pdf.heading(f"{t['yoy']} {earlier_year}")
    rows = []
    for u in comparison["units"]:
        then, now = u["earlier"], u["current"]
        earlier = t["suppressed"] if then["value"] is None else str(then["value"])
        if then["restated"]:
            earlier += f" † {t['restated']}: {t['from']} {' + '.join(then.get('from_names') or then['from'])}"
        current = (t["complementary"] if now.get("suppressed") == "complementary"
                   else t["suppressed"] if now["value"] is None else str(now["value"]))
        change = DASH if u["change"] is None else u["change"]
        rows.append([u.get("name") or u["province"], earlier, current, change])
    pdf.grid((50, 76, 34, 20), [t["province"], str(earlier_year), str(year), t["change"]], rows)
    if any(u["earlier"]["restated"] for u in comparison["units"]):
        pdf.paragraph(f"† {t['restated_note']}.", size=8)


def release_pdf(row: dict[str, Any], lang: Lang) -> bytes:
    """``row`` is a public release as the pages read it (province names filled in)."""
    t = WORDS[lang]
    document = row["document"]
    pdf = _Report(t, f"SIPAS · {t['release']} {row['release_id']}")
    pdf.set_title(row["title"])
    pdf.set_lang(lang)
    pdf.set_creator("SIPAS publishing")
    pdf.add_page()
    pdf.paragraph(t["title"], size=10)
    pdf.heading(row["title"], size=16)
    published = row["published_at"].date().isoformat() if row.get("published_at") else ""
    pdf.paragraph(f"{t['published']}: {published} · {t['release']}: {row['release_id']}")
    if row["status"] == "retracted":
        pdf.heading(f"{t['retracted']}: {(row.get('retraction') or {}).get('reason', '')}", size=11)
    if row.get("superseded_by"):
        pdf.heading(f"{t['superseded']} {row['superseded_by']}", size=11)
    national = next((u for u in document["units"] if u["level"] == "national"), None)
    if national is not None:
        pdf.heading(f"{t['national']}: {figure_text(national, t)}", size=13)
        if interval(national):
            pdf.paragraph(f"{t['ci']}: {interval(national)}")
        factors = national.get("factors") or {}
        if factors:
            pdf.grid((60, 30), [t["factors"], t["index"]],
                     [[code, f.get("value") if f.get("value") is not None else t["suppressed"]]
                      for code, f in factors.items()])
    provinces = queries.ranked_provinces(document)
    _ranking(pdf, provinces, t)
    if row.get("comparison"):
        _comparison(pdf, row["comparison"], t)
    pdf.paragraph(f"{t['verify']} · SHA-256 {row.get('manifest_sha256') or ''} · key {row.get('key_id') or ''}",
                  size=7)
    _agencies(pdf, document, provinces, t)
    return bytes(pdf.output())
