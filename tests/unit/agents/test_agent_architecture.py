"""architecture agent: import cycles and layer violations that head adds to base."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codequal.analysis.agents.architecture import (
    ArchitectureAgent,
    Module,
    build_graph,
    components,
    module_for,
    raw_imports,
    resolve,
)
from codequal.analysis.agents.base import AgentInput, Finding

MakePR = Callable[..., AgentInput]


def brief(findings: list[Finding]) -> list[tuple[str, str, int | None, str, str]]:
    return [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings]


def test_cycle_introduced_by_head_is_reported_at_the_import_that_closed_it(
    make_pr: MakePR,
) -> None:
    inp = make_pr(
        {"a.py": "import os\n", "b.py": "import a\n"},
        {"a.py": "import os\nimport b\n"},
    )
    [finding] = ArchitectureAgent().run(inp)
    assert brief([finding]) == [("high", "a.py", 2, "import-cycle", "architecture")]
    assert finding.message == (
        "import cycle introduced: a -> b -> a; move the shared code to a lower module"
    )


def test_cycle_already_in_base_is_not_reported_again(make_pr: MakePR) -> None:
    inp = make_pr(
        {"pkg/__init__.py": "", "pkg/c.py": "from pkg import d\n", "pkg/d.py": "from . import c\n"},
        {"pkg/c.py": "from pkg import d\n\nX = 1\n"},
    )
    assert ArchitectureAgent().run(inp) == []


def test_module_joining_an_existing_cycle_is_a_new_cycle(make_pr: MakePR) -> None:
    inp = make_pr(
        {"c.py": "import d\n", "d.py": "import c\n", "e.py": ""},
        {"d.py": "import c\nimport e\n", "e.py": "import c\n"},
    )
    [finding] = ArchitectureAgent().run(inp)
    assert (finding.file, finding.line) == ("d.py", 2)
    assert "d -> e -> c -> d" in finding.message


def test_src_layout_and_relative_imports_resolve_to_repository_modules(make_pr: MakePR) -> None:
    inp = make_pr(
        {
            "src/shop/__init__.py": "",
            "src/shop/orders/__init__.py": "",
            "src/shop/orders/models.py": "import json\n",
            "src/shop/billing.py": "from .orders.models import Order\n",
        },
        {"src/shop/orders/models.py": "import json\n\nfrom ..billing import charge\n"},
    )
    [finding] = ArchitectureAgent().run(inp)
    assert brief([finding]) == [
        ("high", "src/shop/orders/models.py", 3, "import-cycle", "architecture")
    ]
    assert "shop.orders.models -> shop.billing -> shop.orders.models" in finding.message


def test_type_checking_imports_do_not_form_cycles(make_pr: MakePR) -> None:
    guarded = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import a\n"
    inp = make_pr({"a.py": "import b\n", "b.py": ""}, {"b.py": guarded})
    assert ArchitectureAgent().run(inp) == []


def test_new_import_from_a_lower_layer_into_a_higher_one_is_a_violation(make_pr: MakePR) -> None:
    inp = make_pr(
        {
            "app/__init__.py": "",
            "app/api.py": "from app import storage\n",
            "app/storage.py": "import sqlite3\n",
            "app/cli.py": "",
        },
        {"app/storage.py": "import sqlite3\n\nfrom app.cli import main\n"},
    )
    [finding] = ArchitectureAgent().run(inp)
    assert brief([finding]) == [("medium", "app/storage.py", 3, "layer-violation", "architecture")]
    assert finding.message == (
        "app.storage (layer core/storage) imports app.cli (layer api/cli); "
        "lower layers must not import higher ones"
    )


def test_layer_violation_already_in_base_is_not_reported(make_pr: MakePR) -> None:
    inp = make_pr(
        {"core.py": "import api\n", "api.py": ""},
        {"core.py": "import api\n\nX = 2\n"},
    )
    assert ArchitectureAgent().run(inp) == []


def test_layers_are_a_parameter(make_pr: MakePR) -> None:
    inp = make_pr(None, {"web/views.py": "", "domain/rules.py": "from web import views\n"})
    layers = (("web",), ("domain",))
    [finding] = ArchitectureAgent(layers=layers).run(inp)
    assert (finding.file, finding.rule) == ("domain/rules.py", "layer-violation")
    assert ArchitectureAgent().run(inp) == []


def test_resolve_prefers_submodules_and_ignores_third_party() -> None:
    known = {
        name: Module(name, name.replace(".", "/") + ".py", is_package=name == "pkg")
        for name in ("pkg", "pkg.sub", "pkg.other")
    }
    mod = known["pkg.sub"]
    [(_, *stmt)] = raw_imports("from . import other, VALUE\n")
    assert resolve(mod, (1, *stmt), known) == {"pkg.other", "pkg"}  # type: ignore[arg-type]
    assert resolve(mod, (1, 0, "requests", ()), known) == set()
    assert resolve(mod, (1, 0, "pkg.other.thing", ()), known) == {"pkg.other"}
    assert resolve(mod, (1, 4, "", ("x",)), known) == set()  # beyond the top package


def test_module_for_strips_src_and_skips_virtualenvs_and_hidden_dirs() -> None:
    assert module_for("src/pkg/__init__.py") == Module("pkg", "src/pkg/__init__.py", True)
    assert module_for("tools/run.py") == Module("tools.run", "tools/run.py", False)
    assert module_for("venv/lib/x.py") is None
    assert module_for(".tox/x.py") is None
    assert module_for("README.md") is None


def test_graph_and_components_of_a_three_module_cycle(tmp_path: Path) -> None:
    root = tmp_path
    for name, target in (("x", "y"), ("y", "z"), ("z", "x")):
        (root / f"{name}.py").write_text(f"import {target}\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "x.py").write_text("import q\n")
    graph = build_graph(root)
    assert graph.edges == {"x": {"y": 1}, "y": {"z": 1}, "z": {"x": 1}}
    assert [sorted(c) for c in components(graph.edges)] == [["x", "y", "z"]]


def test_no_python_change_skips_the_graph(make_pr: MakePR) -> None:
    inp = make_pr({"a.py": "import b\n", "b.py": "import a\n"}, {"notes.txt": "x\n"})
    assert ArchitectureAgent().run(inp) == []
