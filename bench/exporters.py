"""Each metrics backend's per-request cost, beside statsd's, in one run.

Run from the repository root::

    python bench/exporters.py            # 7 repetitions of about 0.3 s per case
    python bench/exporters.py --quick    # a smoke run

The core chain (Extraction + Router + Guard, every request to the canary
route) alone, then wrapped by each backend: graywsgi's statsd ``Metrics``
(one dogstatsd UDP datagram per request to a socket bound on 127.0.0.1 and
never read), ``PrometheusMetrics`` (its own registry, in-process
collection: what a worker pays per request; a scrape is not timed), and
``OpenTelemetryMiddleware`` with the OpenTelemetry SDK (a local
``MeterProvider`` with an in-memory reader and a ``TracerProvider`` whose
span processor drops everything, so the cost is graywsgi's attributes and
instruments, not an exporter's network). Repetitions go round-robin over
the cases; the table gives each case's median and what the backend adds to
the core chain. A backend whose package is not installed is left out.
"""

from __future__ import annotations

import socket
import statistics
import sys
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import core_chain, gray_environ, metrics_on, run_once, table_script  # bench/run.py

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

CORE = "core chain, no metrics"


def backends(port: int) -> dict[str, WSGIApplication]:
    """The core chain alone and under each installed backend (``port``: the statsd sink's)."""
    cases: dict[str, WSGIApplication] = {CORE: core_chain(), "statsd Metrics (dogstatsd, UDP)": metrics_on(core_chain(), port)}
    try:
        from prometheus_client import CollectorRegistry

        from graywsgi.contrib.prometheus import PrometheusMetrics
    except ImportError:
        pass
    else:
        cases["PrometheusMetrics (prometheus_client)"] = PrometheusMetrics(core_chain(), registry=CollectorRegistry())
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        from graywsgi.contrib.otel import OpenTelemetryMiddleware
    except ImportError:
        pass
    else:
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        cases["OpenTelemetryMiddleware (SDK, in-memory)"] = OpenTelemetryMiddleware(
            core_chain(), tracer_provider=TracerProvider(), meter_provider=meters
        )
    return cases


def run(*, quick: bool = False, repeat: int = 7, target: float = 0.3, log: t.TextIO | None = None) -> dict[str, t.Any]:
    """Median ns per request of every case, and each backend's cost over the core chain."""
    if quick:
        repeat, target = 1, 0.02
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        environ = gray_environ()
        cases = backends(sink.getsockname()[1])
        loops: dict[str, int] = {}
        for name, app in cases.items():
            run_once(app, environ, 200)  # warm
            count = 200
            while (elapsed := run_once(app, environ, count)) < target / 4:
                count *= 4
            loops[name] = max(200, int(count * target / elapsed))
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, app in cases.items():
                samples[name].append(run_once(app, environ, loops[name]) / loops[name] * 1e9)
        if log:
            print("exporters timed", file=log)
    finally:
        sink.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {"median_ns": medians, "added_ns": {name: medians[name] - medians[CORE] for name in medians if name != CORE}}


def table(result: dict[str, t.Any]) -> str:
    lines = ["metrics backends over the core chain (same run, median ns per request)",
             f"{'case':44} {'median ns':>10} {'added ns':>10}"]
    for name, median in result["median_ns"].items():
        added = result["added_ns"].get(name)
        lines.append(f"{name:44} {median:10,.0f} {'' if added is None else f'{added:10,.0f}'}")
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    return table_script(argv, __doc__, run, table, repeat=7)

if __name__ == "__main__":
    sys.exit(main())
