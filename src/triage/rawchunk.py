"""Which upstream stream chunks may be relayed as the bytes they came in, and how.

Most of any stream is text deltas that are already what the OpenAI spec wants. Rebuilding and
re-encoding each one (normalize.py) costs more than the rest of the relay, so a chunk that
passes here goes out as its upstream bytes, less the members OpenAI itself would not send: a
null `usage` the client did not ask for, and vLLM's null `stop_reason`. Only the members are cut
out, never anything inside a string: in valid JSON (every chunk here was decoded first) a
sequence that starts with `,"` cannot lie inside a string, whose quotes are all escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, and_, itemgetter
from typing import Any

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_PASS_TOP = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
)
_PASS_CHOICE = frozenset({"index", "delta", "logprobs", "finish_reason", "stop_reason"})
_PASS_DELTA = frozenset({"role", "content"})
_NULL_USAGE_TAILS = (b',"usage":null}', b', "usage": null}')
_NULL_STOP_REASONS = (b',"stop_reason":null', b', "stop_reason": null')
_UNSAFE_TEXT = re.compile(rb'["\\\x00-\x1f]')  # a quote, escape or control byte
_CONTENT = b'"content":"'
RUN_WINDOW = 64  # chunks one `TextShape.run` looks at, so a batch costs linear time at worst


def passable(chunk: Mapping[str, Any]) -> bool:
    """Whether a chat chunk already is what `normalize_chunk` would make of it, give or take
    optional fields the spec allows (a `system_fingerprint` string, a null `logprobs` or
    `usage`) and a null `stop_reason` (cut out by `trimmed`). Explicit nulls the rebuild would
    drop (a null `content`) do not pass; nor do tool calls, refusals, logprobs or usage.
    """
    if (
        not _PASS_TOP.issuperset(chunk)
        or chunk.get("object") != "chat.completion.chunk"
        or chunk.get("usage") is not None
        or type(chunk.get("id")) is not str
        or type(chunk.get("created")) is not int
        or type(chunk.get("model")) is not str
        or not chunk["id"]
        or not chunk["model"]
    ):
        return False
    choices = chunk.get("choices")
    if type(chunk.get("system_fingerprint", "")) is not str or type(choices) is not list:
        return False
    for choice in choices:
        if (
            type(choice) is not dict
            or not _PASS_CHOICE.issuperset(choice)
            or type(choice.get("index")) is not int
            or choice.get("logprobs") is not None
            or choice.get("stop_reason") is not None
            or "finish_reason" not in choice
        ):
            return False
        finish, delta = choice["finish_reason"], choice.get("delta")
        if finish is not None and (type(finish) is not str or finish not in FINISH_REASONS):
            return False
        if type(delta) is not dict or not _PASS_DELTA.issuperset(delta):
            return False
        if (
            delta.get("role", "assistant") != "assistant"
            or type(delta.get("content", "")) is not str
        ):
            return False
    return bool(choices)


def trimmed(raw: bytes, chunk: Mapping[str, Any], keep_usage: bool) -> bytes | None:
    """`raw` without a null `stop_reason` in each choice and, unless `keep_usage`, without a
    null `usage`; None when they are not where servers put them (last in their object)."""
    if b"\n" in raw or b"\r" in raw:
        return None  # one line only: the bytes go inside a single `data:` line
    if b'"stop_reason"' in raw:  # a member name: inside a string its quotes would be escaped
        stops = sum("stop_reason" in choice for choice in chunk["choices"])
        cut = next((t for t in _NULL_STOP_REASONS if raw.count(t) == stops), None)
        if cut is None:
            return None
        raw = raw.replace(cut, b"")
    if not keep_usage and "usage" in chunk:
        # Triage asked for usage, the client did not: OpenAI then sends no `usage` at all.
        tail = next((t for t in _NULL_USAGE_TAILS if raw.endswith(t)), None)
        return raw[: -len(tail)] + b"}" if tail is not None else None
    return raw


def text_chars(chunk: Mapping[str, Any]) -> int:
    """Characters of generated text in an upstream chunk, however malformed."""
    total = 0
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
        text = text or choice.get("text")
        total += len(text) if isinstance(text, str) else 0
    return total


@dataclass(frozen=True)
class TextShape:
    """A raw-relayed text delta's bytes before and after its text, and what was sent after it.

    A later chunk with the same bytes around a plain text (no quote, escape or control byte,
    valid UTF-8) is that chunk with only the text changed: it can go out the same way without
    being decoded or checked again.
    """

    head: bytes
    tail: bytes
    sent_tail: bytes
    _text: itemgetter[bytes] = field(init=False, repr=False)  # a chunk's text
    _lead: itemgetter[bytes] = field(init=False, repr=False)  # a chunk less its tail

    @classmethod
    def of(cls, raw: bytes, sent: bytes, text: str) -> TextShape | None:
        """The shape of `raw` (sent as `sent`) around `text`; None when the text is not written
        as itself (escapes) or cannot be found exactly once."""
        encoded = text.encode()
        if _UNSAFE_TEXT.search(encoded) is not None:
            return None
        marker = _CONTENT + encoded + b'"'
        if raw.count(marker) != 1:
            return None
        start = raw.index(marker) + len(_CONTENT)
        end = start + len(encoded)
        if sent[:end] != raw[:end]:  # the trims only ever touch what follows the text
            return None
        return cls(raw[:start], raw[end:], sent[end:])

    def __post_init__(self) -> None:
        cut = len(self.tail)
        object.__setattr__(self, "_text", itemgetter(slice(len(self.head), -cut)))
        object.__setattr__(self, "_lead", itemgetter(slice(0, -cut)))

    def apply(self, raw: bytes) -> tuple[bytes, int] | None:
        """What to send for `raw` and the length of its text, if it has this shape."""
        head, tail = self.head, self.tail
        if len(raw) <= len(head) + len(tail) or not raw.startswith(head) or not raw.endswith(tail):
            return None
        text = raw[len(head) : len(raw) - len(tail)]
        if _UNSAFE_TEXT.search(text) is not None:
            return None  # it could be more than a text
        try:
            chars = len(text.decode())
        except UnicodeDecodeError:
            return None
        return head + text + self.sent_tail, chars

    def run(self, raw: Sequence[bytes], start: int) -> tuple[list[bytes], int] | None:
        """`apply` to the chunks from `start` on, as far as they have this shape, at once: what
        to send for each, and the length of their text in all; None when the first has not.

        C-level passes over the chunks (`map` with bytes methods, one join, one search, one
        decode) instead of a Python call per chunk. The texts are joined by a space, an ASCII
        byte, so they decode together exactly when each decodes by itself."""
        head, tail = self.head, self.tail
        first = raw[start]
        if not (first.startswith(head) and first.endswith(tail)):
            return None
        chunks = raw[start : start + RUN_WINDOW]
        fixed = len(head) + len(tail)
        shaped = list(
            map(
                and_,
                map(
                    and_,
                    map(bytes.startswith, chunks, repeat(head)),
                    map(fixed.__lt__, map(len, chunks)),
                ),
                map(bytes.endswith, chunks, repeat(tail)),
            )
        )
        if False in shaped:
            chunks = chunks[: shaped.index(False)]
        texts = b" ".join(map(self._text, chunks))
        chars = _length(texts) if chunks and _UNSAFE_TEXT.search(texts) is None else None
        if chars is None:
            return self._each(chunks)  # which chunk is not plain text, `apply` says
        chars -= len(chunks) - 1
        if self.sent_tail != tail:
            chunks = list(map(add, map(self._lead, chunks), repeat(self.sent_tail)))
        return list(chunks), chars

    def _each(self, chunks: Sequence[bytes]) -> tuple[list[bytes], int] | None:
        sent, chars = [], 0
        for chunk in chunks:
            one = self.apply(chunk)
            if one is None:
                break
            sent.append(one[0])
            chars += one[1]
        return (sent, chars) if sent else None


def _length(text: bytes) -> int | None:
    """Characters in UTF-8 `text`; None when it is not valid UTF-8."""
    try:
        return len(text.decode())
    except UnicodeDecodeError:
        return None
