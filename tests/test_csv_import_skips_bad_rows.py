"""One bad row fails only itself: too long, not UTF-8, broken quoting, each reported by line.

The good rows around them are imported; a FIFO given as the file is refused at once by name.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Subscriber
from tests.support.cli import Cli


def emails(factory: sessionmaker[Session]) -> set[str]:
    with factory() as session:
        return set(session.scalars(select(Subscriber.email)))


def test_bad_rows_are_reported_by_line_and_the_good_ones_imported(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    lijst = tmp_path / "lijst.csv"
    lijst.write_bytes(
        b"email,name\n"
        b"anna@example.com,Zo\xc3\xab\n"  # UTF-8 beyond ASCII: a UTF-8 file, line 5 a bad row
        b"bram@example.com," + b"x" * 300_000 + b"\n"  # 3: a field of 300 KB
        b"cor@example.com,Cor\n"
        b"daan@example.com,D\xe9\xe9n\n"  # 5: Latin-1, not UTF-8
        b"eva@example.com,Eva\n"
        b'fleur@example.com,"Fleur\n'  # 7: a quote never closed swallows what follows
        b"gijs@example.com,Gijs\n"
    )
    result = cli("subscribers", "import", str(lijst), "--consent", "test", code=1)
    assert f"{lijst}:3: skipped: longer than 256 KiB" in result.stderr
    assert f"{lijst}:5: skipped: is not UTF-8 text" in result.stderr
    assert f"{lijst}:7: skipped: a quoted field runs on over lines 7-8" in result.stderr
    assert "Imported 3," in result.stdout and "skipped 3 bad rows" in result.stdout
    assert emails(factory) == {"anna@example.com", "cor@example.com", "eva@example.com"}
    assert "x" * 100 not in result.stderr + result.stdout


def test_a_field_past_the_csv_modules_own_limit_fails_only_its_row(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    lijst = tmp_path / "lijst.csv"
    long_quoted = b'"' + b"y\n" * 70_000 + b'"'  # 140 KB in one quoted field, over many lines
    lijst.write_bytes(
        b"email,name\nanna@example.com,Anna\nbram@example.com," + long_quoted + b"\n"
        b"cor@example.com,Cor\n"
    )
    result = cli("subscribers", "import", str(lijst), code=1)
    assert f"{lijst}:3: skipped:" in result.stderr
    assert "anna@example.com" in emails(factory) and "cor@example.com" in emails(factory)


def test_a_quote_never_closed_is_cut_off_and_reported_briefly(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    lijst = tmp_path / "lijst.csv"
    lijst.write_bytes(
        b"email,name\nanna@example.com,Anna\n"
        b'hans@example.com,"Hans\n' + (b"y" * 200_000 + b"\n") * 7 + b"ina@example.com,Ina\n"
    )
    result = cli("subscribers", "import", str(lijst), code=1)
    assert f"{lijst}:3: skipped: runs on past 1024 KiB (a quote not closed?)" in result.stderr
    assert len(result.stderr) + len(result.stdout) < 5000  # no cell is echoed whole
    assert emails(factory) == {"anna@example.com", "ina@example.com"}


def test_a_fifo_is_refused_by_name_without_waiting(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    fifo = tmp_path / "lijst.csv"
    os.mkfifo(fifo)
    outcome: list[str] = []

    def run() -> None:
        outcome.append(cli("subscribers", "import", str(fifo), code=1).stderr)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # let the import go, then fail: it waited for a writer
        with fifo.open("w") as writer:
            writer.write("email\n")
        raise AssertionError("the import waited on a FIFO")
    assert "not a regular file" in outcome[0] and str(fifo) in outcome[0]
    assert emails(factory) == set()
