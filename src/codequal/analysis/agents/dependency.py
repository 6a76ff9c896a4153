"""dependency agent: changed requirements files, pyproject.toml and package.json; no network.

Rules:
- ``unpinned-dependency`` (medium). A requirements file is what gets installed, so it must pin:
  ``==``, ``===``, ``~=`` or an upper bound (``<``, ``<=``); a bare name or ``>=`` alone is
  unpinned. A manifest (pyproject.toml, package.json) declares ranges and leaves pinning to
  its lock file, so there only a dependency with no constraint at all (bare, ``*``,
  ``latest``) is unpinned.
- ``duplicate-dependency`` (medium): one normalised name twice in one list (package.json:
  across dependencies and devDependencies, where npm keeps only one).
- ``lockfile-missing-entry`` (medium): declared in the manifest, absent from the lock file next
  to it (package-lock.json, yarn.lock, poetry.lock, uv.lock, pdm.lock).
- ``lockfile-not-updated`` (medium): the manifest's dependencies changed, the lock did not.
- ``lockfile-missing`` (low): a package.json with dependencies and no lock file beside it.
All but ``lockfile-not-updated`` are reported only when base did not already have them.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal

from codequal.analysis.agents.base import (
    AgentInput,
    AgentResult,
    ChangedFile,
    Deadline,
    Finding,
    Keyed,
    LocalAgent,
    Severity,
    Skip,
    partition,
    read_text,
    sort_findings,
)
from codequal.analysis.agents.baseline import stamp
from codequal.analysis.agents.tools import read_each

AGENT = "dependency"
Kind = Literal["requirements", "pyproject", "package"]
LOCKS: dict[Kind, tuple[str, ...]] = {
    "requirements": (),
    "pyproject": ("poetry.lock", "uv.lock", "pdm.lock"),
    "package": ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"),
}
_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>.*)$"
)
_OPERATOR = re.compile(r"===|==|~=|!=|<=|>=|<|>")
_NO_CONSTRAINT = {"", "*", "latest", "x", "X", "next"}


@dataclass(frozen=True)
class Dependency:
    """One declared dependency; ``scope`` groups the entries that must not repeat a name."""

    name: str
    spec: str
    section: str
    scope: str
    line: int | None
    pinned: bool

    @property
    def key(self) -> str:
        return normalise_name(self.name)


def normalise_name(name: str) -> str:
    """PEP 503 normalisation (npm names are compared the same way; they are lowercase)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def manifest_kind(path: str) -> Kind | None:
    p = PurePosixPath(path)
    if "node_modules" in p.parts:
        return None
    if p.name == "package.json":
        return "package"
    if p.name == "pyproject.toml":
        return "pyproject"
    is_req_dir = p.parent.name == "requirements"
    if p.suffix == ".txt" and (p.name.startswith("requirements") or is_req_dir):
        return "requirements"
    return None


class _Locator:
    """Line numbers for parsed entries (tomllib and json give none): the next unused match,
    so a name listed twice, even twice on one line, gets each occurrence's line."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.used: set[tuple[int, int]] = set()

    def find(self, pattern: str, after: str | None = None) -> int | None:
        start = next((i for i, ln in enumerate(self.lines) if after and after in ln), 0)
        rx = re.compile(pattern)
        for i in range(start, len(self.lines)):
            for m in rx.finditer(self.lines[i]):
                if (i, m.start()) not in self.used:
                    self.used.add((i, m.start()))
                    return i + 1
        return None


def spec_pins(spec: str) -> bool:
    """A requirement spec that fixes a version or bounds it from above."""
    ops = _OPERATOR.findall(spec)
    return any(op in ("==", "===", "~=", "<", "<=") for op in ops)


def _split_pep508(text: str) -> tuple[str, str] | None:
    """(name, version spec) of a PEP 508 string; a direct URL counts as spec ``@``."""
    m = _REQUIREMENT.match(text.partition(";")[0].strip())
    if m is None:
        return None
    spec = m["spec"].strip()
    return m["name"], "@" if spec.startswith("@") else spec


def parse_requirements(text: str) -> list[Dependency]:
    """Entries of a pip requirements file; options (-r, -e, --hash) and bare URLs skipped."""
    deps: list[Dependency] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        start = start if pending else number
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line.endswith("\\"):  # continuation: hashes usually follow on the next lines
            pending += line[:-1] + " "
            continue
        # Per-requirement options (--hash, --config-settings) are not part of the spec.
        line, pending = (pending + line).partition(" --")[0].strip(), ""
        if line.startswith("-") or "://" in line.split("@", 1)[0]:
            continue
        if parsed := _split_pep508(line):
            name, spec = parsed
            pinned = spec == "@" or spec_pins(spec)
            deps.append(Dependency(name, spec, "requirements", "file", start, pinned))
    return deps


def parse_pyproject(text: str) -> list[Dependency]:
    """[project] dependencies and optional-dependencies, and Poetry dependency tables."""
    data = tomllib.loads(text)
    loc = _Locator(text)
    return _pep621(data, loc) + _poetry(data, loc)


def _pep621(data: dict[str, Any], loc: _Locator) -> list[Dependency]:
    project = data.get("project", {})
    lists = {"project.dependencies": ("[project]", project.get("dependencies", []))}
    for group, items in project.get("optional-dependencies", {}).items():
        lists[f"optional-dependencies.{group}"] = ("[project.optional-dependencies]", items)
    deps: list[Dependency] = []
    for section, (header, items) in lists.items():
        for item in items:
            if parsed := _split_pep508(str(item)):
                name, spec = parsed
                line = loc.find(rf"[\"']{re.escape(name)}(?![\w.-])", header)
                deps.append(Dependency(name, spec, section, section, line, spec != ""))
    return deps


def _poetry(data: dict[str, Any], loc: _Locator) -> list[Dependency]:
    poetry = data.get("tool", {}).get("poetry", {})
    tables = {"tool.poetry.dependencies": poetry.get("dependencies", {})}
    for group, body in poetry.get("group", {}).items():
        tables[f"tool.poetry.group.{group}.dependencies"] = body.get("dependencies", {})
    deps: list[Dependency] = []
    for section, table in tables.items():
        for name, value in table.items():
            if name.lower() == "python":  # the interpreter constraint, not a package
                continue
            line = loc.find(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*=", f"[{section}]")
            deps.append(Dependency(name, str(value), section, section, line, _poetry_pins(value)))
    return deps


def _poetry_pins(value: object) -> bool:
    if isinstance(value, dict):
        if any(k in value for k in ("git", "path", "url")):
            return True
        value = value.get("version", "")
    return str(value).strip() not in _NO_CONSTRAINT


class _Pairs(dict[str, object]):
    """A JSON object that remembers its key order including repeated keys."""

    pairs: list[tuple[str, object]]


def _pairs_hook(pairs: list[tuple[str, object]]) -> _Pairs:
    obj = _Pairs(pairs)
    obj.pairs = pairs
    return obj


def parse_package_json(text: str) -> list[Dependency]:
    """dependencies and devDependencies; one scope, since npm installs one version of a name."""
    data = json.loads(text, object_pairs_hook=_pairs_hook)
    loc = _Locator(text)
    deps: list[Dependency] = []
    for section in ("dependencies", "devDependencies"):
        body = data.get(section) if isinstance(data, _Pairs) else None
        for name, spec in body.pairs if isinstance(body, _Pairs) else []:
            line = loc.find(rf"\"{re.escape(name)}\"\s*:", f'"{section}"')
            pinned = str(spec).strip() not in _NO_CONSTRAINT
            deps.append(Dependency(name, str(spec), section, "package", line, pinned))
    return deps


PARSERS = {"requirements": parse_requirements, "pyproject": parse_pyproject}


def parse_manifest(kind: Kind, text: str) -> list[Dependency] | None:
    """The manifest's dependencies, or None when it does not parse (reported elsewhere)."""
    try:
        if kind == "package":
            return parse_package_json(text)
        return PARSERS[kind](text)
    except (ValueError, AttributeError, TypeError):
        return None


def _npm_lock(text: str) -> set[str]:
    data = json.loads(text)
    # lockfileVersion 2/3 list "node_modules/<name>" (nested too); version 1 "dependencies".
    names = {k.rpartition("node_modules/")[2] for k in data.get("packages") or {} if k}
    return names | set(data.get("dependencies") or {})


def _yarn_lock(text: str) -> set[str]:
    # Entries start unindented: `"@scope/a@^1", a@^2:` (v1) or `"a@npm:^1":` (berry).
    heads = (ln.rstrip(":") for ln in text.splitlines() if ln and ln[0] not in " #")
    specs = (s.strip().strip('"') for h in heads for s in h.split(","))
    return {s.rpartition("@")[0] or s for s in specs if s}


def _toml_lock(text: str) -> set[str]:
    return {str(p.get("name", "")) for p in tomllib.loads(text).get("package", [])}


LOCK_READERS = {
    "package-lock.json": _npm_lock,
    "npm-shrinkwrap.json": _npm_lock,
    "yarn.lock": _yarn_lock,
    "poetry.lock": _toml_lock,
    "uv.lock": _toml_lock,
    "pdm.lock": _toml_lock,
}


def lock_names(name: str, text: str) -> set[str] | None:
    """Normalised package names in a lock file, or None for a format we do not read
    (pnpm-lock.yaml) or a lock that does not parse."""
    reader = LOCK_READERS.get(name)
    try:
        return None if reader is None else {normalise_name(n) for n in reader(text)}
    except (ValueError, AttributeError, TypeError):
        return None


def manifest_findings(
    path: str, kind: Kind, deps: list[Dependency], locks: dict[str, str]
) -> Iterator[Keyed]:
    """Findings of one manifest in one tree (``locks``: lock file name -> text beside it).

    Keys name the rule and the dependency, not the line, so base and head compare by meaning.
    """
    first: dict[tuple[str, str], Dependency] = {}
    for dep in deps:
        if not dep.pinned:
            how = "pin it (==, ~= or an upper bound)" if kind == "requirements" else "add a range"
            msg = f"`{dep.name}` is unpinned ({dep.spec or 'no version'}) in {dep.section}; {how}"
            yield _emit("medium", path, dep.line, "unpinned-dependency", msg, dep.section, dep.key)
        seen = first.setdefault((dep.scope, dep.key), dep)
        if seen is not dep:
            msg = f"`{dep.name}` is declared again (first at line {seen.line}); keep one entry"
            yield _emit("medium", path, dep.line, "duplicate-dependency", msg, dep.scope, dep.key)
    yield from _lock_findings(path, kind, deps, locks)


def _lock_findings(
    path: str, kind: Kind, deps: list[Dependency], locks: dict[str, str]
) -> Iterator[Keyed]:
    if kind == "package" and deps and not locks:
        msg = "dependencies declared without a lock file; commit package-lock.json (or yarn.lock)"
        yield _emit("low", path, None, "lockfile-missing", msg)
    for lock, text in locks.items():
        names = lock_names(lock, text)
        if names is None:
            continue
        for dep in deps:
            if dep.key not in names:
                msg = f"`{dep.name}` is missing from {lock}; re-run the install to update the lock"
                yield _emit("medium", path, dep.line, "lockfile-missing-entry", msg, lock, dep.key)
        return  # the first readable lock file is the source of truth


def _emit(
    severity: Literal["medium", "low"],
    path: str,
    line: int | None,
    rule: str,
    message: str,
    *subject: str,
) -> Keyed:
    return Finding(severity, path, line, rule, message, AGENT), (rule, path, *subject)


@dataclass(frozen=True)
class DependencyAgent(LocalAgent):
    """Offline manifest checks; nothing is fetched from a registry."""

    name: ClassVar[str] = AGENT
    ceiling: ClassVar[Severity] = "medium"

    def review(self, inp: AgentInput) -> AgentResult:
        deadline = Deadline.start(AGENT, inp.timeout)
        touched = {c.path for c in inp.changed}
        manifests = [c for c in inp.present() if manifest_kind(c.path) is not None]
        findings: list[Finding] = []
        analysed: list[str] = []
        skipped: list[Skip] = []
        for changed, text in read_each(self, inp, manifests, skipped, deadline):
            kind = manifest_kind(changed.path)
            head_deps = parse_manifest(kind, text) if kind is not None else None
            if kind is None or head_deps is None:
                why = f"the {kind} manifest does not parse"
                skipped.append(self.skip(changed.path, "syntax_error", why))
                continue
            found = self._manifest(inp, changed, kind, head_deps, touched)
            findings += stamp(found, text.splitlines())
            analysed.append(changed.path)
        return AgentResult(tuple(sort_findings(findings)), tuple(analysed), tuple(skipped))

    def _manifest(
        self,
        inp: AgentInput,
        changed: ChangedFile,
        kind: Kind,
        head_deps: list[Dependency],
        touched: set[str],
    ) -> list[Finding]:
        path = changed.path
        base_text = read_text(inp.base_dir, changed.base_path)
        base_deps = (parse_manifest(kind, base_text) if base_text is not None else []) or []
        head_locks = _locks(inp, path, kind, head=True)
        head = manifest_findings(path, kind, head_deps, head_locks)
        old = manifest_findings(path, kind, base_deps, _locks(inp, changed.base_path, kind))
        new, existing = partition(head, (key for _, key in old))
        findings = new + [replace(f, new=False) for f in existing]
        if _declared(head_deps) != _declared(base_deps):
            parent = PurePosixPath(path).parent
            for lock in head_locks:
                if str(parent / lock) not in touched:
                    msg = f"dependencies changed but {lock} was not updated in this PR"
                    findings.append(_emit("medium", path, None, "lockfile-not-updated", msg)[0])
        return findings


def _declared(deps: list[Dependency]) -> set[tuple[str, str, str]]:
    return {(d.section, d.key, d.spec) for d in deps}


def _locks(inp: AgentInput, path: str | None, kind: Kind, head: bool = False) -> dict[str, str]:
    """Lock files beside the manifest in head (``head``) or base, by file name."""
    root = inp.head_dir if head else inp.base_dir
    if path is None or root is None:
        return {}
    parent = PurePosixPath(path).parent
    texts = {name: read_text(root, str(parent / name)) for name in LOCKS[kind]}
    return {name: text for name, text in texts.items() if text is not None}
