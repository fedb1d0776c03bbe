"""Per-message costs: rendering an edition, building a letter unsigned and signed, signing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path


def render_costs() -> dict[str, float]:
    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.mail.rendering import IssueContent, render_edition
    from newsletter.settings import load_settings

    settings = load_settings()
    content = IssueContent(
        "Onderwerp", "loslaten", "Wat mag je loslaten?", "Kort.", "Tekst.\n" * 40
    )
    render_edition(content, settings, seed="warm0000", send_at=datetime.now(UTC))
    started = time.perf_counter()
    rounds = 20
    for i in range(rounds):
        rendered = render_edition(content, settings, seed=f"{i:08d}", send_at=datetime.now(UTC))
    per_edition = (time.perf_counter() - started) / rounds
    message = EditionMessage(
        settings, subject=rendered.subject, html=rendered.html, text=rendered.text, seed="00000019"
    )
    now = datetime.now(UTC)
    recipients = [
        Recipient(i, f"l{i}@example.com", "Lezer", f"https://x.nl/afmelden/{i:043d}")
        for i in range(10_000)
    ]
    started = time.perf_counter()
    for recipient in recipients:
        message.build(recipient, now)
    per_recipient = (time.perf_counter() - started) / len(recipients)
    return {
        "render_ms_per_edition": per_edition * 1000,
        "build_us_per_recipient": per_recipient * 1e6,
    }


VARIANTS = ("none", "rsa", "ed25519")


def write_keys(folder: Path) -> dict[str, dict[str, str]]:
    """A test RSA-2048 and Ed25519 key; the NEWSLETTER_DKIM_* variables of each variant."""
    from newsletter.mail.dkim import generate_key

    variants: dict[str, dict[str, str]] = {"none": {}}
    for kind in ("rsa", "ed25519"):
        path = folder / f"{kind}.pem"
        path.write_bytes(generate_key(kind)[0])
        variants[kind] = {"NEWSLETTER_DKIM_SELECTOR": kind, "NEWSLETTER_DKIM_KEY_FILE": str(path)}
    return variants


def signing_costs(keys: dict[str, dict[str, str]]) -> dict[str, float]:
    """Microseconds per message: building it unsigned and signed, and the signature alone."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from newsletter.config_values import read_dkim_key
    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.mail.rendering import IssueContent, render_edition
    from newsletter.settings import load_settings

    content = IssueContent(
        "Onderwerp", "loslaten", "Wat mag je loslaten?", "Kort.", "Tekst.\n" * 400
    )
    rendered = render_edition(content, load_settings(), seed="sign0000", send_at=datetime.now(UTC))
    recipients = [
        Recipient(i, f"l{i}@example.com", "Lezer", f"https://x.nl/afmelden/{i:043d}")
        for i in range(2000)
    ]
    costs: dict[str, float] = {}
    for variant, extra in keys.items():
        settings = load_settings(
            **{k.removeprefix("NEWSLETTER_").lower(): v for k, v in extra.items()}
        )
        message = EditionMessage(
            settings,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            seed="sign0000",
        )
        now = datetime.now(UTC)
        started = time.perf_counter()
        for recipient in recipients:
            message.build(recipient, now)
        costs[f"build_us_{variant}"] = (time.perf_counter() - started) / len(recipients) * 1e6
        if extra:
            key = read_dkim_key(Path(extra["NEWSLETTER_DKIM_KEY_FILE"]))
            started = time.perf_counter()
            for _ in range(500):
                if variant == "rsa":
                    key.sign(b"x" * 600, padding.PKCS1v15(), hashes.SHA256())
                else:
                    key.sign(b"x" * 32)
            costs[f"signature_only_us_{variant}"] = (time.perf_counter() - started) / 500 * 1e6
    costs["message_bytes_for_costs"] = float(len(message.build(recipients[0], now)))
    return costs
