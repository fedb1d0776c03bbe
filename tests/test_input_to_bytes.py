"""From any input to the bytes on the wire (hypothesis): what the checks accept makes a valid
message for its own reader; what they refuse is never stored."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.mail.rendering import IssueContent, render_edition
from newsletter.publishing.issue_files import IssueFileError, parse_issue
from newsletter.readers import subscriptions
from newsletter.readers.addresses import AddressError, clean_name, normalise_address
from newsletter.settings import Settings, SettingsError
from newsletter.storage.db import transaction
from newsletter.storage.models import Issue, Subscriber
from newsletter.tokens import new_token_id
from tests.support.cli import Cli
from tests.support.databases import settings_from

SEND_AT = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "list-help",
    "list-post",
    "list-archive",
    "feedback-id",
    "content-language",
    "precedence",
    "auto-submitted",
    "mime-version",
    "content-type",
}
# What people paste: word-processor separators, encoded words, header syntax, bidi, accents.
TRICKY = [
    "\r\n",
    "\n",
    "\r",
    "\t",
    "\x00",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u200b",
    "\ufeff",
    "=?utf-8?q?x=0D=0AReply-To:_a@b.nl?=",
    "=?",
    "?=",
    "Bcc: x@example.com",
    "<",
    ">",
    '"',
    "\\",
    ",",
    ";",
    ":",
    "@",
    "é",
    "’",
    "ë",
    "😊",
    " ",
    "  ",
    "-",
    ".",
    "\x7f",
    "\x9b",
]
# Mostly what people write, sometimes anything at all, sometimes the tricky pieces above.
plain = st.text(st.characters(categories=("L", "N", "P", "Zs", "So", "Sm")), max_size=12)
pieces = st.one_of(
    plain,
    plain,
    plain,
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(TRICKY),
)
anything = st.lists(pieces, max_size=6).map("".join)
# Each field: usually what a person writes (with accents, quotes, emoji), else anything at all.
good = st.tuples(
    st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12),
    st.lists(plain, max_size=3),
).map(lambda parts: " ".join([parts[0], *parts[1]]))
texts = st.one_of(*[good] * 8, anything)
words = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
domains = st.sampled_from(["example.nl", "bücher.de", "xn--bcher-kva.de", "ëxample.com"])
locals_ = st.one_of(
    *[st.from_regex(r"[a-z0-9]([a-z0-9_+-]{0,14}[a-z0-9])?", fullmatch=True)] * 4,
    words,
    st.sampled_from(TRICKY),
)


def load(env: dict[str, str], list_name: str, from_name: str) -> Settings | None:
    """The settings, with the From name quoted as the email package would (None: refused)."""
    try:
        sender = str(Address(display_name=from_name, addr_spec="n@nieuws.example.nl"))
    except (ValueError, IndexError):
        return None  # not even the email package can write it; nobody can configure it
    try:
        return settings_from({**env, "NEWSLETTER_LIST_NAME": list_name, "NEWSLETTER_FROM": sender})
    except SettingsError:
        return None


def draft(
    folder: Path, subject: str, question: str, preheader: str, body: str
) -> IssueContent | None:
    front = yaml.safe_dump(
        {"theme": "loslaten", "subject": subject, "question": question, "preheader": preheader},
        allow_unicode=True,
    )
    path = folder / "x.md"
    path.write_text(f"---\n{front}---\n{body}\n", encoding="utf-8")
    try:
        issue = parse_issue(path, ["loslaten"])
    except IssueFileError:
        return None
    return IssueContent(issue.subject, issue.theme, issue.question, issue.preheader, issue.body)


def same_name(parsed: EmailMessage, raw: bytes, header: str, expected: str) -> bool:
    """The header's display name is `expected`; CPython's parser puts a space between adjacent
    folded encoded words of different encodings (RFC 2047 says to drop it), so there, and only
    there, spaces are not compared."""
    shown = str(parsed[header].addresses[0].display_name)
    if shown == expected:
        return True
    return b"?=\r\n =?" in raw and shown.replace(" ", "") == expected.replace(" ", "")


def headers_once(message: EmailMessage) -> None:
    names = [name.lower() for name in message]
    assert sorted(names) == sorted(EXPECTED_HEADERS), names


def check_bytes(raw: bytes) -> EmailMessage:
    assert raw.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        assert not part.defects, part.defects
    return parsed


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    list_name=texts,
    from_name=texts,
    subject=texts,
    question=texts,
    preheader=texts,
    body=texts,
    name=st.one_of(st.none(), texts),
    local=locals_,
    domain=domains,
)
def test_what_the_checks_accept_makes_a_valid_message_for_its_own_reader(
    list_name: str,
    from_name: str,
    subject: str,
    question: str,
    preheader: str,
    body: str,
    name: str | None,
    local: str,
    domain: str,
) -> None:
    built = build_and_check(
        list_name, from_name, subject, question, preheader, body, name, f"{local}@{domain}"
    )
    assert built in (True, False)


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    list_name=good,
    from_name=good,
    subject=good,
    question=good,
    preheader=good,
    body=good,
    name=st.one_of(st.none(), good),
    local=st.from_regex(r"[a-z0-9]([a-z0-9_+-]{0,14}[a-z0-9])?", fullmatch=True),
    domain=domains,
)
def test_what_people_write_is_accepted_and_makes_a_valid_message(
    list_name: str,
    from_name: str,
    subject: str,
    question: str,
    preheader: str,
    body: str,
    name: str | None,
    local: str,
    domain: str,
) -> None:
    """Accents, quotes, punctuation, emoji and odd spaces: never refused, always valid bytes."""
    assert build_and_check(
        list_name, from_name, subject, question, preheader, body, name, f"{local}@{domain}"
    )


def build_and_check(
    list_name: str,
    from_name: str,
    subject: str,
    question: str,
    preheader: str,
    body: str,
    name: str | None,
    email: str,
) -> bool:
    """False when a check refuses an input; else the message is built and checked."""
    settings = load(settings_env(), list_name or "Lijst", from_name)
    with tempfile.TemporaryDirectory() as folder:
        content = draft(Path(folder), subject, question.replace("?", "") + "?",
                        preheader, body + "\nTekst.")  # fmt: skip
    try:
        address = normalise_address(email)
        cleaned = clean_name(name)
    except AddressError:
        return False
    if settings is None or content is None:
        return False
    rendered = render_edition(content, settings, seed="0123456789abcdef", send_at=SEND_AT)
    message = EditionMessage(
        settings,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        seed="0123456789abcdef",
        archive_url=links.archive_url(settings.base_url),
    )
    token_id = new_token_id()
    keys = settings.secret_keys()
    url = links.unsubscribe_url(settings.base_url, keys, token_id)
    raw = message.build(Recipient(7, address, cleaned, url), SEND_AT)
    parsed = check_bytes(raw)
    headers_once(parsed)
    assert parsed["Subject"] == content.subject
    assert parsed["To"].addresses[0].addr_spec == address
    assert same_name(parsed, raw, "To", cleaned or "")
    assert same_name(parsed, raw, "From", settings.sender.display_name)
    assert parsed["List-Unsubscribe"] == f"<{url}>"
    token = url.rsplit("/", 1)[1]
    assert links.read(keys, links.Purpose.UNSUBSCRIBE, token) == token_id
    for part in ("plain", "html"):
        found = set(
            re.findall(r"https://[^\s\"<>]+/afmelden/[A-Za-z0-9_-]+", body_text(parsed, part))
        )
        assert found == {url}
    return True


def body_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def settings_env() -> dict[str, str]:
    return {
        "NEWSLETTER_DATABASE_URL": "sqlite:///unused.db",
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "NEWSLETTER_BASE_URL": "https://nieuws.example.nl",
    }


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the checks are the database's business only through the stored rows")


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.one_of(st.none(), texts), local=locals_, domain=domains)
def test_a_refused_name_or_address_stores_nothing(
    factory: sessionmaker[Session], sqlite_only: None, name: str | None, local: str, domain: str
) -> None:
    email = f"{local}@{domain}"
    try:
        normalise_address(email)
        clean_name(name)
        refused = False
    except AddressError:
        refused = True
    with factory() as session:
        before = session.scalar(select(func.count()).select_from(Subscriber))
    try:
        with transaction(factory) as session:
            subscriptions.add(session, email, name, SEND_AT)
    except (AddressError, subscriptions.AlreadySubscribed):
        pass
    with factory() as session:
        after = session.scalar(select(func.count()).select_from(Subscriber))
        stored = session.scalars(select(Subscriber.email)).all()
    if refused:
        assert after == before
    assert all(e.isascii() for e in stored)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(subject=texts)
def test_a_refused_issue_file_queues_nothing(
    cli: Cli, factory: sessionmaker[Session], sqlite_only: None, tmp_path: Path, subject: str
) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        content = draft(Path(folder), subject, "Wat?", "Kort.", "Tekst.")
        result = cli("issues", "queue", str(Path(folder) / "x.md"), code=None)
    with factory() as session:
        queued = session.scalars(select(Issue.subject)).all()
    if content is None:
        assert result.exit_code != 0
        assert subject not in queued
    else:
        assert result.exit_code == 0, result.stderr
        assert content.subject in queued
