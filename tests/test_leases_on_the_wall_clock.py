"""Leases are on the wall clock: senders started with different `--now` times agree on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.publishing.editions import SettleOutcome, settle
from newsletter.settings import Settings
from newsletter.storage import ledger
from newsletter.storage.db import transaction
from newsletter.storage.models import Delivery
from tests.support.cli import Cli
from tests.support.issue_files import queue_and_import

LAST_SUNDAY = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def test_a_claim_made_under_an_earlier_now_is_not_taken_by_a_sender_on_real_time(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session], settings: Settings
) -> None:
    queue_and_import(cli, tmp_path, [f"lezer{i}@example.com" for i in range(4)])
    assert settle(factory, settings, LAST_SUNDAY).outcome is SettleOutcome.CREATED
    long_ago = LAST_SUNDAY - timedelta(days=30)  # `send --now` of an old week, on its own clock
    with transaction(factory) as session:
        mine = ledger.claim(
            session, owner="catching-up", now=long_ago, lease=LEASE, limit=2, skip_locked=False
        )
    assert len(mine) == 2
    with transaction(factory) as session:
        theirs = ledger.claim(
            session,
            owner="worker-on-real-time",
            now=datetime.now(UTC) + timedelta(days=60),  # a clock far ahead changes nothing
            lease=LEASE,
            limit=10,
            skip_locked=False,
        )
    assert {c.delivery_id for c in theirs}.isdisjoint(c.delivery_id for c in mine)
    assert len(theirs) == 2  # only the two nobody held
    with factory() as session:
        owners = {
            row[0]: row[1] for row in session.execute(select(Delivery.id, Delivery.lease_owner))
        }
    assert {owners[c.delivery_id] for c in mine} == {"catching-up"}
    assert {owners[c.delivery_id] for c in theirs} == {"worker-on-real-time"}
