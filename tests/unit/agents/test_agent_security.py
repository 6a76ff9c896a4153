"""security agent: bandit and the secret scanner, reporting only what the PR introduced."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from codequal.analysis.agents.base import AgentError, AgentInput, AgentTimeout, Finding
from codequal.analysis.agents.security import (
    SecurityAgent,
    bandit_severity,
    looks_secret,
    scan_secrets,
    shannon_entropy,
)

MakePR = Callable[..., AgentInput]

# Built by concatenation so no scanner (ours included) sees a key in this test file.
AWS_KEY = "AKIA" + "Z7Q4M2XK9P3LW8RT"
OLD_AWS_KEY = "AKIA" + "QQ3H5N8B2V6C4X1Z"
PASSWORD = "kX9#" + "vQ2!mP7$zR4@wL"
PRIVATE_KEY = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----\n"
SHELL = "import subprocess\n\n\ndef deploy(cmd):\n    subprocess.run(cmd, shell=True)\n"


def brief(findings: list[Finding]) -> list[tuple[str, str, int | None, str, str]]:
    return [(f.severity, f.file, f.line, f.rule, f.agent) for f in findings]


def test_reports_new_secrets_and_shell_true_but_not_those_already_in_base(
    make_pr: MakePR,
) -> None:
    old = f'KEY = "{OLD_AWS_KEY}"\n' + SHELL
    inp = make_pr(
        {"app/old.py": old, "README.md": "docs\n"},
        {
            # Same problems, shifted down two lines: not new, not reported.
            "app/old.py": '"""Deploys."""\n\n' + old,
            "app/new.py": f'AWS_KEY = "{AWS_KEY}"\npassword = "{PASSWORD}"\n' + SHELL,
            "deploy/id_rsa": PRIVATE_KEY,
            "README.md": None,
        },
    )
    assert brief(SecurityAgent().run(inp)) == [
        ("critical", "app/new.py", 1, "aws-access-key-id", "security"),
        ("critical", "app/new.py", 2, "hardcoded-secret", "security"),
        ("low", "app/new.py", 3, "B404", "security"),
        ("high", "app/new.py", 7, "B602", "security"),
        ("critical", "deploy/id_rsa", 1, "private-key", "security"),
    ]


def test_secret_values_never_appear_in_messages(make_pr: MakePR) -> None:
    inp = make_pr(None, {"settings.py": f'KEY = "{AWS_KEY}"\nAPI_TOKEN = "{PASSWORD}"\n'})
    messages = [f.message for f in SecurityAgent().run(inp)]
    assert messages == [
        "hard-coded AWS access key id AKIA…; remove it, rotate it and read it from the "
        "environment or a secret store",
        "`API_TOKEN` holds a hard-coded secret kX…; remove it, rotate it and read it from the "
        "environment or a secret store",
    ]
    assert not any(AWS_KEY[4:8] in m or PASSWORD[2:6] in m for m in messages)


def test_renamed_file_keeps_its_old_secret_unreported(make_pr: MakePR) -> None:
    body = f'password = "{PASSWORD}"\n' + "x = 1\n" * 20
    inp = make_pr({"old_name.py": body}, {"old_name.py": None, "new_name.py": body + "y = 2\n"})
    assert inp.changed[0].status == "renamed"
    assert SecurityAgent().run(inp) == []


@pytest.mark.parametrize(
    "line",
    [
        'password = "changeme123"',
        'api_key = "xxxxxxxxxxxxxxxx"',
        'token = "${API_TOKEN}"',
        'password = os.environ["DB_PASSWORD"]',
        "secret = os.getenv('SECRET', '')",
        'password_label = "password_reset_form"',
        'if password == "Adm1n!2024#xyz":',
        'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"',
        'token_url = "https://auth.example.org/oauth/token?x=1"',
        'password = "aaaaaaaa1"',
    ],
)
def test_scanner_ignores_placeholders_env_lookups_comparisons_and_low_entropy(
    line: str,
) -> None:
    assert list(scan_secrets("app.py", line + "\n")) == []


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (".env", f"DB_PASSWORD={PASSWORD}"),
        ("config/app.yaml", f"  client_secret: {PASSWORD}"),
        ("config/app.json", f'  "apiKey": "{PASSWORD}",'),
        ("app.py", f'db_password: str = "{PASSWORD}"'),
        ("app.js", f"const authToken = '{PASSWORD}';"),
    ],
)
def test_scanner_finds_assigned_secrets_in_config_and_source_files(path: str, line: str) -> None:
    [(finding, _)] = scan_secrets(path, "first\n" + line + "\n")
    assert (finding.severity, finding.line, finding.rule) == ("critical", 2, "hardcoded-secret")


def test_unquoted_values_count_only_in_config_files() -> None:
    assert list(scan_secrets("app.py", f"password = make_password({PASSWORD!r})\n")) == []


def test_entropy_threshold_separates_random_from_repetitive_values() -> None:
    assert shannon_entropy("aaaaaaaa") == 0
    assert shannon_entropy(PASSWORD) > 4
    assert looks_secret(PASSWORD)
    assert not looks_secret("ab1ab1ab1ab1")


def test_bandit_low_confidence_is_one_step_less_severe() -> None:
    assert bandit_severity("HIGH", "HIGH") == "high"
    assert bandit_severity("HIGH", "LOW") == "medium"
    assert bandit_severity("MEDIUM", "MEDIUM") == "medium"
    assert bandit_severity("LOW", "LOW") == "info"


def test_bandit_crash_raises_agent_error_with_its_stderr(make_pr: MakePR) -> None:
    inp = make_pr(None, {"a.py": "x = 1\n"})
    crash = (sys.executable, "-c", "import sys; sys.stderr.write('bandit broke'); sys.exit(2)")
    with pytest.raises(AgentError, match=r"security: .* exited with code 2: bandit broke"):
        SecurityAgent(bandit_cmd=crash).run(inp)


def test_bandit_garbage_output_raises_agent_error(make_pr: MakePR) -> None:
    inp = make_pr(None, {"a.py": "x = 1\n"})
    garbage = (sys.executable, "-c", "print('not json')")
    with pytest.raises(AgentError, match="bandit printed no JSON report"):
        SecurityAgent(bandit_cmd=garbage).run(inp)


def test_slow_bandit_raises_agent_timeout(make_pr: MakePR) -> None:
    inp = make_pr(None, {"a.py": "x = 1\n"}, timeout=0.3)
    slow = (sys.executable, "-c", "import time; time.sleep(30)")
    with pytest.raises(AgentTimeout):
        SecurityAgent(bandit_cmd=slow).run(inp)


def test_deleted_files_are_not_scanned(make_pr: MakePR) -> None:
    inp = make_pr({"a.py": SHELL, "b.txt": "x\n"}, {"a.py": None, "b.txt": "y\n"})
    assert SecurityAgent().run(inp) == []
