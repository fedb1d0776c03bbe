"""Export and erasure from the CLI: the consent log goes out, a forgotten address stays out."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import ConsentEvent, ConsentEventKind, Subscriber, Suppression
from tests.support.cli import Cli
from tests.support.databases import SECRET
from tests.support.issue_files import write_issue
from tests.support.readers import link_in, sign_up
from tests.support.relays import SmtpServer
from tests.support.servers import Site


def everything_in(engine: Engine) -> str:
    """Every value in every table, as one text: what a copy of the database would show."""
    parts = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(" ".join(str(value) for value in row))
    return "\n".join(parts).lower()


def test_export_as_json_holds_the_consent_log_and_the_texts(
    site: Site, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    site.cli("subscribers", "add", "bram@example.com", "--name", "Bram", "--consent", "paper")
    sign_up(site, "anna@example.com", "Anna")
    [mail] = site.wait_for_mail(1)
    httpx.post(link_in(mail, f"{site.url}/bevestig/"))
    data = json.loads(site.cli("subscribers", "export").stdout)
    assert data["list"] == "Wekelijks moment van rust" and data["exported_at"].endswith("Z")
    by_email = {s["email"]: s for s in data["subscribers"]}
    anna, bram = by_email["anna@example.com"], by_email["bram@example.com"]
    assert anna["status"] == "subscribed" and anna["name"] == "Anna"
    assert [e["event"] for e in anna["consent_log"]] == ["requested", "confirmed"]
    assert anna["consent_version"] in data["consent_texts"]
    assert "Afmelden kan altijd" in data["consent_texts"][anna["consent_version"]]
    assert bram["consent_basis"] == "paper" and bram["consent_log"][0]["detail"] == "paper"
    assert "deliveries" not in anna

    out = tmp_path / "export.json"
    result = site.cli("subscribers", "export", "--output", str(out))
    assert json.loads(out.read_text(encoding="utf-8")) == {
        **data,
        "exported_at": json.loads(out.read_text(encoding="utf-8"))["exported_at"],
    }
    assert "Wrote the export" in result.stderr


def test_one_readers_export_lists_their_letters_too(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een", subject="Open handen")))
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    cli("subscribers", "add", "bram@example.com", "--consent", "test")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    data = json.loads(cli("subscribers", "export", "ANNA@example.com").stdout)
    [anna] = data["subscribers"]
    assert anna["email"] == "anna@example.com"
    assert anna["deliveries"] == [
        {
            "edition": "2026-11-29T06:00:00Z",
            "subject": "Open handen",
            "status": "sent",
            "at": anna["deliveries"][0]["at"],
        }
    ]
    assert "not on the list" in cli("subscribers", "export", "x@example.com", code=1).stderr


def test_export_as_csv_has_one_row_per_reader_with_the_log(cli: Cli, tmp_path: Path) -> None:
    cli("subscribers", "add", "anna@example.com", "--name", "Anna", "--consent", "asked, in person")
    cli("subscribers", "add", "bram@example.com", "--consent", "test")
    cli("subscribers", "unsubscribe", "bram@example.com")
    rows = list(csv.DictReader(io.StringIO(cli("subscribers", "export", "--format", "csv").stdout)))
    assert [r["email"] for r in rows] == ["anna@example.com", "bram@example.com"]
    assert rows[0]["name"] == "Anna" and rows[0]["consent_basis"] == "asked, in person"
    assert "imported via cli (asked, in person)" in rows[0]["consent_log"]
    assert "unsubscribed via cli" in rows[1]["consent_log"].split(" | ")[1]
    # What `export` writes, `import` reads back (here: nothing new, both are there).
    again = tmp_path / "export.csv"
    cli("subscribers", "export", "--format", "csv", "-o", str(again))
    assert "already there 2" in cli("subscribers", "import", str(again)).stdout


def test_forget_leaves_only_a_keyed_hash(
    cli: Cli, engine: Engine, factory: sessionmaker[Session], tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:  # fmt: skip
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "zeldzaam@example.com", "--name", "Zelda", "--consent", "test")
    cli("subscribers", "add", "bram@example.com", "--consent", "test")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    assert "zeldzaam" in everything_in(engine)

    result = cli("subscribers", "forget", "Zeldzaam@example.com", "--yes")
    assert "Erased Zeldzaam@example.com" in result.stdout
    dump = everything_in(engine)
    assert "zeldzaam" not in dump and "zelda" not in dump
    with factory() as session:
        [suppressed] = session.scalars(select(Suppression)).all()
        assert len(suppressed.address_hash) == 64
        erased = session.scalars(
            select(ConsentEvent).where(ConsentEvent.event == ConsentEventKind.ERASED)
        ).one()
        assert erased.subscriber_id is None
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
    # Nothing left to export, and the operator is told why.
    result = cli("subscribers", "export", "zeldzaam@example.com", code=1)
    assert "was erased on" in result.stderr and "keyed hash" in result.stderr
    # The rest of the list goes on as before.
    assert "bram@example.com" in cli("subscribers", "list").stdout


def test_an_erased_address_cannot_be_imported_or_added_again(cli: Cli, tmp_path: Path) -> None:
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    cli("subscribers", "forget", "anna@example.com", "--yes")
    csv_file = tmp_path / "oud.csv"
    csv_file.write_text("email,name\nbram@example.com,Bram\nANNA@example.com,Anna\n")
    result = cli("subscribers", "import", str(csv_file), "--consent", "old list")
    assert f"{csv_file}:3: skipped: erased on request" in result.stdout
    assert "Imported 1, already there 0, skipped 0 bad rows, 1 erased on request." in result.stdout
    refused = cli("subscribers", "add", "anna@example.com", "--consent", "x", code=1)
    assert "erased on request" in refused.stderr
    assert "anna@example.com" not in cli("subscribers", "list").stdout


def test_forgetting_an_unknown_address_still_keeps_it_out(cli: Cli, tmp_path: Path) -> None:
    result = cli("subscribers", "forget", "nooit@example.com", "--yes")
    assert "was not on the list; added it to the suppression list" in result.stdout
    assert (
        "already on the suppression list"
        in cli("subscribers", "forget", "nooit@example.com", "--yes").stdout
    )
    refused = cli("subscribers", "add", "nooit@example.com", code=1)
    assert "erased on request" in refused.stderr


def test_forget_asks_first(cli: Cli) -> None:
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    runner_result = cli("subscribers", "forget", "anna@example.com", code=1)
    assert "Aborted" in runner_result.stderr
    assert "anna@example.com" in cli("subscribers", "list").stdout


def test_the_owner_can_sign_up_again_which_lifts_the_suppression(
    site: Site, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    site.cli("subscribers", "add", "anna@example.com", "--consent", "test")
    site.cli("subscribers", "forget", "anna@example.com", "--yes")
    sign_up(site, "anna@example.com", "Anna")
    [mail] = site.wait_for_mail(1)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert httpx.post(link_in(mail, f"{site.url}/bevestig/")).status_code == 200
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
        anna = session.scalars(select(Subscriber)).one()
        assert anna.status.value == "subscribed" and anna.source == "form"
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("email\nanna@example.com\n")
    assert "already there 1" in site.cli("subscribers", "import", str(csv_file)).stdout


def test_the_suppression_list_survives_a_key_rotation(cli: Cli) -> None:
    cli("subscribers", "forget", "anna@example.com", "--yes")
    rotated = {
        "NEWSLETTER_SECRET_KEY": "a-brand-new-secret-key-0123456789",
        "NEWSLETTER_OLD_SECRET_KEYS": SECRET,
    }
    refused = cli("subscribers", "add", "anna@example.com", code=1, env=rotated)
    assert "erased on request" in refused.stderr
