"""Tests of graywsgi.layers.identifiers: reading and checking each gray identifier."""

from __future__ import annotations

import logging

import pytest

from graywsgi.core.context import DegradeLevel, Source
from graywsgi.layers.extraction import Extraction

from tests.conftest import BufferedClient, RecordingApp
from tests.layers.conftest import run


def test_reads_every_identifier(recording_app: RecordingApp) -> None:
    ctx = run(
        recording_app,
        HTTP_X_GRAY_ID="user-1",
        HTTP_X_ENV="prod",
        HTTP_X_VERSION="1.5.0",
        HTTP_X_CANARY_ID="c-7",
        HTTP_X_TRAFFIC_COLOR="gray",
        HTTP_X_API_VERSION="^2.1",
        HTTP_X_REQUEST_ID="req-1",
        HTTP_TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert (ctx.gray_id, ctx.gray_key, ctx.env, ctx.version, ctx.canary_id, ctx.traffic_color) == (
        "user-1", b"user-1", "prod", "1.5.0", "c-7", "gray",
    )
    assert ctx.api_version is not None and ctx.api_version.is_compatible("2.3.0")
    assert ctx.request_id == "req-1"
    assert ctx.trace_parent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert ctx.degrade_level is DegradeLevel.NONE and ctx.dropped == ()
    assert ctx.sources["gray_id"] is Source.UNTRUSTED
    assert ctx.route is None


def test_header_names_are_case_insensitive(recording_app: RecordingApp) -> None:
    BufferedClient(Extraction(recording_app)).get("/", headers={"x-GRAY-id": "u9", "X-ENV": "qa"})
    assert (recording_app.last.gray_id, recording_app.last.env) == ("u9", "qa")


def test_request_id_generated_when_absent(recording_app: RecordingApp) -> None:
    first = run(recording_app)
    second = run(recording_app)
    assert len(first.request_id) == 32 and first.request_id != second.request_id
    assert first.sources["request_id"] is Source.GENERATED
    assert first.degrade_level is DegradeLevel.NONE


@pytest.mark.parametrize(
    "query, header, expected_id, expected_key",
    [
        pytest.param("gray_id=q1", None, "q1", b"q1", id="query fallback"),
        pytest.param("gray_id=q1", "h1", "h1", b"h1", id="header wins"),
        pytest.param("a=1&gray_id=q%201&gray_id=second", None, "q 1", b"q 1", id="first occurrence, escapes"),
        pytest.param("gray_id=a+b", None, "a b", b"a b", id="plus is space"),
        pytest.param("gray%5Fid=enc", None, "enc", b"enc", id="encoded name"),
        pytest.param("gray_id=%E4%F6", None, "\xe4\xf6", b"\xe4\xf6", id="non-UTF-8 bytes kept"),
        pytest.param("gray_id=Z%C3%BCrich", None, "Zürich", b"Z\xc3\xbcrich", id="UTF-8 decoded for text"),
        pytest.param("gray_id=%ZZbad", None, None, None, id="malformed escape means absent"),
        pytest.param("gray_id=%4", None, None, None, id="truncated escape means absent"),
        pytest.param("gray_id=", None, None, None, id="empty means absent"),
        pytest.param("gray_idx=1", None, None, None, id="other parameter"),
        pytest.param("gray_id=%20a%20", None, " a ", b" a ", id="query values are not trimmed"),
    ],
)
def test_query_fallback(
    recording_app: RecordingApp, query: str, header: str | None, expected_id: str | None, expected_key: bytes | None
) -> None:
    overrides: dict[str, str] = {"QUERY_STRING": query}
    if header is not None:
        overrides["HTTP_X_GRAY_ID"] = header
    ctx = run(recording_app, **overrides)
    assert (ctx.gray_id, ctx.gray_key) == (expected_id, expected_key)
    assert ctx.degrade_level is DegradeLevel.NONE


def test_query_value_with_control_is_l1(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, QUERY_STRING="gray_id=%0Aevil")
    assert ctx.gray_id is None and ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id",)


@pytest.mark.parametrize(
    "raw, gray_id, gray_key",
    [
        pytest.param("  user-1\t", "user-1", b"user-1", id="trimmed"),
        pytest.param("Z\xc3\xbcrich", "Zürich", b"Z\xc3\xbcrich", id="UTF-8 bytes on the wire"),
        pytest.param("caf\xe9", "caf\xe9", b"caf\xe9", id="latin-1 byte kept as sent"),
        pytest.param("a b", "a b", b"a b", id="inner space"),
    ],
)
def test_header_bytes_kept_exactly(recording_app: RecordingApp, raw: str, gray_id: str, gray_key: bytes) -> None:
    ctx = run(recording_app, HTTP_X_GRAY_ID=raw)
    assert (ctx.gray_id, ctx.gray_key) == (gray_id, gray_key)


@pytest.mark.parametrize(
    "environ_key, value, field",
    [
        pytest.param("HTTP_X_GRAY_ID", "a\r\nX-Evil: 1", "gray_id", id="CRLF injection"),
        pytest.param("HTTP_X_GRAY_ID", "a\r\n b", "gray_id", id="obs-fold"),
        pytest.param("HTTP_X_ENV", "pr\x00d", "env", id="NUL"),
        pytest.param("HTTP_X_VERSION", "1.0\x7f", "version", id="DEL"),
        pytest.param("HTTP_X_CANARY_ID", "x" * 257, "canary_id", id="too long"),
        pytest.param("HTTP_X_TRAFFIC_COLOR", "gr\u0101y", "traffic_color", id="not latin-1"),
        pytest.param("HTTP_X_API_VERSION", "2.x.banana", "api_version", id="bad semver range"),
        pytest.param("HTTP_TRACEPARENT", "00-xyz-00f067aa0ba902b7-01", "trace_parent", id="bad traceparent"),
        pytest.param(
            "HTTP_TRACEPARENT", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace_parent",
            id="all-zero trace id",
        ),
        pytest.param(
            "HTTP_TRACEPARENT", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace_parent",
            id="forbidden version ff",
        ),
        pytest.param(
            "HTTP_TRACEPARENT", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "trace_parent",
            id="all-zero parent id",
        ),
        pytest.param(
            "HTTP_TRACEPARENT", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace_parent",
            id="uppercase hex",
        ),
        pytest.param(
            "HTTP_TRACEPARENT", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "trace_parent",
            id="trailing dash",
        ),
        pytest.param("HTTP_X_REQUEST_ID", "r\n1", "request_id", id="bad request id"),
    ],
)
def test_one_invalid_identifier_is_l1(
    recording_app: RecordingApp, caplog: pytest.LogCaptureFixture, environ_key: str, value: str, field: str
) -> None:
    with caplog.at_level(logging.INFO, logger="graywsgi.extraction"):
        ctx = run(recording_app, **{"HTTP_X_GRAY_ID": "keep-me", environ_key: value})
    assert ctx.degrade_level is DegradeLevel.L1
    assert ctx.dropped == (field,)
    assert getattr(ctx, field) is None or field == "request_id"
    if field != "gray_id":
        assert ctx.gray_id == "keep-me"
    if field == "request_id":
        assert ctx.request_id != value and ctx.sources["request_id"] is Source.GENERATED
    assert any("degrade L1" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert value not in caplog.text  # raw bad values are not copied into logs


def test_huge_header_value_is_dropped_quickly(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, HTTP_X_GRAY_ID="y" * 1_000_000, HTTP_X_ENV="prod")
    assert ctx.gray_id is None and ctx.env == "prod" and ctx.degrade_level is DegradeLevel.L1


def test_several_failures_give_fallback_context(recording_app: RecordingApp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.extraction"):
        ctx = run(recording_app, HTTP_X_GRAY_ID="a\nb", HTTP_X_ENV="\x01", HTTP_X_VERSION="1.0", HTTP_X_REQUEST_ID="r1")
    assert ctx.degrade_level is DegradeLevel.L2 and ctx.is_fallback
    assert ctx.request_id.startswith("fallback-") and len(ctx.request_id) == len("fallback-") + 36
    assert (ctx.tenant, ctx.role) == ("default", "GUEST")
    assert ctx.gray_id is None and ctx.version is None  # nothing from the request survives
    assert ctx.dropped == ("gray_id", "env")
    assert ctx.sources["tenant"] is Source.FALLBACK
    assert any("degrade L2" in r.getMessage() for r in caplog.records)


def test_non_string_environ_value_is_invalid(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, HTTP_X_GRAY_ID=b"bytes-not-str")
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id",)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("abc\x85FAKE", id="latin-1 NEL (C1 control)"),
        pytest.param("abc\xe2\x80\xa8x", id="UTF-8 U+2028 line separator"),
        pytest.param("abc\xe2\x80\xaex", id="UTF-8 U+202E bidi override"),
        pytest.param("\xc2\x9b31m", id="UTF-8 C1 CSI"),
    ],
)
def test_obs_text_that_decodes_to_controls_is_invalid(
    recording_app: RecordingApp, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    with caplog.at_level(logging.INFO, logger="graywsgi.extraction"):
        ctx = run(recording_app, HTTP_X_REQUEST_ID=raw, HTTP_X_GRAY_ID=raw)
    assert ctx.is_fallback and ctx.dropped == ("gray_id", "request_id")
    assert raw not in caplog.text
