"""Subscribers from the CLI: validated addresses, unique whatever the case, CSV import by line."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Cli


def test_add_and_list(cli: Cli) -> None:
    assert (
        "Added anna@example.com."
        in cli("subscribers", "add", "anna@example.com", "--name", "Anna").stdout
    )
    listing = cli("subscribers", "list").stdout
    assert "anna@example.com" in listing and "Anna" in listing and "subscribed" in listing


def test_a_bad_address_is_refused_with_a_reason(cli: Cli) -> None:
    result = cli("subscribers", "add", "anna@@example", code=1)
    assert "anna@@example" in result.stderr
    assert "@" in result.stderr


def test_addresses_are_unique_regardless_of_case(cli: Cli) -> None:
    cli("subscribers", "add", "Anna@Example.com")
    result = cli("subscribers", "add", "anna@example.COM", code=1)
    assert "already on the list" in result.stderr


def test_a_name_with_a_line_break_is_refused(cli: Cli) -> None:
    result = cli(
        "subscribers", "add", "x@example.com", "--name", "Eva\r\nBcc: y@example.com", code=1
    )
    assert "the name holds a line break" in result.stderr


def test_import_reports_bad_rows_by_line_and_imports_the_rest(cli: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "lijst.csv"
    csv_file.write_text(
        "email,name\n"
        "anna@example.com,Anna\n"
        "geen-adres,Bram\n"
        "cor@example.org,\n"
        "ANNA@example.com,Dubbel\n"
        "daan@example.com,Daan,extra\n"
        ",Leeg\n"
        '"eva@example.net","Eva ""Evi"" Smit"\n',
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(csv_file), code=1)
    assert f"{csv_file}:3: skipped: geen-adres" in result.stderr
    assert f"{csv_file}:5: skipped: ANNA@example.com appears twice" in result.stderr
    assert f"{csv_file}:6: skipped: has more fields" in result.stderr
    assert f"{csv_file}:7: skipped: no address" in result.stderr
    assert "Imported 3" in result.stdout
    listing = cli("subscribers", "list").stdout
    for email in ("anna@example.com", "cor@example.org", "eva@example.net"):
        assert email in listing
    assert 'Eva "Evi" Smit' in listing


def test_import_accepts_semicolons_and_leaves_existing_subscribers_alone(
    cli: Cli, tmp_path: Path
) -> None:
    cli("subscribers", "add", "anna@example.com")
    csv_file = tmp_path / "excel.csv"
    csv_file.write_text(
        "email;name\nanna@example.com;Anna\nbram@example.org;Bram\n", encoding="utf-8"
    )
    result = cli("subscribers", "import", str(csv_file))
    assert "Imported 1, already there 1, skipped 0" in result.stdout


def test_import_without_an_email_column_is_refused(cli: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("adres,naam\na@example.com,A\n", encoding="utf-8")
    result = cli("subscribers", "import", str(csv_file), code=1)
    assert "one for the address (email, e-mail or e-mailadres)" in result.stderr
    assert "it names 'adres', 'naam'" in result.stderr
