"""Prometheus alert templates: the subset of Go's text/template that rule files use.

Supported: text and ``{{ }}`` actions with ``{{-`` / ``-}}`` trimming and comments; the
variables Prometheus defines (``$labels``, ``$externalLabels``, ``$externalURL``, ``$value``,
``$``) and the fields ``.Labels``, ``.ExternalLabels``, ``.ExternalURL``, ``.Value``; string,
raw-string, number and boolean literals; pipelines and parenthesised sub-pipelines;
``$x := ...``; ``if`` / ``else if`` / ``else``, ``with`` and ``range``; Go's builtins and
Prometheus's functions (:mod:`~codequal.alerting.template_funcs`), ``query`` included.

Output is byte-identical to Prometheus's (promtool's unit tests compare annotations exactly),
and so are failures: a template that cannot be expanded renders as
``<error expanding template: ...>`` instead of raising, as in Prometheus.

    render("{{ $labels.job }}: {{ $value | humanizePercentage }}",
           TemplateData(labels={"job": "api"}, value=0.1234))       # 'api: 12.34%'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from codequal.alerting import template_funcs as tf
from codequal.alerting.gofmt import QuerySample, format_value, type_name
from codequal.alerting.template_parse import Arg, Block, Cmd, Pipe, TemplateError, parse

QueryFunc = Callable[[str], list[QuerySample]]

# Prometheus prepends these definitions to every alert template, so the columns of errors on
# the first line count them; ours do too.
_PREFIX_LEN = len(
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)
_FUNCTIONS = frozenset(tf.BUILTINS) | frozenset(tf.PROMETHEUS) | frozenset(tf.CONTEXT_FUNCTIONS)
_ROOT_TYPE = (
    "struct { Labels map[string]string; ExternalLabels map[string]string; "
    "ExternalURL string; Value float64 }"
)


@dataclass(frozen=True)
class TemplateData:
    """What an alert template sees: ``.Labels``, ``.ExternalLabels``, ``.ExternalURL``,
    ``.Value`` (the labels are the query result's, before the rule's labels are added)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""


@lru_cache(maxsize=2048)
def _parsed(text: str) -> tuple[Any, ...]:
    return parse(text, _FUNCTIONS)


def check_template(text: str, name: str = "") -> None:
    """Raise :class:`TemplateError` (Prometheus's wording) if ``text`` does not parse."""
    try:
        _parsed(text)
    except TemplateError as exc:
        raise TemplateError(f"template: __alert_{name}:{exc}") from None


def render(text: str, data: TemplateData, name: str = "", query: QueryFunc | None = None) -> str:
    """Expand ``text`` as Prometheus expands an alerting rule's labels and annotations.

    ``name`` is the alert's name (errors call the template ``__alert_<name>``); ``query``
    answers the template function of that name (absent: calling it is an error).
    """
    if "{{" not in text:
        return text
    tmpl = f"__alert_{name}"
    try:
        nodes = _parsed(text)
    except TemplateError as exc:
        return f"<error expanding template: error parsing template {tmpl}: template: {tmpl}:{exc}>"
    try:
        return _Executor(text, tmpl, data, query).run(nodes)
    except TemplateError as exc:
        return f"<error expanding template: error executing template {tmpl}: {exc}>"
    except Exception as exc:  # noqa: BLE001 - as Prometheus recovers a panic: a bad template must not stop evaluation
        return f"<error expanding template: panic expanding template {tmpl}: {exc}>"


_Env = tuple[Any, dict[str, Any]]  # (dot, variables) where an operand is evaluated


class _Root(dict[str, Any]):
    """The template's dot: a Go struct, so an unknown field is an error (not a zero)."""


class _Executor:
    def __init__(self, text: str, name: str, data: TemplateData, query: QueryFunc | None):
        self.text, self.name, self.query, self.data = text, name, query, data
        self.root = _Root(
            Labels=dict(data.labels),
            ExternalLabels=dict(data.external_labels),
            ExternalURL=data.external_url,
            Value=data.value,
        )
        self.out: list[str] = []

    def run(self, nodes: tuple[Any, ...]) -> str:
        scope = {
            "$": self.root,
            "$labels": self.root["Labels"],
            "$externalLabels": self.root["ExternalLabels"],
            "$externalURL": self.root["ExternalURL"],
            "$value": self.root["Value"],
        }
        self.walk(nodes, self.root, scope)
        return "".join(self.out)

    def walk(self, nodes: tuple[Any, ...], dot: Any, scope: dict[str, Any]) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, Pipe):
                value = self.pipe(node, dot, scope)
                if not node.decl:
                    self.out.append(format_value(value))
            else:
                self.block(node, dot, scope)

    def block(self, node: Block, dot: Any, scope: dict[str, Any]) -> None:
        inner = dict(scope)  # variables declared inside a block end with it
        value = self.pipe(node.pipe, dot, inner)
        if node.kind == "range":
            self.range(node, value, inner)
        elif not tf.truth(value):
            self.walk(node.orelse, dot, dict(scope))
        else:
            self.walk(node.body, value if node.kind == "with" else dot, inner)

    def range(self, node: Block, value: Any, scope: dict[str, Any]) -> None:
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = sorted(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif value is None:
            items = []
        else:
            raise self.error(node.pipe.cmds[0], f"range can't iterate over {format_value(value)}")
        if not items:
            self.walk(node.orelse, value, dict(scope))
        for key, element in items:
            if len(node.pipe.decl) == 2:
                scope[node.pipe.decl[0]], scope[node.pipe.decl[1]] = key, element
            elif node.pipe.decl:
                scope[node.pipe.decl[0]] = element
            self.walk(node.body, element, scope)

    def pipe(self, pipe: Pipe, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = None
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, scope, (value,) if i else ())
        for name in pipe.decl[-1:]:
            scope[name] = value
        return value

    def command(self, cmd: Cmd, dot: Any, scope: dict[str, Any], final: tuple[Any, ...]) -> Any:
        head = cmd.args[0]
        if head.kind == "func":
            return self.call(cmd, head, list(cmd.args[1:]), final, (dot, scope))
        if head.kind == "nil":
            raise self.error(head, "nil is not a command")
        if len(cmd.args) > 1 or final:
            raise self.error(head, f"can't give argument to non-function {head.text}")
        return self.operand(head, dot, scope)

    def operand(self, arg: Arg, dot: Any, scope: dict[str, Any]) -> Any:
        if arg.kind == "lit":
            return arg.value
        if arg.kind == "func":
            return self.call(Cmd((arg,), arg.pos), arg, [], (), (dot, scope))
        if arg.kind == "nil":
            return None
        if arg.kind == "var":
            base = scope[arg.value]
        elif arg.kind == "pipe":
            base = self.pipe(arg.value, dot, dict(scope))
        else:
            base = dot
        for name in arg.chain:
            base = self.field(arg, base, name)
        return base

    def field(self, cmd: Arg, value: Any, name: str) -> Any:
        if isinstance(value, _Root):
            if name not in value:
                raise self.error(cmd, f"can't evaluate field {name} in type {_ROOT_TYPE}")
            return value[name]
        if isinstance(value, dict):
            # missingkey=zero: a label map yields "", an interface map yields nil.
            zero = "" if all(isinstance(v, str) for v in value.values()) else None
            return value.get(name, zero)
        if isinstance(value, QuerySample) and name in ("Labels", "Value"):
            return value.labels if name == "Labels" else value.value
        if value is None:
            raise self.error(cmd, f"nil pointer evaluating interface {{}}.{name}")
        kind = type_name(value)
        raise self.error(cmd, f"can't evaluate field {name} in type {kind}")

    def call(self, cmd: Cmd, head: Arg, args: list[Arg], final: tuple[Any, ...], env: _Env) -> Any:
        """Call ``head`` as text/template does: count, convert each argument, call."""
        name = head.value
        func = tf.BUILTINS.get(name) or tf.PROMETHEUS.get(name) or self.context_function(name)
        want, got = len(func.params), len(args) + len(final)
        if got < want or (got > want and not func.variadic):
            least = "at least " if func.variadic else ""
            raise self.error(head, f"wrong number of args for {name}: want {least}{want} got {got}")
        values = [
            self.argument(arg, kind, env) for arg, kind in zip(args, func.params, strict=False)
        ]
        values += [self.operand(arg, *env) for arg in args[want:]]
        if final:
            values.append(self.convert(cmd, func.params[-1] if got <= want else "any", final[0]))
        try:
            return func.call(*values)
        except tf.FuncError as exc:
            raise self.error(cmd, f"error calling {name}: {exc}") from None

    def argument(self, arg: Arg, kind: str, env: _Env) -> Any:
        if arg.kind == "lit" and kind == "string" and not isinstance(arg.value, str):
            raise self.error(arg, f"expected string; found {arg.text}")
        if arg.kind == "lit" and kind in ("sample", "result"):
            raise self.error(arg, f"can't handle {arg.text} for arg of type {tf.GO_TYPES[kind]}")
        return self.convert(arg, kind, self.operand(arg, *env))

    def convert(self, where: Arg | Cmd, kind: str, value: Any) -> Any:
        try:
            return tf.check_arg(kind, value)
        except tf.ArgError as exc:
            raise self.error(where, str(exc)) from None

    def context_function(self, name: str) -> tf.Func:
        if name == "externalURL":
            return tf.Func(lambda: self.data.external_url, ())
        if name == "pathPrefix":
            return tf.Func(lambda: urlsplit(self.data.external_url).path, ())
        return tf.Func(self.run_query, ("string",))

    def run_query(self, expr: str) -> list[QuerySample]:
        if self.query is None:
            raise tf.FuncError("queries are not available in this context")
        try:
            return self.query(expr)
        except Exception as exc:  # any query failure becomes the template's error
            raise tf.FuncError(str(exc)) from exc

    def error(self, cmd: Cmd | Arg, message: str) -> TemplateError:
        """Go's error context: ``template: NAME:LINE:COL: executing "NAME" at <cmd>: ...``."""
        before = self.text[: cmd.pos]
        line = 1 + before.count("\n")
        newline = before.rfind("\n")
        col = len(before[newline + 1 :].encode()) + (_PREFIX_LEN if newline < 0 else 0)
        where = f"{self.name}:{line}:{col}"
        node = cmd.text if isinstance(cmd, Arg) else str(cmd)
        return TemplateError(f'template: {where}: executing "{self.name}" at <{node}>: {message}')


__all__ = ["QueryFunc", "QuerySample", "TemplateData", "TemplateError", "check_template", "render"]
