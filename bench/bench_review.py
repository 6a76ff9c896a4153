"""A comprehensive analysis of a ~200-file Python diff against running bandit, ruff and radon
by hand on the same changed files, in the same run.

The diff is bandit's own history between two releases: the sdists of bandit 1.7.0 and 1.8.0
from the package index (``pip download``), committed as base and head of a local repository
(``--generated`` builds a synthetic 200-file repository instead, for a machine without the
index). Direct tools: ``bandit -f json``, ``ruff check`` with CodeQual's rule set, and
``radon cc -j`` plus ``radon mi -j``, one after the other on head's changed ``.py`` files.
CodeQual: ``codequal analyze --mode comprehensive`` in-process (clone, diff, both trees,
DeepWiki profile, five agents in their processes, report). Target: CodeQual's wall time
<= 1.5x the direct tools', no agent past its timeout. Run: python bench/bench_review.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from codequal.analysis.agents.quality import IGNORE, SELECT
from codequal.analysis.store import AnalysisRequest
from codequal.config import load_settings
from codequal.runtime.wiring import build_analysis, setup_telemetry
from codequal.storage.db import open_database

RELEASES = ("1.7.0", "1.8.0")
CACHE = Path(__file__).resolve().parent / ".cache"
TARGET = 1.5
Report = dict[str, Any]
FUNCTION = "def f{j}(x):\n    if x > {j}:\n        return x - {j}\n    return x\n\n\n"
ADDED = "def added(cmd):\n    import subprocess\n    return subprocess.call(cmd, shell={shell})\n"
STEPS = ("clone", "diff", "checkout", "trigger-deepwiki", "agents", "aggregate")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def sdist_tree(version: str, into: Path) -> Path:
    """bandit's sdist of ``version``, unpacked (downloaded once into bench/.cache)."""
    CACHE.mkdir(exist_ok=True)
    archive = CACHE / f"bandit-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"bandit=={version}", "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"bandit-{version}"


def replace_tree(repo: Path, source: Path) -> None:
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(source, repo, dirs_exist_ok=True)


def generated_tree(root: Path, head: bool) -> Path:
    """200 modules; head edits every one (a new function, a changed line)."""
    tree = root / ("head" if head else "base")
    for i in range(200):
        path = tree / f"pkg{i % 10}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(FUNCTION.format(j=j) for j in range(20))
        if head:
            body += ADDED.format(shell=i % 2 == 0)
        path.write_text(body)
    return tree


def make_repo(root: Path, generated: bool) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    trees = (
        (generated_tree(root, False), generated_tree(root, True))
        if generated
        else tuple(sdist_tree(v, root / "sdists") for v in RELEASES)
    )
    for branch, tree in zip(("main", "feature"), trees, strict=True):
        if branch == "feature":
            git(repo, "checkout", "-qb", "feature")
        replace_tree(repo, tree)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", branch)
    git(repo, "checkout", "-q", "main")
    return repo


def changed_python(repo: Path) -> list[str]:
    names = git(repo, "diff", "--name-only", "--diff-filter=AMR", "main...feature").splitlines()
    return [n for n in names if n.endswith(".py")]


def direct_tools(repo: Path, files: list[str]) -> dict[str, float]:
    """Each tool run by hand on head's changed files; wall seconds per tool."""
    git(repo, "checkout", "-q", "feature")
    py = sys.executable
    commands = {
        "bandit": [py, "-m", "bandit", "-f", "json", "-q", *files],
        "ruff": [py, "-m", "ruff", "check", "--output-format", "json", "--no-cache",
                 "--isolated", "--select", SELECT, "--ignore", IGNORE, *files],
        "radon cc": [py, "-m", "radon", "cc", "-j", *files],
        "radon mi": [py, "-m", "radon", "mi", "-j", *files],
    }  # fmt: skip
    times = {}
    for name, command in commands.items():
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, capture_output=True, check=False)
        times[name] = time.perf_counter() - start
    git(repo, "checkout", "-q", "main")
    return times


def codequal(root: Path, repo: Path) -> tuple[float, Report]:
    settings = load_settings(data_dir=root / "data", log_format="json")
    db = open_database(settings.resolved_database_url)
    db.migrate()
    with open("/dev/null", "wb") as devnull:
        telemetry = setup_telemetry(settings, db, console=devnull, bridge_stdlib=False)
        service = build_analysis(settings, db, telemetry, local_user=True)
        request = AnalysisRequest(str(repo), "main", "feature", "comprehensive")
        start = time.perf_counter()
        record = service.pool.run_one(service.submit(request))
        wall = time.perf_counter() - start
        telemetry.shutdown(30)
    db.dispose()
    assert record is not None
    if record.status not in ("completed", "partial"):
        raise SystemExit(
            f"the analysis {record.status}: {record.error_type}: {record.error_message}"
        )
    return wall, record.to_report() | {"agentTimeout": settings.agent_timeout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", action="store_true", help="a synthetic repository")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root, args.generated)
        files = changed_python(repo)
        direct = direct_tools(repo, files)
        wall, report = codequal(root, repo)
    print_table(
        files, direct, wall, report, "generated" if args.generated else "bandit 1.7.0..1.8.0"
    )


def print_table(
    files: list[str], direct: dict[str, float], wall: float, report: Report, source: str
) -> None:
    total = sum(direct.values())
    coverage = report["coverage"]
    existing = sum(report["summary"]["existingCounts"].values())
    rows = [
        ("diff", source),
        ("changed files (all / Python)", f"{coverage['filesChanged']} / {len(files)}"),
        *[(f"direct: {name}", f"{seconds:.2f} s") for name, seconds in direct.items()],
        ("direct tools, total", f"{total:.2f} s"),
        ("CodeQual comprehensive, total", f"{wall:.2f} s"),
        *_codequal_rows(report),
        ("status / new findings / existing", f"{report['status']} / "
                                             f"{len(report['findings'])} / {existing}"),
        ("ratio CodeQual / direct (target <= 1.5)", f"{wall / total:.2f}x"),
        ("agents past their timeout", ", ".join(_late(report)) or "none"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value}")


def _codequal_rows(report: Report) -> list[tuple[str, str]]:
    timings, coverage = report["timings"], report["coverage"]
    rows = [(f"  step {s}", f"{timings[s]:.2f} s") for s in STEPS if s in timings]
    for name, agent in coverage["agents"].items():
        done = f"{agent['seconds']:.2f} s ({agent['analysed']} files, {agent['status']})"
        rows.append((f"  agent {name}", done))
    for skip in coverage["skipped"]:
        if skip["couldHide"]:
            rows.append((f"  skipped {skip['file']}", f"{skip['agent']}: {skip['reason']}"))
    return rows


def _late(report: Report) -> list[str]:
    limit = report["agentTimeout"]
    agents = report["coverage"]["agents"].items()
    return [n for n, a in agents if a["seconds"] > limit or a["status"] == "timeout"]


if __name__ == "__main__":
    main()
