"""Issue files: `issues check` names the file, the line and the field; `issues queue` is all or nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Issue, IssueStatus
from tests.support.cli import Cli
from tests.support.issue_files import write_issue


def test_check_accepts_a_valid_folder(cli: Cli, tmp_path: Path) -> None:
    write_issue(tmp_path / "issues", "01-loslaten")
    write_issue(tmp_path / "issues", "02-zachtheid", theme="zachtheid")
    result = cli("issues", "check")
    assert "2 issue files OK" in result.stdout


def test_unknown_theme_names_file_line_and_field(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "bad", theme="geduld")
    result = cli("issues", "check", str(path), code=1)
    assert (
        f"{path}:2: theme: unknown theme 'geduld'; choose one of loslaten, vasthouden, zachtheid"
        in result.stderr
    )


def test_missing_question_is_reported(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "issues" / "no-question.md"
    path.parent.mkdir()
    path.write_text("---\ntheme: loslaten\nsubject: Rust\n---\nTekst.\n", encoding="utf-8")
    result = cli("issues", "check", code=1)
    assert f"{path}: question: is missing" in result.stderr


def test_empty_question_is_reported_with_its_line(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "empty", question='""')
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:4: question: is empty" in result.stderr


def test_two_questions_are_refused(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "two", question="Wat houd je vast? En waarom?")
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:4: question: holds 2 questions; an issue asks exactly one" in result.stderr


def test_a_statement_is_not_a_question(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "statement", question="Kijk eens wat je vasthoudt.")
    result = cli("issues", "check", str(path), code=1)
    assert "question: must be one question that ends with '?'" in result.stderr


def test_unknown_field_is_named_with_its_line(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "extra", extra="auteur: Gerrit")
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:6: auteur: unknown field" in result.stderr


def test_malformed_front_matter_gives_the_yaml_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "issues" / "broken.md"
    path.parent.mkdir()
    path.write_text(
        "---\ntheme: loslaten\nsubject: [niet gesloten\nquestion: Wat?\n---\nTekst\n",
        encoding="utf-8",
    )
    result = cli("issues", "check", code=1)
    assert f"{path}:" in result.stderr
    assert "front matter: is not valid YAML" in result.stderr


def test_a_file_without_front_matter_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "issues" / "plain.md"
    path.parent.mkdir()
    path.write_text("Alleen tekst.\n", encoding="utf-8")
    result = cli("issues", "check", code=1)
    assert f"{path}:1: no front matter" in result.stderr


def test_every_bad_file_is_reported_not_just_the_first(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    a = write_issue(folder, "a", theme="nope")
    b = write_issue(folder, "b", subject='""')
    write_issue(folder, "c")
    result = cli("issues", "check", code=1)
    assert str(a) in result.stderr and str(b) in result.stderr
    assert "2 of 3 issue files have errors" in result.stderr


def test_queue_with_one_bad_file_queues_nothing(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    good = write_issue(folder, "good")
    bad = write_issue(folder, "bad", theme="nope")
    result = cli("issues", "queue", str(good), str(bad), code=1)
    assert "nothing was queued" in result.stderr
    with factory() as session:
        assert session.scalars(select(Issue)).all() == []


def test_queue_again_unchanged_is_harmless_and_changed_updates(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    path = write_issue(folder, "een")
    assert "queued" in cli("issues", "queue", str(path)).stdout
    assert "unchanged" in cli("issues", "queue", str(path)).stdout
    write_issue(folder, "een", subject="Een nieuwe titel")
    assert "updated" in cli("issues", "queue", str(path)).stdout
    with factory() as session:
        (issue,) = session.scalars(select(Issue)).all()
        assert issue.subject == "Een nieuwe titel"
        assert issue.status is IssueStatus.QUEUED


def test_author_text_with_template_syntax_is_data(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(
        tmp_path / "issues", "curly", body="Schrijf {{ dit }} en {% niet %} <b>zo</b>.\n"
    )
    out = tmp_path / "preview.html"
    text_out = tmp_path / "preview.txt"
    cli("issues", "preview", str(path), "--out", str(out), "--text", str(text_out))
    html = out.read_text(encoding="utf-8")
    assert "{{ dit }}" in html and "{% niet %}" in html
    assert "&lt;b&gt;zo&lt;/b&gt;" in html  # raw HTML from the author is shown, not run
    assert "{{ dit }}" in text_out.read_text(encoding="utf-8")


def test_preview_shows_the_question_in_dutch_html(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "vraag", question="Waar mag het zachter?")
    out = tmp_path / "p.html"
    cli("issues", "preview", str(path), "--out", str(out), "--name", "Anna")
    html = out.read_text(encoding="utf-8")
    assert '<html lang="nl"' in html
    assert "Waar mag het zachter?" in html
    assert "Hallo Anna," in html
    assert "https://nieuws.example.nl/afmelden/" in html


def test_a_missing_issues_folder_is_named(cli: Cli, tmp_path: Path) -> None:
    result = cli("issues", "check", code=1)
    assert f"the issues folder {tmp_path / 'issues'}/ does not exist" in result.stderr


def test_a_sent_issue_never_changes(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    path = write_issue(tmp_path / "issues", "een")
    cli("issues", "queue", str(path))
    cli("subscribers", "add", "anna@example.com")
    cli("send", "--now", "2026-11-29T07:00")
    assert "already sent, unchanged" in cli("issues", "queue", str(path)).stdout
    write_issue(tmp_path / "issues", "een", subject="Later herschreven")
    assert "a sent issue never changes" in cli("issues", "queue", str(path)).stdout
    with factory() as session:
        (issue,) = session.scalars(select(Issue)).all()
        assert issue.subject == "Een open hand"
        assert issue.status is IssueStatus.SENT
