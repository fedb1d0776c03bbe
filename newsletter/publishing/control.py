"""The author's hold on the queue: find an issue, take it back, pin it to a date, and see how
each queued issue's file stands (changed since it was queued, gone, or the same text twice).

An issue is named by its slug (the file name without `.md`) or by its file. Withdrawing a queued
issue deletes its snapshot (nothing else points at it until it is sent; its file is left alone);
a sent issue belongs to its edition and is never withdrawn. A pin holds an issue back for one
scheduled time (`planning` sends it then; the rotation goes on around it).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.i18n import _
from newsletter.publishing import issue_files, planning
from newsletter.settings import Settings
from newsletter.storage.models import Edition, Issue, IssueStatus


class QueueError(ValueError):
    """What the author asked cannot be done; the message says why and what to do instead."""


def text_key(body: str) -> str:
    """What makes two letters the same text: the body, whatever its spacing and line breaks."""
    return hashlib.sha256(" ".join(body.split()).encode("utf-8")).hexdigest()


def find(session: Session, name: str) -> Issue:
    """The issue named by its slug, or by its file (as queued, or a file of the same name)."""
    by_slug = session.scalars(select(Issue).where(Issue.slug == name)).one_or_none()
    if by_slug is not None:
        return by_slug
    path = Path(name).absolute()
    for issue in session.scalars(select(Issue).order_by(Issue.id)):
        if Path(issue.source_path).absolute() == path:
            return issue
    if path.suffix == ".md":
        by_stem = session.scalars(select(Issue).where(Issue.slug == path.stem)).one_or_none()
        if by_stem is not None:
            return by_stem
    raise QueueError(
        _("no queued or sent issue is called {name!r}; see: newsletter issues list").format(
            name=name
        )
    )


def sent_on(session: Session, issue: Issue) -> datetime | None:
    """The scheduled time of the edition that sent this issue."""
    return session.scalar(select(Edition.scheduled_at).where(Edition.issue_id == issue.id))


def withdraw(session: Session, name: str) -> Issue:
    """Take a queued issue out of the queue (its snapshot is deleted; its file stays)."""
    issue = find(session, name)
    if issue.status is IssueStatus.SENT:
        raise QueueError(
            _(
                "{name} was already sent (edition of {date}); a letter that went out cannot be "
                "taken back"
            ).format(name=issue.slug, date=_iso(sent_on(session, issue)))
        )
    session.delete(issue)
    session.flush()
    return issue


def _iso(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment is not None else "?"


def send_times_on(settings: Settings, day: date) -> list[datetime]:
    """The scheduled times that fall on this day in NEWSLETTER_TIMEZONE."""
    start = datetime.combine(day, time(0), tzinfo=settings.zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=settings.zone)
    first = planning.next_times(settings, start - timedelta(microseconds=1), 1)
    times: list[datetime] = []
    while first and first[0] < end:
        times.append(first[0])
        first = planning.next_times(settings, first[0], 1)
    return times


def nearest_send_dates(settings: Settings, day: date, now: datetime) -> list[date]:
    """The scheduled dates on either side of `day` (the earlier one only if still ahead)."""
    start = datetime.combine(day, time(0), tzinfo=settings.zone)
    found: list[date] = []
    before = planning.latest_time(settings, start)
    if before is not None and before > now:
        found.append(before.astimezone(settings.zone).date())
    after = planning.next_times(settings, max(start, now), 1)
    if after:
        found.append(after[0].astimezone(settings.zone).date())
    return found


def pin(session: Session, settings: Settings, name: str, day: date, now: datetime) -> datetime:
    """Pin a queued issue to the (first) scheduled time on `day`; returns that time."""
    issue = find(session, name)
    if issue.status is IssueStatus.SENT:
        raise QueueError(
            _("{name} was already sent; only a queued issue can be pinned").format(name=issue.slug)
        )
    times = [when for when in send_times_on(settings, day) if when > now]
    if not times:
        nearest = _(" or ").join(d.isoformat() for d in nearest_send_dates(settings, day, now))
        passed = _(" (or it has passed)") if send_times_on(settings, day) else ""
        raise QueueError(
            _("{date} is not a coming send date{passed}; the nearest are: {nearest}").format(
                date=day.isoformat(), passed=passed, nearest=nearest
            )
        )
    when = times[0]
    if session.scalar(select(Edition.id).where(Edition.scheduled_at == when)) is not None:
        raise QueueError(
            _("the letter of {date} has already been settled").format(date=day.isoformat())
        )
    taken = session.scalars(
        select(Issue).where(Issue.pinned_for == when, Issue.id != issue.id)
    ).one_or_none()
    if taken is not None:
        raise QueueError(
            _(
                "{name} is already pinned to {date}; unpin it first: "
                "newsletter issues pin {name} --unpin"
            ).format(name=taken.slug, date=day.isoformat())
        )
    issue.pinned_for = when
    session.flush()
    return when


def unpin(session: Session, name: str) -> Issue:
    """Undo a pin: the issue goes back into the rotation (in its place in the queue)."""
    issue = find(session, name)
    if issue.status is IssueStatus.SENT:
        raise QueueError(
            _("{name} was already sent; there is nothing to unpin").format(name=issue.slug)
        )
    if issue.pinned_for is None:
        raise QueueError(_("{name} is not pinned").format(name=issue.slug))
    issue.pinned_for = None
    session.flush()
    return issue


# --- how the files stand ----------------------------------------------------------------------


class FileState(enum.StrEnum):
    SAME = "same"  # the file holds what was queued
    CHANGED = "changed"  # edited since it was queued: queue it again to send the new text
    BROKEN = "broken"  # edited since, and `issues check` finds errors in it now
    MISSING = "missing"  # the file is gone (deleted, or renamed)


@dataclass
class Standing:
    """How one issue stands: its file, and where else the same text is."""

    issue: Issue
    file: FileState
    doubles: list[str] = field(default_factory=list)  # other issues with the same text
    copies: list[Path] = field(default_factory=list)  # other files in the folder with it


def _file_state(issue: Issue, settings: Settings) -> FileState:
    path = Path(issue.source_path)
    if not path.is_file():
        return FileState.MISSING
    try:
        draft = issue_files.parse_issue(path, settings.themes, settings.issues_dir / "beelden")
    except issue_files.IssueFileError:
        return FileState.BROKEN
    if draft.slug != issue.slug:
        return FileState.CHANGED
    return FileState.SAME if draft.content_hash == issue.content_hash else FileState.CHANGED


def folder_texts(settings: Settings, skip: Iterable[Path] = ()) -> dict[str, list[Path]]:
    """The text of every readable issue file in the issues folder, by `text_key`."""
    skipped = {p.resolve() for p in skip}
    found: dict[str, list[Path]] = {}
    if not settings.issues_dir.is_dir():
        return found
    for path in sorted(settings.issues_dir.glob("*.md")):
        if path.resolve() in skipped:
            continue
        try:
            draft = issue_files.parse_issue(path, settings.themes, settings.issues_dir / "beelden")
        except issue_files.IssueFileError:
            continue
        found.setdefault(text_key(draft.body), []).append(path)
    return found


def standings(
    session: Session, settings: Settings, issues: Sequence[Issue] | None = None
) -> dict[int, Standing]:
    """How each issue stands (by id); the file is looked at for queued issues only."""
    every = list(session.scalars(select(Issue).order_by(Issue.id)))
    by_text: dict[str, list[Issue]] = {}
    for issue in every:
        by_text.setdefault(text_key(issue.body), []).append(issue)
    files = folder_texts(settings)
    result: dict[int, Standing] = {}
    for issue in issues if issues is not None else every:
        key = text_key(issue.body)
        queued = issue.status is IssueStatus.QUEUED
        state = _file_state(issue, settings) if queued else FileState.SAME
        doubles = [other.slug for other in by_text[key] if other.id != issue.id]
        copies = [p for p in files.get(key, []) if p.stem != issue.slug] if queued else []
        result[issue.id] = Standing(issue, state, doubles, copies)
    return result


def doubles_of(
    session: Session, drafts: Sequence[issue_files.IssueDraft]
) -> list[tuple[issue_files.IssueDraft, str]]:
    """Drafts whose text equals another issue (queued or sent, or another draft given here).

    Each is paired with a description of the other: its slug, file and status.
    """
    existing: dict[str, list[Issue]] = {}
    for issue in session.scalars(select(Issue).order_by(Issue.id)):
        existing.setdefault(text_key(issue.body), []).append(issue)
    found: list[tuple[issue_files.IssueDraft, str]] = []
    seen: dict[str, issue_files.IssueDraft] = {}
    for draft in drafts:
        key = text_key(draft.body)
        for issue in existing.get(key, []):
            if issue.slug != draft.slug:
                status = _("sent") if issue.status is IssueStatus.SENT else _("queued")
                found.append((draft, f"{issue.slug} ({issue.source_path}, {status})"))
        other = seen.setdefault(key, draft)
        if other is not draft:
            found.append(
                (draft, _("{name} ({file}, given too)").format(name=other.slug, file=other.path))
            )
    return found


class DoubleText(QueueError):
    """Files whose text is already queued or sent under another name; nothing was queued."""

    def __init__(self, doubles: Sequence[tuple[issue_files.IssueDraft, str]]) -> None:
        self.doubles = list(doubles)
        super().__init__(
            "\n".join(
                _("{file}: the same text as {other}").format(file=draft.path, other=other)
                for draft, other in doubles
            )
        )


def _would_change(session: Session, draft: issue_files.IssueDraft) -> bool:
    """Whether queueing the draft stores new text (a new issue, or a queued one edited)."""
    issue = session.scalars(select(Issue).where(Issue.slug == draft.slug)).one_or_none()
    if issue is None:
        return True
    return issue.status is IssueStatus.QUEUED and issue.content_hash != draft.content_hash


def queue(
    session: Session,
    drafts: Sequence[issue_files.IssueDraft],
    now: datetime,
    *,
    as_new: bool = False,
) -> list[issue_files.QueueOutcome]:
    """Queue the drafts, all or nothing; a text already queued or sent under another name is
    refused (DoubleText), unless `as_new` says it is meant to go out again."""
    if not as_new:
        doubles = doubles_of(session, [d for d in drafts if _would_change(session, d)])
        if doubles:
            raise DoubleText(doubles)
    return issue_files.queue(session, drafts, now)
