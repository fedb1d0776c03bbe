"""Issue files: parse and check the Markdown an author writes, and queue snapshots of it."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import yaml
from frontmatter.default_handlers import YAMLHandler
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.i18n import _
from newsletter.mail.images import FOLDER, ImageError, check_source
from newsletter.mail.markup import image_refs
from newsletter.publishing import issue_hints
from newsletter.storage.models import Issue, IssueStatus
from newsletter.text import header_problem, line_problem

REQUIRED = ("theme", "subject", "question")
OPTIONAL = ("preheader",)
MAX_SUBJECT = 200
MAX_PREHEADER = 200
MAX_QUESTION = 500
# Control characters a body may not hold (tab and line feed are text; CR/LF was made LF).
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an issue file, located as precisely as the file allows."""

    path: Path
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class IssueFileError(ValueError):
    """One or more issue files are not valid."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class IssueDraft:
    """A valid issue file, as read from disk."""

    slug: str
    path: Path
    theme: str
    subject: str
    question: str
    preheader: str | None
    body: str

    @property
    def content_hash(self) -> str:
        content = asdict(self)
        del content["path"]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def collect_paths(paths: Iterable[Path], issues_dir: Path) -> list[Path]:
    """The files named, folders expanded to their *.md files; none named: the issues folder."""
    given = list(paths) or [issues_dir]
    found: list[Path] = []
    for path in given:
        if path.is_dir():
            found.extend(sorted(path.glob("*.md")))
        else:
            found.append(path)
    return found


def _key_lines(front: str, first_line: int) -> dict[str, list[int]]:
    lines: dict[str, list[int]] = {}
    for offset, text in enumerate(front.split("\n")):
        match = _KEY_LINE.match(text)
        if match:
            lines.setdefault(match.group(1), []).append(first_line + offset)
    return lines


def _text_field(
    meta: dict[object, object], name: str, line: int | None, path: Path, limit: int
) -> tuple[str | None, list[Problem]]:
    value = meta.get(name)
    if value is None:
        return None, []
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, [Problem(path, line, name, _("must be a line of text"))]
    text = str(value).strip()
    if "\t" in text:
        return None, [Problem(path, line, name, _("holds a tab: use a space instead of a tab"))]
    # The subject is a mail header; the others go on a page, where '=?' is harmless.
    problem = (
        header_problem("Subject", text)
        if name == "subject"
        else line_problem(text, encoded_words=True)
    )
    if problem is not None:
        return None, [Problem(path, line, name, problem)]
    if name == "subject":
        text = " ".join(text.split())  # a header shows runs of spaces as one
    if len(text) > limit:
        too_long = _("is {count} characters; at most {limit}").format(count=len(text), limit=limit)
        return None, [Problem(path, line, name, too_long)]
    return text, []


def _check_question(question: str | None, line: int | None, path: Path) -> list[Problem]:
    if question is None:
        return []
    asked = issue_hints.without_outer_quotes(question)  # “Waar…?” asks what Waar…? asks
    count = issue_hints.questions(asked)  # a '?' inside quotes is no second question
    if count == 0 or not asked.endswith("?"):
        return [Problem(path, line, "question", _("must be one question that ends with '?'"))]
    if count > 1:
        return [
            Problem(
                path,
                line,
                "question",
                _("holds {count} questions; an issue asks exactly one").format(count=count),
            )
        ]
    return []


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; only a regular file is read (a FIFO or device would never end)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never waits for a writer
    except OSError as exc:
        unreadable = _("cannot read: {reason}").format(reason=exc.strerror)
        raise IssueFileError([Problem(path, None, None, unreadable)]) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise IssueFileError([Problem(path, None, None, _("is not a regular file; not read"))])
    os.set_blocking(descriptor, True)
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def _read_text(path: Path) -> str:
    """The file as text with LF line ends; one Problem when it cannot be read as UTF-8."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IssueFileError([Problem(path, line, None, _(issue_hints.NOT_UTF8))]) from None
    return text.replace("\r\n", "\n")


def _split(path: Path, text: str) -> tuple[str, dict[object, object], str]:
    """(front matter text, its fields, body); one Problem when the front matter is unusable."""
    handler = YAMLHandler()
    if not text.startswith("---\n") or not handler.detect(text):
        raise IssueFileError(
            [Problem(path, 1, None, _("no front matter: start the file with a line '---'"))]
        )
    try:
        front, body = handler.split(text)
    except ValueError:
        raise IssueFileError(
            [Problem(path, 1, None, _("front matter is not closed with a line '---'"))]
        ) from None
    unseen = issue_hints.invisible_character(front)
    if unseen is not None:
        raise IssueFileError([Problem(path, unseen[0], "front matter", unseen[1])])
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        yaml_line, what = issue_hints.yaml_problem(front, exc)
        raise IssueFileError([Problem(path, yaml_line, "front matter", what)]) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise IssueFileError([Problem(path, 2, "front matter", _("must be 'field: value' lines"))])
    return front, meta, body


LIMITS = {"theme": 64, "subject": MAX_SUBJECT, "question": MAX_QUESTION, "preheader": MAX_PREHEADER}


def _check_fields(
    path: Path, front: str, meta: dict[object, object], themes: Sequence[str]
) -> tuple[dict[str, str | None], list[Problem]]:
    """Every field's value, and every problem with the fields, located by line."""
    key_lines = _key_lines(front, first_line=1)  # split() keeps the newline after ---
    problems: list[Problem] = []

    def line_of(name: str) -> int | None:
        return key_lines.get(name, [None])[0]

    for name, lines in key_lines.items():
        if len(lines) > 1:
            problems.append(Problem(path, lines[1], name, _("is given twice")))
    allowed = REQUIRED + OPTIONAL
    for key in meta:
        if key not in allowed:
            unknown = issue_hints.unknown_field(str(key), allowed)
            problems.append(Problem(path, line_of(str(key)), str(key), unknown))
    values: dict[str, str | None] = {}
    for name in REQUIRED + OPTIONAL:
        value, found = _text_field(meta, name, line_of(name), path, LIMITS[name])
        problems.extend(found)
        if name in REQUIRED and not found and name not in meta:
            problems.append(Problem(path, None, name, _("is missing")))
        elif name in REQUIRED and not found and not value:
            problems.append(Problem(path, line_of(name), name, _("is empty")))
        values[name] = value or None
    theme = values["theme"]
    if theme:
        values["theme"] = issue_hints.theme_of(theme, themes)  # 'Loslaten' is loslaten
        if values["theme"] is None:
            choose = _("unknown theme {theme!r}; choose one of {themes}").format(
                theme=theme, themes=", ".join(themes)
            )
            problems.append(Problem(path, line_of("theme"), "theme", choose))
    problems.extend(_check_question(values["question"], line_of("question"), path))
    return values, problems


def parse_issue(path: Path, themes: Sequence[str], images: Path | None = None) -> IssueDraft:
    """Read and check one issue file; raise IssueFileError listing every problem found.

    `images` is the folder local images must be in (default: beelden/ beside the file).
    """
    text = _read_text(path)
    front, meta, body = _split(path, text)
    values, problems = _check_fields(path, front, meta, themes)
    control = _BODY_CONTROL.search(body)
    if control is not None:
        line = len(front.split("\n")) + body[: control.start()].count("\n")
        found = f"U+{ord(control.group()):04X}"
        held = _("holds a control character ({character})").format(character=found)
        problems.append(Problem(path, line, "body", held))
    problems.extend(_image_problems(path, text, body, images or path.parent / FOLDER))
    body = body.strip("\n")
    if not body.strip():
        body_line = len(front.splitlines()) + 2
        empty = _("is empty; write the reflection below the front matter")
        problems.append(Problem(path, body_line, "body", empty))
    if problems:
        raise IssueFileError(sorted(problems, key=lambda p: (p.line or 0, p.field or "")))
    return IssueDraft(
        slug=path.stem,
        path=path,
        theme=str(values["theme"]),
        subject=str(values["subject"]),
        question=str(values["question"]),
        preheader=values["preheader"],
        body=body + "\n",
    )


def _image_problems(path: Path, text: str, raw_body: str, folder: Path) -> list[Problem]:
    """Every image needs a description and an https:// address or a file in `folder`."""
    body = raw_body.strip("\n")
    first = text.rstrip("\n").rfind(body) if body else -1
    first_line = text.count("\n", 0, first) + 1  # the file line of the body's first line
    lines = body.split("\n")
    problems: list[Problem] = []
    for ref in image_refs(body):
        line = _image_line(lines, ref.lines, ref.src) + first_line if ref.lines else None
        if not ref.alt.strip():
            what = _("an image without a description: write what it shows, ![zo](…) ({source})")
            problems.append(Problem(path, line, "body", what.format(source=ref.src)))
        try:
            check_source(ref.src, folder)
        except ImageError as exc:
            problems.append(Problem(path, line, "body", _("image {problem}").format(problem=exc)))
    return problems


def _image_line(lines: list[str], block: tuple[int, int], src: str) -> int:
    """The body line (from 0) the image is written on: in its block, the one naming its src."""
    start, end = block
    for number in range(start, min(end, len(lines))):
        if src in lines[number] or unquote(src) in lines[number]:
            return number
    return start


def check_files(
    paths: Sequence[Path], themes: Sequence[str], images: Path | None = None
) -> tuple[list[IssueDraft], list[Problem]]:
    """Parse every file; return the good drafts and every problem of the bad ones."""
    drafts: list[IssueDraft] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            draft = parse_issue(path, themes, images)
        except IssueFileError as exc:
            problems.extend(exc.problems)
            continue
        if draft.slug in seen:
            problems.append(
                Problem(
                    path,
                    None,
                    None,
                    _("has the same name as {other}; rename one").format(other=seen[draft.slug]),
                )
            )
            continue
        seen[draft.slug] = path
        drafts.append(draft)
    return drafts, problems


class QueueAction(enum.StrEnum):
    """What queueing did with one file."""

    QUEUED = "queued"
    UPDATED = "updated"  # changed, not sent yet: the snapshot is replaced
    UNCHANGED = "unchanged"  # queued before, same text
    SENT = "sent"  # sent before, same text
    SENT_CHANGED = "sent-changed"  # sent before; a sent issue never changes


@dataclass(frozen=True)
class QueueOutcome:
    """What queueing did with one file."""

    draft: IssueDraft
    action: QueueAction


def _snapshot(issue: Issue, draft: IssueDraft, now: datetime) -> None:
    """Copy the draft's content into the queued issue."""
    issue.source_path = str(draft.path.absolute())  # the scheduler may run elsewhere
    issue.theme = draft.theme
    issue.subject = draft.subject
    issue.question = draft.question
    issue.preheader = draft.preheader
    issue.body = draft.body
    issue.content_hash = draft.content_hash
    issue.updated_at = now


def queue(session: Session, drafts: Sequence[IssueDraft], now: datetime) -> list[QueueOutcome]:
    """Snapshot each draft: new ones queued, changed unsent ones updated, sent ones kept."""
    outcomes: list[QueueOutcome] = []
    for draft in drafts:
        issue = session.scalars(
            select(Issue).where(Issue.slug == draft.slug).with_for_update()
        ).one_or_none()
        if issue is None:
            issue = Issue(slug=draft.slug, status=IssueStatus.QUEUED, queued_at=now)
            _snapshot(issue, draft, now)
            session.add(issue)
            outcomes.append(QueueOutcome(draft, QueueAction.QUEUED))
        elif issue.content_hash == draft.content_hash:
            sent = issue.status is IssueStatus.SENT
            outcomes.append(
                QueueOutcome(draft, QueueAction.SENT if sent else QueueAction.UNCHANGED)
            )
        elif issue.status is IssueStatus.SENT:
            outcomes.append(QueueOutcome(draft, QueueAction.SENT_CHANGED))
        else:
            _snapshot(issue, draft, now)
            outcomes.append(QueueOutcome(draft, QueueAction.UPDATED))
        session.flush()
    return outcomes
