"""git's -U0 hunks read back: which head lines a PR touched, where untouched lines went."""

from __future__ import annotations

from pathlib import Path

from codequal.analysis.agents.base import Finding
from codequal.analysis.agents.baseline import classify, fingerprint
from codequal.analysis.diffmap import FileDiff, Hunk, diff_lines, parse_unified, unquote
from codequal.analysis.exclude import load, split_patterns

PATCH = """diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -2,0 +3,2 @@ import os
+import sys
+import re
@@ -10 +12 @@ def f():
-    return 1
+    return 2
@@ -20,2 +21,0 @@ def g():
-    pass
-    pass
diff --git a/old name.py b/new.py
similarity index 100%
rename from old name.py
rename to new.py
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..3333333
Binary files /dev/null and b/logo.png differ
diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"
deleted file mode 100644
index 4444444..0000000
--- "a/caf\\303\\251.py"
+++ /dev/null
@@ -1 +0,0 @@
-x = 1
"""


def test_parse_reads_hunks_renames_binaries_and_quoted_paths() -> None:
    files = parse_unified(PATCH)
    assert files["app.py"].hunks == (Hunk(2, 0, 3, 2), Hunk(10, 1, 12, 1), Hunk(20, 2, 21, 0))
    assert (files["new.py"].old_path, files["new.py"].hunks) == ("old name.py", ())
    assert files["logo.png"].binary and files["logo.png"].old_path is None
    assert files["café.py"].hunks == (Hunk(1, 1, 0, 0),)
    assert unquote('"tab\\there.py"') == "tab\there.py"


def test_touched_lines_are_the_added_and_modified_ones() -> None:
    app = parse_unified(PATCH)["app.py"]
    touched = [n for n in range(1, 30) if app.touched(n)]
    assert touched == [3, 4, 12]
    assert app.touched(1, 3) and not app.touched(5, 11)


def test_untouched_base_lines_map_through_the_hunks() -> None:
    app = parse_unified(PATCH)["app.py"]
    assert [app.to_head(n) for n in (1, 2, 3, 9, 10, 11, 19, 20, 21, 22)] == [
        1, 2, 5, 11, None, 13, 21, None, None, 22,
    ]  # fmt: skip


def test_difflib_hunks_agree_with_git_on_a_simple_change() -> None:
    old = ["a", "b", "c", "d"]
    new = ["a", "x", "y", "b", "c"]
    diff = diff_lines(old, new, "f.py", "f.py")
    assert [n for n in range(1, 6) if diff.touched(n)] == [2, 3]
    assert [diff.to_head(n) for n in (1, 2, 3, 4)] == [1, 4, 5, None]


def finding(line: int | None, rule: str = "E722") -> Finding:
    return Finding("low", "app.py", line, rule, "bare except", "codeQuality")


def test_a_finding_on_moved_code_is_matched_by_its_fingerprint_not_its_line_text() -> None:
    base = ["def a():", "    try:", "        x()", "    except:", "        pass"]
    # The function moved below a new one that has its own bare except.
    head = ["def b():", "    try:", "        y()", "    except:", "        raise", "", *base]
    diff = diff_lines(base, head, "app.py", "app.py")
    found = classify([finding(4), finding(10)], [finding(4)], diff, head, base)
    assert [(f.line, f.new) for f in found] == [(4, True), (10, False)]
    assert found[1].fingerprint == fingerprint("E722", "app.py", base, 4)
    assert found[0].fingerprint != found[1].fingerprint


def test_untouched_findings_are_existing_and_whole_file_ones_compare_with_base() -> None:
    diff = FileDiff("app.py", "app.py", (Hunk(1, 0, 2, 1),))
    lines = ["a", "b", "c"]
    found = classify([finding(1), finding(2), finding(None, "MI")], [finding(None, "MI")], diff,
                     lines, ["a", "c"])  # fmt: skip
    assert [(f.line, f.new) for f in found] == [(1, False), (2, True), (None, False)]


def test_exclusions_come_from_the_setting_and_the_repository(tmp_path: Path) -> None:
    (tmp_path / ".codequal.yml").write_text("exclude:\n  - gen/**\n  - '!gen/keep.py'\n")
    rules = load(tmp_path, split_patterns(" vendor/ , *.min.js,"))
    assert [p for p in ("vendor/a.py", "x.min.js", "gen/a/b.py", "gen/keep.py", "src/a.py")
            if rules.excludes(p)] == ["vendor/a.py", "x.min.js", "gen/a/b.py"]  # fmt: skip
    (tmp_path / ".codequal.yml").write_text("exclude: {vendor: true}\n")
    broken = load(tmp_path, ())
    assert broken.problem and "list of patterns" in broken.problem
    assert not broken.excludes("vendor/a.py")
