"""Reading an import file: rows by line number, and a file the csv module cannot read is a precise 422."""

from __future__ import annotations

import pytest

from sipas_ballots.application.imports import UnreadableImport, _answer, rows_of


def test_rows_keep_their_line_numbers_and_skip_blank_lines():
    content = "\ufeffcode,1.1,expectations\nAAAA,4,E1\n\n ,\nBBBB,,\n".encode()
    assert list(rows_of(content, "b.csv")) == [(2, {"code": "AAAA", "1.1": "4", "expectations": "E1"}),
                                               (5, {"code": "BBBB", "1.1": "", "expectations": ""})]


def test_a_field_past_the_csv_limit_is_unreadable_naming_the_line():
    content = b'code,1.1\nAAAA,4\nBBBB,"' + b"9" * 200_000 + b'"\n'
    with pytest.raises(UnreadableImport) as refused:
        list(rows_of(content, "b.csv"))
    assert "line 3" in str(refused.value) and "field larger than field limit" in str(refused.value)
    assert refused.value.field == "file"


@pytest.mark.parametrize(("value", "answer"), [
    ("4", 4), (" 4 ", 4), ("", None), ("0", None), (" 0", None), (None, None), (3.0, 3), ("x", "x"), (4.5, 4.5),
    ("12", 12),
])
def test_answers_as_typed(value, answer):
    assert _answer(value) == answer
