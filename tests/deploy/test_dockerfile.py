"""The Dockerfile (Docker does not run here): its instructions, its build context, and the
package it installs, built for real as the image's `pip install .` builds it."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, run

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """Dockerfile instructions, comments dropped and continuation lines joined."""
    found: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip()))
            pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def final_stage() -> list[Instruction]:
    every = instructions()
    last_from = max(i for i, ins in enumerate(every) if ins.keyword == "FROM")
    return every[last_from:]


def one(keyword: str) -> Instruction:
    found = [ins for ins in final_stage() if ins.keyword == keyword]
    assert len(found) == 1, f"the final stage needs exactly one {keyword}"
    return found[0]


def test_every_stage_starts_from_slim_python_311() -> None:
    stages = [ins.args.split()[0] for ins in instructions() if ins.keyword == "FROM"]
    assert stages and all(image == BASE_IMAGE for image in stages), stages


def test_the_server_runs_as_a_numeric_non_root_user() -> None:
    user = one("USER").args.split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {user} must be a numeric non-root uid"


def test_the_health_check_asks_live_and_the_server_listens_on_8080() -> None:
    healthcheck = one("HEALTHCHECK").args
    assert "/live" in healthcheck
    assert "CMD" in healthcheck
    assert one("EXPOSE").args.split() == ["8080"]
    command = json.loads(one("CMD").args)
    assert command == ["codequal", "serve", "--host", "0.0.0.0"]
    assert json.loads(one("ENTRYPOINT").args)[0].endswith("tini")


def test_git_is_installed_for_the_pipeline() -> None:
    installs = [
        shlex.split(ins.args)
        for ins in final_stage()
        if ins.keyword == "RUN" and "apt-get" in ins.args
    ]
    assert any("install" in words and "git" in words for words in installs)


def test_the_package_is_installed_from_the_repository_and_its_lock() -> None:
    copies = [ins.args for ins in instructions() if ins.keyword == "COPY"]
    assert "src ./src" in copies
    assert any("uv.lock" in copy.split() for copy in copies)
    runs = " ".join(ins.args for ins in instructions() if ins.keyword == "RUN")
    sync = shlex.split(runs[runs.index("uv sync") :])
    assert {"--locked", "--no-dev", "--no-editable"} <= set(sync), sync
    uv_pin = re.search(r"uv==(\S+)", runs)
    makefile_pin = re.search(r"UV_VERSION := (\S+)", (ROOT / "Makefile").read_text())
    assert uv_pin and makefile_pin and uv_pin[1] == makefile_pin[1], "one uv version everywhere"


# -- the build context ----------------------------------------------------------------------
def ignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.removeprefix("!").strip("/")))
    return rules


def in_context(relative: str) -> bool:
    """Whether Docker sends ``relative`` (a path from the repository root) with the build:
    the last .dockerignore rule matching it or a parent directory decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in ignore_rules():
        # "**/name" matches name in any directory, the top one included.
        anywhere = pattern.startswith("**/")
        bare = pattern.removeprefix("**/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                anywhere and fnmatch.fnmatchcase(candidate.rsplit("/", 1)[-1], bare)
            ):
                included = negated
    return included


def test_every_copied_source_is_in_the_build_context() -> None:
    for ins in instructions():
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        for source in ins.args.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert in_context(source), f"COPY {source}: excluded by .dockerignore"


def test_the_build_context_holds_the_package_and_nothing_private() -> None:
    for path in ("pyproject.toml", "uv.lock", "README.md", "src/codequal/__init__.py"):
        assert in_context(path), path
    private = (
        ".venv/bin/python",
        ".git/config",
        "deploy/.env",
        ".codequal/codequal.db",
        "src/codequal/__pycache__/x.pyc",
        "deploy/generated/alertmanager.yml",
    )
    for path in private:
        assert not in_context(path), path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` builds from the repository (as the image's build stage does)."""
    out = tmp_path_factory.mktemp("wheel")
    result = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)]
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("codequal-*.whl")
    return built


def test_the_installed_package_contains_every_data_file_the_code_reads(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    source = ROOT / "src"
    data_files = {
        path.relative_to(source).as_posix()
        for path in source.joinpath("codequal").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc")
    }
    missing = sorted(data_files - packaged)
    assert not missing, (
        "the image would lack these files; add their patterns to "
        f"[tool.setuptools.package-data] in pyproject.toml: {missing}"
    )
