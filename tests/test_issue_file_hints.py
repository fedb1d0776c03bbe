"""An issue file that is not right says what to do: quote a subject with a colon, spaces for a
tab, the field a typo meant, how to save as UTF-8. A theme may have capitals, and a question mark
inside quotes is no second question."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.publishing.issue_hints import questions
from newsletter.storage.models import Issue
from tests.support.cli import Cli
from tests.support.issue_files import write_issue

BODY = "Soms is loslaten het zachtste wat je kunt doen.\n"


def write(folder: Path, name: str, front: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_bytes(f"---\n{front}---\n{BODY}".encode(encoding))
    return path


def test_a_colon_in_the_subject_says_to_quote_it_and_quoting_works(
    cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "issues"
    path = write(folder, "dubbele-punt", "theme: vasthouden\nsubject: Wat draagt je: een anker\n"
                 "question: Wat houdt je overeind?\n")  # fmt: skip
    result = cli("issues", "check", str(path), code=1)
    assert (
        f"{path}:3: front matter: the value of subject holds a colon (:); put the value between "
        'quotes, like this: subject: "Wat draagt je: een anker"'
    ) in result.stderr
    assert "mapping values" not in result.stderr
    fixed = write(folder, "dubbele-punt", 'theme: vasthouden\nsubject: "Wat draagt je: een anker"\n'
                  "question: Wat houdt je overeind?\n")  # fmt: skip
    assert "1 issue file OK" in cli("issues", "check", str(fixed)).stdout


def test_a_tab_says_to_use_spaces(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    indented = write(folder, "tab", "theme: loslaten\n\tsubject: Rust\nquestion: Waarom niet?\n")
    result = cli("issues", "check", str(indented), code=1)
    assert f"{indented}:3: front matter: holds a tab: use spaces instead of a tab" in result.stderr
    assert "cannot start any token" not in result.stderr
    inside = write(folder, "tab2", "theme: loslaten\nsubject: Een\topen hand\nquestion: Wat?\n")
    result = cli("issues", "check", str(inside), code=1)
    assert f"{inside}:3: front matter: holds a tab: use spaces instead" in result.stderr
    quoted = write(folder, "tab3", 'theme: loslaten\nsubject: "Een\topen hand"\nquestion: Wat?\n')
    result = cli("issues", "check", str(quoted), code=1)
    assert f"{quoted}:3: subject: holds a tab: use a space instead of a tab" in result.stderr


def test_a_near_miss_names_the_field_it_meant(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "issues", "typo",
                 "theme: loslaten\nsubjet: Rust\nquestion: Waar rust je?\nPreheader: Kort\n")  # fmt: skip
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:3: subjet: unknown field; did you mean `subject`?" in result.stderr
    assert f"{path}:5: Preheader: unknown field; did you mean `preheader`?" in result.stderr
    far = write(tmp_path / "issues", "far", "theme: loslaten\nsubject: R\nquestion: W?\nkleur: x\n")
    result = cli("issues", "check", str(far), code=1)
    assert "kleur: unknown field; allowed: theme, subject, question, preheader" in result.stderr


def test_a_file_in_another_encoding_says_how_to_save_it_as_utf8(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "issues", "ansi", "theme: zachtheid\nsubject: Zacht zijn voor jezelf\n"
                 "question: Waar mag het zachter, café of thuis?\n", encoding="cp1252")  # fmt: skip
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:4: is not UTF-8 text: save it as UTF-8" in result.stderr
    assert "Codering 'UTF-8'" in result.stderr


def test_a_theme_with_capitals_is_that_theme(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    path = write_issue(tmp_path / "issues", "hoofdletter", theme="Loslaten")
    cli("issues", "queue", str(path))
    with factory() as session:
        assert session.scalars(select(Issue.theme)).one() == "loslaten"


def test_a_question_mark_inside_quotes_is_no_second_question(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    for name, question in [
        ("enkel", "Wat betekent 'waarom?' nog voor jou?"),
        ("dubbel", 'Wanneer zei je voor het laatst "hoe gaat het?" en meende je het?'),
        ("typografisch", "Wat hoor je als iemand ‘gaat het?’ vraagt?"),
        ("apostrof", "Wat doe je ’s avonds als het stil wordt?"),
    ]:
        write_issue(folder, name, question=question)
    assert "4 issue files OK" in cli("issues", "check").stdout
    two = write_issue(tmp_path / "twee", "twee", question="Wat zeg je 'ja'? En waarom?")
    result = cli("issues", "check", str(two), code=1)
    assert "holds 2 questions" in result.stderr


@given(
    quoted=st.text(
        alphabet=st.characters(categories=["L", "Zs"], include_characters="?!."), max_size=30
    ),
    quote=st.sampled_from(['"{}"', "'{}'", "“{}”", "‘{}’", "„{}”", "«{}»"]),
)
def test_whatever_is_quoted_the_question_outside_counts_once(quoted: str, quote: str) -> None:
    inner = quote.format(
        quoted.replace('"', "").replace("'", "").replace("”", "").replace("’", "").replace("»", "")
    )
    assert questions(f"Wat zeg je als iemand {inner} vraagt?") == 1


def test_a_pasted_line_separator_is_named_on_its_own_line(cli: Cli, tmp_path: Path) -> None:
    """YAML reads U+2028 as a line break, so its own error would name a later line and a
    missing ':'; the check names the line she sees and the character she cannot see."""
    folder = tmp_path / "issues"
    path = write(folder, "geplakt", "theme: zachtheid\nsubject: Zacht\u2028beginnen\n"
                 "question: Waar begin je zacht?\npreheader: Voor de zondag.\n")  # fmt: skip
    result = cli("issues", "check", str(path), code=1)
    assert f"{path}:3: front matter: holds a line separator (U+2028)" in result.stderr
    assert "could not find expected" not in result.stderr
    hidden = write(folder, "stuurteken", "theme: zachtheid\nsubject: Zacht\nquestion: Waar\x07?\n")
    result = cli("issues", "check", str(hidden), code=1)
    assert f"{hidden}:4: front matter: holds an invisible control character (U+0007" in (
        result.stderr
    )


def test_a_question_between_quotes_as_a_word_processor_writes_it(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    for name, asked in [("krul", "“Waar mag het zachter?”"), ("recht", '"Waar mag het zachter?"')]:
        path = write(folder, name, f"theme: zachtheid\nsubject: Zacht\nquestion: '{asked}'\n")
        assert "1 issue file OK" in cli("issues", "check", str(path)).stdout, asked
    two = write(folder, "twee", "theme: zachtheid\nsubject: Zacht\nquestion: “Waar? Wanneer?”\n")
    assert "holds 2 questions" in cli("issues", "check", str(two), code=1).stderr
    none = write(folder, "geen", "theme: zachtheid\nsubject: Zacht\nquestion: “Waar zacht.”\n")
    assert "must be one question" in cli("issues", "check", str(none), code=1).stderr
