"""Tests of graywsgi.evolution.mirror_diff: comparing the primary's and the shadow's responses."""

from __future__ import annotations

import pytest

from graywsgi.evolution.mirror_diff import Captured, compare_responses


# -- comparison -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, ignore, kinds",
    [
        pytest.param(b'{"id": 1, "at": 5}', b'{"at": 6, "id": 1}', ["at"], [], id="ignored field"),
        pytest.param(b'{"id": 1, "m": {"at": 5, "x": 1}}', b'{"id": 1, "m": {"at": 6, "x": 1}}', ["m.at"], [],
                     id="ignored dotted path"),
        pytest.param(b'{"m": {"at": 5}, "at": 1}', b'{"m": {"at": 5}, "at": 2}', ["m.at"], ["body"],
                     id="dotted path only there"),
        pytest.param(b'[{"id": 1, "at": 5}]', b'[{"id": 1, "at": 9}]', ["at"], [], id="inside lists"),
        pytest.param(b'{"id": 1}', b'{"id": 2}', ["at"], ["body"], id="value differs"),
        pytest.param(b"plain", b"plain", [], [], id="same bytes"),
        pytest.param(b"plain", b"other", [], ["body"], id="different bytes"),
    ],
)
def test_compare_bodies(a: bytes, b: bytes, ignore: list[str], kinds: list[str]) -> None:
    found = compare_responses(Captured(200, (), a), Captured(200, (), b), ignore_fields=ignore)
    assert [kind for kind, _ in found] == kinds


def test_compare_status_and_selected_headers() -> None:
    a = Captured(200, (("Content-Type", "application/json"), ("X-A", "1")), None)
    b = Captured(201, (("content-type", "text/html"), ("X-A", "2")), b"{}")
    found = compare_responses(a, b, headers=["Content-Type"])
    assert [kind for kind, _ in found] == ["status", "header"]  # X-A not selected; body not captured
