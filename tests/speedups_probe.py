"""Prints what graywsgi's hot-path functions answer, one JSON object a line.

tests/test_speedups.py runs this script twice -- once on the compiled fast
path, once with ``GRAYWSGI_PURE_PYTHON=1`` -- and compares the answers
section by section. Every input is generated from a fixed seed, so both runs
see the same inputs; each section prints the full answers (not a digest), so
a difference shows which input the two paths disagree on.

Run alone: ``python tests/speedups_probe.py [section ...]``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import typing as t

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULE_FILES = (
    "examples/rules.yaml",
    "examples/seven_steps/rules.yaml",
    "examples/django_project/rules.yaml",
    "examples/gateway/rules.yaml",
)


def code_points() -> dict[str, t.Any]:
    """plain_ascii and trimmed for every code point, alone and inside text."""
    from graywsgi.layers.identifiers import field_text, plain_ascii, trimmed

    accepted = []
    fields = []
    for point in range(0x110000):
        char = chr(point)
        if plain_ascii(char) and plain_ascii(f"ab{char}cd"):
            accepted.append(point)
        if point < 0x100:
            fields.append(field_text(f"x{char}y"))
    # Every byte value at every place of a value longer than a machine word:
    # the compiled loop and the plain check must agree wherever it sits.
    placed = [
        [point for point in range(0x100) if plain_ascii("a" * place + chr(point) + "b" * (18 - place))]
        for place in range(19)
    ]
    spaced = [" a", "a ", "\ta\t", " \t ", "", " ", "\t", "a", " a b ", "\u00a0a", "a\r", "\ta b c"]
    return {
        "plain_ascii": accepted,
        "plain_ascii_placed": placed,
        "empty": plain_ascii(""),
        "field_text": fields,
        "trimmed": [trimmed(text) for text in spaced],
    }


def traceparents() -> dict[str, t.Any]:
    """valid_traceparent for a valid header and every one-character mutation of it."""
    from graywsgi.layers.identifiers import valid_traceparent

    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    replacements = "0aAfFgG-_ \x00\u00e9"
    results = [valid_traceparent(good)]
    for index in range(len(good)):
        for char in replacements:
            results.append(valid_traceparent(good[:index] + char + good[index + 1 :]))
        results.append(valid_traceparent(good[:index] + good[index + 1 :]))
    for extra in ("", "-", "0", "-00", " "):
        results.append(valid_traceparent(good + extra))
    results.append(valid_traceparent("ff" + good[2:]))
    # The all-zero ids are refused; one digit other than 0, anywhere, makes them valid.
    zero_trace, zero_parent = "0" * 32, "0" * 16
    results.append(valid_traceparent(f"00-{zero_trace}-{good[36:]}"))
    results.append(valid_traceparent(f"{good[:36]}{zero_parent}-01"))
    for place in range(32):
        results.append(valid_traceparent(f"00-{zero_trace[:place]}1{zero_trace[place + 1:]}-{good[36:]}"))
    for place in range(16):
        results.append(valid_traceparent(f"{good[:36]}{zero_parent[:place]}a{zero_parent[place + 1:]}-01"))
    results.append(valid_traceparent(good.upper()))
    return {"traceparent": results}


def buckets() -> dict[str, t.Any]:
    """bucket_of (and fnv1a_32) for 100,000 generated keys."""
    from graywsgi.core.hashing import bucket_of, fnv1a_32

    rng = random.Random(18)
    keys = [f"user-{n}".encode() for n in range(50_000)]
    keys += [rng.randbytes(rng.randrange(0, 64)) for _ in range(50_000)]
    return {
        "bucket_of": [bucket_of(key) for key in keys],
        "fnv1a_32": [fnv1a_32(key) for key in keys[::97]],
    }


def _identifier(rng: random.Random) -> str:
    kind = rng.randrange(30)
    if kind == 0:
        return ""
    if kind == 1:
        return " \t" + f"user-{rng.randrange(1000)}" + "\t "
    if kind == 2:
        return "".join(chr(rng.randrange(0x20, 0x100)) for _ in range(rng.randrange(1, 12)))
    if kind == 3:
        return "x" * rng.choice((255, 256, 257, 4096))
    if kind == 4:
        return "bad\x01value"
    return f"user-{rng.randrange(10_000)}"


def _environ(rng: random.Random, hosts: list[str], paths: list[str]) -> dict[str, t.Any]:
    from werkzeug.test import EnvironBuilder

    headers: dict[str, str] = {"Host": rng.choice(hosts)}
    for name, chance in (
        ("X-Gray-ID", 0.7),
        ("X-Traffic-Color", 0.2),
        ("X-Env", 0.2),
        ("X-Version", 0.1),
        ("X-Api-Version", 0.2),
        ("X-Canary-ID", 0.1),
        ("X-Tier", 0.3),
        ("X-Employee", 0.1),
        ("traceparent", 0.2),
        ("Cookie", 0.3),
    ):
        if rng.random() < chance:
            if name == "X-Traffic-Color":
                headers[name] = rng.choice(("canary", "gray", "stable", "GRAY", "purple", ""))
            elif name == "X-Api-Version":
                headers[name] = rng.choice(("2", "2.1.0", "1", "v3", "not-a-version", "^2"))
            elif name == "X-Employee":
                headers[name] = rng.choice(("true", "false"))
            elif name == "traceparent":
                headers[name] = rng.choice(
                    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-zz-00-01", "")
                )
            elif name == "Cookie":
                headers[name] = rng.choice(("beta=1", "beta=no", f"session=s{rng.randrange(100)}", "a=b; beta=yes"))
            else:
                headers[name] = _identifier(rng)
    query = ""
    if rng.random() < 0.2:
        query = f"gray_id=q{rng.randrange(1000)}"
    environ = EnvironBuilder(path=rng.choice(paths), query_string=query, headers=headers).get_environ()
    return environ


def _hosts_and_paths(rules: t.Any) -> tuple[list[str], list[str]]:
    hosts = ["localhost", "example.com", "api.example.com", "shop.example.com", "eu.shop.example.com"]
    paths = ["/", "/v2/items", "/checkout/pay", "/orders/17", "/orders/17/items", "/health", "/api/v1/users"]
    for rule in rules.ruleset.rules:
        for host in rule.hosts:
            hosts.append(host.replace("*.", "a."))
        for value in (rule.path.prefix, rule.path.template) if rule.path is not None else ():
            if value is not None:
                paths.append(value.replace("{", "").replace("}", "") + "/x")
                paths.append(value.replace("{", "").replace("}", ""))
    return sorted(set(hosts)), sorted(set(paths))


def decisions() -> dict[str, t.Any]:
    """The route, group, reason and identifiers of 2,000 generated requests
    through Extraction(Router(...)) for every example rule file."""
    from graywsgi import Extraction, Router, current
    from graywsgi.rules.files import load_rules

    def echo(name: str) -> t.Any:
        def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            seen = current._get_current_object() if hasattr(current, "_get_current_object") else current
            fields = (
                name,
                seen.route,
                seen.group,
                seen.route_reason,
                seen.gray_id,
                seen.traffic_color,
                seen.env,
                seen.trace_parent,
                str(seen.api_version),
                seen.degrade_level.name,
                list(seen.dropped),
            )
            return [json.dumps(fields).encode()]

        return app

    answers: dict[str, t.Any] = {}
    for filename in RULE_FILES:
        rules = load_rules(os.path.join(ROOT, filename))
        apps = {name: echo(name) for name in rules.ruleset.clusters}
        chain = Extraction(Router(echo("app"), rules, apps=apps))
        hosts, paths = _hosts_and_paths(rules)
        rng = random.Random(filename)
        seen = []
        for _ in range(2_000):
            environ = _environ(rng, hosts, paths)
            statuses: list[str] = []
            body = chain(environ, lambda status, headers, exc_info=None: statuses.append(status))
            try:
                text = b"".join(body).decode("latin-1")
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            seen.append([statuses[-1] if statuses else None, text])
        answers[filename] = seen
    return answers


def hosts() -> dict[str, t.Any]:
    """The host a rule sees (lowercased): ASCII with and without capitals, and
    hosts whose lowercase differs in length or leaves ASCII."""
    from graywsgi.rules.decision import request_facts

    samples = ["shop.example.com", "Shop.Example.COM", "", "A", "z", "@[`{", "xn--caf-dma.example",
               "CAFÉ.example", "İstanbul.example", "ΣΑΣ.example", "shop.example.com:8080", "[::1]:80"]
    samples += [chr(point) + "host" for point in range(0x100)]
    seen = [request_facts({"HTTP_HOST": host}, None).host for host in samples]
    seen.append(request_facts({"SERVER_NAME": "Server.Example"}, None).host)
    return {"hosts": seen}


SECTIONS: dict[str, t.Callable[[], dict[str, t.Any]]] = {
    "code_points": code_points,
    "traceparents": traceparents,
    "hosts": hosts,
    "buckets": buckets,
    "decisions": decisions,
}


def main(argv: list[str]) -> int:
    import logging

    import graywsgi.speedups

    logging.disable(logging.WARNING)  # the degraded requests' log lines are expected

    print(json.dumps({"section": "path", "answers": graywsgi.speedups.describe()}))
    for name in argv or list(SECTIONS):
        print(json.dumps({"section": name, "answers": SECTIONS[name]()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
