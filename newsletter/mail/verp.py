"""Delivery tags: VERP return paths and keyed Message-IDs that name a delivery without showing it.

A tag is one AES block over the delivery id (8 bytes) and a truncated HMAC of it (8 bytes),
written in hex: 32 characters, the same for every try of a delivery. Nobody
without the secret key can read the id out of it (nor guess the list's size from it) or make a
tag that names another delivery: a forged bounce names no reader. Hex, because mail systems
may fold the case of a local part, and because it is cheap to write per message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from newsletter.tokens import keyed_hash

TAG_LENGTH = 32
_ID_BYTES = 8


@lru_cache(maxsize=16)
def _cipher(key: bytes) -> Cipher[modes.ECB]:
    # One block of random-looking data under a key of its own purpose: ECB is exactly AES here.
    block_key = keyed_hash(key, "delivery-tag-cipher", b"")[:16]
    return Cipher(algorithms.AES(block_key), modes.ECB())  # noqa: S305 - a single block


_local = threading.local()


def _encrypt(key: bytes, block: bytes) -> bytes:
    """AES of one block; ECB keeps no state between blocks, so each thread reuses its context."""
    contexts: dict[bytes, Any] = _local.__dict__.setdefault("encryptors", {})
    context = contexts.get(key)
    if context is None:
        context = contexts[key] = _cipher(key).encryptor()
    return bytes(context.update(block))


def _mac(key: bytes, raw_id: bytes) -> bytes:
    # The same bytes as tokens.keyed_hash(key, "delivery-tag", raw_id), in one C call.
    return hmac.digest(key, b"delivery-tag\0" + raw_id, "sha256")[:8]


def make_tag(keys: Sequence[bytes], delivery_id: int) -> str:
    """The tag of a delivery, under the current key."""
    return _block(keys[0], delivery_id).hex()


@lru_cache(maxsize=1024)  # the Message-ID and the return path of one message share it
def _block(key: bytes, delivery_id: int) -> bytes:
    raw_id = delivery_id.to_bytes(_ID_BYTES, "big")
    return _encrypt(key, raw_id + _mac(key, raw_id))


def read_tag(keys: Sequence[bytes], tag: str) -> int | None:
    """The delivery id in a tag made with any current or older key; None for anything else."""
    if len(tag) != TAG_LENGTH or not tag.isascii():
        return None
    try:
        block = bytes.fromhex(tag)
    except ValueError:
        return None
    return _read_block(keys, block)


def _read_block(keys: Sequence[bytes], block: bytes) -> int | None:
    if len(block) != 16:
        return None
    for key in keys:
        decryptor = _cipher(key).decryptor()
        plain = decryptor.update(block) + decryptor.finalize()
        raw_id, mac = plain[:_ID_BYTES], plain[_ID_BYTES:]
        if hmac.compare_digest(mac, _mac(key, raw_id)):
            return int.from_bytes(raw_id, "big")
    return None


def return_path(bounce_address: str, tag: str) -> str:
    """`bounces@nieuws.example.nl` with a tag: `bounces+<tag>@nieuws.example.nl`."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{tag}@{domain}"


def tag_of_address(address: str, bounce_address: str) -> str | None:
    """The tag in an address of the form `bounces+<tag>@domain` (case-insensitive), or None."""
    address = address.strip().strip("<>").strip()
    local, _, domain = address.rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    head, plus, tag = local.partition("+")
    if not plus or head.lower() != base_local.lower() or domain.lower() != base_domain.lower():
        return None
    return tag.lower()


def message_id(seed: str, keys: Sequence[bytes], delivery_id: int, domain: str) -> str:
    """The Message-ID of a delivery: the edition's seed and the delivery's tag block, in
    base64url (22 characters, so the header stays within 78 for most domains)."""
    tag = base64.urlsafe_b64encode(_block(keys[0], delivery_id)).rstrip(b"=").decode("ascii")
    return f"<{seed}.{tag}@{domain}>"


def read_message_id(keys: Sequence[bytes], value: str) -> tuple[str, int] | None:
    """(edition seed, delivery id) from a Message-ID we made; None for any other."""
    local = value.strip().strip("<>").rpartition("@")[0]
    seed, dot, tag = local.rpartition(".")
    if not dot or not seed or len(tag) != 22 or not tag.isascii():
        return None
    try:
        block = base64.urlsafe_b64decode(tag + "==")
    except (binascii.Error, ValueError):
        return None
    delivery_id = _read_block(keys, block)
    return None if delivery_id is None else (seed, delivery_id)
