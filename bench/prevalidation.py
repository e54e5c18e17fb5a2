"""Pre-validation cost: graywsgi's PreValidation against openapi-core, same request and spec.

Run from the repository root (openapi-core is a dev dependency)::

    python bench/prevalidation.py            # about half a minute
    python bench/prevalidation.py --quick    # smoke run

The spec (written to a temporary directory) has one operation,
``POST /orders/{order_id}/items``, with a path parameter, a query parameter,
a header and a small JSON body; its ``x-gray-rules`` constrain those same
fields, so both validators check the same things on the same request.
Both are built once, before timing. Every call gets a fresh shallow copy of
one environ and a fresh ``io.BytesIO`` body, and its response is consumed
and closed. Cases:

- **floor** -- the bare application behind the same per-call environ copy;
- **graywsgi** -- ``PreValidation(app)`` with the gray context already in
  the environ (as Extraction leaves it): operation lookup, rule selection,
  body read and hand-back, JSON parse, validation;
- **openapi-core, as middleware** -- the same job done with openapi-core:
  the body read and handed back the same way, a werkzeug ``Request`` and
  ``WerkzeugOpenAPIRequest`` wrapped around the environ,
  ``OpenAPI.validate_request``, then the application;
- **openapi-core, validate_request only** -- ``validate_request`` on a
  request object built once (a lower bound for openapi-core, favourable
  to it).

Loop counts are calibrated to about ``--target`` seconds per repetition;
repetitions go round-robin over the cases and the table gives medians and
spreads in ns per request. The ratios are of medians from the same run,
each less the floor.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.prevalidation.layer import PreValidation

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SPEC = """\
openapi: 3.1.0
info: {title: Bench, version: "2.0.0"}
paths:
  /orders/{order_id}/items:
    post:
      operationId: addItem
      parameters:
        - {name: order_id, in: path, required: true, schema: {type: integer, minimum: 1}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 50}}
        - {name: X-Client, in: header, schema: {type: string, enum: [ios, android, web]}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku, qty]
              properties:
                sku: {type: string, pattern: "^[A-Z]{3}-[0-9]{4}$"}
                qty: {type: integer, minimum: 1, maximum: 10}
                note: {type: string, maxLength: 140}
      responses:
        "201": {description: added}
      x-gray-rules:
        rules:
          - {field: path.order_id, schema: {type: integer, minimum: 1}}
          - {field: query.limit, schema: {type: integer, minimum: 1, maximum: 50}}
          - {field: header.X-Client, schema: {enum: [ios, android, web]}}
          - {field: "body#/sku", schema: {type: string, pattern: "^[A-Z]{3}-[0-9]{4}$"}, required: true}
          - {field: "body#/qty", schema: {type: integer, minimum: 1, maximum: 10}, required: true}
          - {field: "body#/note", schema: {type: string, maxLength: 140}}
"""

BODY = json.dumps({"sku": "ABC-1234", "qty": 3, "note": "gift wrap, please"}).encode()
INVALID_BODY = json.dumps({"sku": "ABC-1234", "qty": 30}).encode()


def write_spec(directory: str | None = None) -> Path:
    """Write the bench spec to ``directory`` (a new temporary one by default)."""
    path = Path(directory or tempfile.mkdtemp(prefix="graywsgi-bench-")) / "bench-openapi.yaml"
    path.write_text(SPEC, "utf-8")
    return path


def bare_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def base_environ(body: bytes = BODY) -> WSGIEnvironment:
    from werkzeug.test import create_environ

    environ = create_environ(
        "/orders/42/items?limit=10",
        base_url="http://shop.example.com/",
        method="POST",
        data=body,
        content_type="application/json",
        headers={"X-Client": "ios", "X-Version": "2.0.0"},
    )
    environ[ENVIRON_KEY] = GrayContext(request_id="bench", version="2.0.0")
    return environ


class OpenAPICoreMiddleware:
    """The same job as PreValidation, done with openapi-core."""

    def __init__(self, app: WSGIApplication, spec: Path) -> None:
        from openapi_core import OpenAPI

        self.app = app
        self.openapi = OpenAPI.from_file_path(str(spec))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
        from werkzeug.wrappers import Request

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        request = Request(environ)
        try:
            self.openapi.validate_request(WerkzeugOpenAPIRequest(request))
        except Exception:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"invalid"]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


class ValidateOnly:
    """openapi-core's ``validate_request`` on a request object built once."""

    def __init__(self, spec: Path) -> None:
        from openapi_core import OpenAPI
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
        from werkzeug.wrappers import Request

        self.openapi = OpenAPI.from_file_path(str(spec))
        environ = base_environ()
        self.request = WerkzeugOpenAPIRequest(Request(environ))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        self.openapi.validate_request(self.request)
        return bare_app(environ, start_response)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
    return _write


def _write(data: bytes) -> None:
    return None


def status_of(app: WSGIApplication, body: bytes) -> str:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
        seen.append(status)
        return _write

    environ = base_environ(body)
    result = app(environ, start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return seen[0].split()[0]


def run_once(app: WSGIApplication, environ: WSGIEnvironment, body: bytes, loops: int) -> float:
    copy = dict.copy
    new_input = io.BytesIO
    start = time.perf_counter()
    for _ in range(loops):
        env = copy(environ)
        env["wsgi.input"] = new_input(body)
        result = app(env, _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return time.perf_counter() - start


def calibrate(app: WSGIApplication, environ: WSGIEnvironment, body: bytes, target: float) -> int:
    loops = 10
    while True:
        elapsed = run_once(app, environ, body, loops)
        if elapsed >= target / 4:
            return max(10, int(loops * target / elapsed))
        loops *= 4


def cases(spec: Path) -> dict[str, WSGIApplication]:
    return {
        "floor (bare app, same environ copy)": bare_app,
        "graywsgi PreValidation": PreValidation(bare_app, openapi=spec),
        "openapi-core, as middleware": OpenAPICoreMiddleware(bare_app, spec),
        "openapi-core, validate_request only": ValidateOnly(spec),
    }


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.5, help="seconds per repetition")
    parser.add_argument("--quick", action="store_true", help="3 short repetitions (smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.target = 3, 0.02
    spec = write_spec()
    apps = cases(spec)
    # Both validators must agree before they are timed.
    for name in ("graywsgi PreValidation", "openapi-core, as middleware"):
        valid, invalid = status_of(apps[name], BODY), status_of(apps[name], INVALID_BODY)
        if (valid, invalid) != ("201", "400"):
            raise SystemExit(f"{name}: valid -> {valid}, invalid -> {invalid}; expected 201 and 400")
    environ = base_environ()
    loops_for = {name: calibrate(app, environ, BODY, args.target) for name, app in apps.items()}
    samples_for: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.repeat):
        for name, app in apps.items():
            loops = loops_for[name]
            samples_for[name].append(run_once(app, environ, BODY, loops) / loops * 1e9)
    results = {
        name: {
            "median_ns": statistics.median(samples),
            "min_ns": min(samples),
            "max_ns": max(samples),
            "loops": loops_for[name],
        }
        for name, samples in samples_for.items()
    }
    floor = results["floor (bare app, same environ copy)"]["median_ns"]
    ours = results["graywsgi PreValidation"]["median_ns"] - floor
    core = results["openapi-core, as middleware"]["median_ns"] - floor
    core_only = results["openapi-core, validate_request only"]["median_ns"] - floor
    ratios = {"openapi_core_middleware_over_graywsgi": core / ours, "openapi_core_validate_only_over_graywsgi": core_only / ours}
    if args.json:
        print(json.dumps({"cases": results, "ratios": ratios}, indent=2))
        return 0
    print(f"{'case':40} {'median ns':>10} {'spread ns':>19}")
    for name, row in results.items():
        spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
        print(f"{name:40} {row['median_ns']:10.0f} {spread:>19}")
    print(f"\ngraywsgi pre-validation costs {ours:.0f} ns per request over the floor (same-run medians)")
    print(f"openapi-core as middleware / graywsgi: {ratios['openapi_core_middleware_over_graywsgi']:.1f}x")
    print(f"openapi-core validate_request only / graywsgi: {ratios['openapi_core_validate_only_over_graywsgi']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
