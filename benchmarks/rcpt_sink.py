"""A recording SMTP sink for the web benchmark: RCPT TO and the time each message ended.

    .venv/bin/python -m benchmarks.rcpt_sink PORT OUT-FILE

Postfix's smtp-sink can dump whole messages (-D, -d), which at 100,000 letters of 20 KB is
2 GB of writing; it logs commands only to syslog. This sink, in a process of its own, speaks
just enough SMTP (with PIPELINING) to take messages, keeps each recipient with the wall time the
message's final dot arrived (the hand-over), and writes `time<TAB>recipient` lines to OUT-FILE
when it receives SIGTERM. It is slower than smtp-sink: the benchmark that uses it compares rates
measured against it only with each other.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

RECORDS: list[tuple[float, bytes]] = []
EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n"


class Session(asyncio.Protocol):
    """One SMTP connection: commands line by line, message data skipped to its final dot."""

    def __init__(self) -> None:
        self.buffer = b""
        self.in_data = False
        self.recipients: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        while self._step(replies):
            pass
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def _step(self, replies: list[bytes]) -> bool:
        """Handle one command or one message end from the buffer; False when it needs more."""
        if self.in_data:
            end = self.buffer.find(b"\r\n.\r\n")
            if end < 0:
                self.buffer = self.buffer[-4:]  # the final dot may straddle two reads
                return False
            now = time.time()
            RECORDS.extend((now, recipient) for recipient in self.recipients)
            self.buffer, self.in_data, self.recipients = self.buffer[end + 5 :], False, []
            replies.append(b"250 2.0.0 Ok: queued\r\n")
            return True
        line_end = self.buffer.find(b"\r\n")
        if line_end < 0:
            return False
        line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
        verb = line[:4].upper()
        if verb == b"RCPT":
            self.recipients.append(line.split(b"<", 1)[-1].split(b">", 1)[0].lower())
        elif verb in (b"MAIL", b"RSET"):
            self.recipients = []
        if verb == b"EHLO":
            replies.append(EHLO)
        elif verb == b"DATA":
            self.in_data = True
            self.buffer = b"\r\n" + self.buffer  # so an empty message's dot is found too
            replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            replies.append(b"221 2.0.0 Bye\r\n")
            if self.transport is not None:
                self.transport.write(b"".join(replies))
                replies.clear()
                self.transport.close()
            return False
        else:
            replies.append(b"250 2.0.0 Ok\r\n")
        return True


async def serve(port: int, out: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_server(Session, "127.0.0.1", port)
    await stop.wait()
    server.close()
    with out.open("w") as file:
        for when, recipient in RECORDS:
            file.write(f"{when:.6f}\t{recipient.decode(errors='replace')}\n")


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
