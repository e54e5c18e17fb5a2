"""What mirroring costs the client: per-request latency with and without a Mirror.

Run from the repository root::

    python bench/mirror.py            # a few seconds
    python bench/mirror.py --quick    # smoke run

Each case serves ``GET /v1/orders/7`` through ``ProtocolEvolution`` in
transition with an exempt client (so the old version serves it and the
mirror may copy it). The time measured is what the client waits for: the
WSGI call, reading the body and closing the response (the mirror job is
queued at close). Cases:

- ``no mirror``   -- the API has no mirror;
- ``mirror, fast shadow`` -- every request mirrored to an in-process shadow
  that answers at once (queue put + background comparison competing for
  the GIL);
- ``mirror, shadow sleeps 1 s`` -- every request mirrored to a shadow that
  takes 1 s: two workers stay busy, the queue (64) fills, and later copies
  are dropped (the drop path).

Cases run round-robin in repetitions; the figures are medians over all
requests (and the 99th percentile) in microseconds, wall clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graywsgi.evolution.stages import Api, Exemption, ProtocolEvolution
from graywsgi.evolution.mirror import Mirror

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

BODY = json.dumps({"id": 7, "items": [{"sku": "a", "qty": 2}] * 5}).encode()


def old_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def slow_shadow(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    time.sleep(1.0)
    return old_app(environ, start_response)


def build(mirror: Mirror | None) -> WSGIApplication:
    return ProtocolEvolution(old_app, apis=[Api(
        "orders", old="/v1/orders", new="/v2/orders", stage="transition",
        exemptions=[Exemption("X-SDK-Version", "<2")], mirror=mirror)])


def environ() -> dict[str, t.Any]:
    import io

    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/v1/orders/7", "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_X_SDK_VERSION": "1.2.0", "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
    return lambda data: None


def one(app: WSGIApplication) -> float:
    env = environ()
    started = time.perf_counter()
    response = app(env, _start_response)
    for _ in response:
        pass
    close = getattr(response, "close", None)
    if close is not None:
        close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    requests, repetitions = (200, 2) if args.quick else (2000, 5)
    fast = Mirror(lambda e, s: old_app(e, s), workers=2, queue_size=64)
    slow = Mirror(slow_shadow, workers=2, queue_size=64)
    cases = {"no mirror": build(None), "mirror, fast shadow": build(fast), "mirror, shadow sleeps 1 s": build(slow)}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for app in cases.values():
        for _ in range(50):
            one(app)  # warm up (starts the pools)
    for _ in range(repetitions):
        for name, app in cases.items():
            samples[name].extend(one(app) for _ in range(requests))
    base = statistics.median(samples["no mirror"])
    print(f"{'case':<28}{'median µs':>10}{'p99 µs':>10}{'vs none':>9}")
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        p99 = values[int(len(values) * 0.99) - 1]
        print(f"{name:<28}{median * 1e6:>10.1f}{p99 * 1e6:>10.1f}{median / base:>8.2f}x")
    fast.close(5)
    slow_report = slow.report()
    fast_report = fast.report()
    print(f"fast shadow: mirrored {fast_report['mirrored']}, dropped {fast_report['dropped_queue_full']}, "
          f"compared {fast_report['compared']}")
    print(f"slow shadow: mirrored {slow_report['mirrored']}, dropped {slow_report['dropped_queue_full']}")
    slow.close(0)


if __name__ == "__main__":
    main()
