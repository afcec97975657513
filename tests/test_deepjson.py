"""deepjson.loads reads what json.loads reads, the same way, and also text nested 100,000 deep."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.deepjson import loads, parse_iteratively

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# Characters of JSON text and some near misses, for documents that are often invalid.
json_ish = st.text(
    alphabet=' \t\n\r[]{}",:.-+0123456789eEtrufalsnNIiy\\\u00e9\x01\u0663',
    max_size=40,
)


def outcome(parse: Any, text: str) -> Any:
    """What ``parse(text)`` gives, comparably: its JSON text (NaN-safe) or the error and where."""
    try:
        return ("ok", json.dumps(parse(text)))
    except json.JSONDecodeError as exc:
        return ("JSONDecodeError", exc.msg, exc.pos)
    except ValueError:
        return ("ValueError",)


@settings(max_examples=300)
@given(json_values, st.sampled_from([None, 0, 2]), st.booleans())
def test_same_values_as_json_loads(value: Any, indent: int | None, ascii_only: bool) -> None:
    """Any document the stdlib writes, in any layout, parses to what json.loads gives."""
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert outcome(parse_iteratively, text) == outcome(json.loads, text)


@settings(max_examples=500)
@given(json_ish)
def test_same_verdict_on_arbitrary_text(text: str) -> None:
    """Arbitrary (mostly invalid) text: the same value or, like json.loads, a ValueError."""
    assert outcome(parse_iteratively, text) == outcome(json.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "[1,]",
        '{"a":1,}',
        "[1 2]",
        '{"a" 1}',
        "{1:2}",
        "01",
        "1.",
        "-",
        "[",
        '"\\x"',
        '"\x01"',
        "\ufeff[]",
        "[] x",
        "nul",
        "\u0663",
    ],
)
def test_refuses_what_json_loads_refuses(text: str) -> None:
    """Each kind of malformed document is refused with json.loads' message and position."""
    with pytest.raises(json.JSONDecodeError) as stdlib:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as ours:
        parse_iteratively(text)
    assert (ours.value.msg, ours.value.pos) == (stdlib.value.msg, stdlib.value.pos)


def test_constants_and_numbers() -> None:
    """Constants, big and signed numbers and duplicate keys read like json.loads reads them."""
    text = '[null,true,false,-0,1e400,-1E-2,12345678901234567890,NaN,-Infinity,{"k":1,"k":2}]'
    parsed = parse_iteratively(text)
    assert json.dumps(parsed) == json.dumps(json.loads(text))
    assert math.isnan(parsed[7])
    assert parsed[-1] == {"k": 2}


def depth_of(value: Any) -> int:
    """The nesting depth of lists and dicts, counted without recursion."""
    depth = 0
    while isinstance(value, list | dict) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    return depth


def test_reads_100000_deep() -> None:
    """Lists and objects nested 100,000 deep are read from bytes, where json.loads gives up."""
    n = 100_000
    deep = ("[" * n + "1" + "]" * n).encode()
    with pytest.raises(RecursionError):
        json.loads(deep)
    assert depth_of(loads(deep)) == n
    objects = '{"a":' * n + "[]" + "}" * n
    parsed = loads(objects.encode("utf-16"))
    assert depth_of(parsed) == n


def test_deep_text_is_still_checked() -> None:
    """A deep document with an error past the stdlib's depth is refused, not half read."""
    n = 5000
    with pytest.raises(ValueError, match="Expecting ',' delimiter"):
        loads(("[" * n + "1" + "]" * (n - 1) + "}").encode())
    with pytest.raises(ValueError, match="Extra data"):
        loads("[" * n + "]" * n + "]")


def test_shallow_text_takes_the_stdlib_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordinary documents are read by json.loads alone; the iterative parser is not called."""

    def must_not_run(s: str) -> Any:
        raise AssertionError("the iterative parser ran for a shallow document")

    monkeypatch.setattr("streamer.deepjson.parse_iteratively", must_not_run)
    text = b'{"a":[1,2.5,"x",null,{"b":true}]}'
    assert loads(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        loads(b"{")
