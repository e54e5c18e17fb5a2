"""status_code(): the code of a WSGI status line, the same on both paths."""

from __future__ import annotations

import pytest

from graywsgi.layers.scope import status_code


def by_the_rule(status: str) -> int | None:
    head = status[:3]
    return int(head) if len(head) == 3 and head.isdigit() and head.isascii() else None


@pytest.mark.parametrize(
    "status, code",
    [
        ("200 OK", 200),
        ("503 Service Unavailable", 503),
        ("404", 404),
        ("007 Licensed", 7),
        ("999 Whatever", 999),
        ("000 Zero", 0),
        ("20", None),
        ("", None),
        ("2x0 Bad", None),
        (" 200 OK", None),
        ("20 0", None),
        ("/00 Slash", None),  # the character just below "0"
        (":00 Colon", None),  # the character just above "9"
        ("²00 Superscript", None),  # a digit to str.isdigit(), not ASCII
        ("٢٠٠ Arabic-Indic", None),
        ("２００ Fullwidth", None),
        ("200\u2028", 200),
    ],
)
def test_status_codes(status: str, code: int | None) -> None:
    assert status_code(status) == code
    assert by_the_rule(status) == code  # the table agrees with the documented rule


def test_every_short_line_of_ascii_and_near_digits_follows_the_rule() -> None:
    alphabet = "0123456789/:a \t\u0660\u00b2\uff10"
    for first in alphabet:
        for second in alphabet:
            for third in alphabet:
                status = first + second + third + " X"
                assert status_code(status) == by_the_rule(status), status


def test_a_repeated_line_gives_the_same_code() -> None:
    line = "".join(["418", " I'm a teapot"])  # a new string each call, as applications build them
    assert [status_code(line) for _ in range(3)] == [418, 418, 418]
