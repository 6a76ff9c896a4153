"""Lexer and parser for alert templates (the text/template subset in ``templates``).

The tree is small and frozen: text strings, pipelines (``_Pipe``: commands separated by
``|``, each a list of operands) and blocks (``if`` / ``with`` / ``range`` with an ``else``).
Positions are kept so that execution errors can name line and column as Go does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from codequal.exceptions import InvalidInput


class TemplateError(InvalidInput):
    """A template that does not parse or execute; the message is Prometheus's."""


_VARIABLES = frozenset({"$", "$labels", "$externalLabels", "$externalURL", "$value"})
_KEYWORDS = frozenset({"if", "else", "end", "with", "range", "define", "template", "block"})


@dataclass(frozen=True)
class Arg:
    kind: str  # "field" | "var" | "lit" | "func" | "pipe" | "dot" | "nil"
    value: Any  # field chain / variable name / literal / function name / Pipe
    chain: tuple[str, ...] = ()
    text: str = ""
    pos: int = 0  # where Go's error context points: the token, or a chain's first field


@dataclass(frozen=True)
class Cmd:
    args: tuple[Arg, ...]
    pos: int

    def __str__(self) -> str:
        return " ".join(a.text for a in self.args)


@dataclass(frozen=True)
class Pipe:
    decl: tuple[str, ...]
    cmds: tuple[Cmd, ...]


@dataclass(frozen=True)
class Block:
    kind: str  # "if" | "with" | "range"
    pipe: Pipe
    body: tuple[Any, ...]
    orelse: tuple[Any, ...]


# -- lexing -----------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<decl>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lparen>\()|(?P<rparen>\))
    |(?P<comma>,)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)
    |(?P<num>[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
    |(?P<var>\$\w*)|(?P<field>(?:\.\w+)+)|(?P<dot>\.)|(?P<ident>[A-Za-z_]\w*)""",
    re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a"}
_ESCAPES |= {"b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _unquote(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m[1]
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, "\\" + esc)

    return re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", one, text[1:-1])


def _number(text: str) -> int | float:
    # Go turns a constant written with '.', 'e' or 'E' into a float64, any other into an int.
    if text.lower().lstrip("+-").startswith("0x"):
        return int(text, 16)
    return float(text) if re.search(r"[.eE]", text) else int(text)


def _tokens(body: str, base: int) -> list[tuple[str, str, int, bool]]:
    """(kind, text, position, preceded by space) for one action's body."""
    out: list[tuple[str, str, int, bool]] = []
    pos, spaced = 0, True
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise TemplateError(f"unexpected {body[pos]!r} in command")
        kind = m.lastgroup or ""
        if kind == "space":
            spaced = True
        else:
            out.append((kind, m[0], base + pos, spaced))
            spaced = False
        pos = m.end()
    return out


# -- parsing ----------------------------------------------------------------------------------


class Parser:
    def __init__(self, text: str, functions: frozenset[str]) -> None:
        self.text = text
        self.functions = functions
        self.items: list[tuple[str, Any, int]] = []
        self.i = 0
        self.variables: list[set[str]] = [set(_VARIABLES)]

    @staticmethod
    def _split(text: str) -> list[tuple[str, Any, int]]:
        """Text and action items, with Go's whitespace trimming applied to the text."""
        items: list[tuple[str, Any, int]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            chunk = text[pos : m.start()]
            items.append(("text", chunk.rstrip() if m[1] else chunk, pos))
            body = m[2]
            if not body.strip().startswith("/*"):
                items.append(("action", _tokens(body, m.start(2)), m.start(2)))
            pos = m.end()
            if m[3]:
                rest = text[pos:]
                pos += len(rest) - len(rest.lstrip())
        if "{{" in text[pos:]:
            raise TemplateError("unclosed action")
        items.append(("text", text[pos:], pos))
        return [item for item in items if item[0] == "action" or item[1]]

    def parse(self) -> tuple[Any, ...]:
        try:
            self.items = self._split(self.text)
            nodes, end = self.parse_list()
        except TemplateError as exc:
            raise TemplateError(f"{self._line()}: {exc}") from None
        if end is not None:
            raise TemplateError(f"{self._line()}: unexpected {{{{{end}}}}}")
        return nodes

    def _line(self) -> int:
        """The line of the item being parsed (Go reports parse errors by line)."""
        index = min(self.i, len(self.items)) - 1
        pos = self.items[index][2] if index >= 0 else 0
        return 1 + self.text.count("\n", 0, pos)

    def parse_list(self) -> tuple[tuple[Any, ...], str | None]:
        """Nodes up to an ``{{end}}`` or ``{{else}}`` (returned as the terminator)."""
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, payload, _pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(payload)
                continue
            if not payload:
                raise TemplateError("missing value for command")
            word = payload[0][1] if payload[0][0] == "ident" else ""
            if word in ("end", "else"):
                if word == "else" and len(payload) > 1:
                    self.i -= 1  # `else if` / `else with`: the caller parses it as a block
                return tuple(nodes), word
            if word in ("if", "with", "range"):
                nodes.append(self.parse_block(word, payload[1:]))
            elif word in _KEYWORDS:
                raise TemplateError(f"{{{{{word}}}}} is not supported in alert templates")
            else:
                pipe = self.pipeline(payload)
                self.variables[-1].update(pipe.decl)
                nodes.append(pipe)
        return tuple(nodes), None

    def parse_block(self, kind: str, tokens: list[Any]) -> Block:
        pipe = self.pipeline(tokens)
        # A variable declared in the block's pipeline is visible only inside the block.
        self.variables.append(set(pipe.decl))
        body, end = self.parse_list()
        orelse: tuple[Any, ...] = ()
        if end == "else" and self.i < len(self.items) and self._is_else_chain():
            tokens = self.items[self.i][1]
            self.i += 1
            orelse = (self.parse_block(tokens[1][1], tokens[2:]),)
            end = "end"
        elif end == "else":
            orelse, end = self.parse_list()
        self.variables.pop()
        if end != "end":
            raise TemplateError(f"unexpected EOF in {kind}")
        return Block(kind, pipe, body, orelse)

    def _is_else_chain(self) -> bool:
        kind, payload, _ = self.items[self.i]
        return kind == "action" and len(payload) > 1 and payload[0][1] == "else"

    def pipeline(self, tokens: list[Any]) -> Pipe:
        decl: list[str] = []
        if len(tokens) > 1 and tokens[0][0] == "var" and tokens[1][0] in ("decl", "assign"):
            decl.append(tokens[0][1])
            tokens = tokens[2:]
        elif len(tokens) > 3 and tokens[1][0] == "comma" and tokens[3][0] == "decl":
            decl += [tokens[0][1], tokens[2][1]]
            tokens = tokens[4:]
        cmds, rest = self.commands(tokens)
        if rest:
            raise TemplateError(f"unexpected {rest[0][1]!r} in command")
        if not cmds:
            raise TemplateError("missing value for command")
        return Pipe(tuple(decl), tuple(cmds))

    def commands(self, tokens: list[Any]) -> tuple[list[Cmd], list[Any]]:
        """Commands separated by ``|``, up to an unmatched ``)``."""
        cmds: list[Cmd] = []
        args: list[Arg] = []
        pos = tokens[0][2] if tokens else 0
        while tokens and tokens[0][0] != "rparen":
            kind, _text, where, _ = tokens[0]
            if kind == "pipe":
                cmds.append(self._command(args, pos))
                args, tokens = [], tokens[1:]
                pos = tokens[0][2] if tokens else where
                continue
            arg, tokens = self.operand(tokens)
            args.append(arg)
        if args or cmds:
            cmds.append(self._command(args, pos))
        return cmds, tokens

    @staticmethod
    def _command(args: list[Arg], pos: int) -> Cmd:
        if not args:
            raise TemplateError("missing value for command")
        return Cmd(tuple(args), pos)

    def operand(self, tokens: list[Any]) -> tuple[Arg, list[Any]]:
        kind, text, pos, _ = tokens[0]
        rest = tokens[1:]
        arg = replace(self._term(kind, text), pos=pos)
        if kind == "lparen":
            cmds, rest = self.commands(rest)
            if not rest:
                raise TemplateError("unclosed left paren")
            inner = " | ".join(map(str, cmds))
            arg, rest = Arg("pipe", Pipe((), tuple(cmds)), text=f"({inner})", pos=pos), rest[1:]
        if rest and rest[0][0] == "field" and not rest[0][3] and kind in ("var", "lparen"):
            chain = tuple(rest[0][1].split(".")[1:])
            arg = Arg(arg.kind, arg.value, chain, arg.text + rest[0][1], rest[0][2])
            rest = rest[1:]
        return arg, rest

    def _term(self, kind: str, text: str) -> Arg:  # noqa: PLR0911 - one case per token kind
        if kind == "field":
            return Arg("field", None, tuple(text.split(".")[1:]), text)
        if kind == "dot":
            return Arg("dot", None, (), text)
        if kind == "var":
            if not any(text in scope for scope in self.variables):
                raise TemplateError(f'undefined variable "{text}"')
            return Arg("var", text, (), text)
        if kind in ("str", "raw"):
            return Arg("lit", _unquote(text) if kind == "str" else text[1:-1], (), text)
        if kind == "num":
            return Arg("lit", _number(text), (), text)
        if kind == "ident" and text in ("true", "false"):
            return Arg("lit", text == "true", (), text)
        if kind == "ident" and text == "nil":
            return Arg("nil", None, (), text)
        if kind == "ident":
            if text not in self.functions:
                raise TemplateError(f'function "{text}" not defined')
            return Arg("func", text, (), text)
        if kind == "lparen":
            return Arg("pipe", None, (), text)
        raise TemplateError(f"unexpected {text!r} in operand")


def parse(text: str, functions: frozenset[str]) -> tuple[Any, ...]:
    """The tree of ``text``; ``functions`` are the names a command may call."""
    return Parser(text, functions).parse()
