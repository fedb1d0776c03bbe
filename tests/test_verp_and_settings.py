"""Delivery tags (VERP return paths, keyed Message-IDs) and the settings of bounces and mail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail import verp
from newsletter.scheduler import BOUNCES_JOB_ID, Jobs, build_scheduler, fetch_bounces
from newsletter.settings import SettingsError
from tests.support.databases import settings_from

KEY, OLD = b"k" * 32, b"o" * 32


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_a_tag_reads_back_only_with_the_key(delivery_id: int) -> None:
    tag = verp.make_tag([KEY], delivery_id)
    assert len(tag) == verp.TAG_LENGTH and tag.isalnum() and tag == tag.lower()
    assert verp.read_tag([KEY], tag) == delivery_id
    assert verp.read_tag([KEY], tag.upper().lower()) == delivery_id
    assert verp.read_tag([OLD], tag) is None
    assert verp.read_tag([b"n" * 32, KEY], tag) == delivery_id  # an older key still reads it


def test_neighbouring_ids_give_unrelated_tags_and_changed_tags_are_refused() -> None:
    tags = [verp.make_tag([KEY], n) for n in range(1, 50)]
    assert len({t[:6] for t in tags}) > 40  # no shared prefix that would count the list
    tag = tags[0]
    for i in range(len(tag)):
        changed = tag[:i] + ("a" if tag[i] != "a" else "b") + tag[i + 1 :]
        assert verp.read_tag([KEY], changed) is None
    assert verp.read_tag([KEY], "") is None and verp.read_tag([KEY], "é" * 32) is None
    assert verp.read_tag([KEY], tag[:30] + "  ") is None


def test_return_paths_and_message_ids_carry_the_tag() -> None:
    tag = verp.make_tag([KEY], 42)
    path = verp.return_path("bounces@nieuws.example.nl", tag)
    assert path == f"bounces+{tag}@nieuws.example.nl" and len(path.partition("@")[0]) <= 64
    assert verp.tag_of_address(f"<{path.upper()}>", "bounces@nieuws.example.nl") == tag
    assert verp.tag_of_address(path, "other@nieuws.example.nl") is None
    assert verp.tag_of_address("bounces@nieuws.example.nl", "bounces@nieuws.example.nl") is None
    message_id = verp.message_id("seed01", [KEY], 42, "nieuws.example.nl")
    assert verp.read_message_id([KEY], message_id) == ("seed01", 42)
    assert verp.read_message_id([KEY], "<seed01.42@nieuws.example.nl>") is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NEWSLETTER_BOUNCE_ADDRESS", "bounces+x@nieuws.example.nl", "without '\\+'"),
        ("NEWSLETTER_BOUNCE_ADDRESS", "b" * 40 + "@nieuws.example.nl", "at most 31"),
        ("NEWSLETTER_BOUNCE_IMAP_URL", "pop3://u:p@host/INBOX", "imaps://"),
        ("NEWSLETTER_BOUNCE_IMAP_URL", "imaps://host/INBOX", "user:password"),
        ("NEWSLETTER_FEEDBACK_SENDER_ID", "abc", "5 to 15"),
        ("NEWSLETTER_SOFT_BOUNCE_LIMIT", "0", "must be at least 1"),
        ("NEWSLETTER_TRANSACTIONAL_FROM", "geen adres", "Naam <adres@domein>"),
        ("NEWSLETTER_DKIM_DOMAIN", "not a domain!", "not a DNS name"),
    ],
)
def test_bad_mail_settings_are_refused_naming_the_variable(
    env: dict[str, str], variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable}: .*{message}"):
        settings_from({**env, variable: value})


def test_the_scheduler_reads_the_bounce_mailbox_only_when_configured(
    env: dict[str, str], engine: object, factory: object
) -> None:
    plain = settings_from(env)
    jobs = Jobs(engine, factory, plain)  # type: ignore[arg-type]
    assert build_scheduler(jobs, plain).get_job(BOUNCES_JOB_ID) is None
    closed = settings_from({**env, "NEWSLETTER_BOUNCE_IMAP_URL": "imap://u:p@127.0.0.1:9/INBOX"})
    assert build_scheduler(jobs, closed).get_job(BOUNCES_JOB_ID) is not None
    fetch_bounces(factory, closed)  # type: ignore[arg-type]  # unreachable: logged, never raised
