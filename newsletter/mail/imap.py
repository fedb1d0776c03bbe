"""The bounce mailbox over IMAP (imaplib): read without marking, move what was handled.

Messages are read with BODY.PEEK[], so reading one sets no flag: a message the project does not
recognise is left exactly as it was. A handled message is moved to a folder of its own, with
MOVE (RFC 6851) where the server has it, else COPY, a \\Deleted flag and UID EXPUNGE of that one
message (UIDPLUS); a server with neither keeps the copy flagged \\Deleted for the mail client.
"""

from __future__ import annotations

import functools
import imaplib
import ssl
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from newsletter.config_values import ImapConfig
from newsletter.i18n import _


class MailboxUnavailable(ConnectionError):
    """The IMAP server could not be reached, refused the login, has no such folder, or failed
    in the middle of a session."""


F = TypeVar("F", bound=Callable[..., Any])


def _session_errors(method: F) -> F:
    """The session's socket and protocol errors, as MailboxUnavailable."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (OSError, imaplib.IMAP4.error) as exc:
            said = _("the bounce mailbox failed: {reason}").format(reason=exc)
            raise MailboxUnavailable(said) from None

    return guarded  # type: ignore[return-value]


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One IMAP session on one folder; use it as a context manager."""

    def __init__(self, config: ImapConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        self._imap: imaplib.IMAP4 | None = None
        self.capabilities: set[str] = set()

    def __enter__(self) -> Mailbox:
        config = self.config
        try:
            if config.security == "tls":
                context = ssl.create_default_context()
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    config.host, config.port, ssl_context=context, timeout=self.timeout
                )
            else:
                imap = imaplib.IMAP4(config.host, config.port, timeout=self.timeout)
            self._imap = imap
            imap.login(config.username, config.password)
            # Servers may offer more after the login (MOVE, UIDPLUS): ask again.
            _ok, listed = imap.capability()
            self.capabilities = set(listed[0].decode("ascii", "replace").upper().split())
            status, _count = imap.select(_quote(config.folder))
        except (OSError, imaplib.IMAP4.error) as exc:
            self.__exit__(None, None, None)
            raise MailboxUnavailable(
                _("cannot read the bounce mailbox at {host}:{port}: {reason}").format(
                    host=config.host, port=config.port, reason=exc
                )
            ) from None
        if status != "OK":
            self.__exit__(None, None, None)
            raise MailboxUnavailable(
                _("the bounce mailbox has no folder {folder!r}").format(folder=config.folder)
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            imap.shutdown()

    @property
    def imap(self) -> imaplib.IMAP4:
        assert self._imap is not None, "use the mailbox as a context manager"
        return self._imap

    @_session_errors
    def uids(self) -> list[str]:
        """Every message in the folder that is not flagged deleted, oldest first."""
        status, data = self.imap.uid("SEARCH", "UNDELETED")
        if status != "OK" or not data or not data[0]:
            return []
        return [uid.decode("ascii") for uid in data[0].split()]

    @_session_errors
    def read(self, uid: str) -> bytes | None:
        """One message's bytes, without marking it seen; None if it went away meanwhile."""
        status, data = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
        if status != "OK":
            return None
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        return None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for uid in self.uids():
            data = self.read(uid)
            if data is not None:
                yield uid, data

    @_session_errors
    def ensure_folder(self, folder: str) -> None:
        status, listed = self.imap.list('""', _quote(folder))
        if status == "OK" and any(item for item in listed if item):
            return
        self.imap.create(_quote(folder))

    @_session_errors
    def move(self, uid: str, folder: str) -> None:
        """Move one message to `folder` (created when missing)."""
        self.ensure_folder(folder)
        capabilities = self.capabilities
        if "MOVE" in capabilities:
            status, data = self.imap.uid("MOVE", uid, _quote(folder))
            if status == "OK":
                return
        status, data = self.imap.uid("COPY", uid, _quote(folder))
        if status != "OK":
            raise MailboxUnavailable(
                _("could not copy a message to {folder!r}: {reply!r}").format(
                    folder=folder, reply=data
                )
            )
        self.imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in capabilities:
            self.imap.uid("EXPUNGE", uid)
