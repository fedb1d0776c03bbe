"""Reading what comes back: the project's fixtures in the forms of Postfix, Exim, Microsoft 365,
Gmail, Yahoo and Amazon SES, ARF complaints and auto-replies, read into typed reports."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.mail.reports import Kind, Report, Severity, parse
from tests.support.reports import fill

RETURN_PATH = "bounces+abcdefghijklmnopqrstuvwxyz@nieuws.example.nl"
RECIPIENT = "anna@example.com"
MESSAGE_ID = "<seed0001.qrstuvwxyzabcdefghijklmnop@nieuws.example.nl>"


def read(name: str) -> Report:
    return parse(fill(name, return_path=RETURN_PATH, recipient=RECIPIENT, message_id=MESSAGE_ID))


@pytest.mark.parametrize(
    ("fixture", "severity", "status"),
    [
        ("postfix_511.eml", Severity.HARD, "5.1.1"),
        ("gmail_511.eml", Severity.HARD, "5.1.1"),
        ("microsoft365_5110.eml", Severity.HARD, "5.1.10"),
        ("ses_bounce.eml", Severity.HARD, "5.1.1"),
        ("exim_511.eml", Severity.HARD, ""),
        ("yahoo_554.eml", Severity.HARD, ""),
        ("postfix_delayed.eml", Severity.SOFT, "4.4.1"),
        ("postfix_mailbox_full.eml", Severity.SOFT, "5.2.2"),
        ("postfix_blocked.eml", Severity.SOFT, "5.7.1"),
        ("postfix_delivered.eml", Severity.NONE, "2.0.0"),
    ],
)
def test_status_reports_give_the_reader_status_and_the_quoted_message_id(
    fixture: str, severity: Severity, status: str
) -> None:
    report = read(fixture)
    assert report.kind is Kind.DSN
    statuses = [r for r in report.recipients if r.recipient == RECIPIENT]
    assert len(statuses) == 1
    assert statuses[0].severity is severity
    assert statuses[0].status == status
    assert MESSAGE_ID in report.message_ids
    assert RETURN_PATH in report.addressed_to


@pytest.mark.parametrize(
    ("fixture", "feedback_type"),
    [
        ("yahoo_arf_abuse.eml", "abuse"),
        ("microsoft_jmrp_abuse.eml", "abuse"),
        ("ses_complaint.eml", "abuse"),
        ("arf_not_spam.eml", "not-spam"),
    ],
)
def test_complaints_give_the_feedback_type_and_the_original_return_path(
    fixture: str, feedback_type: str
) -> None:
    report = read(fixture)
    assert report.kind is Kind.COMPLAINT
    assert report.feedback_type == feedback_type
    assert RETURN_PATH in report.return_paths
    assert MESSAGE_ID in report.message_ids


@pytest.mark.parametrize("fixture", ["vacation.eml", "outlook_auto_reply.eml"])
def test_auto_replies_are_told_apart_from_reports_that_are_auto_replied_too(fixture: str) -> None:
    assert read(fixture).kind is Kind.AUTO_REPLY
    # Postfix, Gmail and Exim mark their bounces 'Auto-Submitted: auto-replied' as well.
    for bounce in ("postfix_511.eml", "gmail_511.eml", "exim_511.eml"):
        assert b"Auto-Submitted: auto-replied" in fill(
            bounce, return_path=RETURN_PATH, recipient=RECIPIENT, message_id=MESSAGE_ID
        )
        assert read(bounce).kind is Kind.DSN


def test_an_ordinary_reply_is_not_a_report() -> None:
    data = (
        f"From: Anna <{RECIPIENT}>\r\nTo: {RETURN_PATH}\r\nSubject: Re: Een open hand\r\n"
        f"In-Reply-To: {MESSAGE_ID}\r\n\r\nDank je wel, mooi geschreven.\r\n"
    ).encode()
    assert parse(data).kind is Kind.OTHER


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_read_as_a_report_without_raising(data: bytes) -> None:
    assert parse(data).kind in set(Kind)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["postfix_511.eml", "gmail_511.eml", "yahoo_arf_abuse.eml", "exim_511.eml"]),
    st.integers(min_value=0, max_value=4000),
    st.binary(min_size=0, max_size=40),
)
def test_mangled_reports_read_without_raising(fixture: str, at: int, junk: bytes) -> None:
    data = fill(fixture, return_path=RETURN_PATH, recipient=RECIPIENT, message_id=MESSAGE_ID)
    mangled = data[:at] + junk + data[at + len(junk) :]
    assert parse(mangled).kind in set(Kind)
