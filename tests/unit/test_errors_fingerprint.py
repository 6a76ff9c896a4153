"""Grouping: which errors are the same issue, and what an event carries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy
from opentelemetry.sdk.trace import TracerProvider

from codequal.telemetry.context import bind
from codequal.telemetry.errors import (
    ErrorEvent,
    build_event,
    build_message_event,
    fingerprint,
    is_in_app,
    parameterise,
)


def _frame(
    function: str, line: str, *, lineno: int = 10, in_app: bool = True, module: str = "app.jobs"
) -> dict[str, Any]:
    return {
        "module": module,
        "function": function,
        "filename": f"/srv/{module.replace('.', '/')}.py",
        "lineno": lineno,
        "context_line": line,
        "in_app": in_app,
    }


def _raised(fn: Callable[..., None], *args: Any) -> BaseException:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - returning whatever the code under test raised
        return exc
    raise AssertionError("expected an exception")


def _load_user(user_id: int) -> None:
    raise LookupError(
        f"user {user_id} not found in /srv/data/{user_id}.json (request {uuid.uuid4()})"
    )


def _via_api(user_id: int) -> None:
    _load_user(user_id)


def _via_job(user_id: int) -> None:
    _load_user(user_id)


def _event(exc: BaseException, **kwargs: Any) -> ErrorEvent:
    return build_event(exc, service="svc", environment="test", **kwargs)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("user 42 not found", "user <num> not found"),
        ("took 1.25s, retry 3", "took <num>s, retry <num>"),
        ("analysis 3f1c2a9e-8b7d-4c6e-9f10-1a2b3c4d5e6f failed", "analysis <uuid> failed"),
        ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
        ("object at 0x7f3a2c1b9d80", "object at <hex>"),
        (
            "GET https://api.github.com/repos/org/r/pulls/7?x=1 returned 502",
            "GET <url> returned <num>",
        ),
        ("cannot open /var/lib/codequal/ws/123/README.md", "cannot open <path>"),
        ("cannot open C:\\Users\\ada\\repo\\a.py", "cannot open <path>"),
        ("bad file src/codequal/app.py", "bad file <path>"),
        ("KeyError: 'repository_url'", "KeyError: <str>"),
        ('model "gpt-4o" rejected the prompt', "model <str> rejected the prompt"),
        ("host 10.0.0.12:5432 refused", "host <num>:<num> refused"),
        ("int64 overflow in utf8 decoder", "int64 overflow in utf8 decoder"),
        ("can't parse the deadbeef header", "can't parse the deadbeef header"),
    ],
)
def test_variable_parts_of_a_message_become_placeholders(message: str, expected: str) -> None:
    assert parameterise(message) == expected


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    fp = fingerprint("ValueError", [_frame("run", "x = y()")], "bad value 3")
    assert len(fp) == 64
    assert int(fp, 16) >= 0


def test_line_numbers_and_whitespace_do_not_split_an_issue() -> None:
    before = [_frame("run", "result = parse(data)", lineno=10)]
    after_edit = [_frame("run", "result  =   parse(data)", lineno=57)]
    assert fingerprint("ValueError", before, "m") == fingerprint("ValueError", after_edit, "m")


def test_type_function_module_and_source_line_each_split_issues() -> None:
    base = fingerprint("ValueError", [_frame("run", "parse(data)")], "m")
    assert fingerprint("TypeError", [_frame("run", "parse(data)")], "m") != base
    assert fingerprint("ValueError", [_frame("start", "parse(data)")], "m") != base
    assert fingerprint("ValueError", [_frame("run", "parse(data)", module="app.x")], "m") != base
    assert fingerprint("ValueError", [_frame("run", "load(data)")], "m") != base


def test_library_frames_do_not_affect_the_fingerprint() -> None:
    app = _frame("run", "client.get(url)")
    old_lib = _frame("request", "raise ConnectionError(e)", in_app=False, module="requests.api")
    new_lib = _frame("send", "raise ConnectionError(err)", in_app=False, module="requests.api")
    assert fingerprint("ConnectionError", [app, old_lib], "m") == fingerprint(
        "ConnectionError", [app, new_lib], "m"
    )


def test_library_frames_are_used_when_no_frame_is_in_app() -> None:
    one = [_frame("loads", "raise JSONDecodeError", in_app=False, module="json")]
    other = [_frame("dumps", "raise TypeError", in_app=False, module="json")]
    assert fingerprint("ValueError", one, "m") != fingerprint("ValueError", other, "m")


def test_explicit_fingerprint_replaces_the_default() -> None:
    a = fingerprint("ValueError", [_frame("a", "a()")], "one", explicit=["payment-gateway"])
    b = fingerprint("KeyError", [_frame("b", "b()")], "two", explicit=["payment-gateway"])
    assert a == b
    assert a != fingerprint("ValueError", [_frame("a", "a()")], "one")


def test_default_placeholder_in_an_explicit_fingerprint_refines_the_default() -> None:
    frames = [_frame("charge", "gateway.charge(order)")]
    acme = fingerprint("ValueError", frames, "m", explicit=["{{ default }}", "tenant-acme"])
    again = fingerprint("ValueError", frames, "m", explicit=["{{default}}", "tenant-acme"])
    other_tenant = fingerprint("ValueError", frames, "m", explicit=["{{ default }}", "tenant-b"])
    other_error = fingerprint("KeyError", frames, "m", explicit=["{{ default }}", "tenant-acme"])
    assert acme == again
    assert len({acme, other_tenant, other_error, fingerprint("ValueError", frames, "m")}) == 4


def test_standard_library_and_installed_packages_are_not_in_app() -> None:
    assert not is_in_app(json.__file__, "json")
    assert not is_in_app(str(sqlalchemy.__file__), "sqlalchemy")
    assert not is_in_app("/opt/venv/lib/python3.11/site-packages/x/y.py", "x.y")
    assert not is_in_app("<frozen importlib._bootstrap>", "importlib._bootstrap")
    assert is_in_app(__file__, __name__)


def test_codequal_is_in_app_even_when_installed_into_site_packages() -> None:
    assert is_in_app("/opt/venv/lib/python3.11/site-packages/codequal/api/app.py", "codequal.api")


def test_same_error_from_same_code_with_different_ids_gets_one_fingerprint() -> None:
    first = _event(_raised(_via_api, 42))
    second = _event(_raised(_via_api, 1337))
    assert first.fingerprint == second.fingerprint
    assert first.message != second.message


def test_same_error_from_a_different_call_site_gets_another_fingerprint() -> None:
    assert _event(_raised(_via_api, 42)).fingerprint != _event(_raised(_via_job, 42)).fingerprint


def test_event_carries_frames_stack_and_the_time_given() -> None:
    event = _event(_raised(_via_api, 7), now=1_700_000_000.5, level="critical")

    assert event.type == "LookupError"
    assert event.timestamp == 1_700_000_000.5
    assert event.level == "critical"
    assert [f["function"] for f in event.frames][-2:] == ["_via_api", "_load_user"]
    inner = event.frames[-1]
    assert inner["in_app"] is True
    assert inner["lineno"] > 0
    assert inner["context_line"].startswith("raise LookupError(")
    assert event.culprit == f"{__name__} in _load_user"
    assert "Traceback (most recent call last)" in event.stack
    assert len(event.event_id) == 32


def test_event_type_names_the_module_of_non_builtin_exceptions() -> None:
    class QuotaExceeded(Exception):
        pass

    event = _event(QuotaExceeded("over"))
    assert event.type.endswith(".QuotaExceeded")
    assert event.type.startswith(__name__)


def test_event_is_enriched_from_context_and_explicit_context_wins() -> None:
    outer = bind(user_id="u-1", repository_url="https://github.com/o/r", analysis_id="an-1")
    with outer, bind(trace_id="a" * 32, mode="quick"):
        event = _event(ValueError("x"), context={"analysisId": "an-2", "step": "agents"})

    assert (event.user_id, event.repository_url) == ("u-1", "https://github.com/o/r")
    assert event.analysis_id == "an-2"
    assert event.trace_id == "a" * 32
    assert event.context == {"mode": "quick", "step": "agents"}


def test_event_takes_the_trace_id_of_the_active_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("analysis") as span:
        event = _event(ValueError("x"))
    assert event.trace_id == format(span.get_span_context().trace_id, "032x")


def test_event_context_is_json_even_for_arbitrary_objects() -> None:
    event = _event(ValueError("x"), context={"obj": object(), "ids": {3}, 7: (1, 2)})
    data = json.loads(json.dumps(event.to_dict()))
    assert data["context"]["ids"] == [3]
    assert data["context"]["7"] == [1, 2]
    assert data["context"]["obj"].startswith("<object object")


def test_event_round_trips_through_its_dict() -> None:
    event = _event(_raised(_via_api, 1), context={"k": [1, {"a": None}]})
    assert ErrorEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_unknown_level_is_rejected_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="level must be one of debug, info, warn, error"):
        _event(ValueError("x"), level="fatal")


def test_message_events_group_by_parameterised_message() -> None:
    one = build_message_event("quota left: 12 requests", service="s", environment="e")
    two = build_message_event("quota left: 3 requests", service="s", environment="e")
    assert one.type == "message"
    assert one.level == "info"
    assert one.fingerprint == two.fingerprint
