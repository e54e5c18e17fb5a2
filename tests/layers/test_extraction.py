from __future__ import annotations

import json
import logging
import time
import typing as t

import pytest
from werkzeug.test import create_environ

import graywsgi.layers.identifiers
from graywsgi import Extraction, ExtractionBreaker
from graywsgi.core.context import DegradeLevel, GrayContext, Source
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.query import query_param_bytes
from graywsgi.layers.extraction_breaker import BreakerState

from tests.conftest import BufferedClient, RecordingApp


def run(app: RecordingApp, *, wrapper: Extraction | None = None, **environ_overrides: t.Any) -> GrayContext:
    """Send one request with raw environ keys and return the context seen."""
    middleware = wrapper or Extraction(app)
    environ = create_environ("/")
    environ["QUERY_STRING"] = ""
    environ.update(environ_overrides)
    response_iter = middleware(environ, lambda status, headers, exc_info=None: lambda b: None)
    try:
        b"".join(response_iter)
    finally:
        getattr(response_iter, "close", lambda: None)()
    return app.last


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


def test_query_fallback_can_be_disabled(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, wrapper=Extraction(recording_app, query_fallback=None), QUERY_STRING="gray_id=q1")
    assert ctx.gray_id is None


def test_query_param_bytes_helper() -> None:
    assert query_param_bytes("x=1&y=%41", "y") == b"A"
    assert query_param_bytes("x=1", "y") is None
    assert query_param_bytes("y", "y") == b""
    assert query_param_bytes("y=\u0100", "y") is None  # not a WSGI (latin-1) string


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


def test_max_length_boundary(recording_app: RecordingApp) -> None:
    assert run(recording_app, HTTP_X_GRAY_ID="x" * 256).gray_id == "x" * 256
    assert run(recording_app, HTTP_X_GRAY_ID="x" * 257).gray_id is None
    small = Extraction(recording_app, max_length=4)
    assert run(recording_app, wrapper=small, HTTP_X_GRAY_ID="abcd").gray_id == "abcd"
    assert run(recording_app, wrapper=small, HTTP_X_GRAY_ID="abcde").degrade_level is DegradeLevel.L1


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


def test_fallback_after_is_configurable(recording_app: RecordingApp) -> None:
    lenient = Extraction(recording_app, fallback_after=3)
    ctx = run(recording_app, wrapper=lenient, HTTP_X_GRAY_ID="a\nb", HTTP_X_ENV="\x01")
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id", "env")


def test_required_identifier_missing_counts_as_failure(recording_app: RecordingApp) -> None:
    strict = Extraction(recording_app, required=["env"])
    assert run(recording_app, wrapper=strict).degrade_level is DegradeLevel.L1
    assert run(recording_app, wrapper=strict, HTTP_X_ENV="prod").degrade_level is DegradeLevel.NONE
    plain = run(recording_app)  # optional identifiers missing: no degrade
    assert plain.degrade_level is DegradeLevel.NONE


def test_non_string_environ_value_is_invalid(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, HTTP_X_GRAY_ID=b"bytes-not-str")
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id",)


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"required": ["nope"]}, "unknown identifiers", id="unknown required"),
        pytest.param({"max_length": 0}, "max_length", id="zero max_length"),
        pytest.param({"max_length": True}, "max_length", id="bool max_length"),
        pytest.param({"fallback_after": 1}, "fallback_after", id="fallback_after below 2"),
        pytest.param({"resolvers": [42]}, "not callable", id="resolver not callable"),
        pytest.param({"query_fallback": ""}, "query_fallback", id="empty query name"),
    ],
)
def test_bad_options_raise_at_construction(recording_app: RecordingApp, options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Extraction(recording_app, **options)


# --- resolvers and the breaker (degrade L3) ---------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_resolver_sets_tenant_and_role(recording_app: RecordingApp) -> None:
    def user_context(environ: t.Any) -> dict[str, str]:
        tenant, _, role = environ.get("HTTP_X_USER_CONTEXT", "").partition(":")
        return {"tenant": tenant, "role": role}

    ctx = run(recording_app, wrapper=Extraction(recording_app, resolvers=[user_context]), HTTP_X_USER_CONTEXT="acme:ADMIN")
    assert (ctx.tenant, ctx.role, ctx.degrade_level) == ("acme", "ADMIN", DegradeLevel.NONE)


def test_resolver_gray_id_is_hashed_as_utf8(recording_app: RecordingApp) -> None:
    wrapper = Extraction(recording_app, resolvers=[lambda environ: {"gray_id": "Zürich"}])
    ctx = run(recording_app, wrapper=wrapper)
    assert ctx.gray_key == "Zürich".encode("utf-8")


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(["tenant"], id="not a mapping"),
        pytest.param({"route": "canary"}, id="field it may not set"),
        pytest.param({"tenant": 5}, id="not a string"),
        pytest.param({"tenant": "a\nb"}, id="invalid header value"),
    ],
)
def test_unusable_resolver_result_is_a_failure(recording_app: RecordingApp, result: object) -> None:
    ctx = run(recording_app, wrapper=Extraction(recording_app, resolvers=[lambda environ: result]))
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("resolver:<lambda>",)
    assert ctx.tenant is None


def test_failing_resolver_opens_breaker_then_probe_closes_it(
    recording_app: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    healthy = {"value": False}

    def flaky(environ: t.Any) -> dict[str, str]:
        if not healthy["value"]:
            raise ConnectionError("user service down")
        return {"tenant": "acme"}

    breaker = ExtractionBreaker(clock=clock)
    wrapper = Extraction(recording_app, resolvers=[flaky], breaker=breaker)
    with caplog.at_level(logging.DEBUG, logger="graywsgi.extraction"):
        for _ in range(3):
            ctx = run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="u1")
            assert ctx.degrade_level is DegradeLevel.L1  # one failure each
        assert breaker.state is BreakerState.OPEN
        ctx = run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="u1")
    assert ctx.degrade_level is DegradeLevel.L3 and ctx.is_fallback and ctx.gray_id is None
    assert ctx.request_id.startswith("fallback-")
    assert any("closed -> open" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert any("degrade L3" in r.getMessage() for r in caplog.records)

    clock.now += 59.9
    assert run(recording_app, wrapper=wrapper).degrade_level is DegradeLevel.L3
    clock.now += 0.2
    healthy["value"] = True
    probe = run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="u1")
    assert probe.degrade_level is DegradeLevel.NONE and probe.tenant == "acme"
    assert breaker.state is BreakerState.CLOSED


def test_slow_resolver_opens_breaker(recording_app: RecordingApp) -> None:
    breaker = ExtractionBreaker(slow_call=0.01)

    def slow(environ: t.Any) -> None:
        time.sleep(0.03)
        return None

    wrapper = Extraction(recording_app, resolvers=[slow], breaker=breaker)
    ctx = run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="u1")
    assert ctx.gray_id == "u1"  # the slow call's own result still counts
    assert breaker.state is BreakerState.OPEN
    assert run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="u1").degrade_level is DegradeLevel.L3


def test_malformed_headers_never_open_the_breaker(recording_app: RecordingApp) -> None:
    breaker = ExtractionBreaker(failure_threshold=1)
    wrapper = Extraction(recording_app, breaker=breaker)
    for _ in range(10):
        run(recording_app, wrapper=wrapper, HTTP_X_GRAY_ID="\x00", HTTP_X_ENV="\x00")
    assert breaker.state is BreakerState.CLOSED


def test_refuse_when_open_answers_503_problem_json(recording_app: RecordingApp) -> None:
    clock = FakeClock()
    breaker = ExtractionBreaker(failure_threshold=1, open_for=30, clock=clock)

    def broken(environ: t.Any) -> None:
        raise RuntimeError("x")

    client = BufferedClient(Extraction(recording_app, resolvers=[broken], breaker=breaker, refuse_when_open=True))
    assert client.get("/").status_code == 200
    clock.now += 10.2
    response = client.get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "20"
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(response.data)
    assert problem["status"] == 503 and problem["title"] == "Service Unavailable" and problem["detail"]
    assert len(recording_app.seen) == 1  # the refused request never reached the app


def test_internal_error_fails_open_to_fallback(
    recording_app: RecordingApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrapper = Extraction(recording_app)

    def explode(*args: t.Any) -> t.NoReturn:
        raise RuntimeError("bug in graywsgi")

    # A request without X-Request-ID makes the reader draw one: the draw fails.
    monkeypatch.setattr(graywsgi.layers.identifiers, "new_request_id", explode)
    with caplog.at_level(logging.ERROR, logger="graywsgi.extraction"):
        response = BufferedClient(wrapper).get("/", headers={"X-Gray-ID": "u"})
    assert response.status_code == 200
    assert recording_app.last.is_fallback and recording_app.last.degrade_level is DegradeLevel.L2
    assert "bug in graywsgi" in caplog.text


def test_random_garbage_never_breaks_a_request(recording_app: RecordingApp) -> None:
    """Seeded random header and query values: always a 200 and a context."""
    import random

    rng = random.Random(20261125)
    alphabet = "".join(chr(c) for c in range(256))
    keys = ["HTTP_X_GRAY_ID", "HTTP_X_ENV", "HTTP_X_VERSION", "HTTP_X_CANARY_ID", "HTTP_X_TRAFFIC_COLOR",
            "HTTP_X_API_VERSION", "HTTP_X_REQUEST_ID", "HTTP_TRACEPARENT"]
    client_app = Extraction(recording_app)
    for _ in range(1500):
        overrides = {
            key: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            for key in keys
            if rng.random() < 0.6
        }
        overrides["QUERY_STRING"] = "gray_id=" + "".join(rng.choice("%AZaz09+&=\xe9") for _ in range(rng.randint(0, 12)))
        ctx = run(recording_app, wrapper=client_app, **overrides)
        assert isinstance(ctx, GrayContext) and ctx.request_id
        if ctx.gray_id is not None:
            assert ctx.gray_key


def test_required_gray_id_with_bad_query_counts_once(recording_app: RecordingApp) -> None:
    strict = Extraction(recording_app, required=["gray_id"])
    ctx = run(recording_app, wrapper=strict, QUERY_STRING="gray_id=%0A")
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


def test_each_resolver_is_timed_on_its_own(recording_app: RecordingApp) -> None:
    breaker = ExtractionBreaker(slow_call=0.05)

    def medium(environ: t.Any) -> None:
        time.sleep(0.03)
        return None

    run(recording_app, wrapper=Extraction(recording_app, resolvers=[medium, medium], breaker=breaker))
    assert breaker.state is BreakerState.CLOSED  # 60 ms in all, but no single resolver over 50 ms


def test_failures_apart_do_not_open_the_extraction_breaker(
    recording_app: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Without resolvers too, only *consecutive* failures count: a success in between resets them."""
    from graywsgi.httputil.trust import TrustPolicy

    class FailsOnDemand(TrustPolicy):
        def enforce(self, environ: t.Any) -> t.Any:
            if environ.get("HTTP_X_BREAK"):
                raise RuntimeError("trust lookup failed")
            return super().enforce(environ)

    breaker = ExtractionBreaker(failure_threshold=3)
    extraction = Extraction(recording_app, breaker=breaker, trust=FailsOnDemand(trusted_networks=["127.0.0.1/32"]))
    with caplog.at_level("CRITICAL"):
        for _ in range(3):
            run(recording_app, wrapper=extraction, HTTP_X_BREAK="1")
            for _ in range(5):
                run(recording_app, wrapper=extraction)
    assert breaker.state is BreakerState.CLOSED
    with caplog.at_level("CRITICAL"):
        for _ in range(3):
            run(recording_app, wrapper=extraction, HTTP_X_BREAK="1")
    assert breaker.state is BreakerState.OPEN  # three in a row still open it


def test_required_set_after_construction_is_checked_and_applies(recording_app: RecordingApp) -> None:
    wrapper = Extraction(recording_app)
    assert run(recording_app, wrapper=wrapper).degrade_level is DegradeLevel.NONE
    wrapper.required = ["gray_id"]
    assert wrapper.required == frozenset({"gray_id"})
    ctx = run(recording_app, wrapper=wrapper)
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id",)
    with pytest.raises(ConfigurationError, match="unknown identifiers"):
        wrapper.required = ["tenant_id"]
    assert wrapper.required == frozenset({"gray_id"})  # a refused value changes nothing
