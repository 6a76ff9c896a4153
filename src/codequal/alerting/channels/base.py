"""What every notification channel shares: the notification record, the protocol, the error.

A channel is one small module that turns a :class:`Notification` into one wire format and
delivers it. It decides nothing about routing, grouping or retries: it sends once, returns on
success and raises :class:`DeliveryError` otherwise, saying whether trying again can help.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from codequal.alerting.model import Alert
from codequal.exceptions import DeliveryError

JSON = dict[str, Any]
NotificationStatus = Literal["firing", "resolved"]
HTTP_TIMEOUT = 10.0  # seconds; a channel that hangs longer is retried later, not waited on
# Statuses that mean the request itself is wrong or the endpoint is gone: retrying cannot help.
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 413, 422})


@dataclass(frozen=True)
class Notification:
    """One message for one channel: a group of alerts that are firing or just resolved."""

    receiver: str  # the channel's name
    status: NotificationStatus  # "firing" while any alert in it fires
    alerts: tuple[Alert, ...]
    group_key: str = ""
    group_labels: Mapping[str, str] | None = None
    external_url: str = ""
    truncated_alerts: int = 0  # alerts left out to keep the message small

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    def title(self) -> str:
        """``[FIRING:2] HighFailureRate (critical)``: the line chat and mail clients preview."""
        count = len(self.firing) if self.status == "firing" else len(self.resolved)
        labels = self.group_labels or self.common_labels
        name = labels.get("alertname", "alerts")
        severity = labels.get("severity")
        suffix = f" ({severity})" if severity else ""
        return f"[{self.status.upper()}:{count}] {name}{suffix}"


class Channel(Protocol):
    """A notification transport. ``notify`` raises :class:`DeliveryError` on failure."""

    name: str

    @property
    def configured(self) -> bool: ...

    @property
    def disabled_reason(self) -> str:
        """Why the channel is off (the setting to add); empty when configured."""
        ...

    def notify(self, notification: Notification) -> None: ...


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def runbook_url(alert: Alert, external_url: str) -> str | None:
    """The alert's runbook link, made absolute against ``external_url`` when it is a path."""
    url = alert.annotations.get("runbook_url") or alert.annotations.get("runbook")
    if not url:
        return None
    if url.startswith("/") and external_url:
        return external_url.rstrip("/") + url
    return url


def post_json(
    client: httpx.Client, url: str, body: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` as JSON; a 2xx returns, anything else raises :class:`DeliveryError`."""
    try:
        response = client.post(url, json=body, headers=dict(headers or {}))
    except httpx.HTTPError as exc:
        # Refused connections, timeouts and resets are the network's weather: retry.
        raise DeliveryError(f"cannot reach {_host(url)}: {type(exc).__name__}: {exc}") from None
    if 200 <= response.status_code < 300:
        return response
    raise DeliveryError(
        f"{_host(url)} answered HTTP {response.status_code}: {response.text[:200]}",
        permanent=response.status_code in _PERMANENT_STATUSES,
    )


def _host(url: str) -> str:
    # Only the host goes into error text: webhook URLs carry their secret in the path.
    return httpx.URL(url).host or "the endpoint"


def http_client(timeout: float = HTTP_TIMEOUT) -> httpx.Client:
    return httpx.Client(timeout=timeout, headers={"User-Agent": "codequal-notifier"})


class JsonPostChannel:
    """A channel that posts one JSON body per notification to the URL one setting names."""

    name = ""
    variable = ""  # the setting, for the "disabled" reason /health shows

    def __init__(self, url: str | None, client: httpx.Client | None = None) -> None:
        self._url = url
        self._client = client or http_client()

    @property
    def configured(self) -> bool:
        return bool(self._url)

    @property
    def disabled_reason(self) -> str:
        return "" if self._url else f"{self.variable} is not set"

    def notify(self, notification: Notification) -> None:
        assert self._url is not None, "notify() on an unconfigured channel"
        post_json(self._client, self._url, self.payload(notification))

    def payload(self, notification: Notification) -> JSON:
        raise NotImplementedError
