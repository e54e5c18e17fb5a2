"""Tests of graywsgi.layers.resolvers: resolvers' results, failures and timing."""

from __future__ import annotations

import logging
import time
import typing as t

import pytest

from graywsgi.core.context import DegradeLevel
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.extraction_breaker import BreakerState, ExtractionBreaker

from tests.conftest import RecordingApp
from tests.layers.conftest import FakeClock, run

# --- resolvers and the breaker (degrade L3) ---------------------------------


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


def test_each_resolver_is_timed_on_its_own(recording_app: RecordingApp) -> None:
    breaker = ExtractionBreaker(slow_call=0.05)

    def medium(environ: t.Any) -> None:
        time.sleep(0.03)
        return None

    run(recording_app, wrapper=Extraction(recording_app, resolvers=[medium, medium], breaker=breaker))
    assert breaker.state is BreakerState.CLOSED  # 60 ms in all, but no single resolver over 50 ms
