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
from operator import itemgetter
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
_UNSAFE_BYTES = b'"\\' + bytes(range(0x20))  # the same, for bytes.translate
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
        for tail in _NULL_USAGE_TAILS:  # a loop, not a generator: a few µs a stream
            if raw.endswith(tail):
                return raw[: -len(tail)] + b"}"
        return None
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
        object.__setattr__(self, "_text", itemgetter(slice(len(self.head), -len(self.tail))))

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

        A few passes over all of them in C instead of a call per chunk (half the instructions):
        cut out each text where the shape puts it, then check that the texts are plain and
        that the shape around them gives back the chunks' own bytes, newlines between. A text
        holds no newline, so the newlines can only be the ones put between the chunks."""
        head, tail = self.head, self.tail
        chunks = raw[start : start + RUN_WINDOW]
        count = len(chunks)
        while count and not (
            chunks[count - 1].startswith(head) and chunks[count - 1].endswith(tail)
        ):
            count -= 1  # the stream's last chunks (a finish, the usage) are not text deltas
        if count < len(chunks):
            chunks = chunks[:count]
        texts = list(map(self._text, chunks))
        plain = b" ".join(texts)  # an ASCII byte between: each decodes alone if all do
        if (
            not count
            or len(plain.translate(None, _UNSAFE_BYTES)) != len(plain)
            or not all(texts)
            or b"".join((head, (tail + b"\n" + head).join(texts), tail)) != b"\n".join(chunks)
        ):
            return self._each(chunks)  # up to the first that is not a plain text
        chars = _length(plain)
        if chars is None:
            return self._each(chunks)
        sent = self.sent_tail
        if sent != tail:
            chunks = [head + text + sent for text in texts]
        return list(chunks), chars - count + 1

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
    if text.isascii():
        return len(text)
    try:
        return len(text.decode())
    except UnicodeDecodeError:
        return None
