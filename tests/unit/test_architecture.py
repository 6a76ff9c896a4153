"""The layout rules of docs/architecture.md, checked on the source's import graph.

Imports point down the layers; no module imports itself through others (no cycle, between or
inside packages, ``TYPE_CHECKING`` imports included); no import inside a function to dodge one
(the CLI alone defers imports, so each command loads only what it runs); SQL is written only
in the storage layer and in a part's store modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "codequal"

# Lowest first. A module may import its own package and anything on a lower layer.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"", "vocabulary", "exceptions", "retry", "redaction"}),  # "" is codequal/__init__.py
    frozenset({"config"}),
    frozenset({"storage"}),
    frozenset({"security", "telemetry"}),
    frozenset({"tsdb", "ingest"}),
    frozenset({"analysis"}),
    frozenset({"alerting"}),
    frozenset({"analytics"}),
    frozenset({"runtime"}),
    frozenset({"api", "cli", "__main__"}),
)
# Deferred imports keep `codequal --version` from loading the server (issue 13).
DEFERRED_IMPORTS_ALLOWED = ("codequal.cli",)
# Where SQL may be written: the storage layer and modules named as stores.
TSDB_ENGINE = {
    "codequal.tsdb.store",
    "codequal.tsdb.series_index",
    "codequal.tsdb.openmetrics_import",
}
SQL_CALLS = {"select", "insert", "update", "delete", "text", "exists", "func"}


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    deferred: bool  # inside a function body


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imports_of(name: str) -> list[Import]:
    path = modules()[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, child.lineno, deferred) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, package)
                names = [f"{base}.{a.name}" for a in child.names]
                found.extend(
                    Import(n if n in modules() else base, child.lineno, deferred) for n in names
                )
            visit(child, inner)

    visit(tree, False)
    return [i for i in found if i.target == "codequal" or i.target.startswith("codequal.")]


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(name: str) -> int:
    return next(i for i, group in enumerate(LAYERS) if top(name) in group)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {i.target for i in imports_of(name) if i.target in known and i.target != name}
        for name in known
    }


def test_every_package_has_a_layer() -> None:
    unplaced = sorted({top(name) for name in modules()} - set().union(*LAYERS))
    assert not unplaced, f"add these packages to LAYERS and docs/architecture.md: {unplaced}"


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{name}:{imp.line} imports {imp.target}"
        for name in modules()
        for imp in imports_of(name)
        if top(imp.target) != top(name) and layer(imp.target) > layer(name)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    cycles = sorted({" -> ".join(c) for c in _cycles(graph())})
    assert not cycles, "\n".join(cycles)


def _cycles(edges: dict[str, set[str]]) -> Iterator[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]

    def strongconnect(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges[node]):
            if succ not in index:
                yield from strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(edges):
        if node not in index:
            yield from strongconnect(node)


def test_no_deferred_imports_outside_the_cli() -> None:
    deferred = [
        f"{name}:{imp.line} imports {imp.target} inside a function"
        for name in modules()
        if not name.startswith(DEFERRED_IMPORTS_ALLOWED)
        for imp in imports_of(name)
        if imp.deferred
    ]
    assert not deferred, "\n".join(deferred)


def is_store(name: str) -> bool:
    last = name.rpartition(".")[2]
    return (
        top(name) == "storage"
        or last == "store"
        or last.endswith("_store")
        or ".stores." in name
        or name in TSDB_ENGINE
    )


def sql_lines(name: str) -> list[int]:
    """Lines that build SQL (``sa.select(...)``, ``sa.text(...)``) or run it (``.execute``)."""
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        builds = isinstance(owner, ast.Name) and owner.id == "sa" and node.func.attr in SQL_CALLS
        runs = node.func.attr in ("execute", "exec_driver_sql", "executemany")
        if builds or runs:
            lines.append(node.lineno)
    return lines


def test_sql_is_written_only_in_store_modules() -> None:
    outside = [
        f"{name}:{line}" for name in modules() if not is_store(name) for line in sql_lines(name)
    ]
    assert not outside, "move these queries into the part's store module:\n" + "\n".join(outside)


def test_the_checks_see_the_code() -> None:
    # Guards the guards: a broken walker would pass every rule above.
    assert len(modules()) > 150
    assert "codequal.storage.schema" in graph()["codequal.storage.kv"]
    assert sql_lines("codequal.storage.kv")
    assert layer("codequal.api.app") > layer("codequal.storage.db")
