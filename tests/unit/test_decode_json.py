"""decode_json's shortcut for a body opening with `{` (decoded as UTF-8 without asking
json.detect_encoding) accepts and refuses exactly what the general path does, in every encoding
json reads, with and without a byte order mark."""

from __future__ import annotations

import json
from typing import Any

import pytest

from triage.api.deps import decode_json
from triage.errors import BadRequest

VALUE = {"model": "auto", "messages": [{"role": "user", "content": "caf\u00e9 \u20ac \U0001f600"}]}
TEXT = json.dumps(VALUE, ensure_ascii=False)
ENCODINGS = ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]


def _outcome(raw: bytes) -> Any:
    try:
        return decode_json(raw)
    except BadRequest as exc:
        return ("refused", exc.code, str(exc))


def _as_json_reads_it(raw: bytes) -> Any:
    """json.loads' own answer, with the strictness decode_json adds (strict UTF-8, no BOM)."""
    try:
        text = raw.decode(json.detect_encoding(raw))
        if text.startswith("\ufeff"):
            raise ValueError("bom")
        return json.loads(text)
    except ValueError:
        return ("refused", "invalid_json", "the request body is not valid JSON")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("space", ["", " ", "\n\t"])
def test_every_encoding_reads_as_json_reads_it(encoding: str, bom: bool, space: str) -> None:
    raw = (("\ufeff" if bom else "") + space + TEXT + space).encode(encoding)
    assert _outcome(raw) == _as_json_reads_it(raw)
    if not bom:
        assert _outcome(raw) == VALUE


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"{}",
        b"{\0}",  # a NUL second: not the shortcut (detect_encoding's UTF-16 rule)
        b"{\0\0\0",
        b'{"a": "\xff"}',  # not UTF-8
        b'{"a": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate: refused, strictly
        b'{"a": "\xc3"}',  # cut in the middle of a character
        b'{"a": 1} x',
        b'{"a": 1}   \r\n',
        b'{"a": }',
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b"\xef\xbb\xbf{}",
        b"[]",
        b"",
    ],
)
def test_edge_bodies_read_as_json_reads_them(raw: bytes) -> None:
    assert _outcome(raw) == _as_json_reads_it(raw) or (
        # NaN and overflowing numbers: refused by decode_json on purpose, as not valid JSON
        raw in (b'{"a": NaN}', b'{"a": 1e999}') and _outcome(raw)[0] == "refused"
    )
