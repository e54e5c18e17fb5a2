"""The gray chain under real gunicorn: several workers follow a live rule file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .gunicorn_helpers import Gunicorn


def write_rules(path: Path, version: str, canary_weight: int) -> None:
    text = (
        f"id: {version}\n"
        "clusters: {stable: {}, canary: {}}\n"
        "rules:\n"
        "  - name: all\n"
        f"    split: [{{cluster: canary, weight: {canary_weight}}}]\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_every_worker_follows_a_live_edit(tmp_path: Path, worker_class: str) -> None:
    rules = tmp_path / "rules.yaml"
    write_rules(rules, "v1", 0)
    server = Gunicorn(
        "tests.apps.gunicorn_app:application",
        workers=3,
        worker_class=worker_class,
        env={"GRAYWSGI_TEST_RULES": str(rules)},
        extra=["--threads", "2"] if worker_class == "gthread" else [],
    )
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 3 and time.monotonic() < deadline:
            status, body = server.get("/", {"X-Gray-ID": "user-1"})
            assert status == 200 and body["rules_version"] == "v1" and body["route"] == "stable"
            pids.add(body["pid"])
        assert len(pids) == 3, "requests did not reach all three workers"

        write_rules(rules, "v2", 100)
        edited = time.monotonic()
        switched: dict[int, float] = {}
        deadline = edited + 20
        while len(switched) < len(pids) and time.monotonic() < deadline:
            status, body = server.get("/", {"X-Gray-ID": "user-1"})
            assert status == 200
            pid = body["pid"]
            if body["rules_version"] == "v2":
                assert body["route"] == "canary"  # the new rule set, whole
                switched.setdefault(pid, time.monotonic() - edited)
            else:
                assert body["rules_version"] == "v1" and body["route"] == "stable"
                assert pid not in switched, "a worker went back to the old rules"
        assert set(switched) >= pids, f"workers never switched: {pids - set(switched)}"
        # check_interval is 0.2 s: every worker follows on its first request
        # after that; the bound here is generous for a loaded CI machine.
        assert max(switched.values()) < 10
    finally:
        server.stop()
    assert server.process.returncode is not None
