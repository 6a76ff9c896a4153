"""architecture agent: import cycles and layering violations the PR introduced (Python).

The import graph covers every module of the tree (a cycle can run through unchanged files),
built for head and for base; only what head adds is reported. Imports under
``if TYPE_CHECKING:`` are left out: they never run, and are how cycles are broken on purpose.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from codequal.analysis.agents.base import (
    AgentInput,
    AgentResult,
    Deadline,
    Finding,
    LocalAgent,
    Severity,
    is_regular,
    read_text,
    sort_findings,
)
from codequal.analysis.agents.baseline import stamp

AGENT = "architecture"

#: Layers from highest to lowest, each a set of module-name segments. A module belongs to the
#: layer of its first segment listed here (``app.api.routes`` is in ``api``); a module may
#: import its own or a lower layer, never a higher one. Unlisted modules are unconstrained.
DEFAULT_LAYERS: tuple[tuple[str, ...], ...] = (("api", "cli"), ("core", "storage"))

SKIP_DIRS = frozenset(
    {"node_modules", "__pycache__", "venv", "env", "build", "dist", "site-packages"}
)

RawImport = tuple[int, int, str, tuple[str, ...]]  # line, level, module, imported names


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    is_package: bool


@dataclass
class Graph:
    """Modules by dotted name; edges[importer][imported] = line of the first such import."""

    modules: dict[str, Module] = field(default_factory=dict)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)
    unparsable: dict[str, str] = field(default_factory=dict)  # path -> why


def module_for(rel: str) -> Module | None:
    """The module a repository path defines (``src/`` layout stripped), or None."""
    parts = rel.split("/")
    if not rel.endswith(".py") or any(p in SKIP_DIRS or p.startswith(".") for p in parts[:-1]):
        return None
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    is_package = parts[-1] == "__init__.py"
    names = parts[:-1] if is_package else [*parts[:-1], parts[-1][:-3]]
    return Module(".".join(names), rel, is_package) if names else None


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[RawImport] = []

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.extend((node.lineno, 0, alias.name, ()) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(alias.name for alias in node.names)
        self.found.append((node.lineno, node.level, node.module or "", names))


def raw_imports(source: str) -> list[RawImport]:
    """Import statements of a module, unresolved; none when it does not parse."""
    parsed = _parse_imports(source)
    return parsed if isinstance(parsed, list) else []


def _parse_imports(source: str) -> list[RawImport] | str:
    """Import statements, or why the module does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return f"{getattr(exc, 'msg', exc)}" + (f" at line {line}" if line else "")
    visitor = _ImportVisitor()
    visitor.visit(tree)
    return visitor.found


def _deepest(dotted: str, known: Mapping[str, Module]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in known:
            return candidate
    return None


def _from_base(mod: Module, level: int, module: str) -> str | None:
    """The absolute module a (possibly relative) import names, or None above the top."""
    if not level:
        return module
    package = (mod.name if mod.is_package else mod.name.rpartition(".")[0]).split(".")
    if level - 1 > len(package):
        return None
    prefix = [p for p in package[: len(package) - (level - 1)] if p]
    return ".".join(prefix + ([module] if module else []))


def resolve(mod: Module, raw: RawImport, known: Mapping[str, Module]) -> set[str]:
    """Repository modules one import statement loads (third-party imports resolve to none)."""
    _, level, module, names = raw
    target = _from_base(mod, level, module)
    if target is None:
        return set()
    found: set[str] = set()
    for name in names or ("",):
        # `from pkg import mod` imports the submodule when there is one, else the package.
        sub = f"{target}.{name}" if target else name
        hit = sub if name and name != "*" and sub in known else _deepest(target, known)
        if hit:
            found.add(hit)
    found.discard(mod.name)
    return found


def _python_files(root: Path) -> list[Path]:
    """Python files of a tree, not descending into VCS, virtualenv or build directories."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(Path(folder, f) for f in sorted(files) if f.endswith(".py"))
    return [p for p in found if is_regular(p)]


def build_graph(
    root: Path,
    cache: dict[bytes, list[RawImport] | str] | None = None,
    tick: Callable[[str], object] = lambda _path: None,
) -> Graph:
    """The import graph of a checked-out tree; ``cache`` shares parses between trees."""
    cache = {} if cache is None else cache
    graph = Graph()
    raw: dict[str, list[RawImport]] = {}
    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        mod = module_for(rel)
        if mod is None or mod.name in graph.modules:
            continue  # e.g. a module both under src/ and at the top: the first one wins
        tick(rel)
        text = read_text(root, rel)
        if text is None:
            continue
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if digest not in cache:
            cache[digest] = _parse_imports(text)
        parsed = cache[digest]
        graph.modules[mod.name] = mod
        raw[mod.name] = parsed if isinstance(parsed, list) else []
        if isinstance(parsed, str):
            graph.unparsable[rel] = parsed
    for name, mod in graph.modules.items():
        edges = graph.edges.setdefault(name, {})
        for item in raw[name]:
            for target in resolve(mod, item, graph.modules):
                edges.setdefault(target, item[0])
    return graph


def components(edges: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative: import chains can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(edges.get(root, {}))))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    cut = stack.index(node)
                    out.append(stack[cut:])
                    on_stack.difference_update(stack[cut:])
                    del stack[cut:]
    return out


def _path(
    edges: Mapping[str, Mapping[str, int]], start: str, goal: str, within: set[str]
) -> list[str]:
    """Shortest import chain from start to goal inside one component (BFS)."""
    came: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in sorted(edges.get(node, {})):
            if nxt in within and nxt not in came:
                came[nxt] = node
                queue.append(nxt)
    chain: list[str] = []
    at: str | None = goal
    while at is not None:
        chain.append(at)
        at = came.get(at)
    return chain[::-1]


def cycle_findings(head: Graph, base: Graph, changed: set[str]) -> list[Finding]:
    """One finding per import cycle of head not already inside one cycle of base."""
    base_comp = {m: i for i, comp in enumerate(components(base.edges)) for m in comp}
    findings = []
    for comp in components(head.edges):
        members = set(comp)
        if len(members) < 2 or _within_one(members, base_comp):
            continue
        u, v = _closing_import(members, head, base, changed)
        cycle = " -> ".join([u, *_path(head.edges, v, u, members)])
        message = f"import cycle introduced: {cycle}; move the shared code to a lower module"
        mod = head.modules[u]
        findings.append(Finding("high", mod.path, head.edges[u][v], "import-cycle", message, AGENT))
    return findings


def _closing_import(
    members: set[str], head: Graph, base: Graph, changed: set[str]
) -> tuple[str, str]:
    """The import that closed a cycle: one base lacked, in a file the PR changed if any."""
    inside = [(u, v) for u in sorted(members) for v in sorted(head.edges[u]) if v in members]
    new = [e for e in inside if e[1] not in base.edges.get(e[0], {})] or inside
    return next((e for e in new if head.modules[e[0]].path in changed), new[0])


def _within_one(members: set[str], base_comp: dict[str, int]) -> bool:
    """Whether base already had all these modules in one cycle (then nothing is new)."""
    ids = {base_comp.get(m) for m in members}
    return len(ids) == 1 and None not in ids


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> int | None:
    for part in module.split("."):
        for i, names in enumerate(layers):
            if part in names:
                return i
    return None


def layer_findings(
    head: Graph, base: Graph, changed: set[str], layers: Sequence[Sequence[str]]
) -> list[Finding]:
    """New imports, in changed files, from a lower layer up into a higher one."""
    findings = []
    for u, targets in sorted(head.edges.items()):
        mod = head.modules[u]
        low = layer_of(u, layers)
        if low is None or mod.path not in changed:
            continue
        for v, line in sorted(targets.items()):
            high = layer_of(v, layers)
            if high is None or high >= low or v in base.edges.get(u, {}):
                continue
            message = (
                f"{u} (layer {'/'.join(layers[low])}) imports {v} (layer "
                f"{'/'.join(layers[high])}); lower layers must not import higher ones"
            )
            findings.append(Finding("medium", mod.path, line, "layer-violation", message, AGENT))
    return findings


@dataclass(frozen=True)
class ArchitectureAgent(LocalAgent):
    """Import-graph checks; ``layers`` as in :data:`DEFAULT_LAYERS`, highest first.

    Every finding is new: a cycle or layer violation base already had is not reported.
    """

    name: ClassVar[str] = AGENT
    ceiling: ClassVar[Severity] = "high"
    layers: tuple[tuple[str, ...], ...] = DEFAULT_LAYERS

    def review(self, inp: AgentInput) -> AgentResult:
        changed = {c.path for c in inp.present((".py",))}
        if not changed:
            return AgentResult()  # no Python changed: the PR cannot have added an import
        deadline = Deadline.start(AGENT, inp.timeout)
        cache: dict[bytes, list[RawImport] | str] = {}

        def tick(path: str) -> None:
            deadline.remaining()
            inp.progress.begin(path, 0, 0)

        head = build_graph(inp.head_dir, cache, tick)
        base = Graph() if inp.base_dir is None else build_graph(inp.base_dir, cache, tick)
        findings = cycle_findings(head, base, changed)
        findings += layer_findings(head, base, changed, self.layers)
        skipped = [
            self.skip(path, "syntax_error", f"ast: {why}")
            for path, why in sorted(head.unparsable.items())
            if path in changed
        ]
        done = tuple(sorted(changed - {s.path for s in skipped}))
        stamped = [
            f
            for path in sorted({x.file for x in findings})
            for f in stamp(
                [x for x in findings if x.file == path],
                (read_text(inp.head_dir, path) or "").splitlines(),
            )
        ]
        return AgentResult(tuple(sort_findings(stamped)), done, tuple(skipped))
