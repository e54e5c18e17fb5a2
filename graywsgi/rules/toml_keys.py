"""Where the keys of a TOML document are (:mod:`tomllib` gives no positions).

:func:`toml_key_positions` reads text that :mod:`tomllib` has already
accepted and maps the JSON path of every key to the 1-based line and column
where that key is first written: in a ``[table]`` or ``[[array]]`` header,
on the left of ``=`` (each part of a dotted key) or inside an inline table.
"""

from __future__ import annotations

import bisect
import re
import tomllib
import typing as t

_Location = tuple[t.Union[str, int], ...]

_SKIP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_KEY = re.compile(r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'""")
_VALUE = re.compile(
    r'"""(?:\\.|[^\\])*?"{3,5}'  # multi-line basic string
    r"|'''.*?'{3,5}"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|[^,\]}#\r\n]+",  # number, boolean, date or time
    re.DOTALL,
)
_CLOSING = {"{": "}", "[": "]"}  # inline table, array


def toml_key_positions(text: str) -> dict[_Location, tuple[int, int]]:
    """JSON path -> ``(line, column)`` of its key, for valid TOML ``text``.

    Text it cannot follow gives the keys found before that point.
    """
    scanner = _Scanner(text)
    try:
        scanner.document()
    except ValueError:
        pass
    starts = [0] + [match.end() for match in re.finditer("\n", text)]
    positions: dict[_Location, tuple[int, int]] = {}
    for path, offset in scanner.keys.items():
        line = bisect.bisect_right(starts, offset)
        positions[path] = (line, offset - starts[line - 1] + 1)
    return positions


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.keys: dict[_Location, int] = {}  # path -> offset of its key
        self.arrays: dict[_Location, int] = {}  # [[array]] path -> tables so far

    def document(self) -> None:
        table: _Location = ()
        while self.skip():
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                array = self.key((), headers=True)
                self.arrays[array] = self.arrays.get(array, 0) + 1
                table = (*array, self.arrays[array] - 1)
                self.expect("]]")
            elif self.text.startswith("[", self.pos):
                self.pos += 1
                table = self.key((), headers=True)
                self.expect("]")
            else:
                self.key_value(table)

    def key_value(self, table: _Location) -> None:
        path = self.key(table)
        self.expect("=")
        self.value(path)

    def value(self, path: _Location) -> None:
        self.skip()
        closing = _CLOSING.get(self.text[self.pos : self.pos + 1])
        if closing is None:
            self.match(_VALUE)
            return
        self.pos += 1
        index = 0
        while self.skip() and not self.text.startswith(closing, self.pos):
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif closing == "}":
                self.key_value(path)
            else:
                self.value((*path, index))
                index += 1
        self.expect(closing)

    def key(self, base: _Location, *, headers: bool = False) -> _Location:
        """Read a (dotted) key under ``base``, noting where each part is."""
        path = base
        while True:
            if headers and path in self.arrays:  # [a.b] after [[a]] is in a's last table
                path = (*path, self.arrays[path] - 1)
            self.skip()
            start = self.pos
            token = self.match(_KEY).group()
            part = token if token[0] not in "\"'" else tomllib.loads(f"k = {token}")["k"]
            path = (*path, part)
            self.keys.setdefault(path, start)
            self.skip()
            if not self.text.startswith(".", self.pos):
                return path
            self.pos += 1

    def skip(self) -> bool:
        """Skip spaces, line breaks and comments; say whether text is left."""
        self.match(_SKIP)
        return self.pos < len(self.text)

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise ValueError(f"unexpected text at offset {self.pos}")
        self.pos = found.end()
        return found

    def expect(self, token: str) -> None:
        self.skip()
        if not self.text.startswith(token, self.pos):
            raise ValueError(f"expected {token!r} at offset {self.pos}")
        self.pos += len(token)
