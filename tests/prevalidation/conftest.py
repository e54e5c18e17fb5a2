"""Fixtures of the prevalidation tests."""

from __future__ import annotations

import socket
import typing as t

import pytest

from graywsgi.prevalidation.layer import PreValidation
from tests.prevalidation.helpers import ORDERS, EchoApp


@pytest.fixture(scope="module")
def orders() -> PreValidation:
    return PreValidation(EchoApp(), openapi=ORDERS)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up never opens a socket, whatever the document says."""

    def refuse(*args: t.Any, **kwargs: t.Any) -> t.NoReturn:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
