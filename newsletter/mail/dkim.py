"""DKIM signatures (RFC 6376; Ed25519 per RFC 8463) made by OpenSSL through `cryptography`.

relaxed/relaxed canonicalisation; `h=` names the list headers so that Gmail offers its one-click
button (RFC 8058 §4), and oversigns From, Subject, List-Unsubscribe and List-Unsubscribe-Post: a
second copy added on the way breaks the signature. With two keys (RSA and Ed25519) a message
gets two signatures, so receivers that know only RSA still verify one.

The body hash of a letter is computed from its pre-encoded pieces (`BodyHasher`): every piece is
whole lines, so the relaxed body canonicalisation is applied per piece, once per edition for the
static pieces, and the hash state before the first personal piece is copied, not recomputed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from newsletter.config_values import read_dkim_key
from newsletter.settings import Settings

SIGNED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
)
OVERSIGNED = frozenset({"from", "subject", "list-unsubscribe", "list-unsubscribe-post"})
_WSP = re.compile(rb"[ \t]+")


def relaxed_lines(data: bytes) -> bytes:
    """Relaxed body canonicalisation of whole CRLF lines (RFC 6376 §3.4.4), without the rule
    about empty lines at the very end (see `relaxed_body`)."""
    return _WSP.sub(b" ", data).replace(b" \r\n", b"\r\n")


def relaxed_body(body: bytes) -> bytes:
    """Relaxed canonicalisation of a whole body."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = relaxed_lines(body)
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """`name:value` per RFC 6376 §3.4.2, with its CRLF."""
    if b"\r" in value or b"\t" in value or b"  " in value:
        value = _WSP.sub(b" ", value.replace(b"\r\n", b""))
    return name.strip().lower() + b":" + value.strip(b" ") + b"\r\n"


def header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """A CRLF header block as (name, raw value) pairs; continuation lines stay in the value."""
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


class BodyHasher:
    """SHA-256 of a relaxed body made of static pieces (bytes) and personal slots (ints)."""

    def __init__(self, template: Sequence[bytes | int]) -> None:
        pieces: list[bytes | int] = [
            relaxed_lines(p) if isinstance(p, bytes) else p for p in template
        ]
        if not pieces or not isinstance(pieces[-1], bytes) or not pieces[-1].strip():
            raise ValueError("the body must end with a static, non-empty piece")
        self.prefix = hashlib.sha256()
        start = 0
        while start < len(pieces):
            piece = pieces[start]
            if not isinstance(piece, bytes):
                break
            self.prefix.update(piece)
            start += 1
        self.rest = pieces[start:]

    def digest(self, values: Sequence[bytes]) -> bytes:
        """The body hash with these personal pieces (each whole lines) in their slots."""
        state = self.prefix.copy()
        for piece in self.rest:
            state.update(piece if isinstance(piece, bytes) else relaxed_lines(values[piece]))
        return state.digest()


@dataclass(frozen=True)
class _Key:
    selector: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    sign: Callable[[bytes], bytes]


def _key(selector: str, private: Any) -> _Key:
    if isinstance(private, rsa.RSAPrivateKey):

        def sign_rsa(data: bytes) -> bytes:
            return bytes(private.sign(data, padding.PKCS1v15(), hashes.SHA256()))

        return _Key(selector, "rsa-sha256", sign_rsa)
    assert isinstance(private, ed25519.Ed25519PrivateKey)

    def sign_ed25519(data: bytes) -> bytes:
        # RFC 8463 §3: Ed25519 signs the SHA-256 of the canonicalised headers (PureEdDSA).
        return bytes(private.sign(hashlib.sha256(data).digest()))

    return _Key(selector, "ed25519-sha256", sign_ed25519)


def _fold_names(names: list[str]) -> str:
    lines, current = [], "h="
    for index, name in enumerate(names):
        item = name + (":" if index < len(names) - 1 else ";")
        if len(current) + len(item) > 70:
            lines.append(current)
            current = ""
        current += item
    return "\r\n\t".join([*lines, current])


@lru_cache(maxsize=64)
def _layout(present: tuple[bytes, ...]) -> tuple[tuple[int, ...], str]:
    """For a message whose header names are `present` (lower case, in order): the indices of
    the fields to hash, in h= order (each name's instances from the bottom up), and the folded
    h= tag, where oversigned names appear once more than they occur. The same for every letter
    of an edition, so computed once."""
    names: list[str] = []
    plan: list[int] = []
    for name in SIGNED:
        found = [i for i, n in enumerate(present) if n == name.encode("ascii")]
        names += [name] * (len(found) + (name in OVERSIGNED))
        plan += reversed(found)
    return tuple(plan), _fold_names(names)


def _fold_b64(value: str) -> bytes:
    return b"\r\n\t".join(value[i : i + 72].encode("ascii") for i in range(0, len(value), 72))


class Signer:
    """Signs header blocks for one domain with one or two (selector, private key) pairs."""

    def __init__(
        self,
        domain: str,
        keys: Sequence[tuple[str, Any]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.domain = domain
        self.keys = [_key(selector, private) for selector, private in keys]
        self.clock = clock
        self._static: dict[bytes, list[tuple[bytes, bytes]]] = {}

    def _canonical(self, block: bytes, static: bool) -> list[tuple[bytes, bytes]]:
        """(lower-case name, canonical field) per field of a header block; a block that is the
        same for every message of an edition is canonicalised once (keyed by its bytes)."""
        found = self._static.get(block) if static else None
        if found is None:
            found = [
                (name.strip().lower(), relaxed_header(name, value))
                for name, value in header_fields(block)
            ]
            if static:
                if len(self._static) >= 64:  # a long-running worker sends many editions
                    self._static.clear()
                self._static[block] = found
        return found

    def signatures(self, blocks: Sequence[tuple[bytes, bool]], body_hash: bytes) -> bytes:
        """The DKIM-Signature header lines (CRLF-ended) to put before the header, given as
        blocks of whole fields in order, each marked whether it is the same for every message."""
        fields = [field for block, static in blocks for field in self._canonical(block, static)]
        plan, h_tag = _layout(tuple(name for name, _ in fields))
        signed = b"".join(fields[index][1] for index in plan)
        bh = base64.b64encode(body_hash).decode("ascii")
        out: list[bytes] = []
        for key in self.keys:
            tags = (
                f" v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n\td={self.domain};"
                f" s={key.selector}; t={int(self.clock())};\r\n\t{h_tag}"
                f"\r\n\tbh={bh};\r\n\tb="
            ).encode("ascii")
            # Our own tags hold no runs of white space: unfolding is all relaxed asks of them.
            unsigned = b"dkim-signature:" + tags.replace(b"\r\n\t", b" ").strip(b" ")
            signature = base64.b64encode(key.sign(signed + unsigned)).decode("ascii")
            out.append(b"DKIM-Signature:" + tags + _fold_b64(signature) + b"\r\n")
        return b"".join(out)

    def sign_message(self, data: bytes) -> bytes:
        """A whole message (CRLF line ends) with its signatures in front."""
        head, _, body = data.partition(b"\r\n\r\n")
        body_hash = hashlib.sha256(relaxed_body(body)).digest()
        return self.signatures([(head + b"\r\n", False)], body_hash) + data


def public_record(private: Any) -> str:
    """The DNS TXT value to publish at `<selector>._domainkey.<domain>` for this key."""
    if isinstance(private, rsa.RSAPrivateKey):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def key_paths(settings: Settings) -> list[tuple[str, Path]]:
    """(selector, key file) pairs: NEWSLETTER_DKIM_SELECTOR and _KEY_FILE, comma-separated."""
    selectors = (settings.dkim_selector or "").split(",")
    files = [item.strip() for item in (settings.dkim_key_file or "").split(",") if item.strip()]
    return [(selector, Path(file)) for selector, file in zip(selectors, files, strict=False)]


def signing_domain(settings: Settings) -> str:
    """NEWSLETTER_DKIM_DOMAIN, or the From domain."""
    return settings.dkim_domain or settings.sender_domain.lower()


_signers: dict[tuple[str, str, str], Signer] = {}


def signer_for(settings: Settings) -> Signer | None:
    """The installation's signer, or None without NEWSLETTER_DKIM_* settings (one per process)."""
    if not settings.dkim_selector or not settings.dkim_key_file:
        return None
    cache_key = (signing_domain(settings), settings.dkim_selector, settings.dkim_key_file)
    signer = _signers.get(cache_key)
    if signer is None:
        keys = [(selector, read_dkim_key(path)) for selector, path in key_paths(settings)]
        signer = _signers[cache_key] = Signer(cache_key[0], keys)
    return signer


def generate_key(kind: str = "rsa", bits: int = 2048) -> tuple[bytes, Any]:
    """A new private key (PKCS#8 PEM, unencrypted) and the key itself: 'rsa' or 'ed25519'."""
    private: Any
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=max(bits, 2048))
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, private


def zone_line(selector: str, domain: str, record: str) -> str:
    """The record as a zone-file line, in quoted strings of at most 255 characters."""
    chunks = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"
