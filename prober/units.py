"""Durations ('30s', '5m', '1h30m', '250ms') and sizes ('64MiB', '1G', '4096'). Pure."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(text: str | float | int) -> float:
    """Seconds from a number or a Prometheus-style duration; ValueError names what is wrong."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like 30s or 5m, got {text!r}")
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_size(text: str | int) -> int:
    """Bytes from a number or '64MiB' / '1G' (binary multiples, as nginx and most tools read)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a size like 64MiB, got {text!r}")
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a size like 4096, 64MiB or 1GiB, got {text!r}")
    number, power, _ = match.groups()
    return int(number) * (1 << (10 * _SIZE_POWERS[power.lower()]))
