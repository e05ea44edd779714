"""/metrics over TLS and behind basic auth, configured like a Prometheus exporter's web config."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from tests.conftest import cdnprobe
from tests.daemon import RunningDaemon, http
from tests.lab import free_port

CONFIG = "targets:\n  - {name: local, url: 'http://127.0.0.1:9', paths: [/], interval: 1h}\n"


def web_config(tmp_path: Path, ca: trustme.CA, password_hash: str) -> Path:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {tmp_path / 'server.crt'}\n  key_file: {tmp_path / 'server.key'}\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n"
    )
    return path


@pytest.fixture
def secured(tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[str, ssl.SSLContext]]:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    web = web_config(tmp_path, ca, hashed)
    (tmp_path / "c.yaml").write_text(CONFIG)
    port = free_port()
    daemon = RunningDaemon(
        tmp_path / "c.yaml", port=port, extra_args=["--web.config.file", str(web)]
    )
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    daemon.start(scheme="https", context=context)
    try:
        yield f"https://127.0.0.1:{port}", context
    finally:
        daemon.kill()


def get(url: str, context: ssl.SSLContext, user: str | None = None, password: str = "") -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_need_the_right_credentials(secured: tuple[str, ssl.SSLContext]) -> None:
    base, context = secured
    assert get(base + "/metrics", context, "prometheus", "s3cret") == 200
    assert get(base + "/metrics", context, "prometheus", "s3cret") == 200  # the remembered path
    assert get(base + "/metrics", context) == 401
    assert get(base + "/metrics", context, "prometheus", "wrong") == 401
    assert get(base + "/metrics", context, "someone", "s3cret") == 401
    assert get(base + "/", context) == 401
    assert get(base + "/probe?target=local", context) == 401
    assert get(base + "/healthz", context) == 200  # orchestrator probes need no credentials


def test_plain_http_is_not_served_on_the_tls_port(secured: tuple[str, ssl.SSLContext]) -> None:
    base, _ = secured
    with pytest.raises(OSError):
        http(base.replace("https://", "http://") + "/healthz", timeout=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users:\n  bob: plaintext\n", "basic_auth_users.bob: must be a bcrypt hash ($2y$...)"),
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
         "tls_server_config.cert_file: no such file: /nonexistent.crt"),
        ("basic_auth_user: {}\n", "basic_auth_user: unknown field"),
    ],
)  # fmt: skip
def test_bad_web_config_exits_2_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    (tmp_path / "web.yml").write_text(text)
    proc = cdnprobe(
        "run", "--config", str(tmp_path / "c.yaml"), "--web.config.file", str(tmp_path / "web.yml")
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"cdnprobe: {tmp_path / 'web.yml'}: {message}"]
