"""Every agent over one pull request whose base already has each problem the head adds.

Only what head introduces may be reported: the old key, shell call, complex function, unpinned
requirement and import cycle in base must stay silent even though head moves them around.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from codequal.analysis.agents import AGENTS, MODE_AGENTS, choose_mode
from codequal.analysis.agents.base import AgentInput, sort_findings

MakePR = Callable[..., AgentInput]

AWS_KEY = "AKIA" + "Z7Q4M2XK9P3LW8RT"
OLD_AWS_KEY = "AKIA" + "QQ3H5N8B2V6C4X1Z"
PASSWORD = "kX9#" + "vQ2!mP7$zR4@wL"


def tangled(name: str) -> str:
    """Cyclomatic complexity 23, in a shape ruff has nothing to say about."""
    body = "".join(f"    if x > {i} and y:\n        x -= {i}\n" for i in range(11))
    return f"def {name}(x, y):\n{body}    return x\n"


SHELL = "import subprocess\n\n\ndef deploy(cmd):\n    subprocess.run(cmd, shell=True)\n"
LEGACY = (
    f'KEY = "{OLD_AWS_KEY}"\n\n\n' + tangled("legacy") + "\n\n" + SHELL.replace("deploy", "old")
)


def manifest(**deps: str) -> str:
    return json.dumps({"name": "web", "dependencies": deps}, indent=2) + "\n"


LOCK = json.dumps({"lockfileVersion": 3, "packages": {"node_modules/express": {}}}) + "\n"

BASE = {
    "legacy/__init__.py": "",
    "legacy/old.py": LEGACY,
    "legacy/x.py": "from legacy import y\n",
    "legacy/y.py": "from legacy import x\n",
    "app/__init__.py": "",
    "app/a.py": "import os\n\nSEP = os.sep\n",
    "app/b.py": "from app import a\n\nNAME = a.SEP\n",
    "requirements.txt": "flask\nrequests==2.31.0\n",
    "web/package.json": manifest(express="^4.18.0"),
    "web/package-lock.json": LOCK,
}
HEAD = {
    "legacy/old.py": '"""Kept for compatibility."""\n\n' + LEGACY,
    "legacy/x.py": "from legacy import y\n\nVERSION = 2\n",
    "app/a.py": "import os\n\nfrom app import b\n\nSEP = os.sep + b.__name__\n",
    "app/config.py": f'AWS_KEY = "{AWS_KEY}"\npassword = "{PASSWORD}"\n\n\n' + tangled("route"),
    "app/run.py": SHELL,
    "requirements.txt": "flask\nrequests==2.31.0\nDjango>=4.2\nRequests<3\n",
    "web/package.json": manifest(express="^4.18.0", **{"left-pad": "^1.3.0"}),
}


def test_each_agent_reports_exactly_what_the_head_introduced(make_pr: MakePR) -> None:
    inp = make_pr(BASE, HEAD)
    findings = sort_findings(f for agent in AGENTS.values() for f in agent.run(inp))
    assert [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings] == [
        ("high", "app/a.py", 3, "import-cycle", "architecture"),
        ("critical", "app/config.py", 1, "aws-access-key-id", "security"),
        ("critical", "app/config.py", 2, "hardcoded-secret", "security"),
        ("high", "app/config.py", 5, "cyclomatic-complexity", "performance"),
        ("low", "app/run.py", 1, "B404", "security"),
        ("high", "app/run.py", 5, "B602", "security"),
        ("medium", "requirements.txt", 3, "unpinned-dependency", "dependency"),
        ("medium", "requirements.txt", 4, "duplicate-dependency", "dependency"),
        ("medium", "web/package.json", None, "lockfile-not-updated", "dependency"),
        ("medium", "web/package.json", 5, "lockfile-missing-entry", "dependency"),
    ]
    assert all(AWS_KEY[4:] not in f.message and PASSWORD not in f.message for f in findings)


def test_auto_mode_for_this_pull_request_is_comprehensive_because_of_manifests(
    make_pr: MakePR,
) -> None:
    inp = make_pr(BASE, HEAD)
    mode, reason = choose_mode(inp.changed, lines_changed=40)
    assert (mode, reason) == (
        "comprehensive",
        "security-sensitive files changed: requirements.txt, web/package.json",
    )
    assert set(MODE_AGENTS[mode]) == set(AGENTS)
