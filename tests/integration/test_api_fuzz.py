"""schemathesis fuzzes a real `codequal serve` against its own OpenAPI document.

Every operation, with a token holding every scope, for a bounded time: any 5xx, an answer
with a status the document does not state, or a body or content type that breaks the
document fails the build. The seed is fixed so a failure reproduces (CODEQUAL_FUZZ_SEED
picks another; CODEQUAL_FUZZ_SECONDS the budget).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codequal.security import mint_token
from codequal.security.tokens import ALL_SCOPES

from ..conftest import TEST_JWT_SECRET
from ..helpers import wait_until_ready
from .test_serve_process import CODEQUAL, free_port

SECONDS = int(os.environ.get("CODEQUAL_FUZZ_SECONDS", "120"))
SEED = os.environ.get("CODEQUAL_FUZZ_SEED", "20261207")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


@pytest.mark.timeout(SECONDS + 180)
def test_no_fuzzed_request_gets_a_5xx_or_breaks_the_openapi_contract(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CODEQUAL_DATA_DIR": str(tmp_path / "data"),
        "CODEQUAL_JWT_SECRET": TEST_JWT_SECRET,
        "CODEQUAL_LOG_FORMAT": "json",
    }
    # The working directory holds no git repository: a fuzzed "." must not analyse a real one.
    server = subprocess.Popen(
        [*CODEQUAL, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    token = mint_token(TEST_JWT_SECRET, "fuzzer", list(ALL_SCOPES), 3600)
    try:
        wait_until_ready(base, server)
        fuzz = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")), "run",
                f"{base}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", CHECKS,
                "--phases", "examples,coverage,fuzzing",
                "--max-time", str(SECONDS),
                "--workers", "1",
                "--request-timeout", "30",
                "--seed", SEED,
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
            check=False,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    summary = fuzz.stdout[-6000:]
    assert fuzz.returncode == 0, summary
    assert "API Operations:" in summary  # it ran, and tested the operations it found
