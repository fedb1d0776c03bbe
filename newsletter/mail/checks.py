"""Checks of the sending set-up that `newsletter check` runs: DKIM and the bounce address.

Each returns findings (problems, warnings and notes); nothing here prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from newsletter.config_values import read_dkim_key
from newsletter.i18n import N_, _
from newsletter.mail import dkim
from newsletter.settings import Settings


@dataclass(frozen=True)
class Finding:
    level: str  # problem | warning | note
    text: str


RELAY_MUST_SIGN = N_(
    "No NEWSLETTER_DKIM_SELECTOR / NEWSLETTER_DKIM_KEY_FILE: the messages leave unsigned, so the "
    "relay must sign them with DKIM for the From domain, and must sign and oversign "
    "List-Unsubscribe-Post (and List-Unsubscribe), or Gmail offers no one-click unsubscribe "
    "(RFC 8058 §4). OpenDKIM and rspamd leave it out by default: see the README's "
    "'Signing at the relay'."
)


def test_message(settings: Settings) -> bytes:
    """A message with every header the letters carry, for signing and verifying."""
    url = f"{settings.base_url}/afmelden/test"
    lines = [
        f"From: {settings.sender.addr_spec}",
        f"To: test@{settings.sender_domain}",
        "Subject: DKIM test",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: <dkim-test@{settings.sender_domain}>",
        f"List-Id: <{settings.effective_list_id}>",
        f"List-Unsubscribe: <{url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f"Feedback-ID: test:mail:{settings.feedback_sender_id}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "",
        "Een test.",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _aligned(signing: str, from_domain: str) -> bool:
    signing, from_domain = signing.lower(), from_domain.lower()
    return from_domain == signing or from_domain.endswith("." + signing)


def dkim_checks(settings: Settings) -> list[Finding]:
    """Sign a test message, verify it with dkimpy against the records to publish, say which."""
    import dkim as dkimpy  # here: only `newsletter check` verifies, and dkimpy is large

    signer = dkim.signer_for(settings)
    if signer is None:
        return [Finding("warning", _(RELAY_MUST_SIGN))]
    records = {
        f"{selector}._domainkey.{signer.domain}": (
            selector,
            dkim.public_record(read_dkim_key(path)),
        )
        for selector, path in dkim.key_paths(settings)
    }

    def dns(query: bytes | str, timeout: int = 5) -> bytes:
        wanted = query.decode() if isinstance(query, bytes) else query
        found = records.get(wanted.rstrip("."))
        return found[1].encode() if found else b""

    signed = signer.sign_message(test_message(settings))
    findings: list[Finding] = []
    for index, (selector, record) in enumerate(records.values()):
        ok = dkimpy.DKIM(signed).verify(idx=index, dnsfunc=dns)
        algorithm = record.split("k=")[1].split(";")[0]
        if ok:
            line = dkim.zone_line(selector, signer.domain, record)
            said = _("DKIM ({algorithm}): a test message verifies; publish")
            findings.append(Finding("note", f"{said.format(algorithm=algorithm)}\n  {line}"))
        else:
            said = _("DKIM ({algorithm}): the test signature fails")
            findings.append(Finding("problem", said.format(algorithm=algorithm)))
    if not _aligned(signer.domain, settings.sender_domain):
        findings.append(
            Finding(
                "warning",
                _(
                    "DKIM signs for {signing}, which is not the From domain {sender} or a "
                    "parent of it: DMARC will not align."
                ).format(signing=signer.domain, sender=settings.sender_domain),
            )
        )
    return findings


def bounce_checks(settings: Settings) -> list[Finding]:
    """Where bounces go, and whether the return path aligns with the From domain (SPF)."""
    if not settings.bounce_address:
        return [
            Finding(
                "warning",
                _(
                    "No NEWSLETTER_BOUNCE_ADDRESS: bounces go to the From address and are not "
                    "read. Set it (e.g. bounces@<From domain>) and feed that mailbox to "
                    "`newsletter bounces ingest` or NEWSLETTER_BOUNCE_IMAP_URL."
                ),
            )
        ]
    said = _("Return path: {address} with a VERP tag.")
    findings = [Finding("note", said.format(address=settings.bounce_address))]
    domain = settings.bounce_address.rpartition("@")[2]
    if not (_aligned(domain, settings.sender_domain) or _aligned(settings.sender_domain, domain)):
        findings.append(
            Finding(
                "warning",
                _(
                    "The bounce domain {domain} is not the From domain {sender} or related to "
                    "it: SPF will not align for DMARC."
                ).format(domain=domain, sender=settings.sender_domain),
            )
        )
    if settings.bounce_imap_url is None:
        findings.append(
            Finding(
                "note",
                _(
                    "No NEWSLETTER_BOUNCE_IMAP_URL: deliver the bounce address to "
                    "`newsletter bounces ingest` (a Postfix pipe or a .forward)."
                ),
            )
        )
    return findings
