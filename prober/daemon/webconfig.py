"""The web config file, as Prometheus exporters read it (exporter-toolkit's format):

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_ca_file: clients.pem      # optional: require client certificates
    basic_auth_users:
      alice: $2y$10$...                 # bcrypt hashes, e.g. `htpasswd -nBC 10 alice`

Basic auth guards every endpoint but /healthz, which orchestrators probe without credentials
and which tells nothing about the targets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prober.config import parse_model, read_text
from prober.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)


def load_web_config(path: str | Path) -> WebConfig:
    file = str(path)
    config = parse_model(read_text(path), file, WebConfig, "must be a YAML mapping")
    for user, hashed in config.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(file, f"basic_auth_users.{user}", "must be a bcrypt hash ($2y$...)")
    tls = config.tls_server_config
    if tls is not None:
        for field in ("cert_file", "key_file", "client_ca_file"):
            value = getattr(tls, field)
            if value is not None and not Path(value).is_file():
                raise ConfigError(file, f"tls_server_config.{field}", f"no such file: {value}")
        server_ssl_context(config, file)  # a bad key or certificate is a config error now
    return config


def server_ssl_context(config: WebConfig, file: str = "") -> ssl.SSLContext | None:
    tls = config.tls_server_config
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(file, "tls_server_config", f"cannot load: {exc}") from None
    return context


class BasicAuth:
    """Checks an Authorization header against bcrypt hashes; remembers verified pairs.

    bcrypt is slow on purpose (tens of ms); a scraper sends the same credentials every
    15-60 s, so a verified (user, password) is remembered by its SHA-256, never in clear.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        self._verified: set[bytes] = set()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(hashed + b"\x00" + password.encode()).digest()
        if any(hmac.compare_digest(key, seen) for seen in self._verified):
            return True
        import bcrypt

        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        self._verified.add(key)
        return True
