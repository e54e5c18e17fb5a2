"""``graywsgi simulate`` decides as the middleware does, for every example rule file in the repository.

The middleware side is the real stack, ``Extraction(Router(...))``, each
cluster dispatched to an application that records the route; the
simulate side is the real command (``graywsgi.cli.commands.main``). Both see the
same gray ids and the same header sets; their shares per route must be
equal exactly (hash mode is deterministic).
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from werkzeug.test import create_environ

from graywsgi import Extraction, Router
from graywsgi.cli.commands import main
from graywsgi.rules.files import load_rules
from graywsgi.layers.route_step import DECISION_KEY

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted(
    path for path in ROOT.glob("examples/**/rules*.*") if path.suffix in (".yaml", ".yml", ".json", ".toml")
)
HEADER_SETS: list[dict[str, str]] = [
    {},
    {"X-Traffic-Color": "canary"},
    {"X-Traffic-Color": "stable"},
    {"X-Version": "2.1.0"},
    {"X-Api-Version": "2.1.0"},
    {"X-Tier": "gold"},
    {"X-Employee": "true", "Cookie": "beta=1"},
    {"X-Canary-Weight": "0.5"},
    {"X-Env": "bad\x7fvalue"},  # refused by Extraction: 400 on both sides
]
IDS = [f"user-{n}" for n in range(200)]


def places(rules_file: Path) -> list[tuple[str, str]]:
    """(host, path) pairs the file's rules talk about, plus one they do not."""
    ruleset = load_rules(str(rules_file)).ruleset
    hosts = {"localhost"} | {host.replace("*.", "www.") for rule in ruleset.rules for host in rule.hosts or ()}
    paths = {"/"}
    for rule in ruleset.rules:
        if rule.path is not None and rule.path.prefix is not None:
            paths.add(rule.path.prefix.rstrip("/") + "/x")
        if rule.path is not None and rule.path.template is not None:
            paths.add(rule.path.template.replace("{", "").replace("}", ""))
    return [(host, path) for host in sorted(hosts) for path in sorted(paths)]


def middleware_shares(rules_file: Path, host: str, path: str, headers: dict[str, str]) -> dict[str, float]:
    routes: dict[str, int] = {}

    def served(environ: t.Any, start_response: t.Any) -> list[bytes]:
        decision = environ[DECISION_KEY]
        routes[decision.route] = routes.get(decision.route, 0) + 1
        start_response("200 OK", [])
        return [b""]

    clusters = load_rules(str(rules_file)).ruleset.clusters
    stack = Extraction(Router(served, str(rules_file), apps={name: served for name in clusters}))
    for gray_id in IDS:
        statuses: list[str] = []
        environ = create_environ(path, base_url=f"http://{host}/", headers={**headers, "X-Gray-ID": gray_id})
        before = sum(routes.values())
        body = stack(environ, lambda status, _headers, _exc=None: statuses.append(status))  # type: ignore[arg-type,return-value]
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()
        if sum(routes.values()) == before:  # answered by graywsgi itself: 400, 404
            code = statuses[0].split(" ", 1)[0]
            routes[code] = routes.get(code, 0) + 1
    return {route: count / len(IDS) for route, count in sorted(routes.items())}


def simulate_shares(rules_file: Path, host: str, path: str, headers: dict[str, str], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(IDS))
    arguments = ["simulate", "--rules", str(rules_file), "--ids", str(ids), "--host", host, "--path", path, "--json"]
    for name, value in headers.items():
        arguments += ["--header", f"{name}:{value}"]
    main(arguments)
    shares: dict[str, float] = json.loads(capsys.readouterr().out)["rows"][0]["shares"]
    return shares


def test_every_example_rule_file_is_covered() -> None:
    assert {path.relative_to(ROOT).as_posix() for path in RULE_FILES} >= {
        "examples/rules.yaml", "examples/gateway/rules.yaml", "examples/seven_steps/rules.yaml",
        "examples/django_project/rules.yaml",
    }


@pytest.mark.parametrize("rules_file", RULE_FILES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_simulate_agrees_with_the_middleware(rules_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for host, path in places(rules_file):
        for headers in HEADER_SETS:
            expected = middleware_shares(rules_file, host, path, headers)
            assert simulate_shares(rules_file, host, path, headers, tmp_path, capsys) == expected, (host, path, headers)


def test_simulate_follows_the_colour_and_version_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The two cases where simulate used to disagree: a colour header, and a version route."""
    rules = ROOT / "examples" / "rules.yaml"
    assert simulate_shares(rules, "shop.example.com", "/checkout/x", {"X-Traffic-Color": "canary"},
                           tmp_path, capsys) == {"canary": 1.0}
    assert simulate_shares(rules, "api.example.com", "/v2/x", {"X-Api-Version": "2.1.0"},
                           tmp_path, capsys) == {"v2": 1.0}
