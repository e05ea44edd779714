"""The image's HEALTHCHECK: GET /healthz where the daemon really listens, over TLS if it serves TLS.

Where: $CDNPROBE_LISTEN if set, else `--listen` of the daemon's command line (PID 1 in the
container), else `listen:` of its `--config` file, else 0.0.0.0:9813. A wildcard host
(0.0.0.0, ::, empty) is asked on loopback. How: https when the daemon was started with a
`--web.config.file` that has `tls_server_config` (the certificate is not verified: this is the
daemon's own loopback port, and its certificate names the public host), http otherwise.
/healthz needs no basic auth; a web config that requires client certificates
(`client_ca_file`) cannot be checked this way: disable the HEALTHCHECK for it.
Standard library + PyYAML (a cdnprobe dependency). Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from pathlib import Path

import yaml

DEFAULT_LISTEN = "0.0.0.0:9813"


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _yaml(path: str | None) -> dict[str, object]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def healthz_url(argv: list[str], env: dict[str, str]) -> str:
    """The /healthz URL of a daemon started with `argv`."""
    listen = (
        env.get("CDNPROBE_LISTEN")
        or _option(argv, "--listen")
        or str(_yaml(_option(argv, "--config")).get("listen") or DEFAULT_LISTEN)
    )
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    tls = "tls_server_config" in _yaml(_option(argv, "--web.config.file"))
    scheme = "https" if tls else "http"
    return (
        f"{scheme}://[{host}]:{port}/healthz"
        if ":" in host
        else f"{scheme}://{host}:{port}/healthz"
    )


def daemon_argv(pid: int = 1) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def main() -> int:
    url = healthz_url(daemon_argv(int(os.environ.get("CDNPROBE_PID", "1"))), dict(os.environ))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            healthy = response.status == 200
    except OSError as exc:  # URLError, refused, timeout, TLS
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
