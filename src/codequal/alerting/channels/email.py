"""Email over SMTP: STARTTLS or implicit TLS, optional AUTH, a plain-text and an HTML part.

Configured by ``CODEQUAL_SMTP_URL`` such as ``smtp://user:pass@host:587?starttls=true``
(``smtps://`` for implicit TLS on 465; ``cafile=/path.pem`` trusts a private CA; ``timeout``
in seconds) and ``CODEQUAL_ALERT_EMAIL_TO`` (comma-separated addresses).
"""

from __future__ import annotations

import html
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from codequal.alerting.channels.base import Notification, runbook_url
from codequal.alerting.model import Alert
from codequal.exceptions import DeliveryError

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to submit mail, parsed once from the URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool
    cafile: str | None
    timeout: float


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp[s]://[user[:pass]@]host[:port][?starttls=true&cafile=...&timeout=...]``.

    Raises ValueError naming what is wrong, for the start-up configuration check.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("the scheme must be smtp:// (STARTTLS optional) or smtps:// (TLS)")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "cafile", "timeout"}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    implicit = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=not implicit and query.get("starttls", "true").lower() in _TRUE,
        cafile=query.get("cafile"),
        timeout=float(query.get("timeout", "15")),
    )


class EmailChannel:
    """Sends one message per notification to every address in ``CODEQUAL_ALERT_EMAIL_TO``."""

    name = "email"

    def __init__(self, smtp_url: str | None, to: str | None, sender: str) -> None:
        self._target = parse_smtp_url(smtp_url) if smtp_url else None
        self._to = [a.strip() for a in (to or "").split(",") if a.strip()]
        self._sender = sender

    @property
    def configured(self) -> bool:
        return self._target is not None and bool(self._to)

    @property
    def disabled_reason(self) -> str:
        if self._target is None:
            return "CODEQUAL_SMTP_URL is not set"
        return "" if self._to else "CODEQUAL_ALERT_EMAIL_TO is not set"

    def notify(self, notification: Notification) -> None:
        assert self._target is not None, "notify() on an unconfigured channel"
        message = build_message(notification, self._sender, self._to)
        try:
            with _connect(self._target) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused: {_reply(exc)}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"recipients refused: {sorted(exc.recipients)}", permanent=True
            ) from None
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final word; 4xx (greylisting, busy) asks us to come back.
            raise DeliveryError(
                f"SMTP error: {_reply(exc)}", permanent=exc.smtp_code >= 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot deliver to {self._target.host}: {exc}") from None


def _connect(target: SmtpTarget) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=target.cafile)
    smtp: smtplib.SMTP
    if target.implicit_tls:
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=target.timeout, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=target.timeout)
    try:
        smtp.ehlo(socket.getfqdn())
        if target.starttls:
            smtp.starttls(context=context)
            smtp.ehlo(socket.getfqdn())
        if target.username is not None:
            smtp.login(target.username, target.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
    return f"{exc.smtp_code} {text}".strip()


def build_message(notification: Notification, sender: str, to: list[str]) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML preferred by mail readers."""
    message = EmailMessage()
    message["Subject"] = notification.title()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="codequal")
    message.set_content(plain_text(notification))
    message.add_alternative(html_body(notification), subtype="html")
    return message


def plain_text(notification: Notification) -> str:
    lines = [notification.title(), ""]
    for alert in notification.alerts:
        lines.extend(_alert_lines(alert, notification.external_url))
        lines.append("")
    if notification.truncated_alerts:
        lines.append(f"and {notification.truncated_alerts} more alert(s) not shown")
    return "\n".join(lines)


def _alert_lines(alert: Alert, external_url: str) -> list[str]:
    lines = [
        f"{alert.name} [{alert.severity}] is {alert.status.upper()}",
        f"Summary: {alert.annotations.get('summary', '')}",
    ]
    if alert.annotations.get("description"):
        lines.append(f"Description: {alert.annotations['description']}")
    runbook = runbook_url(alert, external_url)
    if runbook:
        lines.append(f"Runbook: {runbook}")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    lines.append(f"Labels: {labels}")
    return lines


def html_body(notification: Notification) -> str:
    color = "#d00000" if notification.status == "firing" else "#2eb886"
    items = "".join(_alert_html(a, notification.external_url) for a in notification.alerts)
    more = (
        f"<p>and {notification.truncated_alerts} more alert(s) not shown</p>"
        if notification.truncated_alerts
        else ""
    )
    title = html.escape(notification.title())
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f'<h2 style="color:{color}">{title}</h2>{items}{more}</body></html>'
    )


def _alert_html(alert: Alert, external_url: str) -> str:
    esc = html.escape
    parts = [
        f"<h3>{esc(alert.name)} [{esc(alert.severity)}] is {alert.status.upper()}</h3>",
        f"<p><b>{esc(alert.annotations.get('summary', ''))}</b></p>",
    ]
    if alert.annotations.get("description"):
        parts.append(f"<p>{esc(alert.annotations['description'])}</p>")
    runbook = runbook_url(alert, external_url)
    if runbook:
        parts.append(f'<p><a href="{esc(runbook, quote=True)}">Runbook</a></p>')
    labels = "".join(f"<li>{esc(k)}={esc(v)}</li>" for k, v in sorted(alert.labels.items()))
    parts.append(f"<ul>{labels}</ul>")
    return "<div>" + "".join(parts) + "</div>"
