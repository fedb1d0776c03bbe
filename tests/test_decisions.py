"""The pure decisions of delivery as tables: reply classification, retry and give-up, backoff,
hard bounces, dot-stuffing and the per-edition markers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.delivery.decisions import RETRY_CAP, backoff, decide, is_hard_bounce
from newsletter.mail.slots import Markers, split_on_markers
from newsletter.mail.transport import Kind, Stage, Verdict, classify, connection_lost, dot_stuffed
from newsletter.storage.ledger import Claimed
from newsletter.storage.models import DeliveryStatus

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=48)


@pytest.mark.parametrize(
    ("code", "stage", "kind", "throttled"),
    [
        (250, Stage.DATA, Kind.ACCEPTED, False),
        (251, Stage.RCPT, Kind.ACCEPTED, False),
        (421, Stage.MAIL, Kind.TEMPORARY, True),
        (450, Stage.RCPT, Kind.TEMPORARY, True),
        (451, Stage.RCPT, Kind.TEMPORARY, True),
        (452, Stage.RCPT, Kind.TEMPORARY, False),
        (454, Stage.MAIL, Kind.TEMPORARY, True),
        (550, Stage.RCPT, Kind.PERMANENT, False),
        (552, Stage.RCPT, Kind.TEMPORARY, False),  # RFC 5321 §4.5.3.1.10: counts as 452
        (552, Stage.DATA, Kind.PERMANENT, False),
        (554, Stage.DATA, Kind.PERMANENT, False),
        (530, Stage.MAIL, Kind.PERMANENT, False),
    ],
)
def test_replies_are_classified_by_code_and_stage(
    code: int, stage: Stage, kind: Kind, throttled: bool
) -> None:
    verdict = classify(code, b"4.0.0  some   words\r\n", stage=stage)
    assert verdict.kind is kind
    assert verdict.stage is stage
    assert verdict.code == code
    assert verdict.throttled is throttled
    assert verdict.text == "4.0.0 some words"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("Connection reset by peer"),
        TimeoutError(),
        TimeoutError("timed out"),
        BrokenPipeError(),
    ],
)
def test_a_dropped_connection_or_a_time_out_is_temporary(error: BaseException) -> None:
    verdict = connection_lost(error)
    assert verdict.kind is Kind.TEMPORARY
    assert verdict.stage is Stage.CONNECTION
    assert verdict.code is None
    assert verdict.text  # always a reason, even for an exception without a message


def test_a_verdict_describes_itself_with_its_stage() -> None:
    verdict = classify(550, "5.1.1 User unknown", stage=Stage.RCPT)
    assert verdict.describe() == "RCPT: 5.1.1 User unknown"


@pytest.mark.parametrize(
    ("code", "stage", "text", "hard"),
    [
        (550, Stage.RCPT, "5.1.1 User unknown", True),
        (550, Stage.RCPT, "Mailbox unavailable", True),  # refused at RCPT: the address
        (550, Stage.DATA, "5.1.1 User unknown", True),
        (553, Stage.DATA, "5.2.1 Mailbox disabled", True),
        (554, Stage.DATA, "5.7.1 Message rejected as spam", False),
        (550, Stage.MAIL, "5.7.1 Sender not authorised", False),
        (552, Stage.DATA, "5.2.2 Mailbox full", False),
        (451, Stage.RCPT, "4.1.1 Try later", False),
        (552, Stage.RCPT, "5.2.2 Mailbox full", False),  # temporary at RCPT
        (250, Stage.DATA, "5.1.1 looks bad but accepted", False),
    ],
)
def test_hard_bounces_are_refusals_of_the_address_itself(
    code: int, stage: Stage, text: str, hard: bool
) -> None:
    assert is_hard_bounce(classify(code, text, stage=stage)) is hard


def _claimed(first_attempt: datetime, attempts: int = 1) -> Claimed:
    return Claimed(
        delivery_id=7,
        edition_id=1,
        subscriber_id=3,
        email="lezer@example.com",
        name=None,
        token_id="0" * 32,
        active=True,
        first_attempt_at=first_attempt,
        attempts=attempts,
    )


@pytest.mark.parametrize(
    ("verdict", "age", "status", "bounced"),
    [
        (Verdict(Kind.ACCEPTED, Stage.DATA, 250, "ok"), timedelta(0), DeliveryStatus.SENT, False),
        (
            Verdict(Kind.PERMANENT, Stage.RCPT, 550, "5.1.1 gone"),
            timedelta(0),
            DeliveryStatus.FAILED,
            True,
        ),
        (
            Verdict(Kind.PERMANENT, Stage.DATA, 554, "5.7.1 spam"),
            timedelta(0),
            DeliveryStatus.FAILED,
            False,
        ),
        (
            Verdict(Kind.TEMPORARY, Stage.RCPT, 451, "4.3.0 later"),
            timedelta(hours=47, minutes=59),
            DeliveryStatus.RETRY,
            False,
        ),
        (
            Verdict(Kind.TEMPORARY, Stage.RCPT, 451, "4.3.0 later"),
            MAX_AGE,
            DeliveryStatus.FAILED,
            False,
        ),
        (
            Verdict(Kind.TEMPORARY, Stage.CONNECTION, None, "reset"),
            timedelta(days=3),
            DeliveryStatus.FAILED,
            False,
        ),
    ],
)
def test_a_verdict_decides_the_next_state(
    verdict: Verdict, age: timedelta, status: DeliveryStatus, bounced: bool
) -> None:
    decision = decide(_claimed(NOW - age, attempts=5), verdict, NOW, MAX_AGE, random.Random(1))
    assert decision.outcome.status is status
    assert decision.bounced is bounced
    assert decision.outcome.delivery_id == 7
    if status is DeliveryStatus.RETRY:
        assert decision.outcome.next_attempt_at is not None
        assert decision.outcome.next_attempt_at > NOW
    else:
        assert decision.outcome.next_attempt_at is None


def test_giving_up_says_after_how_many_attempts_and_why() -> None:
    verdict = classify(451, "4.3.0 Try later", stage=Stage.RCPT)
    decision = decide(_claimed(NOW - MAX_AGE, attempts=9), verdict, NOW, MAX_AGE, random.Random())
    assert decision.outcome.reply == "gave up after 9 attempts: RCPT: 4.3.0 Try later"


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [
        (0, timedelta(minutes=1)),
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=2)),
        (3, timedelta(minutes=4)),
        (8, timedelta(minutes=128)),
        (9, RETRY_CAP),
        (40, RETRY_CAP),
    ],
)
def test_backoff_doubles_within_its_upper_half_up_to_the_cap(
    attempts: int, ceiling: timedelta
) -> None:
    rng = random.Random(attempts)
    for _ in range(200):
        delay = backoff(attempts, rng)
        assert ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"Hallo\r\n", b"Hallo\r\n.\r\n"),
        (b"Hallo", b"Hallo\r\n.\r\n"),
        (b".begin\r\n", b"..begin\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n..twee\r\n", b"a\r\n...twee\r\n.\r\n"),
        (b"mid.dle\r\n", b"mid.dle\r\n.\r\n"),
    ],
)
def test_dot_stuffing_doubles_a_leading_dot_and_ends_the_data(data: bytes, wire: bytes) -> None:
    assert dot_stuffed(data) == wire


MARKERS = Markers.for_seed("abc123")
G, U = MARKERS.greeting, MARKERS.unsubscribe_url


@pytest.mark.parametrize(
    ("document", "pieces"),
    [
        ("geen markers", ["geen markers"]),
        (f"{G}", ["", 0, ""]),
        (f"a{G}b{U}c", ["a", 0, "b", 1, "c"]),
        (f"{U}{G}", ["", 1, "", 0, ""]),
        (f"x{U}y{U}z", ["x", 1, "y", 1, "z"]),
        (f"NLPabc123 {G}", ["NLPabc123 ", 0, ""]),
    ],
)
def test_documents_split_on_their_markers(document: str, pieces: list[str | int]) -> None:
    assert split_on_markers(document, MARKERS) == pieces
