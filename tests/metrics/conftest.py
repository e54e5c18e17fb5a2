"""Fixtures of the metrics tests: statsd servers on 127.0.0.1 and Metrics layers sending to them."""

from __future__ import annotations

import typing as t

import pytest

from graywsgi.metrics.layer import Metrics
from tests.metrics.helpers import StreamServer, UdpServer

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@pytest.fixture
def udp() -> t.Iterator[UdpServer]:
    server = UdpServer()
    yield server
    server.sock.close()


@pytest.fixture
def tcp() -> t.Iterator[StreamServer]:
    server = StreamServer()
    yield server
    server.close()


@pytest.fixture
def made() -> t.Iterator[list[Metrics]]:
    """Metrics built by a test; their sinks are closed afterwards."""
    instances: list[Metrics] = []
    yield instances
    for metrics in instances:
        metrics.sink.close()


@pytest.fixture
def build(made: list[Metrics], udp: UdpServer) -> t.Callable[..., Metrics]:
    def factory(app: WSGIApplication, **options: t.Any) -> Metrics:
        options.setdefault("port", udp.port)
        metrics = Metrics(app, **options)
        made.append(metrics)
        return metrics

    return factory
