"""Read the ballot codes off the printable ballot sheets (``GET /v1/campaigns/{id}/ballot-sheets.pdf``).

The ballots service hands codes to people only on paper: one A5 sheet per open ballot, with the code
in large print and the agency's code below it. The demo plays the enumerator who reads them, so it
reads the PDF's text: the sheets are written with one embedded font (Identity-H, two bytes per glyph)
whose ToUnicode map turns glyph ids back into characters. This is a reader for those sheets, not for
PDFs in general.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

_STREAM = re.compile(rb"<<(.*?)>>\s*stream\r?\n", re.S)
_BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
_BFRANGE = re.compile(rb"beginbfrange(.*?)endbfrange", re.S)
_HEX = re.compile(rb"<([0-9A-Fa-f]+)>")
_SHOW = re.compile(rb"\((?:[^()\\]|\\.)*\)\s*Tj|\[(?:[^\]\\]|\\.)*\]\s*TJ", re.S)
_LITERAL = re.compile(rb"\((?:[^()\\]|\\.)*\)", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
CODE_LINE = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{3}$")
AGENCY_LINE = re.compile(r"^Cơ quan: (.+)$")


def _streams(pdf: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(dictionary, decoded data) of every stream object."""
    for match in _STREAM.finditer(pdf):
        head, start = match.group(1), match.end()
        length = re.search(rb"/Length (\d+)(?!\s+\d+\s+R)", head)
        end = start + int(length.group(1)) if length else pdf.index(b"endstream", start)
        data = pdf[start:end]
        if b"/FlateDecode" in head:
            try:
                data = zlib.decompress(data)
            except zlib.error:
                continue
        yield head, data


def _to_unicode(cmap: bytes) -> dict[int, str]:
    glyphs: dict[int, str] = {}
    for block in _BFCHAR.findall(cmap):
        pairs = _HEX.findall(block)
        for src, dst in zip(pairs[::2], pairs[1::2], strict=False):
            glyphs[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
    for block in _BFRANGE.findall(cmap):
        values = _HEX.findall(block)
        for lo, hi, dst in zip(values[::3], values[1::3], values[2::3], strict=False):
            first = ord(bytes.fromhex(dst.decode()).decode("utf-16-be"))
            for offset, glyph in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                glyphs[glyph] = chr(first + offset)
    return glyphs


def _unescape(literal: bytes) -> bytes:
    out, i = bytearray(), 1
    while i < len(literal) - 1:
        ch = literal[i:i + 1]
        if ch != b"\\":
            out += ch
            i += 1
            continue
        nxt = literal[i + 1:i + 2]
        octal = re.match(rb"[0-7]{1,3}", literal[i + 1:i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def text_lines(pdf: bytes) -> list[str]:
    """Every text-showing operation of every page, decoded, in page order."""
    glyphs: dict[int, str] = {}
    pages: list[bytes] = []
    for head, data in _streams(pdf):
        if b"beginbfchar" in data or b"beginbfrange" in data:
            glyphs.update(_to_unicode(data))
        elif b"/Subtype /Image" not in head and (b"Tj" in data or b"TJ" in data):
            pages.append(data)
    lines = []
    for page in pages:
        for shown in _SHOW.finditer(page):
            raw = b"".join(_unescape(lit) for lit in _LITERAL.findall(shown.group()))
            lines.append("".join(glyphs.get(int.from_bytes(raw[i:i + 2], "big"), "\ufffd")
                                 for i in range(0, len(raw) - 1, 2)))
    return lines


def codes_on_sheets(pdf: bytes) -> list[tuple[str, str]]:
    """(code as printed, agency code) for every sheet, in print order."""
    found: list[tuple[str, str]] = []
    code: str | None = None
    for line in text_lines(pdf):
        if CODE_LINE.match(line):
            code = line
        elif code is not None and (agency := AGENCY_LINE.match(line)):
            found.append((code, agency.group(1)))
            code = None
    return found
