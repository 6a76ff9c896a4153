"""Slack incoming webhook: one message per notification, one block per alert."""

from __future__ import annotations

from typing import Any

import httpx

from codequal.alerting.channels.base import (
    JSON,
    Notification,
    http_client,
    post_json,
    runbook_url,
)
from codequal.alerting.model import Alert

MAX_ALERT_BLOCKS = 20  # Slack allows 50 blocks a message; the rest is counted, not listed
COLORS = {"firing": "#d00000", "resolved": "#2eb886"}
SEVERITY_EMOJI = {
    "emergency": ":rotating_light:",
    "critical": ":red_circle:",
    "warning": ":warning:",
    "ticket": ":ticket:",
    "info": ":information_source:",
}


class SlackChannel:
    """Posts to ``CODEQUAL_SLACK_WEBHOOK_URL``."""

    name = "slack"

    def __init__(self, webhook_url: str | None, client: httpx.Client | None = None) -> None:
        self._url = webhook_url
        self._client = client or http_client()

    @property
    def configured(self) -> bool:
        return bool(self._url)

    @property
    def disabled_reason(self) -> str:
        return "" if self._url else "CODEQUAL_SLACK_WEBHOOK_URL is not set"

    def notify(self, notification: Notification) -> None:
        assert self._url is not None, "notify() on an unconfigured channel"
        post_json(self._client, self._url, slack_payload(notification))


def slack_payload(notification: Notification) -> JSON:
    """The incoming-webhook body: ``text`` for previews, blocks inside a coloured attachment."""
    listed = notification.alerts[:MAX_ALERT_BLOCKS]
    blocks: list[JSON] = [
        {"type": "header", "text": {"type": "plain_text", "text": notification.title()[:150]}}
    ]
    for alert in listed:
        blocks.append(_alert_block(alert, notification.external_url))
    hidden = len(notification.alerts) - len(listed) + notification.truncated_alerts
    if hidden:
        blocks.append(_context(f"and {hidden} more alert(s) not shown"))
    return {
        "text": notification.title(),
        "attachments": [{"color": COLORS[notification.status], "blocks": blocks}],
    }


def _alert_block(alert: Alert, external_url: str) -> JSON:
    summary = alert.annotations.get("summary") or alert.name
    lines = [f"{SEVERITY_EMOJI.get(alert.severity, '')} *{_escape(summary)}*".strip()]
    description = alert.annotations.get("description")
    if description:
        lines.append(_escape(description))
    runbook = runbook_url(alert, external_url)
    if runbook:
        lines.append(f"<{runbook}|Runbook>")
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]},
        "fields": [
            {"type": "mrkdwn", "text": f"*Alert*\n{_escape(alert.name)}"},
            {"type": "mrkdwn", "text": f"*Severity*\n{_escape(alert.severity)}"},
            {"type": "mrkdwn", "text": f"*Status*\n{alert.status}"},
        ],
    }
    return block


def _context(text: str) -> JSON:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
