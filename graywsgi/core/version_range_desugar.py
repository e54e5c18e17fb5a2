"""Version range desugaring
=========================

A port of node-semver's ``classes/range.js`` pipeline that rewrites one
operand of a range into primitive comparators: caret (``^1.2.3`` is
``>=1.2.3 <2.0.0-0``), tilde (``~1.2``), X-ranges (``1.x``, ``<=1.2``) and
hyphen ranges (``1.2 - 2.3.4``), and its
``internal/trim-comparator-whitespace.js`` (``> 1.2.3`` is ``>1.2.3``).
Everything here is text to text; the grammar it matches comes from
:mod:`graywsgi.core.semver`, and
:class:`~graywsgi.core.version_range.VersionRange` parses what it produces.
"""

from __future__ import annotations

import re

from graywsgi.core.semver import (
    MAX_LENGTH,
    _BUILD_RE,
    _CARET_RE,
    _NULL_SET,
    _STAR_RE,
    _TILDE_RE,
    _WS_CHARS,
    _XRANGE_RE,
    _split_ws,
    _trim,
)

__all__: list[str] = []


# Range desugaring: a port of node-semver's classes/range.js pipeline
# ---------------------------------------------------------------------------


def _is_x(part: str | None) -> bool:
    return not part or part.lower() == "x" or part == "*"


def _replace_caret(comp: str) -> str:
    # ^1.2.3 := >=1.2.3 <2.0.0-0, ^0.2.3 := >=0.2.3 <0.3.0-0,
    # ^0.0.3 := >=0.0.3 <0.0.4-0, ^1.x := >=1.0.0 <2.0.0-0, ^* := any
    match = _CARET_RE.fullmatch(comp)
    if match is None:
        return comp
    major, minor, patch, pre = match.group(1, 2, 3, 4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if _is_x(patch):
        if major == "0":
            return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
        return f">={major}.{minor}.0 <{int(major) + 1}.0.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    if major == "0":
        if minor == "0":
            return f"{low} <{major}.{minor}.{int(patch) + 1}-0"
        return f"{low} <{major}.{int(minor) + 1}.0-0"
    return f"{low} <{int(major) + 1}.0.0-0"


def _replace_tilde(comp: str) -> str:
    # ~1.2.3 := >=1.2.3 <1.3.0-0, ~1.2 := >=1.2.0 <1.3.0-0,
    # ~1 := >=1.0.0 <2.0.0-0, ~* := any
    match = _TILDE_RE.fullmatch(comp)
    if match is None:
        return comp
    major, minor, patch, pre = match.group(1, 2, 3, 4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if _is_x(patch):
        return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    return f"{low} <{major}.{int(minor) + 1}.0-0"


def _replace_xrange(comp: str) -> str:
    # 1.x := >=1.0.0 <2.0.0-0, >1.2 := >=1.3.0, <=1.x := <2.0.0-0,
    # <1 := <1.0.0-0, >* / <* := nothing, * := any
    comp = _trim(comp)
    match = _XRANGE_RE.fullmatch(comp)
    if match is None:
        return comp
    gtlt, major, minor, patch = match.group(1, 2, 3, 4)
    if (_is_x(major) and not _is_x(minor)) or (_is_x(minor) and patch and not _is_x(patch)):
        return comp  # "x.1", "1.x.2": left for the comparator parser to reject
    x_major = _is_x(major)
    x_minor = x_major or _is_x(minor)
    any_x = x_minor or _is_x(patch)
    if gtlt == "=" and any_x:
        gtlt = ""
    if x_major:
        return _NULL_SET if gtlt in (">", "<") else "*"
    if gtlt and any_x:
        new_major, new_minor = int(major), 0 if x_minor else int(minor)
        pre = ""
        if gtlt == ">":
            gtlt = ">="
            if x_minor:
                new_major += 1
            else:
                new_minor += 1
        elif gtlt == "<=":
            gtlt = "<"
            if x_minor:
                new_major += 1
            else:
                new_minor += 1
        if gtlt == "<":
            pre = "-0"
        return f"{gtlt}{new_major}.{new_minor}.0{pre}"
    if x_minor:
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if any_x:
        return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
    return comp


def _replace_hyphen(match: re.Match[str]) -> str:
    # 1.2.3 - 2.3.4 := >=1.2.3 <=2.3.4, 1.2 - 2.3.4 := >=1.2.0 <=2.3.4,
    # 1.2.3 - 2.3 := >=1.2.3 <2.4.0-0, 1.2.3 - 2 := >=1.2.3 <3.0.0-0
    low_text, low_major, low_minor, low_patch = match.group(1, 2, 3, 4)
    high_text, high_major, high_minor, high_patch, high_pre = match.group(7, 8, 9, 10, 11)
    if _is_x(low_major):
        low = ""
    elif _is_x(low_minor):
        low = f">={low_major}.0.0"
    elif _is_x(low_patch):
        low = f">={low_major}.{low_minor}.0"
    else:
        low = f">={low_text}"
    if _is_x(high_major):
        high = ""
    elif _is_x(high_minor):
        high = f"<{int(high_major) + 1}.0.0-0"
    elif _is_x(high_patch):
        high = f"<{high_major}.{int(high_minor) + 1}.0-0"
    elif high_pre:
        high = f"<={high_major}.{high_minor}.{high_patch}-{high_pre}"
    else:
        high = f"<={high_text}"
    return _trim(f"{low} {high}")


def _desugar(comp: str) -> str:
    """node-semver's ``parseComparator``: one word to primitive comparators."""
    comp = _BUILD_RE.sub("", comp, count=1)
    comp = " ".join(_replace_caret(c) for c in _split_ws(_trim(comp)))
    comp = " ".join(_replace_tilde(c) for c in _split_ws(_trim(comp)))
    comp = " ".join(_replace_xrange(c) for c in _split_ws(comp))
    return _STAR_RE.sub("", _trim(comp), count=1)


# -- node-semver's internal/trim-comparator-whitespace.js: "> 1.2.3" -> ">1.2.3"


def _char(text: str, index: int) -> str:
    return text[index] if index < len(text) else ""


def _is_ws(char: str) -> bool:
    return char != "" and char in _WS_CHARS


def _is_digit(char: str) -> bool:
    return char != "" and "0" <= char <= "9"


def _is_letter(char: str) -> bool:
    return char != "" and ("a" <= char <= "z" or "A" <= char <= "Z")


def _is_ident_char(char: str) -> bool:
    return _is_digit(char) or _is_letter(char) or char == "-"


def _is_version_prefix(char: str) -> bool:
    return char in ("v", "=") or _is_ws(char)


def _is_version_start(char: str) -> bool:
    return _is_digit(char) or char in ("x", "X", "*")


def _digits_end(text: str, start: int, limit: int) -> int:
    end = start
    while _is_digit(_char(text, end)):
        end += 1
    return min(start + limit, end)


def _number_end(text: str, start: int, loose: bool) -> int:
    if not loose and _char(text, start) == "0":
        return start + 1
    return _digits_end(text, start, MAX_LENGTH if loose else MAX_LENGTH + 1)


def _pre_identifier_end(text: str, start: int, loose: bool) -> int:
    digits_end = _digits_end(text, start, MAX_LENGTH)
    char = _char(text, digits_end)
    if _is_letter(char) or char == "-":
        end = digits_end + 1
        limit = end + MAX_LENGTH - 6
        while end < limit and _is_ident_char(_char(text, end)):
            end += 1
        return end
    return _number_end(text, start, loose)


def _prerelease_end(text: str, start: int, loose: bool) -> int:
    hyphen = _char(text, start) == "-"
    if not loose and not hyphen:
        return start
    ident_start = start + (1 if hyphen else 0)
    end = _pre_identifier_end(text, ident_start, loose)
    if end == ident_start:
        if not loose or not hyphen:
            return start
        end = _pre_identifier_end(text, start, loose)
    while _char(text, end) == ".":
        following = _pre_identifier_end(text, end + 1, loose)
        if following == end + 1:
            break
        end = following
    return end


def _build_identifier_end(text: str, start: int) -> int:
    end = start
    while end - start < MAX_LENGTH - 6 and _is_ident_char(_char(text, end)):
        end += 1
    return end


def _build_end(text: str, start: int) -> int:
    if _char(text, start) != "+":
        return start
    end = _build_identifier_end(text, start + 1)
    if end == start + 1:
        return start
    while _char(text, end) == ".":
        following = _build_identifier_end(text, end + 1)
        if following == end + 1:
            break
        end = following
    return end


def _loose_full_version_end(text: str, start: int) -> int:
    end = start
    for component in range(3):
        following = _number_end(text, end, True)
        if following == end:
            return start
        end = following
        if component < 2:
            if _char(text, end) != ".":
                return start
            end += 1
    return _build_end(text, _prerelease_end(text, end, True))


def _partial_component_end(text: str, start: int) -> int:
    char = _char(text, start)
    if _is_digit(char):
        return _number_end(text, start, False)
    return start + 1 if _is_version_start(char) else start


def _partial_version_end(text: str, start: int) -> int:
    end = _partial_component_end(text, start)
    for _ in range(2):
        if _char(text, end) != ".":
            return end
        following = _partial_component_end(text, end + 1)
        if following == end + 1:
            return end
        end = following
    return _build_end(text, _prerelease_end(text, end, False))


def _removable_whitespace(text: str, match_start: int) -> int:
    position = match_start
    if _is_ws(_char(text, position)):
        position += 1
    if _char(text, position) in ("<", ">"):
        position += 1
    if _char(text, position) == "=":
        position += 1
    return position if _is_ws(_char(text, position)) else -1


def _trim_comparator_whitespace(text: str) -> str:
    pieces: list[str] = []
    copy_from = cursor = 0
    while cursor < len(text):
        match_start = cursor
        if text[cursor] in ("<", ">"):
            cursor += 1
        elif not (_is_version_prefix(text[cursor]) or _is_version_start(text[cursor])):
            cursor += 1
            continue
        while cursor < len(text) and _is_version_prefix(text[cursor]):
            cursor += 1
        if not _is_version_start(_char(text, cursor)):
            continue
        whitespace = _removable_whitespace(text, match_start)
        if whitespace != -1:
            pieces.append(text[copy_from:whitespace])
            copy_from = whitespace + 1
        full_end = _loose_full_version_end(text, cursor)
        cursor = full_end if full_end != cursor else _partial_version_end(text, cursor)
    pieces.append(text[copy_from:])
    return "".join(pieces)
