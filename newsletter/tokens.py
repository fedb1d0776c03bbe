"""Signed, opaque link tokens: a random id plus a truncated HMAC, checked in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from datetime import UTC, datetime

_MAC_BYTES = 16
_ID_BYTES = 16


class InvalidToken(ValueError):
    """The token was tampered with, signed with an unknown key, malformed or expired."""


def new_token_id() -> str:
    """A random 128-bit id (hex): what links carry instead of the address or the row id."""
    return secrets.token_hex(_ID_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not a token") from None


def keyed_hash(key: bytes, purpose: str, data: bytes) -> bytes:
    """HMAC-SHA256 of `data`, separated by purpose so no hash can stand in for another's."""
    return hmac.new(key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()


def _mac(key: bytes, purpose: str, payload: bytes) -> bytes:
    return keyed_hash(key, purpose, payload)[:_MAC_BYTES]


def sign(keys: list[bytes], purpose: str, token_id: str, expires: datetime | None = None) -> str:
    """A URL-safe token for `purpose` (e.g. 'unsubscribe') over the hex id, optionally expiring."""
    payload = bytes.fromhex(token_id)
    if expires is not None:
        payload += struct.pack(">Q", int(expires.timestamp()))
    return _b64(payload + _mac(keys[0], purpose, payload))


def verify(keys: list[bytes], purpose: str, token: str, now: datetime | None = None) -> str:
    """The hex id inside a valid token; any current or older key is accepted."""
    if not token or len(token) > 64 or not token.isascii():
        raise InvalidToken("not a token")
    raw = _unb64(token)
    if _b64(raw) != token:  # base64 leaves spare bits in the last character: one spelling only
        raise InvalidToken("not a token")
    if len(raw) not in (_ID_BYTES + _MAC_BYTES, _ID_BYTES + 8 + _MAC_BYTES):
        raise InvalidToken("not a token")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not any(hmac.compare_digest(mac, _mac(key, purpose, payload)) for key in keys):
        raise InvalidToken("bad signature")
    if len(payload) > _ID_BYTES:
        (expires,) = struct.unpack(">Q", payload[_ID_BYTES:])
        if (now or datetime.now(UTC)).timestamp() > expires:
            raise InvalidToken("expired")
    return payload[:_ID_BYTES].hex()
