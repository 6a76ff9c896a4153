"""No copied code in src/ outside the migrations: no run of six identical lines stands twice.

Lines are compared with their indentation folded; blank lines, comments, docstring-free
punctuation and import statements are passed over (an import list says what a module uses,
not what it does). Migrations are frozen copies on purpose and are left out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "codequal"
RUN = 6
_TRIVIAL = re.compile(r"^[\s()\[\]{},:;.]*$")


def significant_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, folded text) of the lines that carry code."""
    out: list[tuple[int, str]] = []
    in_import = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if in_import:
            in_import = not line.endswith(")")
            continue
        if line.startswith(("import ", "from ")) and " import " in f" {line}":
            in_import = line.endswith("(")
            continue
        if not line or line.startswith("#") or _TRIVIAL.match(line):
            continue
        out.append((number, " ".join(line.split())))
    return out


def copied_runs() -> list[str]:
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        lines = significant_lines(path)
        for i in range(len(lines) - RUN + 1):
            window = tuple(text for _, text in lines[i : i + RUN])
            seen[window].append(f"{path.relative_to(SRC)}:{lines[i][0]}")
    return sorted(" ~ ".join(places) for places in seen.values() if len(places) > 1)


def test_no_run_of_six_lines_is_copied() -> None:
    copies = copied_runs()
    assert not copies, "factor these out:\n" + "\n".join(copies[:20])


def test_the_check_finds_a_copy(tmp_path: Path) -> None:
    body = "\n".join(f"value_{i} = compute({i}, factor)" for i in range(RUN)) + "\n"
    path = tmp_path / "m.py"
    path.write_text("import os\n\n" + body + "\n# again\n" + body)
    lines = significant_lines(path)
    windows = [tuple(t for _, t in lines[i : i + RUN]) for i in range(len(lines) - RUN + 1)]
    assert windows[0] == windows[-1]  # the same six lines, found twice
