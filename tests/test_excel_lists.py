"""Her list as Excel writes it in the Netherlands, written here byte for byte: semicolons, Dutch
column names, Windows-1252 or UTF-8 with a byte order mark, CRLF; and tabs, and English names."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import csv_format, importing
from newsletter.storage.models import Subscriber
from tests.support.cli import Cli

ROWS = [("anna@example.com", "Anneké"), ("bram@example.com", "Bräm"), ("cor@example.com", "Çor")]


def excel_csv(rows: list[tuple[str, str]], header: str, encoding: str, bom: bool = False) -> bytes:
    """What Excel (Dutch locale) saves: semicolons, CRLF, the given encoding."""
    lines = [header] + [f"{email};{name}" for email, name in rows]
    data = "\r\n".join(lines).encode(encoding) + b"\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + data


def names(factory: sessionmaker[Session]) -> dict[str, str | None]:
    with factory() as session:
        return {s.email: s.name for s in session.scalars(select(Subscriber))}


def test_excel_windows_1252_is_refused_whole_with_the_way_out_which_then_reads_it(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    lijst = tmp_path / "lezers.csv"
    lijst.write_bytes(excel_csv(ROWS, "E-mailadres;Naam", "cp1252"))
    refused = cli("subscribers", "import", str(lijst), code=1)
    assert "not UTF-8 (lines 2, 3, 4)" in refused.stderr
    assert f"newsletter subscribers import {lijst} --encoding cp1252" in refused.stderr
    assert "Nothing was imported" in refused.stderr
    assert names(factory) == {}
    out = cli("subscribers", "import", str(lijst), "--encoding", "cp1252").stdout
    assert "Imported 3," in out
    assert names(factory) == dict(ROWS)


def test_excel_csv_utf8_with_a_bom_and_semicolons(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    lijst = tmp_path / "lezers.csv"
    lijst.write_bytes(excel_csv(ROWS, "e-mailadres;naam", "utf-8", bom=True))
    cli("subscribers", "import", str(lijst))
    assert names(factory) == dict(ROWS)
    refused = cli("subscribers", "import", str(lijst), "--encoding", "cp1252", code=1)
    assert "leave out --encoding" in refused.stderr


def test_tabs_first_names_before_full_names_and_columns_in_english(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    tabbed = tmp_path / "tab.txt"
    tabbed.write_text(
        "Naam\tVoornaam\tE-mail\tWoonplaats\nDaan de Vries\tDaan\tdaan@example.com\tEde\n",
        encoding="utf-8",
    )
    cli("subscribers", "import", str(tabbed))
    english = tmp_path / "english.csv"
    english.write_text(
        '"Email Address","First Name","Last Name"\neva@example.com,Eva,Jansen\n', encoding="utf-8"
    )
    cli("subscribers", "import", str(english))
    assert names(factory) == {"daan@example.com": "Daan", "eva@example.com": "Eva"}


def test_two_address_columns_are_refused_naming_both(cli: Cli, tmp_path: Path) -> None:
    lijst = tmp_path / "dubbel.csv"
    lijst.write_text("email;e-mailadres\na@example.com;b@example.com\n", encoding="utf-8")
    result = cli("subscribers", "import", str(lijst), code=1)
    assert "two columns hold the address ('email' and 'e-mailadres'); keep one" in result.stderr


def test_an_unknown_or_unusable_encoding_names_the_option(cli: Cli, tmp_path: Path) -> None:
    lijst = tmp_path / "lezers.csv"
    lijst.write_text("email\na@example.com\n", encoding="utf-8")
    assert "unknown encoding" in cli("subscribers", "import", str(lijst), "--encoding",
                                     "klingon", code=1).stderr  # fmt: skip
    assert "save the file as UTF-8" in cli("subscribers", "import", str(lijst), "--encoding",
                                           "utf-16", code=1).stderr  # fmt: skip


HEADERS = ["e-mailadres;naam", "E-mail;Voornaam", "email;name", "Mail;Roepnaam"]
CP1252_NAME = (
    st.text(alphabet=st.characters(codec="cp1252", categories=["L", "Zs"]), min_size=1, max_size=20)
    .map(lambda n: " ".join(n.split()))
    .filter(bool)
)


@given(name=CP1252_NAME, header=st.sampled_from(HEADERS), bom=st.booleans())
@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_name_excel_can_write_is_read_back_exactly(
    factory: sessionmaker[Session], tmp_path: Path, name: str, header: str, bom: bool
) -> None:
    """For any name Windows-1252 holds, in any of the column names, as cp1252 or as UTF-8."""
    for encoding in ("cp1252", "utf-8"):
        out = io.StringIO()
        csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(
            [header.split(";"), ["lezer@example.com", name]]
        )
        data = out.getvalue().encode(encoding)
        path = tmp_path / "lijst.csv"
        path.write_bytes((b"\xef\xbb\xbf" if bom and encoding == "utf-8" else b"") + data)
        with factory() as session:  # rolled back: every example starts from an empty list
            report = importing.import_csv(
                session, path, datetime.now(UTC), encoding=encoding, basis="test"
            )
            assert report.problems == []
            (stored,) = session.scalars(select(Subscriber))
            assert stored.name == name
            session.rollback()


def test_the_header_decides_the_delimiter_and_cells_keep_theirs(tmp_path: Path) -> None:
    path = tmp_path / "lijst.csv"
    path.write_text('naam;e-mailadres\n"Jansen, Eva";eva@example.com\n', encoding="utf-8")
    (row,) = csv_format.read(path)
    assert row.cells == {"name": "Jansen, Eva", "email": "eva@example.com"}
