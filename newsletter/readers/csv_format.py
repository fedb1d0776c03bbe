"""The subscriber list as CSV: cells safe to open in a spreadsheet, rows read one by one.

Writing follows OWASP's advice against CSV injection: a cell that a spreadsheet could take for a
formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a `'` in front, and
every cell is quoted. Reading takes that `'` off again, so an export imports back unchanged.
Reading streams the file: one bad row (too long, not UTF-8, broken quoting) is reported with its
line and skipped, and the rest is read.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from newsletter.i18n import _
from newsletter.readers import csv_spreadsheets

# The columns of an export, in order; `subscribers import` reads them back.
COLUMNS = (
    "email",
    "name",
    "status",
    "source",
    "requested_at",
    "confirmed_at",
    "consent_version",
    "consent_basis",
    "created_at",
    "subscribed_at",
    "unsubscribed_at",
    "bounced_at",
    "paused_until",
    "consent_log",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_LINE_BYTES = 256 * 1024  # a longer line is reported and skipped, never read whole
MAX_ROW_BYTES = 1024 * 1024  # a record (over several lines) is cut off and reported past this
DELIMITERS = (",", ";", "\t")


class CsvFileError(ValueError):
    """The file as a whole cannot be read as a list: not a file, no header, no 'email' column."""


class NotInEncoding(CsvFileError):
    """The file is not in the encoding asked for (UTF-8 unless said otherwise)."""


def safe_cell(value: str) -> str:
    """The cell as written: a `'` in front of anything a spreadsheet could run as a formula.

    A value that already begins with quotes before such a character gets one more, so that
    `plain_cell` gives back exactly the value written.
    """
    if value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def plain_cell(cell: str) -> str:
    """The value behind a cell that `safe_cell` wrote (other cells are left as they are)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_START):
        return cell[1:]
    return cell


def _log_line(event: dict[str, Any]) -> str:
    parts = [event["at"], event["event"], f"via {event['source']}"]
    if event["consent_version"]:
        parts.append(f"text {event['consent_version']}")
    if event["detail"]:
        parts.append(f"({event['detail']})")
    if event["client_ip"]:
        parts.append(f"from {event['client_ip']}")
    return " ".join(parts)


def write(out: IO[str], records: Iterable[dict[str, Any]]) -> int:
    """One quoted row per subscriber record (from privacy.export_records); returns the count."""
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        log_text = " | ".join(_log_line(event) for event in record["consent_log"])
        cells = [*(record[c] or "" for c in COLUMNS[:-1]), log_text]
        writer.writerow([safe_cell(str(cell)) for cell in cells])
        count += 1
    return count


# --- reading ---------------------------------------------------------------------------------


class _RowTooLong(Exception):
    """A record ran on past MAX_ROW_BYTES (a quote never closed, most likely)."""


@dataclass
class _Lines:
    """A file's physical lines as text, for csv.reader.

    Lines too long or not UTF-8 are noted by number; a record that runs on past MAX_ROW_BYTES
    raises _RowTooLong out of the reader, which then goes on with the next line.
    """

    raw: BinaryIO
    encoding: str = "utf-8"
    number: int = 0
    row_bytes: int = 0  # read since the record began; the reader loop sets it back to 0
    not_utf8: set[int] = field(default_factory=set)
    too_long: set[int] = field(default_factory=set)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        chunk = self.raw.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            raise StopIteration
        self.number += 1
        if self.number == 1 and self.encoding == "utf-8":
            chunk = chunk.removeprefix(csv_spreadsheets.BOM)
        self.row_bytes += len(chunk)
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            self.too_long.add(self.number)
            while chunk and not chunk.endswith(b"\n"):  # skip the rest, a piece at a time
                chunk = self.raw.readline(MAX_LINE_BYTES)
            return "\n"
        if self.row_bytes > MAX_ROW_BYTES:
            self.row_bytes = 0
            raise _RowTooLong
        try:
            return chunk.decode(self.encoding)
        except UnicodeDecodeError:
            self.not_utf8.add(self.number)
            return chunk.decode(self.encoding, "replace")


@dataclass(frozen=True)
class Row:
    """One record of the file: its first line, and its cells by column (or what is wrong)."""

    line: int
    cells: dict[str, str]
    problem: str | None = None


def _open_regular(path: Path) -> BinaryIO:
    """The file, opened without waiting on a FIFO or device; CsvFileError for those."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CsvFileError(
            _("{file}: cannot read: {reason}").format(file=path, reason=exc.strerror)
        ) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise CsvFileError(_("{file}: not a regular file").format(file=path))
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


class _Delimited(csv.excel):
    """Excel's CSV (double quotes, doubled inside), with the delimiter the header line uses."""


def _dialect(raw: BinaryIO, encoding: str) -> type[csv.Dialect]:
    """Comma, semicolon (Excel in Dutch) or tab: whichever the header line has most of.

    Only the header decides: names and cells below may hold any of them.
    """
    header = raw.readline(MAX_LINE_BYTES).decode(encoding, "replace")
    raw.seek(0)
    counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties go to the first: a comma
    return type("Delimited", (_Delimited,), {"delimiter": best})


def _problem_of(lines: _Lines, first: int, last: int, values: list[str]) -> str | None:
    span = range(first, last + 1)
    if any(n in lines.too_long for n in span):
        return _("longer than {size} KiB; skipped").format(size=MAX_LINE_BYTES // 1024)
    if any(n in lines.not_utf8 for n in span):
        return _("is not {encoding} text").format(
            encoding="UTF-8" if lines.encoding == "utf-8" else lines.encoding
        )
    if last > first and any("\n" in value for value in values):
        return _("a quoted field runs on over lines {first}-{last} (a quote not closed?)").format(
            first=first, last=last
        )
    return None


def read(path: Path, encoding: str = "utf-8") -> Iterator[Row]:
    """Every record of the CSV file, with its line; a record that cannot be used says why.

    The first line names the columns, in Dutch or English (`csv_spreadsheets.columns`): one
    holds the address. Cells are given back as `plain_cell` values. A file that is not in
    `encoding` (UTF-8 unless asked otherwise) is refused whole, saying how to read it.
    """
    # The csv module's own limit (128 KiB a field) would stop mid-record and read the rest of
    # it as new rows; the limits here (per line, per record) are the ones that count.
    csv.field_size_limit(max(csv.field_size_limit(), 2 * MAX_ROW_BYTES))
    try:
        encoding = csv_spreadsheets.usable(encoding)
    except csv_spreadsheets.EncodingError as exc:
        raise CsvFileError(str(exc)) from None
    with _open_regular(path) as raw:
        try:
            csv_spreadsheets.check(raw, encoding, MAX_LINE_BYTES)
        except csv_spreadsheets.EncodingError as exc:
            raise NotInEncoding(f"{path}: {exc}") from None
        lines = _Lines(raw, encoding)
        reader = csv.reader(lines, dialect=_dialect(raw, encoding))
        try:
            header = csv_spreadsheets.columns(next(reader))
        except (StopIteration, csv.Error):
            raise CsvFileError(
                _("{file}: the first line must name the columns").format(file=path)
            ) from None
        except csv_spreadsheets.ColumnError as exc:
            raise CsvFileError(f"{path}: {exc}") from None
        done = lines.number
        while True:
            lines.row_bytes = 0
            try:
                values = next(reader)
            except StopIteration:
                break
            except _RowTooLong:
                cut = _("runs on past {size} KiB (a quote not closed?)").format(
                    size=MAX_ROW_BYTES // 1024
                )
                yield Row(done + 1, dict.fromkeys(header, ""), cut)
                done = lines.number
                continue
            except csv.Error as exc:
                yield Row(
                    done + 1,
                    dict.fromkeys(header, ""),
                    _("unreadable CSV ({reason})").format(reason=exc),
                )
                done = lines.number
                continue
            first, done = done + 1, lines.number
            if not values and first not in lines.too_long:
                continue  # a blank line
            problem = _problem_of(lines, first, done, values)
            if problem is None and len(values) > len(header):
                problem = _("has more fields than the header names")
            cells = dict.fromkeys(header, "")
            cells.update(zip(header, map(plain_cell, values), strict=False))
            yield Row(first, cells, problem)
