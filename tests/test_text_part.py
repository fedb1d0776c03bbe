"""The plain-text part, as the relay received it: rendered from the Markdown, line by line."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.mail.rendering import IssueContent, render_edition
from newsletter.publishing.issue_files import IssueFileError, parse_issue
from newsletter.settings import Settings
from tests.support.cli import Cli
from tests.support.databases import installation_env, settings_from
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of

SEED = "0123456789abcdef"
BODY = """\
## Onderweg

Soms is *loslaten* het **zachtste** wat je kunt doen. Lees ook [dit gedicht van een \
dichter die ik graag lees](https://voorbeeld.nl/gedichten/kopland) of kijk op \
<https://voorbeeld.nl/rust>.

Ik adem in,
ik adem uit,
en alles mag er _zijn_.

### Drie kleine dingen

- merk op wat je **vasthoudt**;
- adem uit, langer dan je inademt, en laat je schouders zakken zonder dat het iets hoeft;
- kijk wat blijft.

1. Eerst dit.
2. Dan [dat](https://voorbeeld.nl/dat), en [dit gedicht](https://voorbeeld.nl/gedichten/kopland) \
nog eens.

> Wie niets vasthoudt,
> heeft de handen vrij.
"""

EXPECTED = """\
Wekelijks moment van rust
zondag 2 november 2025 · Loslaten


Een open hand

Hallo Anna,

Onderweg

Soms is loslaten het zachtste wat je kunt doen. Lees ook dit gedicht van
een dichter die ik graag lees [1] of kijk op https://voorbeeld.nl/rust.

Ik adem in,
ik adem uit,
en alles mag er zijn.

Drie kleine dingen

- merk op wat je vasthoudt;
- adem uit, langer dan je inademt, en laat je schouders zakken zonder
  dat het iets hoeft;
- kijk wat blijft.

1. Eerst dit.
2. Dan dat [2], en dit gedicht [1] nog eens.

    Wie niets vasthoudt,
    heeft de handen vrij.

                                  · · ·

Vraag voor deze week:

    Wat mag je deze week uit handen geven?

                                  · · ·

Neem er de tijd voor; een antwoord hoeft niet meteen.

Met warme groet,
Marieke


Links in deze brief:
[1] https://voorbeeld.nl/gedichten/kopland
[2] https://voorbeeld.nl/dat


Lees deze brief online:
https://nieuws.example.nl/archief/onderweg


----------------------------------------
Je krijgt deze wekelijkse brief van Zachte Zondag omdat je je voor
Wekelijks moment van rust hebt aangemeld.

Afzender: Zachte Zondag <nieuws@nieuws.example.nl>

Afmelden, of een paar weken pauzeren:
{url}

Afmelden kan altijd en gaat meteen in; je hoeft niets uit te leggen.
"""


def test_the_text_part_reads_as_a_letter_line_by_line(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "onderweg", body=BODY)))
    cli("subscribers", "add", "anna@example.com", "--name", "Anna")
    cli(
        "send",
        "--now",
        "2025-11-02T07:00",
        NEWSLETTER_SMTP_URL=smtp_server.url,
        NEWSLETTER_AUTHOR_NAME="Marieke",
    )
    (item,) = smtp_server.received
    url = re.fullmatch(r"<(.+)>", item.message["List-Unsubscribe"])
    assert url is not None
    text = body_of(item.message, "plain").replace("\r\n", "\n")
    assert text.rstrip("\n").split("\n") == EXPECTED.format(url=url.group(1)).rstrip("\n").split(
        "\n"
    )
    assert not re.search(r"[*_#]", text.replace(url.group(1), ""))
    assert max(len(line) for line in text.split("\n") if line != url.group(1)) <= 72


def test_the_html_keeps_the_authors_line_breaks_and_headings_below_the_subject(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "onderweg", body=BODY)))
    cli("subscribers", "add", "anna@example.com")
    cli("send", "--now", "2025-11-02T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    html = body_of(smtp_server.received[0].message, "html").replace("\r\n", "\n")
    assert re.search(r"<h1[^>]*>Een open hand</h1>", html)
    assert re.search(r"<h2[^>]*>Vraag voor deze week</h2>", html)
    assert "<h2>Onderweg</h2>" in html and "<h3>Drie kleine dingen</h3>" in html
    assert "Ik adem in,<br />\nik adem uit,<br />\nen alles mag er <em>zijn</em>." in html
    assert '<meta name="format-detection"' in html
    assert '<meta name="x-apple-disable-message-reformatting"' in html
    assert "Wekelijks moment van rust omdat je je voor Wekelijks" not in html


# --- any body the checks accept ---------------------------------------------------------

LONG_URL = "https://voorbeeld.nl/een/heel/lang/adres/dat/maar/doorgaat/en/doorgaat/zonder/einde"
PIECES = st.sampled_from(
    [
        "# ",
        "## ",
        "- ",
        "1. ",
        "> ",
        "*",
        "**",
        "_",
        "`",
        "\\",
        "\n",
        "\n\n",
        "    ",
        "[tekst](https://voorbeeld.nl/pad)",
        f"<{LONG_URL}>",
        "![een beeld](https://voorbeeld.nl/beeld.jpg)",
        "---",
        "café",
        "ruïne",
        "‘quotes’",
        "— ",
        "een",
        "woord",
        "en",
        "nog",
        "https://voorbeeld.nl/x",
        "iemand@voorbeeld.nl",
        "{{ x }}",
        "<b>",
        "&amp;",
        "Onoverzichtelijkheidsverschijnselenbestrijdingsmaatregelenpakketvoorstel",
    ]
)  # fmt: skip - one sample per line would run to a hundred lines
WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
BODIES = st.lists(st.one_of(PIECES, WORDS, st.just(" ")), min_size=1, max_size=80).map("".join)


def accepted(body: str, settings: Settings) -> bool:
    """Whether `issues check` accepts this body (checked the way the CLI checks a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_issue(Path(folder), "brief", body=body)
        try:
            parse_issue(path, settings.themes, settings.issues_dir / "beelden")
        except IssueFileError:
            return False
    return True


def message_for(body: str, settings: Settings) -> EmailMessage:
    rendered = render_edition(
        IssueContent("Een open hand", "loslaten", "Wat blijft?", None, body),
        settings,
        seed=SEED,
        send_at=datetime(2025, 11, 2, 6, tzinfo=UTC),
        letter_url="https://nieuws.example.nl/archief/brief",
    )
    edition = EditionMessage(
        settings, subject=rendered.subject, html=rendered.html, text=rendered.text, seed=SEED
    )
    recipient = Recipient(1, "anna@example.com", "Anna", "https://nieuws.example.nl/afmelden/t")
    data = edition.build(recipient, datetime(2025, 11, 2, 6, tzinfo=UTC))
    assert data.isascii() and max(map(len, data.split(b"\r\n"))) <= 998
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        assert part.defects == [], part.defects
    return parsed


def unbreakable(line: str) -> bool:
    """A line longer than 72 holds one word that is longer itself (after a list mark).

    Words are split at spaces only: a no-break space the author typed keeps its words together.
    """
    words = [word for word in line.split(" ") if word]
    return len(words) == 1 or (len(words) == 2 and bool(re.fullmatch(r"-|\d+\.|\[\d+\]", words[0])))


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
@example(body=f"<{LONG_URL}>\xa00")  # a no-break space after a long address: one unbreakable line
def test_any_accepted_body_gives_short_lines_and_a_message_without_defects(body: str) -> None:
    settings = settings_from(installation_env("sqlite:///unused.db", Path("/nonexistent")))
    if not accepted(body, settings):
        return
    parsed = message_for(body.strip("\n") + "\n", settings)
    text = body_of(parsed, "plain").replace("\r\n", "\n")
    long = [line for line in text.split("\n") if len(line) > 72 and not unbreakable(line)]
    assert long == []
    assert text.count("Wat blijft?") == 1 and "Hallo Anna," in text
    assert f"NLP{SEED}" not in text + body_of(parsed, "html")  # every marker was filled in
