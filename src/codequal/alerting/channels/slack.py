"""Slack incoming webhook: one message per notification, one block per alert."""

from __future__ import annotations

from typing import Any

from codequal.alerting.channels.base import (
    JSON,
    JsonPostChannel,
    Notification,
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


class SlackChannel(JsonPostChannel):
    """Posts to ``CODEQUAL_SLACK_WEBHOOK_URL``."""

    name = "slack"
    variable = "CODEQUAL_SLACK_WEBHOOK_URL"

    def payload(self, notification: Notification) -> JSON:
        return slack_payload(notification)


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
