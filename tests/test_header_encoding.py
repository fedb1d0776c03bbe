"""From any name and subject the checks accept to bytes: RFC 2047 words of at most 75
characters, folded lines, and the email package reads back what went in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import unquote
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from newsletter.mail import encoded_words
from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.readers.addresses import AddressError, clean_name
from newsletter.text import line_problem
from tests.support.databases import installation_env, settings_from, sqlite_url

ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# What a person can type on one line; the checks at the door refuse the rest (tests elsewhere).
LINE = st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=140)
SETTINGS = settings_from(installation_env(sqlite_url(Path("/nonexistent")), Path("/nonexistent")))


def accepted(name: str) -> str | None:
    try:
        return clean_name(name)
    except AddressError:
        assume(False)
        raise


@settings(max_examples=80, deadline=None)
@given(name=LINE, subject=LINE)
def test_any_accepted_name_and_subject_give_short_words_that_read_back(
    name: str, subject: str
) -> None:
    cleaned = accepted(name)
    subject = " ".join(subject.split())
    assume(subject and line_problem(subject) is None)  # what `issues check` lets through
    message = EditionMessage(
        SETTINGS, subject=subject, html="<p>x</p>", text="x", seed="s0", keys=[b"k" * 32]
    )
    url = "https://nieuws.example.nl/afmelden/" + "x" * 43
    data = message.build(Recipient(7, "anna@example.com", cleaned, url), datetime.now(UTC))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(head))
    long = [ln for ln in head.split(b"\r\n") if len(ln) > 78]
    assert all(ln.startswith((b"List-Unsubscribe:", b"List-Help:")) for ln in long), long
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"].addresses[0].addr_spec == "anna@example.com"
    assert str(parsed["Subject"]) == subject
    assert not parsed.defects and not parsed["To"].defects
    assert display_name(head) == (cleaned or "")


def display_name(head: bytes) -> str:
    """The To display name as an RFC 2047 reader decodes it (adjacent words joined, §6.2)."""
    raw = message_from_bytes(head + b"\r\n\r\n", policy=policy.compat32)["To"]
    phrase = " ".join(str(raw).rpartition("<")[0].split())
    if phrase.startswith('"'):
        return unquote(phrase)
    return str(make_header(decode_header(phrase)))


def test_words_split_between_characters_not_inside_them() -> None:
    for text in ("é" * 100, "😀" * 40, "a" * 44 + "€" * 3):
        words = encoded_words.words(text)
        assert all(len(word) <= 75 for word in words)
        decoded = str(
            message_from_bytes(
                f"Subject: {' '.join(words)}\r\n\r\n".encode(), policy=policy.default
            )["Subject"]
        )
        assert decoded == text


def test_long_plain_names_are_folded_too() -> None:
    name = " ".join(["Anna"] * 20)
    header = "To: " + encoded_words.address(name, "anna@example.com")
    assert max(len(line) for line in header.split("\r\n")) <= 78
    parsed = message_from_bytes(f"{header}\r\n\r\n".encode(), policy=policy.default)
    assert parsed["To"].addresses[0].display_name == name
