"""DKIM test keys (made once per test session) and a DNS stand-in for dkimpy."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import dkim as dkimpy

from newsletter.mail.dkim import generate_key, public_record

DOMAIN = "nieuws.example.nl"


@lru_cache(maxsize=4)
def key_pem(kind: str) -> bytes:
    """One private key of this kind ('rsa' is RSA-2048, or 'ed25519') per test session."""
    return generate_key(kind)[0]


def write_keys(folder: Path) -> dict[str, str]:
    """Both test keys written to `folder`; the NEWSLETTER_DKIM_* variables that use them."""
    paths = []
    for kind in ("rsa", "ed25519"):
        path = folder / f"{kind}.pem"
        path.write_bytes(key_pem(kind))
        paths.append(str(path))
    return {"NEWSLETTER_DKIM_SELECTOR": "nl-rsa,nl-ed", "NEWSLETTER_DKIM_KEY_FILE": ",".join(paths)}


def records() -> dict[str, str]:
    """The TXT records a receiver would look up, by name."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return {
        f"{selector}._domainkey.{DOMAIN}": public_record(load_pem_private_key(key_pem(kind), None))
        for selector, kind in (("nl-rsa", "rsa"), ("nl-ed", "ed25519"))
    }


def dns(found: dict[str, str] | None = None) -> Callable[..., bytes]:
    """A dnsfunc for dkimpy that answers from `found` (default: the test keys' records)."""
    table = found if found is not None else records()

    def lookup(name: bytes | str, timeout: int = 5) -> bytes:
        wanted = (name.decode() if isinstance(name, bytes) else name).rstrip(".")
        return table.get(wanted, "").encode()

    return lookup


def verifies(data: bytes, index: int = 0, found: dict[str, str] | None = None) -> bool:
    """Whether dkimpy verifies the message's index-th DKIM-Signature."""
    try:
        return bool(dkimpy.DKIM(data).verify(idx=index, dnsfunc=dns(found)))
    except dkimpy.DKIMException:  # some failures are raised rather than answered False
        return False


def signed_names(data: bytes, index: int = 0) -> list[str]:
    """The h= list of the index-th signature, in order."""
    import email
    from email import policy

    values = email.message_from_bytes(data, policy=policy.compat32).get_all("DKIM-Signature")
    assert values and len(values) > index
    tags = dict(
        part.strip().split("=", 1) for part in "".join(values[index].split()).split(";") if part
    )
    return tags["h"].split(":")
