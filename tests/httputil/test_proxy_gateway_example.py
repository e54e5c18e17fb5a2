"""examples/gateway under real gunicorn, in front of two real upstreams on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import time
import typing as t
from pathlib import Path

import pytest

from examples.gateway.upstream import create_app
from graywsgi.core.hashing import fnv1a_32

from tests.gunicorn_helpers import ROOT, Gunicorn, free_port
from tests.servers import serving


@pytest.fixture
def upstreams() -> t.Iterator[dict[str, int]]:
    with serving({release: create_app(release) for release in ("1.4.2", "1.5.0")}) as ports:
        yield ports


def write_rules(path: Path, ports: dict[str, int], weight: int) -> None:
    text = (
        "clusters:\n"
        f"  stable: {{upstream: \"http://127.0.0.1:{ports['1.4.2']}\"}}\n"
        f"  canary: {{upstream: \"http://127.0.0.1:{ports['1.5.0']}\"}}\n"
        "rules:\n"
        "  - name: everything\n"
        f"    split: [{{cluster: canary, weight: {weight}}}]\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def call(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict[str, t.Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_gateway_routes_by_hash_proxies_bodies_and_follows_edits(tmp_path: Path, upstreams: dict[str, int]) -> None:
    rules = tmp_path / "rules.yaml"
    write_rules(rules, upstreams, 20)
    server = Gunicorn(
        "examples.gateway.gateway:application",
        workers=2,
        env={"GRAYWSGI_GATEWAY_RULES": str(rules)},
        extra=["-c", str(ROOT / "examples" / "gunicorn.conf.py")],
    )
    try:
        for n in range(60):
            gray_id = f"user-{n}"
            status, answer = call(server.port, "GET", f"/orders/{n}?x=1", X_Gray_ID=gray_id)
            expected = "1.5.0" if fnv1a_32(gray_id) % 100 < 20 else "1.4.2"
            assert status == 200 and answer["release"] == expected, gray_id
            assert answer["path"] == f"/orders/{n}?x=1"
            assert answer["route"] == ("canary" if expected == "1.5.0" else "stable")
            assert answer["forwarded_for"] == "127.0.0.1"
        payload = os.urandom(1024 * 1024)
        status, answer = call(server.port, "POST", "/upload", payload, X_Gray_ID="user-1")
        assert status == 200 and answer["body_bytes"] == len(payload)
        # a live edit: everyone to the new release
        write_rules(rules, upstreams, 100)
        deadline = time.monotonic() + 20
        releases: set[str] = set()
        while time.monotonic() < deadline:
            releases = {call(server.port, "GET", "/", X_Gray_ID=f"user-{n}")[1]["release"] for n in range(20)}
            if releases == {"1.5.0"}:
                break
            time.sleep(0.2)
        assert releases == {"1.5.0"}
    finally:
        server.stop()


def test_gateway_answers_502_when_the_upstream_is_down(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    dead = free_port()
    write_rules(rules, {"1.4.2": dead, "1.5.0": dead}, 0)
    server = Gunicorn("examples.gateway.gateway:application", workers=1, env={"GRAYWSGI_GATEWAY_RULES": str(rules)})
    try:
        status, answer = call(server.port, "GET", "/", X_Gray_ID="user-1")
        assert status == 502 and answer["status"] == 502
    finally:
        server.stop()


def test_example_gateway_rules_file_is_valid() -> None:
    from graywsgi.rules.files import load_rules

    rules = load_rules(ROOT / "examples" / "gateway" / "rules.yaml")
    assert {c.upstream for c in rules.ruleset.clusters.values()} == {"http://127.0.0.1:8001", "http://127.0.0.1:8002"}
