import pytest

from graywsgi.httputil.headers import field_names_equal, trim_ows, valid_field_name, valid_field_value


@pytest.mark.parametrize(
    "name, expected",
    [
        pytest.param("X-Gray-ID", True, id="ordinary name"),
        pytest.param("x-gray-id", True, id="lower case"),
        pytest.param("!#$%&'*+-.^_`|~09AZaz", True, id="every tchar class"),
        pytest.param("", False, id="empty"),
        pytest.param("X Gray", False, id="space"),
        pytest.param("X-Gray:", False, id="colon"),
        pytest.param("X-Gray\t", False, id="tab"),
        pytest.param("X(Gray)", False, id="parentheses are delimiters"),
        pytest.param('X"Gray', False, id="dquote"),
        pytest.param("X-Gr\xe4y", False, id="obs-text not allowed in names"),
        pytest.param("X-Gray\r\n", False, id="CRLF"),
        pytest.param("X-Gray\x00", False, id="NUL"),
        pytest.param("X-Gray\u0100", False, id="non latin-1 character"),
    ],
)
def test_valid_field_name(name: str, expected: bool) -> None:
    assert valid_field_name(name) is expected
    if all(ord(c) < 256 for c in name):
        assert valid_field_name(name.encode("latin-1")) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param("", True, id="empty"),
        pytest.param("user-42", True, id="token-like"),
        pytest.param("a b\tc", True, id="SP and HTAB between vchars"),
        pytest.param("a  \t  b", True, id="runs of whitespace inside"),
        pytest.param('"quoted", (comment); x=1', True, id="delimiters are vchars"),
        pytest.param("caf\xe9", True, id="obs-text latin-1"),
        pytest.param("\x80\xff", True, id="obs-text bounds"),
        pytest.param(" a", False, id="leading space"),
        pytest.param("a ", False, id="trailing space"),
        pytest.param("\ta", False, id="leading tab"),
        pytest.param(" ", False, id="only whitespace"),
        pytest.param("a\rb", False, id="CR"),
        pytest.param("a\nb", False, id="LF"),
        pytest.param("a\r\n b", False, id="obs-fold"),
        pytest.param("a\x00b", False, id="NUL"),
        pytest.param("a\x01b", False, id="SOH"),
        pytest.param("a\x1fb", False, id="US"),
        pytest.param("a\x7fb", False, id="DEL"),
        pytest.param("a\x0bb", False, id="vertical tab"),
        pytest.param("a\u0100", False, id="non latin-1 character"),
        pytest.param("\u2028", False, id="unicode line separator"),
    ],
)
def test_valid_field_value(value: str, expected: bool) -> None:
    assert valid_field_value(value) is expected
    if all(ord(c) < 256 for c in value):
        assert valid_field_value(value.encode("latin-1")) is expected


def test_utf8_bytes_are_obs_text() -> None:
    assert valid_field_value("Zürich-€".encode("utf-8"))


def test_every_single_byte() -> None:
    for byte in range(256):
        ok = byte == 0x09 or byte == 0x20 or 0x21 <= byte <= 0x7E or byte >= 0x80
        alone_ok = byte not in (0x09, 0x20) and ok
        assert valid_field_value(bytes([byte])) is alone_ok, byte
        assert valid_field_value(b"a" + bytes([byte]) + b"b") is ok, byte


@pytest.mark.parametrize(
    "raw, trimmed",
    [
        pytest.param("  a b \t", "a b", id="spaces and tab"),
        pytest.param("\t\t", "", id="only whitespace"),
        pytest.param("a\n", "a\n", id="LF is not OWS"),
        pytest.param("\xa0a", "\xa0a", id="NBSP is not OWS"),
    ],
)
def test_trim_ows(raw: str, trimmed: str) -> None:
    assert trim_ows(raw) == trimmed


def test_field_names_compare_case_insensitively() -> None:
    assert field_names_equal("X-Gray-ID", "x-gray-id")
    assert not field_names_equal("X-Gray-ID", "X-Gray-IDs")


def test_field_names_equal_rejects_invalid_names() -> None:
    assert not field_names_equal("X-Gray-\u0100", "X-Gray-?")
    assert not field_names_equal("X Gray", "x gray")
