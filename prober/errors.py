"""The one error taxonomy.

ErrorReason is what an edge fetch can end in (the contract's `error` words); the exceptions
below are what the program reports to a person: bad input (exit 2) and names that resolve to
no address (exit 3). Network trouble during a fetch never becomes an exception: fetch.py
turns it into an Observation carrying an ErrorReason.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorReason(StrEnum):
    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    TRUNCATED = "truncated"
    PROTOCOL = "protocol"
    TOO_LARGE = "too_large"
    STREAM_RESET = "stream_reset"  # HTTP/2: RST_STREAM, or GOAWAY before the body was complete


class ProberError(Exception):
    """Base of the errors a person is told about in one line."""


class UsageError(ProberError):
    """Bad command line or bad input value (exit 2)."""


class ConfigError(ProberError):
    """A config file that cannot be used; the message names file, field and problem."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file, self.field, self.problem = file, one_line(field), one_line(problem)
        where = f"{file}: {self.field}: " if field else f"{file}: "
        super().__init__(where + self.problem)


def one_line(text: str) -> str:
    """Text from a file or an edge, fit for a one-line message: control characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class DiscoveryError(ProberError):
    """A name resolved to no address (exit 3). The message names name, resolver and rcode."""

    def __init__(self, name: str, resolver: str, rcode: str) -> None:
        self.name, self.resolver, self.rcode = name, resolver, rcode
        super().__init__(f"{name}: {rcode} from {resolver}")
