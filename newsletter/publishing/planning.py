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


@dataclass(frozen=True)
class Choice:
    """The issue a week gets, and the themes passed over because nothing was queued for them."""

    issue: Issue | None
    skipped_themes: list[str] = field(default_factory=list)


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
    """Queued issues per theme, the one queued first first."""
    issues = session.scalars(
        select(Issue)
        .where(Issue.status == IssueStatus.QUEUED, Issue.theme.in_(list(themes)))
        .order_by(Issue.queued_at, Issue.id)
    )
    queues: dict[str, list[Issue]] = {theme: [] for theme in themes}
    for issue in issues:
        queues[issue.theme].append(issue)
    return queues


def _pick(
    themes: Sequence[str], last_sent: dict[str, datetime], queues: dict[str, list[Issue]]
) -> Choice:
    skipped: list[str] = []
    for theme in theme_order(themes, last_sent):
        if queues[theme]:
            return Choice(queues[theme][0], skipped)
        skipped.append(theme)
    return Choice(None, skipped)


def choose_issue(session: Session, themes: Sequence[str]) -> Choice:
    """The issue for the next edition: the longest-waiting theme that has one queued."""
    return _pick(themes, _last_sent(session), queued_by_theme(session, themes))


@dataclass(frozen=True)
class PlannedWeek:
    when: datetime
    issue: Issue | None
    skipped_themes: list[str]
    catching_up: bool = False


def plan(session: Session, settings: Settings, now: datetime, weeks: int) -> list[PlannedWeek]:
    """Simulate the rotation over the coming scheduled times, without changing anything."""
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
    planned: list[PlannedWeek] = []
    for when in times:
        choice = _pick(settings.themes, last_sent, queues)
        planned.append(
            PlannedWeek(when, choice.issue, choice.skipped_themes, pending_now and when == latest)
        )
        if choice.issue is not None:
            last_sent[choice.issue.theme] = when
            queues[choice.issue.theme].pop(0)
    return planned
