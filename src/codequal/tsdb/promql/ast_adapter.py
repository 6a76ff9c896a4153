"""Our own typed, frozen AST, converted from the ``promql_parser`` (Rust) AST.

The parser's objects are rebuilt on every attribute access and are awkward to type, so the
engine never sees them: it evaluates these nodes. ``eq=False`` keeps identity hashing, which
the engine uses to cache per-node work within a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

import promql_parser as pp

from codequal.tsdb.promql.limits import check_depth
from codequal.tsdb.promql.source import Matcher, MatchOp
from codequal.tsdb.promql.types import METRIC_NAME, PromQLError

ValueType: TypeAlias = Literal["scalar", "vector", "matrix", "string"]
# An @ modifier: a fixed time in ms, or the query's start() / end().
At: TypeAlias = int | Literal["start", "end"]

_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, eq=False, slots=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True, eq=False, slots=True)
class StringLiteral:
    value: str


@dataclass(frozen=True, eq=False, slots=True)
class VectorSelector:
    name: str | None
    matchers: tuple[Matcher, ...]  # includes the __name__ matcher when a name is given
    offset_ms: int
    at: At | None


@dataclass(frozen=True, eq=False, slots=True)
class MatrixSelector:
    selector: VectorSelector
    range_ms: int


@dataclass(frozen=True, eq=False, slots=True)
class Subquery:
    expr: Node
    range_ms: int
    step_ms: int  # 0: the engine's default evaluation interval
    offset_ms: int
    at: At | None


@dataclass(frozen=True, eq=False, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]
    returns: ValueType


@dataclass(frozen=True, eq=False, slots=True)
class Aggregate:
    op: str
    expr: Node
    param: Node | None
    grouping: tuple[str, ...]
    without: bool


@dataclass(frozen=True, eq=False, slots=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool
    card: Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]
    on: bool
    matching: tuple[str, ...]  # the on(...) / ignoring(...) labels
    include: tuple[str, ...]  # the group_left(...) / group_right(...) labels


@dataclass(frozen=True, eq=False, slots=True)
class Negation:
    expr: Node


@dataclass(frozen=True, eq=False, slots=True)
class Paren:
    expr: Node


Node: TypeAlias = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | Subquery
    | Call
    | Aggregate
    | Binary
    | Negation
    | Paren
)

# The binding's enums are not hashable, so the tables are keyed by their str().
_MATCH_OPS = {
    "MatchOp.Equal": MatchOp.EQUAL,
    "MatchOp.NotEqual": MatchOp.NOT_EQUAL,
    "MatchOp.Re": MatchOp.REGEX,
    "MatchOp.NotRe": MatchOp.NOT_REGEX,
}
_VALUE_TYPES: dict[str, ValueType] = {
    "ValueType.Vector": "vector",
    "ValueType.Scalar": "scalar",
    "ValueType.Matrix": "matrix",
    "ValueType.String": "string",
}
_CARDS: dict[str, Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]] = {
    "VectorMatchCardinality.OneToOne": "one-to-one",
    "VectorMatchCardinality.ManyToOne": "many-to-one",
    "VectorMatchCardinality.OneToMany": "one-to-many",
    "VectorMatchCardinality.ManyToMany": "many-to-many",
}
_SET_OPS = frozenset({"and", "or", "unless"})


def parse(query: str) -> Node:
    """Parse a PromQL expression, raising :class:`PromQLError` with the parser's message
    (and refusing, unparsed, one nested deeper than the engine and parser can take)."""
    check_depth(query)
    try:
        expr = pp.parse(_renamed_functions(query))
    except ValueError as exc:
        raise PromQLError(prometheus_wording(str(exc))) from exc
    return _convert(expr)


# holt_winters is 2.x's name for what the parser (following Prometheus 3) calls
# double_exponential_smoothing, a function 2.42 does not have.
_OLD_NAME, _NEW_NAME = "holt_winters", "double_exponential_smoothing"
_FUNCTION_NAMES = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`|\b(\w+)(?=\s*\()')


def _renamed_functions(query: str) -> str:
    if _OLD_NAME not in query and _NEW_NAME not in query:
        return query

    def rename(match: re.Match[str]) -> str:
        if match[1] == _NEW_NAME:
            raise PromQLError(f"unknown function with name {_NEW_NAME!r}")
        return _NEW_NAME if match[1] == _OLD_NAME else match[0]

    return _FUNCTION_NAMES.sub(rename, query)


def prometheus_wording(message: str) -> str:
    """Say types the way Prometheus does ("range vector", not "matrix")."""
    message = re.sub(r"\bmatrix\b", "range vector", message)
    message = re.sub(r"\b(type|got) vector\b", r"\1 instant vector", message)
    return re.sub(r"function '([^']*)'", r'function "\1"', message)


def _ms(delta: timedelta | None) -> int:
    return 0 if delta is None else delta // _MS


def _at(modifier: pp.AtModifier | None) -> At | None:
    if modifier is None:
        return None
    if modifier.type == pp.AtModifierType.Start:
        return "start"
    if modifier.type == pp.AtModifierType.End:
        return "end"
    try:
        when = modifier.at
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise PromQLError("@ timestamps before 1970 are not supported") from None
    assert when is not None
    return (when - _EPOCH) // _MS


def _selector(node: pp.VectorSelector) -> VectorSelector:
    if node.matchers.or_matchers:
        raise PromQLError("'or' inside a selector is not PromQL 2.x; use separate selectors")
    matchers = [Matcher(_MATCH_OPS[str(m.op)], m.name, m.value) for m in node.matchers.matchers]
    if node.name is not None:
        matchers.insert(0, Matcher(MatchOp.EQUAL, METRIC_NAME, node.name))
    return VectorSelector(node.name, tuple(matchers), _ms(node.offset), _at(node.at))


def _binary(node: pp.BinaryExpr) -> Binary:
    op = str(node.op)
    mod = node.modifier
    card = _CARDS[str(mod.card)] if mod is not None else "one-to-one"
    if op in _SET_OPS:
        card = "many-to-many"
    matching = mod.matching if mod is not None else None
    return Binary(
        op=op,
        lhs=_convert(node.lhs),
        rhs=_convert(node.rhs),
        return_bool=bool(mod and mod.return_bool),
        card=card,
        on=matching is not None and matching.type == pp.LabelModifierType.Include,
        matching=tuple(matching.labels) if matching is not None else (),
        include=tuple(mod.group_labels or ()) if mod is not None else (),
    )


def _aggregate(node: pp.AggregateExpr) -> Aggregate:
    mod = node.modifier
    return Aggregate(
        op=str(node.op),
        expr=_convert(node.expr),
        param=_convert(node.param) if node.param is not None else None,
        grouping=tuple(mod.labels) if mod is not None else (),
        without=mod is not None and mod.type == pp.AggModifierType.Without,
    )


def _convert(expr: pp.Expr) -> Node:  # noqa: PLR0911 - one branch per node type
    if isinstance(expr, pp.NumberLiteral):
        return NumberLiteral(float(expr.val))
    if isinstance(expr, pp.StringLiteral):
        return StringLiteral(expr.val)
    if isinstance(expr, pp.VectorSelector):
        return _selector(expr)
    if isinstance(expr, pp.MatrixSelector):
        return MatrixSelector(_selector(expr.vector_selector), _ms(expr.range))
    if isinstance(expr, pp.SubqueryExpr):
        return Subquery(
            _convert(expr.expr), _ms(expr.range), _ms(expr.step), _ms(expr.offset), _at(expr.at)
        )
    if isinstance(expr, pp.Call):
        returns = _VALUE_TYPES[str(expr.func.return_type)]
        name = _OLD_NAME if expr.func.name == _NEW_NAME else expr.func.name
        return Call(name, tuple(_convert(a) for a in expr.args), returns)
    if isinstance(expr, pp.AggregateExpr):
        return _aggregate(expr)
    if isinstance(expr, pp.BinaryExpr):
        return _binary(expr)
    if isinstance(expr, pp.UnaryExpr):
        return Negation(_convert(expr.expr))
    if isinstance(expr, pp.ParenExpr):
        return Paren(_convert(expr.expr))
    raise PromQLError(f"unsupported expression {expr}")


def value_type(node: Node) -> ValueType:  # noqa: PLR0911 - one branch per node type
    """The static type of an expression, as Prometheus's parser infers it."""
    if isinstance(node, NumberLiteral):
        return "scalar"
    if isinstance(node, StringLiteral):
        return "string"
    if isinstance(node, MatrixSelector | Subquery):
        return "matrix"
    if isinstance(node, Call):
        return node.returns
    if isinstance(node, Negation | Paren):
        return value_type(node.expr)
    if isinstance(node, Binary):
        both_scalar = value_type(node.lhs) == value_type(node.rhs) == "scalar"
        return "scalar" if both_scalar else "vector"
    return "vector"
