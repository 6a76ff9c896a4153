"""Email through a real SMTP server in the test process (aiosmtpd): STARTTLS with a
self-signed certificate the URL's cafile trusts, AUTH, and a text + HTML message."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from codequal.alerting.channels import Notification
from codequal.alerting.channels.email import EmailChannel, parse_smtp_url
from codequal.alerting.routing import group_key, group_labels
from codequal.exceptions import DeliveryError

from ..conftest import REQUIRE_SERVICES
from ..unit.alerting_notify.helpers import T0, alert, free_port, resolved

try:
    import aiosmtpd  # noqa: F401 - presence check; the fixture imports what it uses
except ImportError:  # pragma: no cover - the dev extra installs it
    if REQUIRE_SERVICES:
        raise
    pytest.skip(
        "aiosmtpd is not installed (make test installs the dev group)", allow_module_level=True
    )

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USER, PASSWORD = "alerts", "s3cr3t pass/word"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codequal-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "smtp.pem", tmp / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    port: int
    cafile: Path
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_sessions: list[bool] = field(default_factory=list)
    fail_with: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_with:
            return self.fail_with
        self.tls_sessions.append(session.ssl is not None)
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == USER
        ok = ok and data.password.decode() == PASSWORD
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)

    def url(self, user: str = USER, password: str = PASSWORD) -> str:
        from urllib.parse import quote

        creds = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"smtp://{creds}@127.0.0.1:{self.port}?starttls=true&cafile={self.cafile}&timeout=10"


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox(free_port(), cert)
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=box.authenticate,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def notification() -> Notification:
    down = alert("DeepWikiDown", "critical", component="deepwiki")
    down.annotations["description"] = "DeepWiki <b>unreachable</b> & failing"
    labels = group_labels(down.labels)
    return Notification("email", "firing", (down,), group_key(labels), labels, "https://cq.example")


def test_email_is_delivered_over_starttls_with_auth_as_text_and_html(mailbox: Mailbox) -> None:
    channel = EmailChannel(mailbox.url(), "ops@example.com, oncall@example.com", "cq@example.com")
    channel.notify(notification())
    assert mailbox.logins == [USER]
    assert mailbox.tls_sessions == [True]
    ((envelope, message),) = mailbox.messages
    assert envelope.mail_from == "cq@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert message["Subject"] == "[FIRING:1] DeepWikiDown (critical)"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    assert "DeepWikiDown [critical] is FIRING" in plain
    assert "Summary: DeepWikiDown summary" in plain
    assert "Runbook: https://runbooks.example/DeepWikiDown" in plain
    markup = html.get_content()
    assert "DeepWiki &lt;b&gt;unreachable&lt;/b&gt; &amp; failing" in markup  # escaped
    assert '<a href="https://runbooks.example/DeepWikiDown">Runbook</a>' in markup


def test_email_resolve_has_a_resolved_subject(mailbox: Mailbox) -> None:
    gone = resolved(alert("DeepWikiDown", "critical"), T0 + 300)
    channel = EmailChannel(mailbox.url(), "ops@example.com", "cq@example.com")
    channel.notify(Notification("email", "resolved", (gone,), "k", group_labels(gone.labels)))
    assert mailbox.messages[0][1]["Subject"] == "[RESOLVED:1] DeepWikiDown (critical)"


def test_wrong_password_is_a_permanent_failure(mailbox: Mailbox) -> None:
    channel = EmailChannel(mailbox.url(password="wrong"), "ops@example.com", "cq@example.com")
    with pytest.raises(DeliveryError) as caught:
        channel.notify(notification())
    assert caught.value.permanent
    assert "SMTP login refused: 535" in caught.value.message
    assert mailbox.messages == []


def test_untrusted_certificate_is_refused_not_sent_in_clear(mailbox: Mailbox) -> None:
    url = mailbox.url().split("&cafile=")[0]  # the system CAs do not know our test cert
    with pytest.raises(DeliveryError) as caught:
        EmailChannel(url, "ops@example.com", "cq@example.com").notify(notification())
    assert not caught.value.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert mailbox.messages == []


def test_temporary_smtp_error_is_retryable_and_final_one_is_not(mailbox: Mailbox) -> None:
    channel = EmailChannel(mailbox.url(), "ops@example.com", "cq@example.com")
    mailbox.fail_with = "451 4.3.0 try again later"
    with pytest.raises(DeliveryError) as temporary:
        channel.notify(notification())
    mailbox.fail_with = "554 5.7.1 rejected"
    with pytest.raises(DeliveryError) as final:
        channel.notify(notification())
    assert not temporary.value.permanent and final.value.permanent


def test_smtp_url_parsing_and_defaults() -> None:
    target = parse_smtp_url("smtp://us%40er:p%3Ass@mail.example?cafile=/ca.pem")
    assert (target.host, target.port, target.username, target.password) == (
        "mail.example",
        587,
        "us@er",
        "p:ss",
    )
    assert target.starttls and not target.implicit_tls and target.cafile == "/ca.pem"
    tls = parse_smtp_url("smtps://mail.example")
    assert (tls.port, tls.implicit_tls, tls.starttls, tls.username) == (465, True, False, None)
    plain = parse_smtp_url("smtp://relay:25?starttls=false")
    assert not plain.starttls


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://mail.example", "scheme"), ("smtp://", "no host"), ("smtp://h?tls=1", "unknown")],
)
def test_bad_smtp_url_stops_the_server_naming_the_variable(url: str, message: str) -> None:
    from codequal.alerting.channels import build_channels
    from codequal.config import load_settings
    from codequal.exceptions import ConfigError

    with pytest.raises(ConfigError, match=f"CODEQUAL_SMTP_URL is invalid: .*{message}"):
        build_channels(load_settings(smtp_url=url))


def test_email_needs_both_url_and_recipients() -> None:
    assert EmailChannel(None, "a@b", "c@d").disabled_reason == "CODEQUAL_SMTP_URL is not set"
    no_to = EmailChannel("smtp://h", None, "c@d")
    assert not no_to.configured
    assert no_to.disabled_reason == "CODEQUAL_ALERT_EMAIL_TO is not set"
