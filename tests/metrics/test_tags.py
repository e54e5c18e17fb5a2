"""Metrics' tag styles, name sanitising and bounded dimensions (graywsgi/metrics/tags.py), on the wire."""

from __future__ import annotations

import re
import typing as t

import pytest
from werkzeug.wrappers import Response

from graywsgi.metrics.layer import Metrics
from graywsgi.metrics.tags import PlainStyle, TagStyle, sanitize_name
from graywsgi.layers.events import note
from tests.conftest import BufferedClient
from tests.metrics.helpers import GRAY, TRACEPARENT, UdpServer, assert_lines, split_chain

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


# -- wire formats --------------------------------------------------------------


@pytest.mark.parametrize(
    "style, request_line, decision_line",
    [
        pytest.param(
            "statsd",
            "graywsgi.request.canary.none.1_5_0.2xx.GET:{ms}|ms",
            "graywsgi.decision.canary.none.split.none:1|c",
            id="plain statsd: values in the name",
        ),
        pytest.param(
            "dogstatsd",
            "graywsgi.request:{ms}|ms|#route:canary,group:none,version:1.5.0,status:2xx,method:GET",
            "graywsgi.decision:1|c|#route:canary,group:none,reason:split,rule:none",
            id="dogstatsd tags",
        ),
        pytest.param(
            "influx",
            "graywsgi.request,route=canary,group=none,version=1.5.0,status=2xx,method=GET:{ms}|ms",
            "graywsgi.decision,route=canary,group=none,reason=split,rule=none:1|c",
            id="influx tags",
        ),
    ],
)
def test_one_datagram_per_request_in_each_tag_style(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, request_line: str, decision_line: str
) -> None:
    client = BufferedClient(build(split_chain(), tag_style=style, trace_sample_rate=0))
    assert client.get("/orders", headers=GRAY).status_code == 200
    assert_lines(udp.datagram(), request_line, decision_line)
    assert udp.nothing_more()


def test_custom_tag_style(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    class Brackets(TagStyle):
        def fragment(self, tags: t.Sequence[tuple[str, str]]) -> str:
            return "[" + ";".join(f"{k}={v}" for k, v in tags) + "]"

        def line(self, name: str, value: str, fragment: str) -> str:
            return f"{name}{fragment}:{value}"

    BufferedClient(build(Response("ok"), tag_style=Brackets(), trace_sample_rate=0)).get("/")
    assert_lines(udp.datagram(), "graywsgi.request[route=none;group=none;version=none;status=2xx;method=GET]:{ms}|ms")
    assert isinstance(PlainStyle(), TagStyle)


# -- sanitising and cardinality ------------------------------------------------------------


@pytest.mark.parametrize(
    "style, expected",
    [
        pytest.param("statsd", "graywsgi.request.canary.none.a_b_c_d_e_f_g_h_.2xx.GET:{ms}|ms", id="statsd"),
        pytest.param(
            "dogstatsd",
            "graywsgi.request:{ms}|ms|#route:canary,group:none,version:a_b_c_d_e_f_g_h_,status:2xx,method:GET",
            id="dogstatsd",
        ),
        pytest.param(
            "influx",
            "graywsgi.request,route=canary,group=none,version=a_b_c_d_e_f_g_h_,status=2xx,method=GET:{ms}|ms",
            id="influx",
        ),
    ],
)
def test_hostile_header_values_are_sanitised(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, expected: str
) -> None:
    client = BufferedClient(build(split_chain(), tag_style=style, trace_sample_rate=0))
    # every character here is a valid header value character
    client.get("/", headers={"X-Version": "a:b|c@d,e#f=g h\u00e9", "X-Gray-ID": "user-11"})
    assert_lines(udp.datagram().split("\n")[0], expected)


def test_event_names_tags_and_newlines_are_sanitised(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        note(environ, "evil:name|c\n@x", **{"k,ey": "v:a|l\nue#", "layer": "x" * 500})
        start_response("200 OK", [])
        return [b""]

    client = BufferedClient(build(app, tag_style="dogstatsd", trace_sample_rate=0, max_value_length=16))
    client.get("/")
    lines = udp.datagram().split("\n")
    assert len(lines) == 2
    assert lines[1] == "graywsgi.evil_name_c__x:1|c|#k_ey:v_a_l_ue_,layer:" + "x" * 16


def test_sanitize_name() -> None:
    assert sanitize_name("a..b:c|d@e,f#g\nh") == "a.b_c_d_e_f_g_h"
    assert sanitize_name("...") == "_"
    assert len(sanitize_name("x" * 1000)) == 200


def test_each_dimension_keeps_a_bounded_number_of_values(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(split_chain(), tag_style="dogstatsd", trace_sample_rate=0, max_values=3))
    seen = []
    for n in range(6):
        client.get("/", headers={"X-Version": f"9.9.{n}"})
        seen.append(re.search(r"version:([^,]+)", udp.datagram()).group(1))  # type: ignore[union-attr]
    assert seen == ["9.9.0", "9.9.1", "9.9.2", "other", "other", "other"]
    client.get("/", headers={"X-Version": "9.9.1"})
    assert "version:9.9.1" in udp.datagram(), "values already admitted keep their name"


# -- trace ids ----------------------------------------------------------------------------


def test_plain_statsd_never_puts_trace_ids_in_names(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(split_chain(), tag_style="statsd", trace_sample_rate=1.0))
    client.get("/", headers={"traceparent": TRACEPARENT})
    assert "4bf92f35" not in udp.datagram()
