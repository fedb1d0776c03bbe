"""When editions are due, and which theme and issue each week gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.settings import Settings
from newsletter.storage.models import Edition, Issue, IssueStatus

# How far back to look for the latest scheduled time: the grace first, then ever wider.
_LOOKBACK = (timedelta(days=8), timedelta(days=40), timedelta(days=400))


def trigger(settings: Settings) -> CronTrigger:
    return CronTrigger.from_crontab(settings.schedule, timezone=settings.zone)


def grace(settings: Settings) -> timedelta:
    return timedelta(hours=settings.misfire_grace_hours)


def next_times(settings: Settings, after: datetime, count: int) -> list[datetime]:
    """The next `count` scheduled times strictly after `after`."""
    cron = trigger(settings)
    times: list[datetime] = []
    previous: datetime | None = None
    moment = after + timedelta(microseconds=1)
    while len(times) < count:
        fire = cron.get_next_fire_time(previous, moment)
        if fire is None:
            break
        times.append(fire)
        previous = fire
        moment = fire + timedelta(microseconds=1)
    return times


def latest_time(settings: Settings, now: datetime) -> datetime | None:
    """The latest scheduled time at or before `now` (None if none in the last 400 days)."""
    cron = trigger(settings)
    windows = (grace(settings), *_LOOKBACK)
    for window in windows:
        latest: datetime | None = None
        previous: datetime | None = None
        moment = now - window
        while True:
            fire = cron.get_next_fire_time(previous, moment)
            if fire is None or fire > now:
                break
            latest = previous = fire
            moment = fire + timedelta(microseconds=1)
        if latest is not None:
            return latest
    return None


def next_send_time(session: Session, settings: Settings, now: datetime) -> datetime | None:
    """When the next letter goes out: a time due now within the grace, or the next one."""
    latest = latest_time(settings, now)
    if (
        latest is not None
        and now - latest <= grace(settings)
        and session.scalar(select(Edition.id).where(Edition.scheduled_at == latest)) is None
    ):
        return latest
    coming = next_times(settings, now, 1)
    return coming[0] if coming else None


@dataclass(frozen=True)
class Choice:
    """The issue a week gets, and the themes passed over because nothing was queued for them."""

    issue: Issue | None
    skipped_themes: list[str] = field(default_factory=list)
    pinned: bool = False  # the author pinned it to this time (`issues pin`)


def _last_sent(session: Session) -> dict[str, datetime]:
    rows = session.execute(
        select(Edition.theme, func.max(Edition.scheduled_at)).group_by(Edition.theme)
    )
    return {theme: when for theme, when in rows}


def theme_order(themes: Sequence[str], last_sent: dict[str, datetime]) -> list[str]:
    """Longest waiting first: never-sent themes before all others, ties in configured order."""
    position = {theme: index for index, theme in enumerate(themes)}
    never = datetime.min.replace(tzinfo=None)

    def key(theme: str) -> tuple[bool, datetime, int]:
        when = last_sent.get(theme)
        return (when is not None, when.replace(tzinfo=None) if when else never, position[theme])

    return sorted(themes, key=key)


def queued_by_theme(session: Session, themes: Sequence[str]) -> dict[str, list[Issue]]:
    """Queued issues per theme, the one queued first first (pinned ones included)."""
    issues = session.scalars(
        select(Issue)
        .where(Issue.status == IssueStatus.QUEUED, Issue.theme.in_(list(themes)))
        .order_by(Issue.queued_at, Issue.id)
    )
    queues: dict[str, list[Issue]] = {theme: [] for theme in themes}
    for issue in issues:
        queues[issue.theme].append(issue)
    return queues


def _held_back(issue: Issue, when: datetime) -> bool:
    """A pinned issue waits for its time; once that time has gone by unsent, it rejoins."""
    return issue.pinned_for is not None and issue.pinned_for >= when


def _pick(
    themes: Sequence[str],
    last_sent: dict[str, datetime],
    queues: dict[str, list[Issue]],
    when: datetime,
) -> Choice:
    """The issue pinned to `when`; else the longest-waiting theme's first unpinned issue."""
    for queue in queues.values():
        for issue in queue:
            if issue.pinned_for == when:
                return Choice(issue, pinned=True)
    skipped: list[str] = []
    for theme in theme_order(themes, last_sent):
        waiting = [issue for issue in queues[theme] if not _held_back(issue, when)]
        if waiting:
            return Choice(waiting[0], skipped)
        skipped.append(theme)
    return Choice(None, skipped)


def choose_issue(session: Session, themes: Sequence[str], when: datetime) -> Choice:
    """The issue for the edition of `when`: the one pinned to it, or the rotation's choice."""
    return _pick(themes, _last_sent(session), queued_by_theme(session, themes), when)


@dataclass(frozen=True)
class PlannedWeek:
    when: datetime
    issue: Issue | None
    skipped_themes: list[str]
    catching_up: bool = False
    pinned: bool = False


def plan(
    session: Session,
    settings: Settings,
    now: datetime,
    weeks: int,
    *,
    extra: Sequence[Issue] = (),
) -> list[PlannedWeek]:
    """Simulate the rotation over the coming scheduled times, without changing anything.

    `extra` are issues not in the database, planned as if queued now (a file not queued yet).
    """
    times = next_times(settings, now, weeks)
    latest = latest_time(settings, now)
    pending_now = (
        latest is not None
        and now - latest <= grace(settings)
        and session.scalar(select(Edition.id).where(Edition.scheduled_at == latest)) is None
    )
    if pending_now and latest is not None:
        times = [latest, *times[: weeks - 1]]
    last_sent = _last_sent(session)
    queues = queued_by_theme(session, settings.themes)
    for issue in extra:
        if issue.theme in queues:
            queues[issue.theme].append(issue)
    planned: list[PlannedWeek] = []
    for when in times:
        choice = _pick(settings.themes, last_sent, queues, when)
        planned.append(
            PlannedWeek(
                when,
                choice.issue,
                choice.skipped_themes,
                pending_now and when == latest,
                choice.pinned,
            )
        )
        if choice.issue is not None:
            last_sent[choice.issue.theme] = when
            queues[choice.issue.theme].remove(choice.issue)
    return planned
