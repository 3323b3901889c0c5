"""An answer's headers as render lays them out (render.Head): the same header list the general
path builds, lines equal to what uvicorn would write for it, and a Head only where uvicorn's
checks would pass every header (so the one-write cycle may skip them)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from triage.api import render
from triage.api.render import NAMES, Head, raw_headers

RawHeaders = list[tuple[bytes, bytes]]
JSON_TYPE = ((b"content-type", b"application/json"),)


def _reference(headers: dict[str, str], defaults: Any, length: int | None) -> RawHeaders:
    """The header list as it was built before Head (and still is for any other names)."""
    if length is not None:
        defaults = ((b"content-length", str(length).encode()), *defaults)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    names = {name for name, _ in raw}
    return raw + [default for default in defaults if default[0] not in names]


def _passes_uvicorn(raw: RawHeaders) -> bool:
    return not any(HEADER_RE.search(n) or HEADER_VALUE_RE.search(v) for n, v in raw)


def test_our_names_are_sent_as_they_are_and_pass_uvicorns_name_check() -> None:
    for name, sent in NAMES.items():
        assert sent == name.lower().encode("latin-1")
        assert HEADER_RE.search(sent) is None
        # none frames the answer or overrides a default, which a Head leaves to the cycle
        assert sent not in (b"content-length", b"content-type", b"transfer-encoding")
        assert sent != b"connection"


def test_the_value_check_refuses_what_uvicorns_refuses() -> None:
    for byte in range(256):
        value = bytes([byte])
        refused = len(value.translate(None, render._BAD_VALUE)) == 0
        assert refused == (HEADER_VALUE_RE.search(value) is not None), byte


KEYS = st.sampled_from(
    [*NAMES, "X-Request-Id", "x evil", "content-type", "content-length", "connection", "é"]
)
TEXT = st.text(alphabet=st.sampled_from("ab0 .:-\t\n\r\x00\x7f%é’"), max_size=6)
DEFAULTS = st.sampled_from(
    [
        (),
        JSON_TYPE,
        ((b"content-type", b"text/event-stream; charset=utf-8"),),
        ((b"content-type", b"a\nb"),),
        ((b"x-other", b"1"),),
        ((b"content-type", b"100%"), (b"content-type", b"x")),
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    headers=st.dictionaries(KEYS, TEXT, max_size=6),
    defaults=DEFAULTS,
    length=st.none() | st.integers(0, 10**9),
)
def test_the_header_list_is_the_general_paths_and_a_head_only_where_uvicorn_passes_it(
    headers: dict[str, str], defaults: Any, length: int | None
) -> None:
    try:
        expected = _reference(headers, defaults, length)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            raw_headers(headers, defaults, length)
        return
    raw = raw_headers(headers, defaults, length)
    assert list(raw) == expected
    plain = all(name == b"content-type" for name, _ in defaults)  # framing left to the cycle
    ours = set(headers) <= set(NAMES) and plain
    assert (type(raw) is Head) == (ours and _passes_uvicorn(expected))
    if type(raw) is not Head:
        return
    assert raw.lines == b"".join(name + b": " + value + b"\r\n" for name, value in expected)
    lengths = [value for name, value in expected if name == b"content-length"]
    assert raw.length == (lengths[0] if lengths else None)
    assert raw.intact()


def test_a_head_changed_in_place_is_no_longer_intact() -> None:
    """What lets the cycle trust `lines`: any change to the list since it was built shows
    (a pair put back with the same bytes changes no line, and may pass)."""
    headers = {"x-request-id": "r1", "x-triage-task": "qa"}
    edits = [
        lambda h: h.append((b"x-added", b"1")),
        lambda h: h.__setitem__(0, (b"x-request-id", b"r2")),
        lambda h: h.__setitem__(0, (b"X-Request-Id", b"r1")),
        lambda h: h.__delitem__(1),
        lambda h: h.reverse(),
        lambda h: h.extend([]) or h.insert(0, (b"x-request-id", b"r1")),
    ]
    for edit in edits:
        head = raw_headers(headers, JSON_TYPE, 2)
        assert type(head) is Head and head.intact()
        edit(head)
        assert not head.intact()
    head = raw_headers(headers, JSON_TYPE, 2)
    assert type(head) is Head
    head[0] = (b"x-request-id", b"r1")
    assert head.intact() and head.lines.startswith(b"x-request-id: r1\r\n")
