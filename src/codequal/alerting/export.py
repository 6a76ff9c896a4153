"""``codequal rules export``: the rules and routing for Prometheus + Alertmanager.

When one machine is outgrown, the same rule files run on Prometheus and notifications go
through Alertmanager. This writes the rule files (runbook links made absolute against the
CodeQual base URL) and an ``alertmanager.yml`` whose routes, grouping, timing and inhibition
are the built-in notifier's own tables (:mod:`codequal.alerting.routing`), so both worlds page
the same people for the same alerts. Receivers are built from the channel settings passed in;
a channel without settings is left out (a route whose channels are all missing still exists,
with a receiver that sends nothing, so the alert is not re-routed elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from codequal.alerting.channels.email import parse_smtp_url
from codequal.alerting.routing import (
    DEFAULT_INHIBIT_RULES,
    DEFAULT_ROUTES,
    GROUP_BY,
    InhibitRule,
    Route,
    Timing,
)
from codequal.alerting.rules import (
    AlertingRule,
    Rule,
    RuleGroup,
    default_rule_files,
    format_duration,
    groups_to_document,
    load_rule_file,
)
from codequal.exceptions import InvalidInput
from codequal.tsdb.promql import PromQLError, parse_duration_ms

# The settings the receivers are built from, by their environment names.
SLACK_WEBHOOK_URL = "CODEQUAL_SLACK_WEBHOOK_URL"
SMTP_URL = "CODEQUAL_SMTP_URL"
ALERT_EMAIL_TO = "CODEQUAL_ALERT_EMAIL_TO"
ALERT_EMAIL_FROM = "CODEQUAL_ALERT_EMAIL_FROM"
PAGERDUTY_ROUTING_KEY = "CODEQUAL_PAGERDUTY_ROUTING_KEY"
PAGERDUTY_URL = "CODEQUAL_PAGERDUTY_URL"
WEBHOOK_URL = "CODEQUAL_WEBHOOK_URL"
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com"
DEFAULT_EMAIL_FROM = "codequal@localhost"

DISK_FORECAST_ALERT = "DeepWikiDiskExhaustionPredicted"
_SHIPPED_HORIZON_EXPR = "4 * 3600"
_SHIPPED_HORIZON_TEXT = "within 4h"
NULL_RECEIVER = "null"
_IMPLICIT_TLS_PORT = 465

_SLACK_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}]'
    " {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"
)
_SLACK_TEXT = (
    "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n"
    "Runbook: {{ .Annotations.runbook_url }}\n{{ end }}"
)
_PAGERDUTY_SEVERITY = (
    '{{ if eq .CommonLabels.severity "warning" }}warning'
    '{{ else if eq .CommonLabels.severity "ticket" }}info{{ else }}critical{{ end }}'
)


class ExportError(InvalidInput):
    """The export cannot be written as asked; the message says what to change."""


def export(
    out_dir: Path,
    settings: Mapping[str, str | None],
    *,
    base_url: str | None = None,
    disk_horizon: str | None = None,
    extra_rule_files: Sequence[Path] = (),
    timing: Timing | None = None,
    generated: Mapping[str, Sequence[RuleGroup]] | None = None,
) -> list[Path]:
    """Write the rule files and ``alertmanager.yml`` to ``out_dir``; return their paths.

    ``settings`` holds the channel settings by environment name (``CODEQUAL_SLACK_WEBHOOK_URL``,
    ``CODEQUAL_SMTP_URL`` + ``CODEQUAL_ALERT_EMAIL_TO``, ``CODEQUAL_PAGERDUTY_ROUTING_KEY`` +
    ``CODEQUAL_PAGERDUTY_URL``, ``CODEQUAL_WEBHOOK_URL``); ``base_url`` turns the relative
    ``/runbooks/...`` links into absolute ones; ``disk_horizon`` (e.g. ``8h``) replaces the
    shipped 4h horizon of the disk forecast; ``generated`` maps file names to rules built
    from settings (the cost alerts), written beside the others.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source in [*default_rule_files(), *extra_rule_files]:
        groups = load_rule_file(source)
        if disk_horizon:
            groups = with_disk_horizon(groups, disk_horizon)
        if base_url:
            groups = with_absolute_runbooks(groups, base_url)
        target = _unique(out_dir / Path(source).name, written)
        target.write_text(_yaml(groups_to_document(groups)), encoding="utf-8")
        written.append(target)
    for name, built in (generated or {}).items():
        groups = with_absolute_runbooks(built, base_url) if base_url else list(built)
        target = _unique(out_dir / name, written)
        target.write_text(_yaml(groups_to_document(groups)), encoding="utf-8")
        written.append(target)
    config = alertmanager_config(settings, timing or Timing())
    target = out_dir / "alertmanager.yml"
    # The receivers carry webhook URLs, keys and the SMTP password: owner-only.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_yaml(config))
    return [*written, target]


def _unique(path: Path, taken: Iterable[Path]) -> Path:
    taken = set(taken)
    stem, n = path.name.removesuffix(".yml"), 2
    while path in taken:
        path = path.with_name(f"{stem}-{n}.yml")
        n += 1
    return path


class _Dumper(yaml.SafeDumper):
    """Readable output: no anchors for shared receiver entries, multi-line text as blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.dump(
        dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000
    )


# -- rule transformations ---------------------------------------------------------------------


def _map_alerts(groups: Iterable[RuleGroup], change: Any) -> list[RuleGroup]:
    def each(rule: Rule) -> Rule:
        return change(rule) if isinstance(rule, AlertingRule) else rule

    return [replace(g, rules=tuple(each(r) for r in g.rules)) for g in groups]


def with_absolute_runbooks(groups: Iterable[RuleGroup], base_url: str) -> list[RuleGroup]:
    """Rules whose ``/runbooks/...`` links point at ``base_url`` (Alertmanager has no base)."""
    base = base_url.rstrip("/")

    def absolute(rule: AlertingRule) -> AlertingRule:
        url = rule.annotations.get("runbook_url", "")
        if not url.startswith("/"):
            return rule
        return replace(rule, annotations={**rule.annotations, "runbook_url": base + url})

    return _map_alerts(groups, absolute)


def with_disk_horizon(groups: Iterable[RuleGroup], horizon: str) -> list[RuleGroup]:
    """The shipped disk forecast with ``horizon`` (e.g. ``8h``) instead of 4h; the embedded
    evaluator and the export share this, so both warn at the same point."""
    try:
        seconds = parse_duration_ms(horizon) // 1000
    except PromQLError as exc:
        raise ExportError(f"disk horizon {horizon!r}: {exc}; use e.g. 4h or 1d") from None
    if seconds <= 0:
        raise ExportError(f"disk horizon {horizon!r} must be at least one second, e.g. 4h")
    expr = f"{seconds // 3600} * 3600" if seconds % 3600 == 0 else str(seconds)
    text = f"within {format_duration(seconds)}"

    def change(rule: AlertingRule) -> AlertingRule:
        if rule.alert != DISK_FORECAST_ALERT:
            return rule
        annotations = {
            k: v.replace(_SHIPPED_HORIZON_TEXT, text) for k, v in rule.annotations.items()
        }
        new_expr = rule.expr.replace(_SHIPPED_HORIZON_EXPR, expr)
        return replace(rule, expr=new_expr, annotations=annotations)

    return _map_alerts(groups, change)


# -- alertmanager.yml -------------------------------------------------------------------------


def alertmanager_config(
    settings: Mapping[str, str | None], timing: Timing | None = None
) -> dict[str, Any]:
    """The Alertmanager configuration for the configured channels (a dict for YAML)."""
    timing = timing or Timing()
    channels = _channel_configs(settings)
    receivers: dict[str, dict[str, Any]] = {NULL_RECEIVER: {"name": NULL_RECEIVER}}
    routes = [r for r in (_route(route, channels, receivers) for route in DEFAULT_ROUTES) if r]
    config: dict[str, Any] = {}
    if "email" in channels:
        config["global"] = _smtp_global(settings)
    config["route"] = {
        "receiver": NULL_RECEIVER,
        "group_by": list(GROUP_BY),
        "group_wait": format_duration(timing.group_wait),
        "group_interval": format_duration(timing.group_interval),
        "repeat_interval": format_duration(timing.repeat_interval),
        "routes": routes,
    }
    config["receivers"] = list(receivers.values())
    config["inhibit_rules"] = [_inhibit(rule) for rule in DEFAULT_INHIBIT_RULES]
    return config


def _route(
    route: Route, channels: Mapping[str, tuple[str, dict[str, Any]]], receivers: dict[str, Any]
) -> dict[str, Any] | None:
    present = [c for c in route.channels if c in channels]
    if route.keep_going and not present:
        return None  # a pass-through route to a missing channel changes nothing
    name = "-".join(present) or NULL_RECEIVER
    if name not in receivers:
        receiver: dict[str, Any] = {"name": name}
        for channel in present:
            key, body = channels[channel]
            receiver.setdefault(key, []).append(body)
        receivers[name] = receiver
    out: dict[str, Any] = {"receiver": name}
    if route.matchers:
        out["matchers"] = [str(m) for m in route.matchers]
    if route.keep_going:
        out["continue"] = True
    return out


def _inhibit(rule: InhibitRule) -> dict[str, list[str]]:
    return rule.to_alertmanager()


def _channel_configs(settings: Mapping[str, str | None]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each configured channel as (Alertmanager config key, one entry of it)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    if settings.get(SLACK_WEBHOOK_URL):
        body = {"api_url": settings[SLACK_WEBHOOK_URL], "title": _SLACK_TITLE, "text": _SLACK_TEXT}
        out["slack"] = ("slack_configs", {"send_resolved": True, **body})
    if settings.get(SMTP_URL) and settings.get(ALERT_EMAIL_TO):
        to = ", ".join(a.strip() for a in str(settings[ALERT_EMAIL_TO]).split(",") if a.strip())
        out["email"] = ("email_configs", {"send_resolved": True, "to": to})
    if settings.get(PAGERDUTY_ROUTING_KEY):
        base = settings.get(PAGERDUTY_URL) or DEFAULT_PAGERDUTY_URL
        body = {
            "routing_key": settings[PAGERDUTY_ROUTING_KEY],
            "url": base.rstrip("/") + "/v2/enqueue",  # as the built-in PagerDuty channel
            "severity": _PAGERDUTY_SEVERITY,
            "description": "{{ .CommonAnnotations.summary }}",
        }
        out["pagerduty"] = ("pagerduty_configs", {"send_resolved": True, **body})
    if settings.get(WEBHOOK_URL):
        out["webhook"] = ("webhook_configs", {"send_resolved": True, "url": settings[WEBHOOK_URL]})
    return out


def _smtp_global(settings: Mapping[str, str | None]) -> dict[str, Any]:
    try:
        target = parse_smtp_url(str(settings[SMTP_URL]))
    except ValueError as exc:
        raise ExportError(
            f"{SMTP_URL} is invalid: {exc}; use smtp://user:pass@host:587?starttls=true"
        ) from None
    out: dict[str, Any] = {
        "smtp_smarthost": f"{target.host}:{target.port}",
        "smtp_from": settings.get(ALERT_EMAIL_FROM) or DEFAULT_EMAIL_FROM,
        # Alertmanager speaks implicit TLS on port 465 and STARTTLS when required elsewhere.
        "smtp_require_tls": target.starttls,
    }
    if target.implicit_tls and target.port != _IMPLICIT_TLS_PORT:
        raise ExportError(
            f"{SMTP_URL}: Alertmanager uses implicit TLS only on port 465, not {target.port}; "
            "use smtps://...:465 or smtp://...?starttls=true"
        )
    if target.username:
        out["smtp_auth_username"] = target.username
        out["smtp_auth_password"] = target.password or ""
    return out
