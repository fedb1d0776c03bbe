"""The archive over real HTTP: sent letters only, nothing personal, a valid Atom feed, cacheable."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.publishing import editions, issue_files
from newsletter.settings import Settings
from newsletter.storage.models import Edition, Subscriber
from newsletter.tokens import sign
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of
from tests.support.servers import LiveServer, serve_app

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://nieuws.example.nl"
PAST = ["2025-11-02T07:00", "2025-11-09T07:00", "2025-11-16T07:00"]
FUTURE = "2026-11-29T07:00"  # the clock says 2026-11-24 or later; the scheduled time is ahead
READERS = [("anna@example.com", "Annemieke Ëlsa"), ("bram@example.org", "Brammetje")]


@pytest.fixture
def letters(cli: Cli, tmp_path: Path) -> dict[str, Path]:
    """Three issues (one with a local image, one with a link); two sent in the past to two
    readers, one queued and never sent."""
    folder = tmp_path / "issues"
    (folder / "beelden").mkdir(parents=True)
    Image.new("RGB", (1200, 600), "#88aacc").save(folder / "beelden" / "zee.png")
    files = {
        "een-open-hand": write_issue(
            folder,
            "een-open-hand",
            subject="Een open hand",
            body="Kijk naar de zee.\n\n![De zee bij avond](beelden/zee.png)\n",
        ),
        "een-anker": write_issue(
            folder,
            "een-anker",
            theme="vasthouden",
            subject="Een anker in je week",
            question="Wat houdt jou deze week overeind?",
            body="Lees [dit stuk](https://voorbeeld.nl/anker) eens.\n",
        ),
        "nog-niet": write_issue(
            folder, "nog-niet", theme="zachtheid", subject="Nog niet verstuurd"
        ),
    }
    cli("issues", "queue", *map(str, files.values()))
    for email, name in READERS:
        cli("subscribers", "add", email, "--name", name, "--consent", "test")
    cli("send", "--now", PAST[0])
    cli("send", "--now", PAST[1])
    return files


def personal_strings(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    """Everything that would identify a reader: names, addresses, token ids, signed tokens."""
    found: list[str] = []
    with factory() as session:
        for reader in session.scalars(select(Subscriber)):
            signed = sign(settings.secret_keys(), links.Purpose.UNSUBSCRIBE, reader.token_id)
            found += [reader.email, reader.email.split("@")[0], reader.token_id, signed]
            found += [reader.name or "", "afmelden/"]
        for seed in session.scalars(select(Edition.message_id_seed)):
            found += [seed, f"NLP{seed}"]
    return [s for s in found if s]


def test_the_archive_lists_the_sent_letters_newest_first_with_date_theme_and_question(
    letters: dict[str, Path], live_app: LiveServer
) -> None:
    page = httpx.get(f"{live_app.url}/archief")
    assert page.status_code == 200
    titles = re.findall(r'<h2 class="letter-title"><a href="([^"]+)">([^<]+)</a>', page.text)
    assert titles == [
        ("/archief/een-anker", "Een anker in je week"),
        ("/archief/een-open-hand", "Een open hand"),
    ]
    assert "zondag 9 november 2025" in page.text and "zondag 2 november 2025" in page.text
    assert "Wat houdt jou deze week overeind?" in page.text
    assert '<a href="/archief/thema/vasthouden">Vasthouden</a>' in page.text
    assert "Nog niet verstuurd" not in page.text
    assert httpx.get(f"{live_app.url}/archief/nog-niet").status_code == 404


def test_a_letter_settled_ahead_of_the_clock_is_not_in_the_archive_before_its_time(
    letters: dict[str, Path], live_app: LiveServer, cli: Cli
) -> None:
    cli("send", "--now", FUTURE)  # settles (and sends) the third issue, for a time still ahead
    assert httpx.get(f"{live_app.url}/archief/nog-niet").status_code == 404
    assert "Nog niet verstuurd" not in httpx.get(f"{live_app.url}/archief").text
    assert "Nog niet verstuurd" not in httpx.get(f"{live_app.url}/archief/feed.xml").text
    assert "Nog niet verstuurd" not in httpx.get(f"{live_app.url}/").text


def test_a_letter_page_is_the_letter_with_headings_image_and_question(
    letters: dict[str, Path], live_app: LiveServer
) -> None:
    page = httpx.get(f"{live_app.url}/archief/een-open-hand")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Een open hand</h1>" in html
    assert '<h2 id="vraag" class="question-label">Vraag voor deze week</h2>' in html
    assert "Wat mag je deze week uit handen geven?" in html
    assert (
        f'<img src="{BASE}/beelden/zee.png" alt="De zee bij avond" width="536" height="268"' in html
    )
    assert f'<link rel="canonical" href="{BASE}/archief/een-open-hand">' in html
    assert '<meta property="og:title" content="Een open hand">' in html
    assert (
        '<meta property="og:description" content="Een korte overdenking voor de zondag.">' in html
    )
    assert '<meta name="robots" content="index, follow">' in html
    assert 'href="/aanmelden"' in html  # the footer offers the sign-up
    assert "Afmelden" not in html and "Hallo," in html
    assert 'rel="next"' in html and "/archief/een-anker" in html


def test_nothing_personal_is_on_any_public_page(
    letters: dict[str, Path],
    live_app: LiveServer,
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    paths = [
        "/",
        "/archief",
        "/archief/feed.xml",
        "/archief/een-open-hand",
        "/archief/een-anker",
        *(f"/archief/thema/{theme}" for theme in settings.themes),
    ]
    secrets = personal_strings(factory, settings)
    assert len(secrets) >= 12
    for path in paths:
        response = httpx.get(live_app.url + path)
        assert response.status_code == 200, path
        for secret in secrets:
            assert secret not in response.text, (path, secret)


def test_the_feed_is_atom_with_absolute_links(
    letters: dict[str, Path], live_app: LiveServer
) -> None:
    response = httpx.get(f"{live_app.url}/archief/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert rels == {"alternate": f"{BASE}/archief", "self": f"{BASE}/archief/feed.xml"}
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "Een anker in je week",
        "Een open hand",
    ]
    for entry in entries:
        for name in ("id", "title", "updated", "content", "summary"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        href = entry.find(f"{ATOM}link")
        assert href is not None and str(href.get("href")).startswith(f"{BASE}/archief/")
        assert entry.findtext(f"{ATOM}id") == href.get("href")
        updated = datetime.fromisoformat(str(entry.findtext(f"{ATOM}updated")))
        assert updated.tzinfo is not None
    content = entries[1].findtext(f"{ATOM}content") or ""
    assert f'src="{BASE}/beelden/zee.png"' in content
    assert "Vraag voor deze week" in content
    assert root.findtext(f"{ATOM}updated") == entries[0].findtext(f"{ATOM}updated")


def test_theme_pages_and_pages_of_ten(
    settings: Settings, factory: sessionmaker[Session], live_app: LiveServer, tmp_path: Path
) -> None:
    folder = tmp_path / "issues"
    paths = [write_issue(folder, f"brief-{n:02d}", subject=f"Brief {n}") for n in range(12)]
    drafts, problems = issue_files.check_files(paths, settings.themes)
    assert problems == []
    first = datetime(2025, 1, 5, 6, 0, tzinfo=UTC)  # a Sunday, 07:00 in Amsterdam
    with factory() as session, session.begin():
        issue_files.queue(session, drafts, first)
    for week in range(12):
        settled = editions.settle(factory, settings, first + timedelta(weeks=week))
        assert settled.outcome is editions.SettleOutcome.CREATED
    one = httpx.get(f"{live_app.url}/archief").text
    two = httpx.get(f"{live_app.url}/archief?pagina=2").text
    assert one.count('class="letter-item"') == 10 and two.count('class="letter-item"') == 2
    assert "Brief 11<" in one and "Brief 1<" in two and "Brief 0<" in two
    assert 'href="/archief?pagina=2" rel="next"' in one and 'href="/archief" rel="prev"' in two
    for bad in ("?pagina=3", "?pagina=0", "?pagina=x"):
        assert httpx.get(f"{live_app.url}/archief{bad}").status_code == 404
    theme = httpx.get(f"{live_app.url}/archief/thema/loslaten")
    assert theme.status_code == 200 and theme.text.count('class="letter-item"') == 10
    empty = httpx.get(f"{live_app.url}/archief/thema/zachtheid")
    assert empty.status_code == 200 and "Hier staan nog geen brieven" in empty.text
    assert httpx.get(f"{live_app.url}/archief/thema/geduld").status_code == 404


def test_public_pages_may_be_cached_the_rest_never_and_the_guards_hold(
    letters: dict[str, Path], live_app: LiveServer
) -> None:
    for path in ("/archief", "/archief/een-anker", "/archief/feed.xml", "/archief/thema/loslaten"):
        response = httpx.get(live_app.url + path)
        assert response.headers["cache-control"] == "public, max-age=300", path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    letter = httpx.get(f"{live_app.url}/archief/een-anker")
    assert "img-src 'self' https:;" in letter.headers["content-security-policy"]
    for path in ("/", "/aanmelden", "/archief/niet-bestaand", "/afmelden/x"):
        assert httpx.get(live_app.url + path).headers["cache-control"] == "no-store", path
    image = httpx.get(f"{live_app.url}/beelden/zee.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "public, max-age=86400"
    assert httpx.get(f"{live_app.url}/beelden/../newsletter.db").status_code == 404


def test_the_home_page_is_the_sign_up_form_with_the_latest_letter(
    letters: dict[str, Path], live_app: LiveServer
) -> None:
    home = httpx.get(f"{live_app.url}/")
    assert home.status_code == 200
    assert 'action="/aanmelden"' in home.text and 'name="csrf_token"' in home.text
    assert re.search(r'<a href="/archief/een-anker">Een anker in je week</a>', home.text)
    assert "Deze link werkt niet" not in home.text


def test_every_letter_links_to_its_page_and_names_the_archive(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "de-open-hand")))
    cli("subscribers", "add", "anna@example.com", "--name", "Anna")
    cli("subscribers", "add", "bram@example.org")
    cli("send", "--now", PAST[0], NEWSLETTER_SMTP_URL=smtp_server.url)
    assert len(smtp_server.received) == 2
    for item in smtp_server.received:
        lines = [ln for ln in item.data.split(b"\r\n\r\n")[0].split(b"\r\n")]
        assert b"List-Archive: <https://nieuws.example.nl/archief>" in lines
        html = body_of(item.message, "html")
        assert (
            '<a href="https://nieuws.example.nl/archief/de-open-hand">Lees deze brief online</a>'
            in html
        )
        text = body_of(item.message, "plain").replace("\r\n", "\n")
        assert "Lees deze brief online:\nhttps://nieuws.example.nl/archief/de-open-hand\n" in text


@pytest.fixture
def archive_off(env: dict[str, str], engine: Engine) -> Iterator[LiveServer]:
    from newsletter.web.app import create_app

    live = serve_app(create_app(settings_from({**env, "NEWSLETTER_ARCHIVE": "off"}), engine))
    try:
        yield live
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


def test_with_the_archive_off_the_pages_answer_404_and_letters_carry_no_link(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, archive_off: LiveServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "de-open-hand")))
    cli("subscribers", "add", "anna@example.com")
    cli("send", "--now", PAST[0], NEWSLETTER_SMTP_URL=smtp_server.url, NEWSLETTER_ARCHIVE="off")
    (item,) = smtp_server.received
    assert "List-Archive" not in item.message
    both = body_of(item.message, "html") + body_of(item.message, "plain")
    assert "Lees deze brief online" not in both and "/archief" not in both
    for path in (
        "/archief",
        "/archief/de-open-hand",
        "/archief/feed.xml",
        "/archief/thema/loslaten",
    ):
        assert httpx.get(archive_off.url + path).status_code == 404, path
    home = httpx.get(archive_off.url + "/")
    assert home.status_code == 200 and 'action="/aanmelden"' in home.text
    assert "/archief" not in home.text
