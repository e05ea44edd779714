"""Property-based fuzzing: no input to the config loaders, the response helpers or the
comparison core gives a traceback; bad input gives the one error type a person is shown."""

from __future__ import annotations

import string

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.cli import check_url
from prober.compare import compare_object, parse_http_date
from prober.config import parse_config, parse_model
from prober.daemon.metrics import LABEL_MAX, label
from prober.daemon.webconfig import WebConfig
from prober.errors import ConfigError, ErrorReason, UsageError
from prober.fetch import cache_headers
from prober.model import Edge, Observation
from prober.render import object_table, safe
from prober.transport.http1 import content_length

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
target_like = st.fixed_dictionaries(
    {"name": st.text(max_size=10), "url": st.text(max_size=30), "paths": st.lists(st.text(max_size=10), max_size=3)},
    optional={"interval": json_values, "timeout": json_values, "resolvers": json_values,
              "max_body_size": json_values, "origin": json_values, "bogus": json_values},
)  # fmt: skip
config_like = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"targets": st.lists(target_like, max_size=3)}, optional={"listen": json_values}
    ),
)


@settings(max_examples=300, deadline=None)
@given(config_like)
def test_config_loader_accepts_or_names_the_problem(data: object) -> None:
    text = yaml.safe_dump(data)
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml: ")
        assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_config_loader_survives_any_text(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_web_config_loader_accepts_or_names_the_problem(data: object) -> None:
    try:
        parse_model(yaml.safe_dump(data), "web.yml", WebConfig, "must be a YAML mapping")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@given(
    st.dictionaries(
        st.sampled_from(["Content-Length", "Transfer-Encoding", "Age", "Via", "X-Cache"]), st.text()
    )
)
def test_response_header_helpers_never_raise(headers: dict[str, str]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}  # as http1.parse_head gives them
    size = content_length(lowered.get("content-length", ""))
    assert size is None or size >= 0
    for name, value in cache_headers(lowered):
        assert name.islower() and len(value) <= 200


@given(st.text())
def test_dates_labels_and_terminal_text_never_raise(text: str) -> None:
    parse_http_date(text)
    bounded = label(text)
    assert len(bounded) <= LABEL_MAX
    assert all(c.isprintable() for c in bounded)
    assert all(c.isprintable() for c in safe(text))


@given(st.text(alphabet=string.printable + "üé☃\x00", max_size=60))
def test_url_check_accepts_or_raises_usage_error(text: str) -> None:
    try:
        assert check_url(text) == text
    except UsageError as exc:
        assert "\n" not in str(exc)


observations = st.builds(
    Observation,
    status=st.none() | st.integers(0, 999),
    size=st.none() | st.integers(0, 10**12),
    bytes_read=st.integers(0, 10**12),
    sha256=st.none() | st.text(max_size=64),
    etag=st.none() | st.text(max_size=80),
    last_modified=st.none() | st.text(max_size=40) | st.just("Mon, 23 Nov 2026 13:00:00 GMT"),
    location=st.none() | st.text(max_size=40),
    error=st.none() | st.sampled_from(list(ErrorReason)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=6), st.none() | observations)
def test_comparison_and_table_never_raise(
    found: list[Observation], origin: Observation | None
) -> None:
    observed = [(Edge(f"192.0.2.{i}", 4), obs) for i, obs in enumerate(found)]
    report = compare_object("https://h/p", "h", "/p", observed, origin)
    assert len(report.results) == len(found)
    assert object_table(report)
