"""JSON text → Python values at any nesting depth: ``json.loads``, without its recursion limit.

Pure: no I/O, no clock, stdlib only. :func:`loads` gives exactly what :func:`json.loads` gives
(the same values, ``ValueError`` for what it refuses). ``json.loads`` recurses once per nesting
level and raises ``RecursionError`` a little below 1,000 levels (fewer when called deep in a
stack): a checkpoint holding a deeply nested sub-job tree would then stop every restart. Such
text is read a second time by a parser with an explicit stack; everything else keeps the fast
C path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["loads", "parse_iteratively"]

#: The stdlib's string scanner (C), as ``json.loads`` uses it: escapes, strict control chars.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
# ASCII digits only, as the C scanner of json.loads (json.scanner.NUMBER_RE's \d is Unicode).
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# Tried after numbers; no constant starts like a number ("-I" is no number's start).
_CONSTANTS = (
    ("null", None),
    ("true", True),
    ("false", False),
    ("NaN", math.nan),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
)


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``, also for text nested deeper than the interpreter's stack allows."""
    try:
        return json.loads(data)
    except RecursionError:
        pass  # too deep for the recursive scanner; parsed again below, outside this handler
    if isinstance(data, bytes):
        data = data.decode(json.detect_encoding(data), "surrogatepass")  # as json.loads does
    return parse_iteratively(data)


def parse_iteratively(s: str) -> Any:
    """Parse a JSON document with an explicit stack of open containers (any depth)."""
    if s.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
    stack: list[list[Any] | dict[str, Any]] = []  # the open containers, innermost last
    keys: list[str] = []  # per open object, innermost last: the name its next value gets
    i = _skip_ws(s, 0)
    while True:
        # A value starts at i: a scalar or an empty container is complete at once; another
        # container is opened and its first value read by the next turn of the loop.
        ch = s[i : i + 1]
        value: Any
        if ch == "{":
            i = _skip_ws(s, i + 1)
            if s[i : i + 1] != "}":
                key, i = _key(s, i)
                stack.append({})
                keys.append(key)
                continue
            value, i = {}, i + 1
        elif ch == "[":
            i = _skip_ws(s, i + 1)
            if s[i : i + 1] != "]":
                stack.append([])
                continue
            value, i = [], i + 1
        elif ch == '"':
            value, i = _scanstring(s, i + 1)
        else:
            value, i = _scalar(s, i)
        # The value is complete: store it in its container; close the containers ending here.
        while stack:
            container = stack[-1]
            is_list = isinstance(container, list)
            if isinstance(container, list):
                container.append(value)
            else:
                container[keys[-1]] = value
            i = _skip_ws(s, i)
            ch = s[i : i + 1]
            if ch == ",":
                i = _skip_ws(s, i + 1)
                if not is_list:
                    keys[-1], i = _key(s, i)
                break
            if ch != ("]" if is_list else "}"):
                raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
            stack.pop()
            if not is_list:
                keys.pop()
            value, i = container, i + 1
        else:  # nothing open any more: the document must end here
            end = _skip_ws(s, i)
            if end != len(s):
                raise json.JSONDecodeError("Extra data", s, end)
            return value


def _skip_ws(s: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    n = len(s)
    while i < n and s[i] in " \t\n\r":
        i += 1
    return i


def _key(s: str, i: int) -> tuple[str, int]:
    """An object member's name at ``i`` and the index after its ``:`` and whitespace."""
    if s[i : i + 1] != '"':
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, i)
    key, i = _scanstring(s, i + 1)
    i = _skip_ws(s, i)
    if s[i : i + 1] != ":":
        raise json.JSONDecodeError("Expecting ':' delimiter", s, i)
    return key, _skip_ws(s, i + 1)


def _scalar(s: str, i: int) -> tuple[Any, int]:
    """A number or a constant at ``i``, and the index after it."""
    match = _NUMBER.match(s, i)
    if match is not None:
        integer, frac, exp = match.groups()
        if frac or exp:
            return float(integer + (frac or "") + (exp or "")), match.end()
        return int(integer), match.end()
    for name, constant in _CONSTANTS:
        if s.startswith(name, i):
            return constant, i + len(name)
    raise json.JSONDecodeError("Expecting value", s, i)
