"""The verdict rules beside byte comparison, with plain values: a repository check decides
(Go module, checksum manifest), APT's results decide for an APT suite, and the check rules of
validators/checks.py say what is wrong with one edge's copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prober.compare import compare_object, judge_apt, judge_check
from prober.model import (
    AptEdgeResult,
    AptProblem,
    CheckProblem,
    Edge,
    EdgeCheck,
    ErrorReason,
    Kind,
    Observation,
    Problem,
    Release,
    Verdict,
)
from prober.validators.checks import (
    artifact_check,
    expected_digest,
    fetch_problem,
    info_problem,
    module_check,
)
from prober.validators.checksums import ManifestEntry

NOW = datetime(2026, 12, 1, tzinfo=UTC)
OK = Observation(status=200, size=3, bytes_read=3, sha256="a" * 64)
CUT = Observation(status=200, size=6, bytes_read=3, error=ErrorReason.TRUNCATED)


def check(problem: CheckProblem | None = None) -> EdgeCheck:
    return EdgeCheck("192.0.2.1", "sha256", "a" * 64, "a" * 64, "manifest", problem)


def release(date: datetime | None) -> Release:
    return Release(date, None, None, None, False, ("main",), ("amd64",), (), False)


def apt(date: datetime | None, would_fail: bool = False, *problems: Problem) -> AptEdgeResult:
    found = tuple(AptProblem("Packages", p) for p in problems)
    return AptEdgeResult(release(date), found, would_fail, (), ())


def test_a_failed_check_makes_an_edge_divergent_whatever_its_bytes() -> None:
    assert judge_check(Verdict.OK, 0.0, check(CheckProblem.CHECKSUM_MISMATCH)) == (
        Verdict.DIVERGENT,
        None,
    )


def test_a_passed_check_makes_an_edge_ok_even_with_other_bytes() -> None:
    """A module zip rebuilt with the same files has other bytes and the same h1: go is fine."""
    assert judge_check(Verdict.DIVERGENT, None, check()) == (Verdict.OK, 0.0)


def test_transport_errors_stay_errors_under_a_check() -> None:
    assert judge_check(Verdict.ERROR, None, check()) == (Verdict.ERROR, None)


def test_an_edge_apt_would_fail_on_is_divergent() -> None:
    assert judge_apt(Verdict.OK, 0.0, apt(NOW, True), NOW) == (Verdict.DIVERGENT, None)


def test_an_older_self_consistent_release_is_stale_by_the_dates() -> None:
    older = NOW - timedelta(minutes=5)
    assert judge_apt(Verdict.DIVERGENT, None, apt(older), NOW) == (Verdict.STALE, 300.0)


def test_same_date_other_bytes_is_divergent_not_stale() -> None:
    assert judge_apt(Verdict.STALE, 60.0, apt(NOW), NOW) == (Verdict.DIVERGENT, 0.0)


def test_a_current_edge_without_the_expected_upload_is_divergent() -> None:
    result = apt(NOW, False, Problem.EXPECTED_PACKAGE_MISSING)
    assert judge_apt(Verdict.OK, 0.0, result, NOW) == (Verdict.DIVERGENT, 0.0)


def test_compare_object_judges_once_with_the_apt_results() -> None:
    """The suite's report says the newest Date and carries each edge's APT result in order."""
    a, b = Edge("192.0.2.1", 4), Edge("192.0.2.2", 4)
    older = NOW - timedelta(seconds=2)
    other = Observation(status=200, size=3, bytes_read=3, sha256="b" * 64)
    report = compare_object(
        "http://h/dists/s/InRelease", "h", "/dists/s/InRelease", [(b, other), (a, OK)],
        kind=Kind.APT, suite="s", apt=[(b.address, apt(older)), (a.address, apt(NOW))],
    )  # fmt: skip
    assert report.kind is Kind.APT and report.suite == "s"
    assert {r.edge.address: r.verdict for r in report.results} == {
        a.address: Verdict.OK,
        b.address: Verdict.STALE,
    }
    assert [address for address, _ in report.apt] == [a.address, b.address]
    assert report.notes[-1].startswith("newest Release Date among the edges: Tue, 01 Dec 2026")


def test_expected_digest_is_go_sums_else_the_most_served() -> None:
    assert expected_digest("h1:given", ["h1:x", "h1:x"]) == ("h1:given", "go.sum")
    assert expected_digest(None, ["h1:b", "h1:a", "h1:b", None]) == ("h1:b", "most edges")
    assert expected_digest(None, ["h1:b", "h1:a"]) == ("h1:a", "most edges")  # tie: by value
    assert expected_digest(None, [None]) == (None, "most edges")


def test_fetch_problem_names_errors_and_statuses() -> None:
    assert fetch_problem(OK) is None
    assert fetch_problem(CUT) == (CheckProblem.FETCH_ERROR, "truncated")
    assert fetch_problem(Observation(status=404)) == (CheckProblem.MISSING, "HTTP 404")


def test_info_must_parse_and_name_the_version() -> None:
    good = b'{"Version": "v1.0.0", "Time": "2026-11-23T12:00:00Z"}'
    assert info_problem(OK, good, "v1.0.0") is None
    assert info_problem(OK, good, "v1.1.0") == (CheckProblem.BAD_INFO, "Version v1.0.0")
    assert info_problem(OK, b"<html>", "v1.0.0")[0] is CheckProblem.BAD_INFO  # type: ignore[index]
    assert info_problem(Observation(status=404), None, "v1") == (CheckProblem.BAD_INFO, "HTTP 404")


@pytest.mark.parametrize(
    ("zip_h1", "zip_problem", "mod", "info", "problem"),
    [
        ("h1:z", None, "h1:m", None, None),
        ("h1:other", None, "h1:m", None, CheckProblem.ZIP_MISMATCH),
        ("h1:z", None, "h1:other", None, CheckProblem.GOMOD_MISMATCH),
        ("h1:z", None, None, None, CheckProblem.GOMOD_MISSING),
        ("h1:z", None, "h1:m", (CheckProblem.BAD_INFO, "x"), CheckProblem.BAD_INFO),
        (None, (CheckProblem.UNREADABLE_ZIP, "bad"), None, None, CheckProblem.UNREADABLE_ZIP),
    ],
)
def test_module_check_reports_the_first_problem_go_meets(
    zip_h1: str | None,
    zip_problem: tuple[CheckProblem, str] | None,
    mod: str | None,
    info: tuple[CheckProblem, str] | None,
    problem: CheckProblem | None,
) -> None:
    found = module_check("192.0.2.1", zip_h1, zip_problem, mod, ("h1:z", "go.sum"), "h1:m", info)
    assert found.problem is problem
    assert (found.expected, found.source) == ("h1:z", "go.sum")


def test_a_truncated_artifact_never_matches_its_manifest() -> None:
    """With the manifest from the origin, a cut download is not a match (it was: match true)."""
    entry = ManifestEntry("tool.tar.gz", "a" * 64)
    found = artifact_check("192.0.2.1", CUT, entry, True, "manifest on the origin")
    assert found.problem is CheckProblem.FETCH_ERROR
    assert found.problem_text == "fetch_error (truncated)"


@pytest.mark.parametrize(
    ("obs", "entry", "have", "text"),
    [
        (OK, ManifestEntry("f", "a" * 64, 3), True, None),
        (OK, ManifestEntry("f", "b" * 64), True, "checksum mismatch"),
        (OK, ManifestEntry("f", "a" * 64, 4), True, "size mismatch (3 != 4)"),
        (Observation(status=404), ManifestEntry("f", "a" * 64), True, "missing (HTTP 404)"),
        (OK, None, True, "not in the manifest"),
        (OK, None, False, "no readable manifest"),
    ],
)
def test_artifact_check_says_what_sha256sum_would(
    obs: Observation, entry: ManifestEntry | None, have: bool, text: str | None
) -> None:
    assert artifact_check("192.0.2.1", obs, entry, have, "m").problem_text == text
