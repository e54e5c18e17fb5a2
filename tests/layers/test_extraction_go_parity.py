"""graywsgi reads the gray id as the seed Go gateway does, over real HTTP.

The vectors in tests/data/go_parity/vectors.json were made once by running
the seed's reading (``r.Header.Get("X-Gray-ID")``, else
``r.URL.Query().Get("gray_id")``) over Go's own ``net/http`` parser:
``go run tests/data/go_parity/generate.go > tests/data/go_parity/vectors.json``.
Here each raw request is sent, byte for byte, to a real HTTP server on
127.0.0.1 (werkzeug's, which joins a repeated header with ``,`` as gunicorn
does) serving ``Extraction``; the gray id and its bucket must be Go's.
"""

from __future__ import annotations

import json
import socket
import typing as t
from pathlib import Path

import pytest

from graywsgi import Extraction, current
from graywsgi.core.hashing import bucket_of

from tests.servers import serving

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "go_parity" / "vectors.json").read_text(encoding="utf-8"))


def echo(environ: t.Any, start_response: t.Any) -> list[bytes]:
    key = current.gray_key
    body = json.dumps({
        "gray_id": current.gray_id,
        "bucket": bucket_of(key) if key else None,
        "dropped": list(current.dropped),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def servers() -> t.Iterator[dict[str, int]]:
    """Two real servers on free 127.0.0.1 ports: the default reading and the strict one."""
    apps = {name: Extraction(echo, strict_identifiers=strict) for name, strict in (("default", False), ("strict", True))}
    with serving(apps, threaded=False) as ports:
        yield ports


def send(port: int, raw: str) -> dict[str, t.Any]:
    """Send ``raw`` as it is and read the JSON answer (the request closes the connection)."""
    request = raw.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1).encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", head
    result: dict[str, t.Any] = json.loads(body)
    return result


def test_vectors_were_made_by_go() -> None:
    assert len(VECTORS) >= 20 and all(vector["go"].startswith("go1.") for vector in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_gray_id_and_bucket_match_the_go_gateway(vector: dict[str, t.Any], servers: dict[str, int]) -> None:
    read = send(servers["default"], vector["raw"])
    assert (read["gray_id"], read["bucket"]) == (vector["gray_id"], vector["bucket"])
    assert read["dropped"] == []


# The strict reading (strict_identifiers=True) refuses what the Go gateway reads by a rule of its own.
STRICT = {
    "header twice": (None, ["gray_id"]),
    "header three times": (None, ["gray_id"]),
    "header twice, first empty": (None, ["gray_id"]),
    "query, malformed then good": (None, ["gray_id"]),
    "query with semicolon": (None, ["gray_id"]),
    "query, semicolon pair then good": (None, ["gray_id"]),
    "query, good then malformed": ("u", []),  # the first pair decides, and it is good
    "header once": ("user-42", []),
    "query only": ("user-9", []),
    "no id at all": (None, []),
}


@pytest.mark.parametrize("name", sorted(STRICT))
def test_strict_reading_refuses_ambiguous_ids(name: str, servers: dict[str, int]) -> None:
    vector = next(vector for vector in VECTORS if vector["name"] == name)
    read = send(servers["strict"], vector["raw"])
    assert (read["gray_id"], read["dropped"]) == STRICT[name]


def test_policy_refusals_stay_refused_after_the_first_value_is_taken(servers: dict[str, int]) -> None:
    """The first of two values is checked as a value sent once: over-long is refused."""
    long_id = "u" * 300  # over the default max_length of 256
    raw = f"GET / HTTP/1.1\r\nHost: x\r\nX-Gray-ID: {long_id}\r\nX-Gray-ID: user-5\r\n\r\n"
    read = send(servers["default"], raw)
    assert (read["gray_id"], read["dropped"]) == (None, ["gray_id"])
