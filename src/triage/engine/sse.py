"""Server-sent events from upstream streams: bytes in, each complete event's `data` out, with
every line and event bounded (`server.max_sse_line_bytes`)."""

from __future__ import annotations

import operator

DONE = b"[DONE]"
# In-band errors name an `error` member (or say `"object":"error"`); inside a string those
# quotes would be escaped, so a chunk without this byte sequence cannot be one.
ERROR_MEMBER = b'"error"'
_FIRST = operator.itemgetter(slice(0, 1))
_OBJECT = {b"{"}


class LineTooLong(ValueError):
    """An SSE line or event longer than the decoder's bound."""


class SSEDecoder:
    """Incremental server-sent-events parser: bytes in, the `data` of each complete event out.

    Comments, `event:`, `id:` and `retry:` lines are skipped; multi-line data is joined with
    newlines as the SSE spec says. Works on a bytearray so a long line split across many reads
    is not copied again on every read, and only the new bytes are searched for its end. A line,
    or an event's data, longer than `max_line` raises `LineTooLong` as soon as it is.
    """

    def __init__(self, max_line: int = 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._pending = 0  # bytes of data in self._data
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        end = self._buffer.rfind(b"\n", len(self._buffer) - len(data))
        if end < 0:
            self._check(len(self._buffer))
            return []
        text = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._check(len(self._buffer))
        lines = text.split(b"\n")
        if len(text) > self._max:  # rare: only then can one of its lines be too long
            self._check(max(map(len, lines)))
        if not self._data and b"\r" not in text:
            # What OpenAI-protocol servers send: `data: {...}` and a blank line, over and over.
            # Recognised as a whole, it needs no line-by-line walk.
            values = lines[0::2]
            if not any(lines[1::2]) and all(v.startswith(b"data: ") for v in values):
                if len(lines) % 2:  # the last event's blank line has not arrived yet
                    self._data = [values.pop()[6:]]
                    self._pending = len(self._data[0])
                return [v[6:] for v in values]
        return self._lines(lines)

    def flush(self) -> list[bytes]:
        """At end of input: the unterminated last line and event, if any."""
        lines = [bytes(self._buffer), b""] if self._buffer else [b""]
        self._buffer.clear()
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
                    self._pending = 0
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
                self._pending += len(value)
                self._check(self._pending)
        return events

    def _check(self, size: int) -> None:
        if size > self._max:
            raise LineTooLong(f"an SSE line or event over {self._max} bytes")


def plain_chunks(events: list[bytes]) -> list[bytes] | None:
    """The events before a final [DONE] when each starts as a JSON object and none has an
    `"error"` member (what the native lane's per-event walk would find), by C-level passes
    instead of a loop; None otherwise. Joined, events can only show `"error"` where one of them
    has it or across a boundary, which just takes the walk."""
    body = events[:-1] if events and events[-1].startswith(DONE) else events
    if not body or set(map(_FIRST, body)) != _OBJECT or ERROR_MEMBER in b"".join(body):
        return None
    return body
