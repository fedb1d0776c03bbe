"""RFC 8058/2369/2919 and RFC 5322/2045/2047 rows of email-standards.md, tested on the sent bytes."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import Received, SmtpServer, body_of

LONG_BASE = (
    "https://nieuws.example.nl/een/heel/lang/pad/zodat/de/url/ruim/over/de/achtenzeventig/tekens"
)


@pytest.fixture
def sent(cli: Cli, tmp_path: Path, smtp_server: SmtpServer) -> list[Received]:
    """One edition sent over SMTP to three readers, one with a Dutch name with diacritics."""
    path = write_issue(
        tmp_path / "issues",
        "een",
        subject="Zachtheid – een ‘kleine’ oefening voor één week, met ë en é",
        question="Wat zou er gebeuren als je één ding zachter vasthoudt?",
        body="Een lange zin " * 40 + "\n\n" + "Ook hier: café, ruïne, ‘quotes’.\n",
    )
    cli("issues", "queue", str(path))
    cli("subscribers", "add", "anna@example.com", "--name", "Anna Ëlsa de Vries")
    cli("subscribers", "add", "bram@example.com")
    cli("subscribers", "add", "cor@example.org", "--name", "Cor")
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_BASE_URL": LONG_BASE}
    cli("send", "--now", "2026-11-29T07:00", env=env)
    assert len(smtp_server.received) == 3
    return smtp_server.received


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_exactly_one_https_list_unsubscribe_written_unencoded_and_unfolded(
    sent: list[Received],
) -> None:
    for item in sent:
        m = item.message
        assert len(m.get_all("List-Unsubscribe", [])) == 1
        assert re.search(r"<https://[^>\s]+>", m["List-Unsubscribe"])
        lines = [
            ln
            for ln in header_block(item.data).split(b"\r\n")
            if ln.startswith(b"List-Unsubscribe:")
        ]
        assert len(lines) == 1
        line = lines[0].decode("ascii")
        assert "=?" not in line
        assert re.fullmatch(
            r"List-Unsubscribe: <" + re.escape(LONG_BASE) + r"/afmelden/[A-Za-z0-9_-]+>", line
        )


def test_one_click_post_header_exactly_once(sent: list[Received]) -> None:
    for item in sent:
        assert item.message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]


def test_list_id_on_our_domain(sent: list[Received]) -> None:
    for item in sent:
        values = item.message.get_all("List-Id", [])
        assert len(values) == 1
        assert re.fullmatch(r".*<weekly\.nieuws\.example\.nl>", values[0])


def test_unsubscribe_url_is_visible_in_both_parts(sent: list[Received]) -> None:
    for item in sent:
        m = item.message
        match = re.fullmatch(r"<(.+)>", m["List-Unsubscribe"])
        assert match
        url = match.group(1)
        assert url in body_of(m, "plain")
        assert url in body_of(m, "html").replace("&amp;", "&")


def test_multipart_alternative_text_then_html(sent: list[Received]) -> None:
    for item in sent:
        m = item.message
        assert m.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]


def test_from_date_with_zone_and_message_id_on_our_domain(sent: list[Received]) -> None:
    ids = set()
    for item in sent:
        m = item.message
        assert m["From"].addresses[0].addr_spec == "nieuws@nieuws.example.nl"
        assert parsedate_to_datetime(m["Date"]).tzinfo is not None
        assert re.fullmatch(r"<[^@\s]+@nieuws\.example\.nl>", m["Message-ID"])
        ids.add(m["Message-ID"])
    assert len(ids) == len(sent)


def test_headers_are_ascii_and_subject_and_names_decode(sent: list[Received]) -> None:
    names = {}
    for item in sent:
        assert header_block(item.data).isascii()
        m = item.message
        assert str(m["Subject"]) == "Zachtheid – een ‘kleine’ oefening voor één week, met ë en é"
        names[m["To"].addresses[0].addr_spec] = m["To"].addresses[0].display_name
    assert names["anna@example.com"] == "Anna Ëlsa de Vries"
    assert names["bram@example.com"] == ""


def test_bytes_are_seven_bit_with_short_lines(sent: list[Received]) -> None:
    for item in sent:
        assert item.data.isascii()
        assert max(map(len, item.data.split(b"\r\n"))) <= 998
        body = item.data.split(b"\r\n\r\n", 1)[1]
        assert max(map(len, body.split(b"\r\n"))) <= 78


def test_bodies_decode_to_the_dutch_text_and_personal_greeting(sent: list[Received]) -> None:
    by_rcpt = {item.rcpt_tos[0]: item.message for item in sent}
    anna = by_rcpt["anna@example.com"]
    text = body_of(anna, "plain")
    html = body_of(anna, "html")
    assert "café, ruïne, ‘quotes’" in text and "café, ruïne, ‘quotes’" in html
    assert "Hallo Anna Ëlsa de Vries," in text
    assert "Hallo Anna Ëlsa de Vries," in html
    assert "Hallo," in body_of(by_rcpt["bram@example.com"], "plain")


class _Walker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, str | None]] = []
        self.images: list[dict[str, str | None]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "table":
            self.tables.append(dict(attrs))
        if tag == "img":
            self.images.append(dict(attrs))


def test_html_is_dutch_small_accessible_and_script_free(sent: list[Received]) -> None:
    html = body_of(sent[0].message, "html")
    assert re.search(r'<html[^>]*\blang="nl"', html)
    assert len(html.encode()) < 100_000
    walker = _Walker()
    walker.feed(html)
    assert all(t.get("role") == "presentation" for t in walker.tables)
    assert all("alt" in i for i in walker.images)
    assert "script" not in walker.tags and "form" not in walker.tags


def test_preheader_comes_first_in_the_visible_text(sent: list[Received]) -> None:
    html = body_of(sent[0].message, "html")
    body = html.split("<body", 1)[1]
    visible = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body.split(">", 1)[1])).strip()
    assert visible.startswith("Een korte overdenking voor de zondag.")


def test_the_question_is_set_apart_exactly_once_in_each_part(sent: list[Received]) -> None:
    m = sent[0].message
    question = "Wat zou er gebeuren als je één ding zachter vasthoudt?"
    assert body_of(m, "plain").count(question) == 1
    assert body_of(m, "html").count(question) == 1


def test_the_visible_html_asks_exactly_one_question(sent: list[Received]) -> None:
    html = body_of(sent[0].message, "html")
    body = html.split("<body", 1)[1]
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)  # Outlook conditionals
    body = re.sub(r"<style.*?</style>", " ", body, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", body)
    assert visible.count("?") == 1


ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def test_the_rest_of_the_list_header_set(sent: list[Received]) -> None:
    feedback_ids = set()
    for item in sent:
        m = item.message
        assert m.get_all("List-Post") == ["NO"]
        assert m.get_all("Content-Language") == ["nl"]
        assert m.get_all("List-Help") == [m["List-Unsubscribe"]]  # the reader's own page
        values = m.get_all("Feedback-ID", [])
        assert len(values) == 1
        assert re.fullmatch(r"(?:[^:\s]+:){0,3}[\w.-]{5,15}", values[0])
        feedback_ids.add(values[0])
    assert feedback_ids == {"e1:loslaten:letter:nieuwsbrief"}  # the same for every reader


def test_encoded_words_are_at_most_75_characters(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    long_name = "Ëlsa-Marijke van den Heuvel-Østergård " * 2
    subject = "Zachtheid – een ‘kleine’ oefening voor één week, " * 3
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een", subject=subject.strip())))
    cli("subscribers", "add", "anna@example.com", "--name", long_name.strip())
    cli("send", "--now", "2026-11-29T07:00", env={"NEWSLETTER_SMTP_URL": smtp_server.url})
    (item,) = smtp_server.received
    head = header_block(item.data)
    words = ENCODED_WORD.findall(head)
    assert words and max(map(len, words)) <= 75
    # Lines of at most 78, except the URLs, which are never folded (RFC 2369 §2).
    long = [ln for ln in head.split(b"\r\n") if len(ln) > 78]
    assert all(ln.startswith((b"List-Unsubscribe:", b"List-Help:")) for ln in long), long
    raw_to = message_from_bytes(head + b"\r\n\r\n", policy=policy.compat32)["To"]
    assert parseaddr(str(make_header(decode_header(raw_to))))[0] == long_name.strip()
    assert str(item.message["Subject"]) == subject.strip()
