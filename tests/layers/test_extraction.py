"""Tests of graywsgi.layers.extraction: the Extraction layer, its options and its breaker."""

from __future__ import annotations

import json
import logging
import typing as t

import pytest

import graywsgi.layers.identifiers
from graywsgi.core.context import DegradeLevel, GrayContext
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.extraction_breaker import BreakerState, ExtractionBreaker

from tests.conftest import BufferedClient, RecordingApp
from tests.layers.conftest import FakeClock, run


def test_query_fallback_can_be_disabled(recording_app: RecordingApp) -> None:
    ctx = run(recording_app, wrapper=Extraction(recording_app, query_fallback=None), QUERY_STRING="gray_id=q1")
    assert ctx.gray_id is None


def test_max_length_boundary(recording_app: RecordingApp) -> None:
    assert run(recording_app, HTTP_X_GRAY_ID="x" * 256).gray_id == "x" * 256
    assert run(recording_app, HTTP_X_GRAY_ID="x" * 257).gray_id is None
    small = Extraction(recording_app, max_length=4)
    assert run(recording_app, wrapper=small, HTTP_X_GRAY_ID="abcd").gray_id == "abcd"
    assert run(recording_app, wrapper=small, HTTP_X_GRAY_ID="abcde").degrade_level is DegradeLevel.L1


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


def test_required_gray_id_with_bad_query_counts_once(recording_app: RecordingApp) -> None:
    strict = Extraction(recording_app, required=["gray_id"])
    ctx = run(recording_app, wrapper=strict, QUERY_STRING="gray_id=%0A")
    assert ctx.degrade_level is DegradeLevel.L1 and ctx.dropped == ("gray_id",)


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


# --- the breaker (degrade L3), failing open ---------------------------------


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
