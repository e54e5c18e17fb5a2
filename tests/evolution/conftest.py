"""Shared helpers of the evolution tests: a settable clock, an echo app, the orders API."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

from werkzeug.wrappers import Request, Response

from graywsgi.evolution.api import Api
from graywsgi.evolution.stages import API_KEY, STAGE_KEY, VERSION_KEY, ProtocolEvolution
from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
DAY = 86400.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def echo(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    request = Request(environ)
    document = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode(),
        "body": request.get_data(as_text=True),
        "stage": environ.get(STAGE_KEY),
        "api": environ.get(API_KEY),
        "version": environ.get(VERSION_KEY),
    }
    return Response(json.dumps(document), mimetype="application/json")(environ, start_response)


def orders(**options: t.Any) -> Api:
    options.setdefault("deprecated_at", T0)
    return Api("orders", old="/v1/orders", new="/v2/orders", **options)


def client(*apis: Api, clock: Clock | None = None) -> BufferedClient:
    return BufferedClient(ProtocolEvolution(echo, apis=apis, clock=clock or Clock()))
