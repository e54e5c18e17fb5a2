from __future__ import annotations

import logging
import typing as t

import pytest
from flask import Flask

from graywsgi import CanarySplit, Extraction, current
from graywsgi.core.context import DegradeLevel, GrayContext
from graywsgi.errors import ConfigurationError
from graywsgi.core.hashing import fnv1a_32

from tests.conftest import BufferedClient, RecordingApp


def route_of(client: BufferedClient, headers: dict[str, str] | None = None, query: str = "") -> str:
    response = client.get(f"/?{query}", headers=headers or {})
    assert response.status_code == 200
    return response.headers["X-Seen-Route"]


def ids_in(lo: int, hi: int, n: int = 3) -> list[str]:
    """Gray ids whose bucket lies in [lo, hi)."""
    found = [f"id-{i}" for i in range(100_000) if lo <= fnv1a_32(f"id-{i}") % 100 < hi]
    return found[:n]


def test_go_gateway_rule(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=15)))
    for gray_id in [f"user-{n}" for n in range(300)]:
        expected = "canary" if fnv1a_32(gray_id.encode()) % 100 < 15 else "stable"
        assert route_of(client, {"X-Gray-ID": gray_id}) == expected, gray_id


def test_bucket_boundaries(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=15)))
    for gray_id in ids_in(14, 15):
        assert route_of(client, {"X-Gray-ID": gray_id}) == "canary"
    for gray_id in ids_in(15, 16):
        assert route_of(client, {"X-Gray-ID": gray_id}) == "stable"


def test_hashes_wire_bytes_not_unicode(recording_app: RecordingApp) -> None:
    # The same user id sent as UTF-8 in a header and percent-encoded in the
    # query hashes the same bytes, so lands on the same route.
    raw = "Zürich-7".encode("utf-8")
    pick = next(p for p in range(1, 100) if fnv1a_32(raw) % 100 < p)
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=pick)))
    header_value = raw.decode("latin-1")  # what the WSGI server puts in environ
    assert route_of(client, {"X-Gray-ID": header_value}) == "canary"
    assert route_of(client, query="gray_id=Z%C3%BCrich-7") == "canary"
    assert recording_app.last.gray_key == raw
    # ...and a different byte sequence for the "same" text is a different
    # user: latin-1 "Zürich-7" is other bytes, hashed as sent.
    latin = "Zürich-7".encode("latin-1")
    assert fnv1a_32(latin) != fnv1a_32(raw)
    client_for_latin = BufferedClient(Extraction(CanarySplit(recording_app, percent=fnv1a_32(latin) % 100 + 1)))
    route_of(client_for_latin, {"X-Gray-ID": latin.decode("latin-1")})
    assert recording_app.last.gray_key == latin
    assert recording_app.last.route == "canary"
    edge = BufferedClient(Extraction(CanarySplit(recording_app, percent=fnv1a_32(latin) % 100)))
    assert route_of(edge, {"X-Gray-ID": latin.decode("latin-1")}) == "stable"


def test_empty_id_is_never_canary(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=100)))
    assert route_of(client) == "stable"
    assert route_of(client, {"X-Gray-ID": "   "}) == "stable"
    assert route_of(client, {"X-Gray-ID": "anyone"}) == "canary"


@pytest.mark.parametrize(
    "color, expected",
    [
        pytest.param("canary", "canary", id="canary"),
        pytest.param("CANARY", "canary", id="case-insensitive"),
        pytest.param("gray", "canary", id="gray"),
        pytest.param("stable", "stable", id="stable"),
        pytest.param("purple", "stable", id="unknown colour ignored"),
    ],
)
def test_colour_wins_over_hash(recording_app: RecordingApp, color: str, expected: str) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=0)))
    assert route_of(client, {"X-Traffic-Color": color}) == expected


def test_stable_colour_beats_a_canary_hash(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=100)))
    assert route_of(client, {"X-Gray-ID": "u", "X-Traffic-Color": "stable"}) == "stable"


def test_colour_case_folding_is_ascii_only(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, colors={"kiwi": "canary"})))
    assert route_of(client, {"X-Traffic-Color": "KIWI"}) == "canary"
    kelvin = "\u212aiwi".encode("utf-8").decode("latin-1")  # KELVIN SIGN lower()s to "k"
    assert route_of(client, {"X-Traffic-Color": kelvin}) == "stable"


def test_custom_colours(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, colors={"Blue": "canary"})))
    assert route_of(client, {"X-Traffic-Color": "blue"}) == "canary"
    assert route_of(client, {"X-Traffic-Color": "gray"}) == "stable"


def test_fallback_context_goes_stable(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=100)))
    assert route_of(client, {"X-Gray-ID": "a\x01", "X-Env": "\x02", "X-Traffic-Color": "canary"}) == "stable"
    assert recording_app.last.degrade_level is DegradeLevel.L2


def test_route_in_context_and_environ(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=100)))
    route_of(client, {"X-Gray-ID": "u"})
    assert recording_app.last.route == "canary"
    assert recording_app.environs[-1]["HTTP_X_ROUTE_TO"] == "canary"
    assert recording_app.environs[-1]["graywsgi.context"] is recording_app.last


def test_client_cannot_preset_route_header(recording_app: RecordingApp) -> None:
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=0)))
    route_of(client, {"X-Route-To": "canary"})
    assert recording_app.environs[-1]["HTTP_X_ROUTE_TO"] == "stable"


def test_standalone_split_extracts_its_own_context(recording_app: RecordingApp) -> None:
    client = BufferedClient(CanarySplit(recording_app, percent=100))
    assert route_of(client, {"X-Gray-ID": "u"}) == "canary"
    assert isinstance(recording_app.last, GrayContext)


def test_raising_the_share_only_adds_users(recording_app: RecordingApp) -> None:
    ids = [f"ramp-{n}" for n in range(5000)]
    previous: set[str] = set()
    for percent in (0, 1, 5, 25, 50, 75, 100):
        split = CanarySplit(recording_app, percent=percent)
        canary = {
            i for i in ids
            if split.decide(GrayContext(request_id="r", gray_id=i, gray_key=i.encode())) == "canary"
        }
        assert previous <= canary, f"users flipped back at {percent} %"
        assert abs(len(canary) / len(ids) - percent / 100) < 0.03
        previous = canary


def test_internal_error_routes_stable(
    recording_app: RecordingApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(self: CanarySplit, context: GrayContext) -> t.NoReturn:
        raise RuntimeError("split bug")

    monkeypatch.setattr(CanarySplit, "decide", explode)
    client = BufferedClient(Extraction(CanarySplit(recording_app, percent=100)))
    with caplog.at_level(logging.ERROR, logger="graywsgi.split"):
        assert route_of(client, {"X-Gray-ID": "u"}) == "stable"
    assert "split bug" in caplog.text


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"percent": -1}, "from 0 to 100", id="negative"),
        pytest.param({"percent": 100.5}, "from 0 to 100", id="above 100"),
        pytest.param({"percent": float("nan")}, "from 0 to 100", id="nan"),
        pytest.param({"percent": "15"}, "number", id="string"),
        pytest.param({"percent": True}, "number", id="bool"),
        pytest.param({"colors": {"x": "blue"}}, "route must be", id="unknown route"),
    ],
)
def test_bad_options(recording_app: RecordingApp, options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CanarySplit(recording_app, **options)


def test_flask_views_and_hooks_read_current() -> None:
    app = Flask(__name__)
    seen: dict[str, object] = {}

    @app.before_request
    def before() -> None:
        seen["before"] = current.route

    @app.get("/")
    def index() -> str:
        return f"{current.route}:{current.gray_id}"

    @app.after_request
    def after(response: t.Any) -> t.Any:
        response.headers["X-Route"] = current.route
        return response

    app.wsgi_app = Extraction(CanarySplit(app.wsgi_app, percent=100))  # type: ignore[method-assign]
    response = app.test_client().get("/", headers={"X-Gray-ID": "flask-user"}, buffered=True)
    assert response.text == "canary:flask-user"
    assert response.headers["X-Route"] == "canary"
    assert seen["before"] == "canary"
