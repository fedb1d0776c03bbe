"""What the web server may write to its logs: never a token, never a whole client address.

The access log is off unless NEWSLETTER_ACCESS_LOG is on (the consent text promises no click
log). When on, each line shows the route with its token replaced by `…` (`/afmelden/…`), no
query string, and the client's network shortened as the consent log does (IPv4 /24, IPv6 /48).
"""

from __future__ import annotations

import logging
import re

from newsletter import links
from newsletter.readers import consent

ACCESS_LOGGER = "uvicorn.access"
HIDDEN = "…"
STATIC = links.STATIC.strip("/")
# A short, plain segment (a route's name, a static file's, a scanner's guess) may be shown;
# every token is longer than this (43 characters and up), so none ever is.
_SHOWN = re.compile(r"[A-Za-z0-9._-]{1,32}")


def path_for_log(full_path: str) -> str:
    """The path as the log may show it: `/afmelden/<token>?x=1` becomes `/afmelden/…?…`.

    Only the first segment is shown (and the file names under /static), when short and plain.
    """
    path, _, query = full_path.partition("?")
    segments = path.split("/")[1:]
    shown = [
        segment
        if _SHOWN.fullmatch(segment) and (index == 0 or segments[0] == STATIC)
        else (HIDDEN if segment else "")
        for index, segment in enumerate(segments)
    ]
    return "/" + "/".join(shown) + ("?" + HIDDEN if query else "")


def client_for_log(client: str) -> str:
    """'203.0.113.77:51234' as '203.0.113.0/24'; anything unreadable as '-'."""
    host = client.rpartition(":")[0] or client
    return consent.shorten_ip(host.strip("[]")) or "-"


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn's access records (client, method, path, version, status) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            record.args = (
                client_for_log(str(client)),
                method,
                path_for_log(str(path)),
                version,
                status,
            )  # fmt: skip - one tuple, as uvicorn made it
        else:  # not the line we know: say nothing rather than something with a token in it
            record.msg, record.args = "access log line left out", ()
        return True


def install_access_log() -> None:
    """Filter uvicorn's access log; call after uvicorn has set up its logging."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogFilter) for f in logger.filters):
        logger.addFilter(AccessLogFilter())
