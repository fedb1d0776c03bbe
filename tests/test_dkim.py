"""DKIM on the real bytes: every message of a send verifies with dkimpy, the list headers are
covered and oversigned, one-off mails are signed too, and bad keys are refused at the door."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail.dkim import BodyHasher, Signer, relaxed_body
from newsletter.settings import SettingsError
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.dkim_keys import key_pem, records, signed_names, verifies, write_keys
from tests.support.issue_files import write_issue
from tests.support.readers import sign_up
from tests.support.relays import Received, SmtpServer
from tests.support.servers import start_site

COVERED = {
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
}
OVERSIGNED = {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"}


@pytest.fixture
def signed_send(cli: Cli, tmp_path: Path, smtp_server: SmtpServer) -> list[Received]:
    env = {**write_keys(tmp_path), "NEWSLETTER_SMTP_URL": smtp_server.url}
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een", subject="Één  zachte week")))
    for n, name in enumerate(["Anna Ëlsa", "Bram", "Çees  de Vries-Ünal " * 4]):
        cli("subscribers", "add", f"lezer{n}@example.com", "--name", name.strip())
    cli("send", "--now", "2026-11-29T07:00", env=env)
    assert len(smtp_server.received) == 3
    return smtp_server.received


def test_every_message_of_a_send_verifies_with_both_keys(signed_send: list[Received]) -> None:
    for item in signed_send:
        assert item.data.count(b"DKIM-Signature:") == 2
        assert verifies(item.data, 0) and verifies(item.data, 1)
        for index in (0, 1):
            names = signed_names(item.data, index)
            assert set(names) >= COVERED
            for name in OVERSIGNED:  # one more than the message has: a copy added breaks it
                assert names.count(name) == 2, name


def test_a_second_one_click_header_or_a_changed_body_breaks_the_signature(
    signed_send: list[Received],
) -> None:
    data = signed_send[0].data
    head, body = data.split(b"\r\n\r\n", 1)
    extra = head + b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n" + body
    assert not verifies(extra, 0) and not verifies(extra, 1)
    other_url = data.replace(
        b"List-Unsubscribe: <", b"List-Unsubscribe: <https://evil.example/x><", 1
    )
    assert not verifies(other_url, 0)
    changed = head + b"\r\n\r\n" + body.replace(b"Hallo", b"Halla", 1)
    assert not verifies(changed, 0) and not verifies(changed, 1)


def test_the_confirmation_mail_is_signed_and_sent_from_its_own_address(
    env: dict[str, str], engine: object, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    overrides = {
        **write_keys(tmp_path),
        "NEWSLETTER_TRANSACTIONAL_FROM": "Zachte Zondag <welkom@nieuws.example.nl>",
    }
    site = start_site(env, engine, smtp_server, **overrides)  # type: ignore[arg-type]
    try:
        assert sign_up(site, "nieuw@example.com", "Nina Ørsted " * 7).status_code == 200
        mail = site.wait_for_mail(1)[0]
    finally:
        site.live.stop()
    assert mail.mail_from == "welkom@nieuws.example.nl"
    assert mail.message["From"].addresses[0].addr_spec == "welkom@nieuws.example.nl"
    assert verifies(mail.data, 0) and verifies(mail.data, 1)
    assert set(signed_names(mail.data)) >= {"from", "to", "subject", "date", "message-id"}
    lines = mail.data.split(b"\r\n")
    assert max(map(len, lines)) <= 76, [ln for ln in lines if len(ln) > 76]


@settings(max_examples=25, deadline=None)
@given(
    subject=st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=120),
    body=st.lists(
        st.text(st.sampled_from(" \tabcé.=-"), max_size=90).map(
            lambda t: t.encode("utf-8", "replace").decode("ascii", "replace")
        ),
        max_size=12,
    ),
)
def test_any_message_the_signer_signs_verifies(subject: str, body: list[str]) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    keys = [("nl-ed", load_pem_private_key(key_pem("ed25519"), None))]
    signer = Signer("nieuws.example.nl", keys)
    head = f"From: a@nieuws.example.nl\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
    text = "\r\n".join(body) + ("\r\n" if body else "")
    data = signer.sign_message((head + "\r\n" + text).encode("ascii", "replace"))
    assert verifies(data, 0, records())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2),
            st.lists(st.text(st.sampled_from(" \tab="), max_size=20), min_size=1, max_size=3),
        ),
        max_size=8,
    ),
    st.lists(st.text(st.sampled_from(" \tax"), max_size=15), min_size=3, max_size=3),
)
def test_hashing_pieces_equals_hashing_the_joined_body(
    layout: list[int | list[str]], personal: list[str]
) -> None:
    import hashlib

    template: list[bytes | int] = [
        item if isinstance(item, int) else "".join(f"{line}\r\n" for line in item).encode()
        for item in layout
    ]
    template.append(b"--end--\r\n")
    values = [f"{value}=\r\n".encode() for value in personal]
    joined = b"".join(values[p] if isinstance(p, int) else p for p in template)
    expected = hashlib.sha256(relaxed_body(joined)).digest()
    assert BodyHasher(template).digest(values) == expected


def test_weak_or_missing_keys_are_refused_at_the_door(tmp_path: Path, env: dict[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "weak.pem"
    path.write_bytes(
        weak.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cases = {
        "NEWSLETTER_DKIM_KEY_FILE: " + f"{path}: RSA key of 1024 bits": {
            "NEWSLETTER_DKIM_SELECTOR": "s",
            "NEWSLETTER_DKIM_KEY_FILE": str(path),
        },
        "NEWSLETTER_DKIM_KEY_FILE: cannot read": {
            "NEWSLETTER_DKIM_SELECTOR": "s",
            "NEWSLETTER_DKIM_KEY_FILE": str(tmp_path / "missing.pem"),
        },
        "one selector per key file": {"NEWSLETTER_DKIM_SELECTOR": "s"},
    }
    for message, overrides in cases.items():
        with pytest.raises(SettingsError, match=message):
            settings_from({**env, **overrides})


def test_keygen_writes_a_private_key_and_prints_the_record(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "nl2026.pem"
    out = cli("dkim", "keygen", "--selector", "nl2026", "--out", str(target)).stdout
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "nl2026._domainkey.nieuws.example.nl. IN TXT" in out and '"v=DKIM1; k=rsa; p=' in out
    result = cli("dkim", "keygen", "--selector", "nl2026", "--out", str(target), code=1)
    assert "exists" in result.stderr
    env = {"NEWSLETTER_DKIM_SELECTOR": "nl2026", "NEWSLETTER_DKIM_KEY_FILE": str(target)}
    checked = cli("check", env=env)
    assert "a test message verifies" in checked.stdout and "nl2026._domainkey" in checked.stdout


def test_check_warns_that_an_unsigned_setup_needs_the_relay_to_sign(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    result = cli("check")
    assert "relay must sign" in result.stdout and "List-Unsubscribe-Post" in result.stdout
    assert "NEWSLETTER_BOUNCE_ADDRESS" in result.stdout
