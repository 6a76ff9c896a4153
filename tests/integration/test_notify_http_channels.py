"""Slack, PagerDuty and the generic webhook against HTTP servers on loopback: the exact wire
format each service documents (keys, headers, values) and how failures are classified."""

from __future__ import annotations

import pytest

from codequal.alerting.channels import Notification, build_channels
from codequal.alerting.channels.pagerduty import PagerDutyChannel, dedup_key
from codequal.alerting.channels.slack import SlackChannel
from codequal.alerting.channels.webhook import WebhookChannel
from codequal.alerting.routing import group_key, group_labels
from codequal.config import load_settings
from codequal.exceptions import DeliveryError

from ..unit.alerting_notify.helpers import T0, Captured, alert, capture_server, free_port, resolved

DISK = alert("DeepWikiDiskUsage", "critical", component="deepwiki")
GROUP = group_labels(DISK.labels)
KEY = group_key(GROUP)
EXTERNAL = "https://codequal.example"


def firing() -> Notification:
    return Notification("slack", "firing", (DISK,), KEY, GROUP, EXTERNAL)


def assert_json_post(req: Captured) -> None:
    assert req.method == "POST"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "codequal-notifier"


# -- Slack -------------------------------------------------------------------------------------


def test_slack_posts_text_and_a_coloured_attachment_with_one_block_per_alert() -> None:
    with capture_server() as server:
        SlackChannel(server.url + "/services/T000/B000/XXXX").notify(firing())
        req = server.next()
    assert_json_post(req)
    assert req.path == "/services/T000/B000/XXXX"
    body = req.json()
    assert body == {
        "text": "[FIRING:1] DeepWikiDiskUsage (critical)",
        "attachments": [
            {
                "color": "#d00000",
                "blocks": [
                    {
                        "type": "header",
                        "text": {
                            "type": "plain_text",
                            "text": "[FIRING:1] DeepWikiDiskUsage (critical)",
                        },
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": ":red_circle: *DeepWikiDiskUsage summary*\n"
                            "DeepWikiDiskUsage description\n"
                            "<https://runbooks.example/DeepWikiDiskUsage|Runbook>",
                        },
                        "fields": [
                            {"type": "mrkdwn", "text": "*Alert*\nDeepWikiDiskUsage"},
                            {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                            {"type": "mrkdwn", "text": "*Status*\nfiring"},
                        ],
                    },
                ],
            }
        ],
    }


def test_slack_resolved_message_is_green_and_escapes_mrkdwn_control_characters() -> None:
    odd = alert("A<B>&C", "warning")
    gone = resolved(odd, T0 + 60)
    note = Notification("slack", "resolved", (gone,), "k", group_labels(gone.labels))
    with capture_server() as server:
        SlackChannel(server.url).notify(note)
        body = server.next().json()
    assert body["text"] == "[RESOLVED:1] A<B>&C (warning)"
    attachment = body["attachments"][0]
    assert attachment["color"] == "#2eb886"
    assert "*Alert*\nA&lt;B&gt;&amp;C" in [f["text"] for f in attachment["blocks"][1]["fields"]]


def test_slack_relative_runbook_link_is_made_absolute_with_the_external_url() -> None:
    a = alert("SlowAnalysis", "warning")
    a.annotations["runbook_url"] = "/runbooks/SlowAnalysis"
    note = Notification("slack", "firing", (a,), "k", None, EXTERNAL)
    with capture_server() as server:
        SlackChannel(server.url).notify(note)
        text = server.next().json()["attachments"][0]["blocks"][1]["text"]["text"]
    assert "<https://codequal.example/runbooks/SlowAnalysis|Runbook>" in text


@pytest.mark.parametrize(
    ("status", "answer", "permanent"),
    [(404, b"no_service", True), (410, b"channel_is_archived", True), (400, b"invalid_token", True),
     (429, b"rate_limited", False), (500, b"oops", False), (503, b"", False)],
)  # fmt: skip
def test_slack_failure_says_whether_retrying_can_help(
    status: int, answer: bytes, permanent: bool
) -> None:
    with capture_server([(status, answer)]) as server, pytest.raises(DeliveryError) as caught:
        SlackChannel(server.url + "/services/secret-token").notify(firing())
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in caught.value.message
    assert "secret-token" not in caught.value.message  # the webhook path is a credential


def test_unreachable_endpoint_is_a_transient_failure() -> None:
    channel = SlackChannel(f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(DeliveryError) as caught:
        channel.notify(firing())
    assert caught.value.permanent is False
    assert "cannot reach 127.0.0.1" in caught.value.message


# -- PagerDuty ---------------------------------------------------------------------------------


def test_pagerduty_trigger_is_an_events_v2_event_with_mapped_severity_and_links() -> None:
    note = Notification("pagerduty", "firing", (DISK,), KEY, GROUP, EXTERNAL)
    with capture_server([(202, b'{"status":"success"}')]) as server:
        PagerDutyChannel("R0UT1NGKEY", server.url, source="codequal-prod").notify(note)
        req = server.next()
    assert_json_post(req)
    assert req.path == "/v2/enqueue"
    assert req.json() == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": dedup_key(DISK, KEY),
        "payload": {
            "summary": "[critical] DeepWikiDiskUsage: DeepWikiDiskUsage summary",
            "source": "codequal-prod",
            "severity": "critical",
            "timestamp": "2027-01-15T08:00:00.000Z",
            "class": "DeepWikiDiskUsage",
            "component": "deepwiki",
            "custom_details": {
                "labels": DISK.labels,
                "annotations": DISK.annotations,
                "value": 0.25,
            },
        },
        "client": "CodeQual",
        "client_url": EXTERNAL,
        "links": [
            {"href": "https://runbooks.example/DeepWikiDiskUsage", "text": "Runbook"},
            {
                "href": "http://codequal.example/graph?alert=DeepWikiDiskUsage",
                "text": "Rule expression",
            },
        ],
    }


def test_pagerduty_dedup_key_is_the_same_for_trigger_repeat_and_resolve() -> None:
    gone = resolved(DISK, T0 + 600)
    with capture_server() as server:
        channel = PagerDutyChannel("KEY", server.url)
        channel.notify(Notification("pagerduty", "firing", (DISK,), KEY, GROUP))
        channel.notify(Notification("pagerduty", "firing", (DISK,), KEY, GROUP))
        channel.notify(Notification("pagerduty", "resolved", (gone,), KEY, GROUP))
        events = [server.next().json() for _ in range(3)]
    keys = {e["dedup_key"] for e in events}
    assert len(keys) == 1 and keys.pop().startswith("codequal-")
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    assert events[2] == {
        "routing_key": "KEY",
        "event_action": "resolve",
        "dedup_key": events[0]["dedup_key"],
    }


def test_pagerduty_dedup_key_differs_per_alert_and_survives_a_restart() -> None:
    other = alert("DeepWikiDiskUsage", "critical", component="other")
    assert dedup_key(DISK, KEY) != dedup_key(other, KEY)
    # A fresh process computes it from the same labels: nothing in memory is involved.
    rebuilt = alert("DeepWikiDiskUsage", "critical", at=T0 + 9999, component="deepwiki")
    assert dedup_key(rebuilt, KEY) == dedup_key(DISK, KEY)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("emergency", "critical"), ("critical", "critical"), ("warning", "warning"),
     ("ticket", "info"), ("info", "info"), ("bogus", "error")],
)  # fmt: skip
def test_pagerduty_severity_mapping(severity: str, expected: str) -> None:
    a = alert("X", severity)
    with capture_server() as server:
        PagerDutyChannel("KEY", server.url).notify(Notification("pagerduty", "firing", (a,), "k"))
        assert server.next().json()["payload"]["severity"] == expected


def test_pagerduty_sends_resolves_before_triggers_in_one_group_message() -> None:
    b = alert("DeepWikiDiskUsage", "critical", component="b")
    gone = resolved(b, T0 + 1)
    with capture_server() as server:
        note = Notification("pagerduty", "firing", (DISK, gone), KEY, GROUP)
        PagerDutyChannel("KEY", server.url).notify(note)
        actions = [server.next().json()["event_action"] for _ in range(2)]
    assert actions == ["resolve", "trigger"]


def test_pagerduty_invalid_event_is_permanent_and_rate_limit_is_not() -> None:
    with capture_server([(400, b'{"status":"invalid event"}'), (429, b"")]) as server:
        channel = PagerDutyChannel("KEY", server.url)
        with pytest.raises(DeliveryError) as bad:
            channel.notify(firing())
        with pytest.raises(DeliveryError) as limited:
            channel.notify(firing())
    assert bad.value.permanent and not limited.value.permanent


# -- webhook (Alertmanager's webhook JSON) -----------------------------------------------------


def test_webhook_posts_alertmanager_version_4_payload() -> None:
    other = alert("DeepWikiDiskUsage", "critical", component="other")
    gone = resolved(other, T0 + 120)
    note = Notification("webhook", "firing", (DISK, gone), KEY, GROUP, EXTERNAL)
    with capture_server() as server:
        WebhookChannel(server.url + "/hook").notify(note)
        req = server.next()
    assert_json_post(req)
    assert req.path == "/hook"
    assert req.json() == {
        "receiver": "webhook",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": DISK.labels,
                "annotations": DISK.annotations,
                "startsAt": "2027-01-15T08:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://codequal.example/graph?alert=DeepWikiDiskUsage",
                "fingerprint": DISK.fingerprint,
            },
            {
                "status": "resolved",
                "labels": other.labels,
                "annotations": other.annotations,
                "startsAt": "2027-01-15T08:00:00.000Z",
                "endsAt": "2027-01-15T08:02:00.000Z",
                "generatorURL": "http://codequal.example/graph?alert=DeepWikiDiskUsage",
                "fingerprint": other.fingerprint,
            },
        ],
        "groupLabels": {"alertname": "DeepWikiDiskUsage", "severity": "critical"},
        "commonLabels": {"alertname": "DeepWikiDiskUsage", "severity": "critical"},
        "commonAnnotations": {
            "summary": "DeepWikiDiskUsage summary",
            "description": "DeepWikiDiskUsage description",
            "runbook_url": "https://runbooks.example/DeepWikiDiskUsage",
        },
        "externalURL": EXTERNAL,
        "version": "4",
        "groupKey": '{}:{alertname="DeepWikiDiskUsage", severity="critical"}',
        "truncatedAlerts": 0,
    }


# -- configuration -----------------------------------------------------------------------------


def test_channels_without_settings_are_off_and_say_which_variable_to_set() -> None:
    channels = build_channels(load_settings())
    assert {n: c.configured for n, c in channels.items()} == dict.fromkeys(
        ("slack", "email", "pagerduty", "webhook", "alertmanager"), False
    )
    assert channels["slack"].disabled_reason == "CODEQUAL_SLACK_WEBHOOK_URL is not set"
    assert channels["pagerduty"].disabled_reason == "CODEQUAL_PAGERDUTY_ROUTING_KEY is not set"


def test_channels_are_built_from_the_codequal_settings() -> None:
    settings = load_settings(
        slack_webhook_url="http://127.0.0.1:1/slack",
        smtp_url="smtp://u:p@127.0.0.1:2525?starttls=false",
        alert_email_to="ops@example.com",
        pagerduty_routing_key="KEY",
        pagerduty_url="http://127.0.0.1:1",
        webhook_url="http://127.0.0.1:1/hook",
        alertmanager_url="http://127.0.0.1:9093",
    )
    assert all(c.configured for c in build_channels(settings).values())
