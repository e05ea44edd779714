"""The pure comparison core: variants, the reference rule and verdicts, with plain values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from prober.compare import PastReference, compare_object, parse_http_date, variant_key
from prober.errors import ErrorReason
from prober.model import Edge, ObjectReport, Observation, ReferenceSource, Verdict

Observed = list[tuple[Edge, Observation]]

NEW = "Mon, 23 Nov 2026 13:00:00 GMT"
OLD = "Mon, 23 Nov 2026 12:00:00 GMT"
E1, E2, E3, E4 = (Edge(f"192.0.2.{i}", 4) for i in range(1, 5))


def ok(sha: str, lm: str | None = NEW, etag: str | None = '"a"', status: int = 200) -> Observation:
    return Observation(
        status=status, size=10, bytes_read=10, sha256=sha, etag=etag, last_modified=lm
    )


def failed(reason: ErrorReason) -> Observation:
    return Observation(error=reason)


def compare(*observed: tuple[Edge, Observation], origin: Observation | None = None) -> ObjectReport:
    return compare_object("https://r/x", "r", "/x", list(observed), origin)


def verdicts(report: ObjectReport) -> dict[str, Verdict]:
    return {r.edge.address: r.verdict for r in report.results}


def test_all_same_bytes_is_consistent() -> None:
    """One variant: every edge ok, lag 0."""
    report = compare((E1, ok("aa")), (E2, ok("aa")))
    assert report.consistent
    assert len(report.variants) == 1
    assert all(r.lag_s == 0 for r in report.results)


def test_older_last_modified_is_stale_with_lag() -> None:
    """A different body with an older Last-Modified is stale, lag = difference."""
    report = compare((E1, ok("new")), (E2, ok("old", lm=OLD)))
    assert verdicts(report) == {"192.0.2.1": Verdict.OK, "192.0.2.2": Verdict.STALE}
    assert report.results[1].lag_s == 3600
    assert report.reference_source is ReferenceSource.NEWEST


def test_newest_beats_majority_when_dates_exist() -> None:
    """Three edges on the old copy, one on the new: the one is the reference, three are stale."""
    report = compare(
        (E1, ok("old", lm=OLD)), (E2, ok("old", lm=OLD)), (E3, ok("old", lm=OLD)), (E4, ok("new"))
    )
    assert report.reference is not None and report.reference.sha256 == "new"
    assert list(verdicts(report).values()).count(Verdict.STALE) == 3


def test_same_date_different_bytes_is_divergent_against_majority() -> None:
    """Without an order between them, the odd body is divergent and the majority is reference."""
    report = compare((E1, ok("good")), (E2, ok("good")), (E3, ok("bad")))
    assert verdicts(report)["192.0.2.3"] is Verdict.DIVERGENT
    assert report.results[2].lag_s == 0


def test_no_dates_majority_is_reference() -> None:
    """Without Last-Modified anywhere, the variant most edges serve is the reference."""
    report = compare((E1, ok("x", lm=None)), (E2, ok("y", lm=None)), (E3, ok("y", lm=None)))
    assert report.reference_source is ReferenceSource.MAJORITY
    assert verdicts(report) == {
        "192.0.2.1": Verdict.DIVERGENT,
        "192.0.2.2": Verdict.OK,
        "192.0.2.3": Verdict.OK,
    }
    assert report.results[0].lag_s is None


def test_error_is_error_and_never_reference() -> None:
    """Failed fetches are verdict error; they never become the reference."""
    report = compare(
        (E1, failed(ErrorReason.TIMEOUT)), (E2, failed(ErrorReason.TIMEOUT)), (E3, ok("a"))
    )
    assert verdicts(report)["192.0.2.1"] is Verdict.ERROR
    assert report.reference is not None and report.reference.sha256 == "a"
    assert not report.consistent


def test_all_errors_no_reference() -> None:
    report = compare((E1, failed(ErrorReason.CONNECT)))
    assert report.reference is None
    assert report.reference_source is ReferenceSource.NONE
    assert verdicts(report) == {"192.0.2.1": Verdict.ERROR}


def test_404_is_its_own_variant_and_divergent() -> None:
    """Non-2xx answers are keyed by status; a 404 beside 200s is divergent."""
    report = compare(
        (E1, ok("a")), (E2, ok("a")), (E3, Observation(status=404, bytes_read=9, sha256="n"))
    )
    assert len(report.variants) == 2
    assert verdicts(report)["192.0.2.3"] is Verdict.DIVERGENT


def test_redirects_differ_by_location() -> None:
    """Two 301s to different places are two variants."""
    a = Observation(status=301, location="https://a/", sha256="h")
    b = Observation(status=301, location="https://b/", sha256="h")
    assert variant_key(a) != variant_key(b)


def test_identical_bytes_different_etags_ok_with_note() -> None:
    """Same hash, other ETag and Last-Modified: consistent; the difference is a note."""
    report = compare((E1, ok("a", etag='"1"')), (E2, ok("a", etag='"2"', lm=OLD)))
    assert report.consistent
    assert any("ETags" in n for n in report.notes)
    assert any("Last-Modified" in n for n in report.notes)


def test_origin_is_the_reference() -> None:
    """With an origin, its body is the reference even if no edge serves it."""
    report = compare((E1, ok("a")), (E2, ok("a")), origin=ok("o", lm=NEW))
    assert report.reference_source is ReferenceSource.ORIGIN
    assert set(verdicts(report).values()) == {Verdict.DIVERGENT}


def test_failed_origin_falls_back_to_edges_with_a_note() -> None:
    report = compare((E1, ok("a")), origin=failed(ErrorReason.TLS))
    assert report.reference_source is ReferenceSource.NEWEST
    assert report.consistent
    assert any("origin failed" in n for n in report.notes)


def test_past_reference_is_stale_without_dates() -> None:
    """A body that used to be the reference is stale even with no Last-Modified."""
    now = datetime(2026, 11, 23, 14, tzinfo=UTC)
    past = [
        PastReference("v2", now - timedelta(minutes=5)),
        PastReference("v1", now - timedelta(hours=1)),
    ]
    observed = [
        (E1, ok("v3", lm=None)),
        (E2, ok("v3", lm=None)),
        (E3, ok("v1", lm=None)),
        (E4, ok("zz", lm=None)),
    ]
    report = compare_object("u", "h", "/x", observed, None, past, now)
    by = {r.edge.address: r for r in report.results}
    assert by["192.0.2.3"].verdict is Verdict.STALE
    assert by["192.0.2.3"].versions_behind == 2
    assert by["192.0.2.3"].lag_s == 3600
    assert by["192.0.2.4"].verdict is Verdict.DIVERGENT


def test_http_dates() -> None:
    assert parse_http_date(NEW) == datetime(2026, 11, 23, 13, tzinfo=UTC)
    assert parse_http_date("not a date") is None
    assert parse_http_date(None) is None


# ---- properties ----------------------------------------------------------------------------

observations = st.one_of(
    st.builds(
        ok,
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([NEW, OLD, None, "garbage"]),
        st.sampled_from(['"1"', '"2"', None]),
    ),
    st.builds(failed, st.sampled_from(list(ErrorReason))),
    st.builds(Observation, status=st.sampled_from([301, 404, 503]), sha256=st.just("s")),
)
edge_sets = st.lists(
    st.tuples(st.integers(1, 250).map(lambda i: Edge(f"198.51.100.{i}", 4)), observations),
    min_size=1,
    max_size=8,
    unique_by=lambda pair: pair[0],
)


@given(edge_sets, st.randoms())
def test_permuting_edges_never_changes_a_verdict(observed: Observed, rnd: random.Random) -> None:
    """The order edges answered in changes nothing: not the reference, not a verdict."""
    shuffled = list(observed)
    rnd.shuffle(shuffled)
    a = compare_object("u", "h", "/x", observed)
    b = compare_object("u", "h", "/x", shuffled)
    assert a == b


@given(edge_sets)
def test_reference_edges_are_ok_and_errors_are_errors(observed: Observed) -> None:
    """Every edge serving the reference is ok; every failed fetch is error; nothing else is ok."""
    report = compare_object("u", "h", "/x", observed)
    for r in report.results:
        if r.observation.error is not None:
            assert r.verdict is Verdict.ERROR
        elif report.reference is not None and r.variant == report.reference.key:
            assert r.verdict is Verdict.OK
        else:
            assert r.verdict is not Verdict.OK
    assert report.consistent == all(r.verdict is Verdict.OK for r in report.results)


@given(edge_sets)
def test_stale_edges_have_positive_lag(observed: Observed) -> None:
    report = compare_object("u", "h", "/x", observed)
    for r in report.results:
        if r.verdict is Verdict.STALE:
            assert r.lag_s is not None and r.lag_s > 0
