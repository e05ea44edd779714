"""The kinds table: a target's `type` → the module that makes its spec and probes it once.

A new kind is one module here (a spec from its config model, one probe giving a
TargetReport, as `KIND`), one row below, its config model in config.py and its tests.
Rows are imported when first used, so a plain `check` does not pay for the APT code.
"""

from __future__ import annotations

import importlib
from typing import Any

from prober.kinds.base import KindSpec
from prober.model import Kind

KINDS: dict[Kind, str] = {
    Kind.PLAIN: "prober.kinds.plain",
    Kind.APT: "prober.kinds.apt",
    Kind.GOPROXY: "prober.kinds.goproxy",
    Kind.CHECKSUMS: "prober.kinds.checksums",
}


def kind_of(target: Any) -> KindSpec[Any]:
    """The table's row for a validated target config (its `type`)."""
    row: KindSpec[Any] = importlib.import_module(KINDS[Kind(target.type)]).KIND
    return row
