"""The Flask and Django examples under real gunicorn, run with examples/gunicorn.conf.py.

Each server: 3 workers on 127.0.0.1 and a free port, sync or gthread, with and
without preload_app, a rule file in a temporary directory, a trust boundary
that the test client is *not* inside (gray headers count only when signed),
stopped by its process id. Real HTTP requests check the hash distribution,
colour override, spoofed headers, request bodies, route-bound views, the
gunicorn hooks and a live rule-file edit reaching every worker.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from graywsgi.core.hashing import fnv1a_32
from graywsgi.httputil.trust import sign

from .gunicorn_helpers import ROOT, Gunicorn

CONF = ROOT / "examples" / "gunicorn.conf.py"
WORKERS = 3
SECRET = "s3cret"
# A documentation network (RFC 5737): the test client, on 127.0.0.1, is outside it.
GATEWAYS = '["192.0.2.0/24"]'


@dataclass(frozen=True)
class Example:
    app: str
    env_prefix: str  # how the example reads graywsgi settings from the environment
    extra: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    bound_path: str = ""  # a canary-only URL
    template_marker: str = "Served by <b>{route}</b>"


EXAMPLES = {
    "flask": Example(app="examples.flask_app:app", env_prefix="FLASK_GRAYWSGI_", bound_path="/v2/orders"),
    "django": Example(
        app="graysite.wsgi:application",
        env_prefix="GRAYWSGI_",
        extra=("--pythonpath", str(ROOT / "examples" / "django_project")),
        env={"DJANGO_SETTINGS_MODULE": "graysite.settings"},
        bound_path="/v2/checkout",
    ),
}


def write_rules(path: Path, version: str, weight: int) -> None:
    text = (
        f"id: {version}\n"
        "clusters: {stable: {}, canary: {}}\n"
        "fallback_key: {from: cookie, name: sessionid}\n"
        f"rules: [{{name: everyone, split: [{{cluster: canary, weight: {weight}}}]}}]\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ExampleServer(Gunicorn):
    """gunicorn_helpers.Gunicorn that also closes its pipes when the start fails."""

    def _wait_ready(self, timeout: float) -> None:
        try:
            super()._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise


def signed(headers: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    """``headers`` plus a gateway signature over them."""
    return {**headers, "X-Gray-Signature": sign(secret, "gw", headers, int(time.time()))}


def is_canary(gray_id: str, weight: int = 15) -> bool:
    return fnv1a_32(gray_id) % 100 < weight


CANARY_ID = next(f"user-{n}" for n in range(1000) if is_canary(f"user-{n}"))
STABLE_ID = next(f"user-{n}" for n in range(1000) if not is_canary(f"user-{n}"))


def request(server: Gunicorn, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(server: Gunicorn, path: str = "/", headers: dict[str, str] | None = None) -> dict[str, t.Any]:
    status, body = request(server, "GET", path, headers)
    assert status == 200, (path, headers, status, body[:300])
    data: dict[str, t.Any] = json.loads(body)
    return data


def start(example: Example, worker_class: str, preload: bool, tmp_path: Path, rules: Path) -> ExampleServer:
    settings = {
        "RULES": str(rules),
        "RULES_CHECK_INTERVAL": "0.2",
        "TRUSTED_NETWORKS": GATEWAYS,
        "SIGNING_KEYS": json.dumps({"gw": SECRET}),
    }
    env = {example.env_prefix + name: value for name, value in settings.items()}
    env.update(example.env, GUNICORN_PRELOAD="1" if preload else "0")
    extra = ["-c", str(CONF), "--error-logfile", str(tmp_path / "gunicorn.log"), *example.extra]
    if worker_class == "gthread":
        extra += ["--threads", "4"]
    return ExampleServer(example.app, workers=WORKERS, worker_class=worker_class, env=env, extra=extra)


def all_workers(server: Gunicorn) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < WORKERS and time.monotonic() < deadline:
        pids.add(get_json(server)["pid"])
    assert len(pids) == WORKERS, f"requests reached only {len(pids)} of {WORKERS} workers"
    return pids


CASES = [
    pytest.param("flask", "sync", True, id="flask-sync-preload"),
    pytest.param("flask", "gthread", False, id="flask-gthread"),
    pytest.param("django", "sync", False, id="django-sync"),
    pytest.param("django", "gthread", True, id="django-gthread-preload"),
]


@pytest.mark.parametrize("name, worker_class, preload", CASES)
def test_example_end_to_end(tmp_path: Path, name: str, worker_class: str, preload: bool) -> None:
    if name == "django":
        pytest.importorskip("django")
    example = EXAMPLES[name]
    rules = tmp_path / "rules.yaml"
    write_rules(rules, "v1", 15)
    server = start(example, worker_class, preload, tmp_path, rules)
    try:
        pids = all_workers(server)

        # The gunicorn hooks got every worker ready (post_fork with preload,
        # post_worker_init without).
        log = (tmp_path / "gunicorn.log").read_text()
        ready = {int(pid) for pid in re.findall(r"graywsgi worker (\d+) ready: rules v1, kill switch clear", log)}
        assert ready >= pids, log

        # Routes by gray id follow the hash rule, user by user.
        ids = [f"user-{n}" for n in range(150)]
        for gray_id in ids:
            body = get_json(server, "/", signed({"X-Gray-ID": gray_id}))
            expected = "canary" if is_canary(gray_id) else "stable"
            assert (body["route"], body["served_by"], body["gray_id"], body["trust"]) == (
                expected, expected, gray_id, "signed"), gray_id
        assert 0 < sum(map(is_canary, ids)) < len(ids)

        # An explicit colour from the gateway overrides the hash, both ways.
        assert get_json(server, "/", signed({"X-Gray-ID": STABLE_ID, "X-Traffic-Color": "canary"}))["route"] == "canary"
        assert get_json(server, "/", signed({"X-Gray-ID": CANARY_ID, "X-Traffic-Color": "stable"}))["route"] == "stable"

        # Spoofed gray headers -- unsigned, or signed with the wrong key -- are stripped.
        for headers in (
            {"X-Gray-ID": CANARY_ID, "X-Traffic-Color": "canary"},
            signed({"X-Gray-ID": CANARY_ID, "X-Traffic-Color": "canary"}, secret="guessed"),
        ):
            body = get_json(server, "/", headers)
            assert (body["route"], body["gray_id"], body["trust"]) == ("stable", None, None), headers
        # ... and the split falls back to the key the service owns: the session cookie.
        body = get_json(server, "/", {"X-Gray-ID": STABLE_ID, "Cookie": f"sessionid={CANARY_ID}"})
        assert (body["route"], body["gray_id"]) == ("canary", None)

        # Request bodies arrive intact on both routes.
        payload = os.urandom(256 * 1024)
        for headers, route in ((signed({"X-Gray-ID": CANARY_ID}), "canary"), ({}, "stable")):
            status, raw = request(server, "POST", "/echo", {**headers, "Content-Type": "application/octet-stream"},
                                  payload)
            echoed = json.loads(raw)
            assert status == 200 and echoed["route"] == route
            assert (echoed["length"], echoed["sha256"]) == (len(payload), hashlib.sha256(payload).hexdigest())

        # Templates read the context; a canary-only view is 404 for everyone else.
        status, page = request(server, "GET", "/page", signed({"X-Traffic-Color": "canary"}))
        assert status == 200 and example.template_marker.format(route="canary").encode() in page
        assert request(server, "GET", example.bound_path, signed({"X-Traffic-Color": "canary"}))[0] == 200
        assert request(server, "GET", example.bound_path, signed({"X-Traffic-Color": "stable"}))[0] == 404
        if name == "flask":  # the fallthrough blueprint: same URL, two versions
            assert get_json(server, "/checkout", signed({"X-Gray-ID": CANARY_ID}))["checkout"] == "new"
            assert get_json(server, "/checkout", signed({"X-Gray-ID": STABLE_ID}))["checkout"] == "old"

        # A live rule-file edit reaches every worker, whole.
        write_rules(rules, "v2", 100)
        edited = time.monotonic()
        switched: dict[int, float] = {}
        while set(switched) < pids and time.monotonic() - edited < 20:
            body = get_json(server, "/", signed({"X-Gray-ID": STABLE_ID}))
            if body["rules_version"] == "v2":
                assert body["route"] == "canary"
                switched.setdefault(body["pid"], time.monotonic() - edited)
            else:
                assert (body["rules_version"], body["route"]) == ("v1", "stable")
                assert body["pid"] not in switched, "a worker went back to the old rules"
        assert set(switched) >= pids, f"workers never switched: {pids - set(switched)}"
        assert max(switched.values()) < 10
    finally:
        server.stop()
    assert server.process.returncode is not None


@pytest.mark.parametrize("name", ["flask", "django"])
def test_broken_rule_file_stops_a_preloaded_start(tmp_path: Path, name: str) -> None:
    if name == "django":
        pytest.importorskip("django")
    rules = tmp_path / "rules.yaml"
    rules.write_text("clusters: {stable: {}}\nrules:\n  - {name: x, split: [{cluster: canry, weight: 5}]}\n")
    with pytest.raises(RuntimeError) as raised:
        start(EXAMPLES[name], "sync", True, tmp_path, rules)
    message = str(raised.value) + (tmp_path / "gunicorn.log").read_text()
    assert re.search(r"GRAYWSGI(_RULES|\['RULES'\]): .*rules\.yaml:3: .*unknown cluster 'canry'", message), message
