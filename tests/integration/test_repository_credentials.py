"""A repository URL's credentials reach git and nothing else: not the report, the dashboard's
data, the logs, the traces, the metrics or any byte of the database.

The attack seen: `https://alice:S3cret@host/x.git` (the usual way to clone a private
repository) appeared in clear in the report, the logs, trace attributes and the costs API.
Here a canary password is submitted over the API, a loopback HTTPS server (self-signed, trusted
through GIT_SSL_CAINFO) checks that git sent it as Basic authentication, and the canary is then
looked for everywhere the server keeps or shows anything.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from codequal.analysis.credentials import CredentialBox, split_credentials
from codequal.api.app import create_app
from codequal.config import load_settings
from codequal.telemetry.metrics import REGISTRY

from ..conftest import TEST_JWT_SECRET, bearer

CANARY = "S3cretCanary42"
HEADERS = bearer("analyses:write", "monitoring:read")


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class GitHost(BaseHTTPRequestHandler):
    """A git host that notes the Authorization it is given and has no such repository."""

    seen: list[str] = []

    def do_GET(self) -> None:
        GitHost.seen.append(self.headers.get("Authorization", ""))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def https_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))  # git trusts the loopback host
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), GitHost)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    GitHost.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_go_to_git_as_basic_auth_and_are_kept_nowhere_else(
    tmp_path: Path, https_host: int
) -> None:
    data_dir = tmp_path / "srv"
    settings = load_settings(
        data_dir=data_dir, jwt_secret=TEST_JWT_SECRET, allow_private_repositories=True
    )
    app = create_app(settings, start_workers=False)
    url = f"https://alice:{CANARY}@127.0.0.1:{https_host}/team/private.git"
    with TestClient(app, headers=HEADERS) as client:
        runtime = app.state.codequal
        assert runtime.wait_ready(30)
        submitted = client.post("/api/analyses", json={"repositoryUrl": url, "base": "main",
                                                       "head": "feature"})  # fmt: skip
        assert submitted.status_code == 202, submitted.text
        analysis_id = submitted.json()["id"]
        queued = runtime.analysis.store.get(analysis_id)
        assert queued.credentials and CANARY not in queued.credentials  # sealed while queued
        record = runtime.analysis.pool.run_one(analysis_id)
        report = client.get(f"/api/analyses/{analysis_id}").text
        listing = client.get("/api/analyses").text
        logs = client.get("/api/monitoring/logs", params={"limit": 1000}).text
        costs = client.get("/api/monitoring/costs").text
        runtime.telemetry.flush(10)
        metrics = client.get("/metrics").text
    basic = base64.b64encode(f"alice:{CANARY}".encode()).decode()
    assert f"Basic {basic}" in GitHost.seen, "git did not present the credentials"
    shown = f"https://***@127.0.0.1:{https_host}/team/private.git"
    assert record.repository_url == shown
    assert record.credentials is None, "the sealed credentials outlived the analysis"
    for where, text in (("report", report), ("list", listing), ("logs", logs),
                        ("costs", costs), ("metrics", metrics)):  # fmt: skip
        assert CANARY not in text, f"the password is in the {where} answer"
    assert shown in report
    assert CANARY not in generate_latest(REGISTRY).decode()
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"the password is in {path}"
    engine = sa.create_engine(f"sqlite:///{data_dir / 'codequal.db'}")
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):  # noqa: S608
                assert CANARY not in repr(tuple(row)), f"the password is in table {table}"
    engine.dispose()


def REGISTRY_TEXT() -> str:
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY).decode()


def test_sealed_credentials_open_only_with_the_same_secret() -> None:
    shown, found = split_credentials(f"https://bot:{CANARY}@git.example.com/x.git")
    assert shown == "https://***@git.example.com/x.git" and found is not None
    sealed = CredentialBox(TEST_JWT_SECRET).seal(found)
    assert CANARY not in sealed
    assert CredentialBox(TEST_JWT_SECRET).open(sealed) == found
    with pytest.raises(Exception, match="signing secret changed"):
        CredentialBox("another secret entirely, 32 bytes long").open(sealed)
    assert CANARY not in repr(found)
