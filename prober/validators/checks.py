"""The check of one edge's copy of a Go module or a manifest artifact: what it should be,
what it is, and the problem when they differ. Pure: the kinds fetch, these rules judge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from prober.model import CheckProblem, EdgeCheck, Observation
from prober.validators.checksums import ManifestEntry
from prober.validators.goproxy import parse_info

Found = tuple[CheckProblem, str | None] | None  # a problem and its detail, or none


def expected_digest(given: str | None, found: Sequence[str | None]) -> tuple[str | None, str]:
    """The digest an edge must have: go.sum's when given, else the one most edges have
    (ties broken by the digest itself, never by arrival order)."""
    if given is not None:
        return given, "go.sum"
    counts = Counter(h for h in found if h is not None)
    if not counts:
        return None, "most edges"
    best = max(counts.values())
    return min(h for h, n in counts.items() if n == best), "most edges"


def fetch_problem(obs: Observation) -> Found:
    """A body that did not arrive whole, or arrived with a status other than 200."""
    if not obs.complete:
        return CheckProblem.FETCH_ERROR, str(obs.error) if obs.error else None
    if obs.status != 200:
        return CheckProblem.MISSING, f"HTTP {obs.status}"
    return None


def info_problem(obs: Observation, data: bytes | None, version: str) -> Found:
    """`go` reads .info for the version's canonical name and time: it must parse and agree."""
    if data is None or not obs.complete or obs.status != 200:
        return CheckProblem.BAD_INFO, f"HTTP {obs.status or obs.error}"
    try:
        info = parse_info(data)
    except ValueError as exc:
        return CheckProblem.BAD_INFO, str(exc)
    return None if info.version == version else (CheckProblem.BAD_INFO, f"Version {info.version}")


def module_check(
    address: str,
    zip_h1: str | None,
    zip_problem: Found,
    mod_h1: str | None,
    expected: tuple[str | None, str],
    expected_mod: str | None,
    info: Found,
) -> EdgeCheck:
    """One edge's module version, in the order `go` finds trouble: the zip (readable, its
    h1: as go.sum says), then go.mod's hash, then .info. `zip_h1` beside a zip problem is
    the hash go took before it refused the zip (modfetch.downloadZip checks go.sum first,
    then modzip.Unzip the file names): against go.sum, go then says checksum mismatch."""
    want, source = expected
    found = zip_problem
    if zip_h1 is not None and zip_h1 != want and (found is None or source == "go.sum"):
        found = CheckProblem.ZIP_MISMATCH, None
    if found is None and mod_h1 != expected_mod:
        found = (CheckProblem.GOMOD_MISMATCH if mod_h1 else CheckProblem.GOMOD_MISSING), None
    if found is None:
        found = info
    problem, detail = found if found else (None, None)
    return EdgeCheck(address, "h1", want, zip_h1, source, problem, detail)


def artifact_check(
    address: str,
    obs: Observation,
    entry: ManifestEntry | None,
    have_manifest: bool,
    source: str,
) -> EdgeCheck:
    """One edge's artifact against its manifest entry, as `sha256sum -c` would judge it. An
    artifact that did not arrive whole never matches (its digest is of a part)."""
    expected = entry.sha256 if entry else None
    found: Found = None
    if not have_manifest:
        found = CheckProblem.NO_MANIFEST, None
    elif entry is None:
        found = CheckProblem.NOT_LISTED, None
    elif obs.error is not None:
        found = CheckProblem.FETCH_ERROR, str(obs.error)
    elif obs.status is not None and obs.status != 200:
        found = CheckProblem.MISSING, f"HTTP {obs.status}"
    elif entry.size is not None and obs.bytes_read != entry.size:
        found = CheckProblem.SIZE_MISMATCH, f"{obs.bytes_read} != {entry.size}"
    elif obs.sha256 != entry.sha256:
        found = CheckProblem.CHECKSUM_MISMATCH, None
    problem, detail = found if found else (None, None)
    return EdgeCheck(address, "sha256", expected, obs.sha256, source, problem, detail)
