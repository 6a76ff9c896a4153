"""dependency agent: unpinned and duplicated dependencies, manifest / lock-file drift."""

from __future__ import annotations

import json
from collections.abc import Callable

from codequal.analysis.agents.base import AgentInput, Finding
from codequal.analysis.agents.dependency import (
    DependencyAgent,
    lock_names,
    manifest_kind,
    parse_package_json,
    parse_pyproject,
    parse_requirements,
)

MakePR = Callable[..., AgentInput]


def brief(findings: list[Finding]) -> list[tuple[str, str, int | None, str, str]]:
    return [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings]


def package_json(**deps: str) -> str:
    return json.dumps({"name": "web", "dependencies": deps}, indent=2) + "\n"


def package_lock(*names: str) -> str:
    packages = {"": {"name": "web"}} | {f"node_modules/{n}": {"version": "1.0.0"} for n in names}
    return json.dumps({"lockfileVersion": 3, "packages": packages}, indent=2) + "\n"


def test_requirements_report_new_unpinned_and_duplicated_entries_only(make_pr: MakePR) -> None:
    base = "flask\nrequests==2.31.0\n"  # flask was already unpinned: not reported
    head = "# web\nflask\nrequests==2.31.0\nDjango>=4.2\nnumpy~=1.26\nRequests<3\n"
    inp = make_pr({"requirements.txt": base}, {"requirements.txt": head})
    findings = DependencyAgent().run(inp)
    assert brief(findings) == [
        ("medium", "requirements.txt", 4, "unpinned-dependency", "dependency"),
        ("medium", "requirements.txt", 6, "duplicate-dependency", "dependency"),
    ]
    assert findings[0].message == (
        "`Django` is unpinned (>=4.2) in requirements; pin it (==, ~= or an upper bound)"
    )
    assert findings[1].message == ("`Requests` is declared again (first at line 3); keep one entry")


def test_package_json_change_without_lock_update_is_drift(make_pr: MakePR) -> None:
    inp = make_pr(
        {
            "web/package.json": package_json(express="^4.18.0"),
            "web/package-lock.json": package_lock("express"),
        },
        {"web/package.json": package_json(express="^4.18.0", **{"left-pad": "^1.3.0"}, lodash="*")},
    )
    assert brief(DependencyAgent().run(inp)) == [
        ("medium", "web/package.json", None, "lockfile-not-updated", "dependency"),
        ("medium", "web/package.json", 5, "lockfile-missing-entry", "dependency"),
        ("medium", "web/package.json", 6, "lockfile-missing-entry", "dependency"),
        ("medium", "web/package.json", 6, "unpinned-dependency", "dependency"),
    ]


def test_package_json_with_its_lock_updated_is_clean(make_pr: MakePR) -> None:
    inp = make_pr(
        {
            "package.json": package_json(express="^4.18.0"),
            "package-lock.json": package_lock("express"),
        },
        {
            "package.json": package_json(express="^4.19.0", ms="2.1.3"),
            "package-lock.json": package_lock("express", "ms"),
        },
    )
    assert DependencyAgent().run(inp) == []


def test_package_json_script_change_is_not_a_dependency_change(make_pr: MakePR) -> None:
    manifest = json.loads(package_json(express="^4.18.0"))
    inp = make_pr(
        {"package.json": json.dumps(manifest), "package-lock.json": package_lock("express")},
        {"package.json": json.dumps(manifest | {"scripts": {"test": "jest"}})},
    )
    assert DependencyAgent().run(inp) == []


def test_new_package_json_without_lock_is_low(make_pr: MakePR) -> None:
    inp = make_pr(None, {"package.json": package_json(express="^4.18.0")})
    assert brief(DependencyAgent().run(inp)) == [
        ("low", "package.json", None, "lockfile-missing", "dependency")
    ]


def test_same_package_in_dependencies_and_dev_dependencies_is_duplicate() -> None:
    text = (
        '{\n "dependencies": {"jest": "^29"},\n'
        ' "devDependencies": {"jest": "^29", "jest": "^28"}\n}'
    )
    deps = parse_package_json(text)
    assert [(d.name, d.section, d.line) for d in deps] == [
        ("jest", "dependencies", 2),
        ("jest", "devDependencies", 3),
        ("jest", "devDependencies", 3),
    ]


PYPROJECT = """\
[project]
name = "svc"
dependencies = [
    "httpx>=0.27",
    "rich",
]

[project.optional-dependencies]
dev = ["pytest>=8", "pytest>=7"]
"""


def uv_lock(*names: str) -> str:
    return "version = 1\n" + "".join(
        f'\n[[package]]\nname = "{n}"\nversion = "1.0"\n' for n in names
    )


def test_pyproject_checked_against_uv_lock_and_for_bare_names(make_pr: MakePR) -> None:
    inp = make_pr(
        {
            "pyproject.toml": '[project]\nname = "svc"\ndependencies = ["httpx>=0.27"]\n',
            "uv.lock": uv_lock("httpx"),
        },
        {"pyproject.toml": PYPROJECT},
    )
    assert brief(DependencyAgent().run(inp)) == [
        ("medium", "pyproject.toml", None, "lockfile-not-updated", "dependency"),
        ("medium", "pyproject.toml", 5, "lockfile-missing-entry", "dependency"),
        ("medium", "pyproject.toml", 5, "unpinned-dependency", "dependency"),
        ("medium", "pyproject.toml", 9, "duplicate-dependency", "dependency"),
        ("medium", "pyproject.toml", 9, "lockfile-missing-entry", "dependency"),
        ("medium", "pyproject.toml", 9, "lockfile-missing-entry", "dependency"),
    ]


def test_pyproject_ranges_are_fine_in_a_manifest() -> None:
    deps = parse_pyproject(PYPROJECT)
    assert [(d.name, d.section, d.line, d.pinned) for d in deps] == [
        ("httpx", "project.dependencies", 4, True),
        ("rich", "project.dependencies", 5, False),
        ("pytest", "optional-dependencies.dev", 9, True),
        ("pytest", "optional-dependencies.dev", 9, True),
    ]


def test_poetry_tables_skip_python_and_treat_star_as_unpinned() -> None:
    text = (
        '[tool.poetry.dependencies]\npython = "^3.11"\nrequests = "*"\n'
        'attrs = {version = "^23"}\nlocal = {path = "../local"}\n\n'
        '[tool.poetry.group.dev.dependencies]\npytest = "^8"\n'
    )
    deps = parse_pyproject(text)
    assert [(d.name, d.line, d.pinned) for d in deps] == [
        ("requests", 3, False),
        ("attrs", 4, True),
        ("local", 5, True),
        ("pytest", 8, True),
    ]


def test_requirements_parser_skips_options_and_handles_hashes_markers_and_urls() -> None:
    text = (
        "-r base.txt\n--index-url https://pypi.example/simple\n-e ./local\n"
        "certifi==2024.2.2 \\\n    --hash=sha256:abc\n"
        "pywin32>=306; sys_platform == 'win32'\n"
        "mylib @ https://example.org/mylib-1.0.whl\n"
        "https://example.org/other.whl\n"
        "uvicorn[standard] >=0.29, <1  # web server\n"
    )
    deps = parse_requirements(text)
    assert [(d.name, d.spec, d.line, d.pinned) for d in deps] == [
        ("certifi", "==2024.2.2", 4, True),
        ("pywin32", ">=306", 6, False),
        ("mylib", "@", 7, True),
        ("uvicorn", ">=0.29, <1", 9, True),
    ]


def test_lock_readers_for_npm_yarn_and_toml_locks() -> None:
    yarn = (
        '# yarn lockfile v1\n\n"@babel/core@^7.0.0", "@babel/core@^7.1.0":\n'
        '  version "7.1.0"\nms@2.1.3:\n  version "2.1.3"\n'
    )
    assert lock_names("yarn.lock", yarn) == {"@babel/core", "ms"}
    assert lock_names("package-lock.json", package_lock("a", "b/node_modules/c")) == {"a", "c"}
    assert lock_names("poetry.lock", uv_lock("Foo_Bar")) == {"foo-bar"}
    assert lock_names("pnpm-lock.yaml", "lockfileVersion: 6\n") is None
    assert lock_names("package-lock.json", "{broken") is None


def test_manifest_kinds() -> None:
    assert manifest_kind("requirements-dev.txt") == "requirements"
    assert manifest_kind("requirements/prod.txt") == "requirements"
    assert manifest_kind("svc/pyproject.toml") == "pyproject"
    assert manifest_kind("web/package.json") == "package"
    assert manifest_kind("node_modules/x/package.json") is None
    assert manifest_kind("notes.txt") is None


def test_unparseable_manifest_is_skipped(make_pr: MakePR) -> None:
    inp = make_pr(None, {"package.json": "{not json", "pyproject.toml": "[project\n"})
    assert DependencyAgent().run(inp) == []
