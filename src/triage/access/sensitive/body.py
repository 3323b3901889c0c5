"""What the sensitive scan reads from an upstream body: every string in it, and their junctions.

``read_body`` walks the JSON body that will be sent upstream, whatever its fields: every string
value, every dict key (a schema's property name can be a secret) and every integer (a card number
sent as a number). It returns two texts. ``whole`` holds each of them in full, separated by a blank
line that no built-in pattern crosses. ``junctions`` catches a secret split across neighbouring
strings (two message parts, two array items): the value strings in document order are glued
directly and again with a space, each contributing only its ends (``REACH`` characters) so that
this costs a bounded amount per string. Values of ``role`` and ``type`` are not glued (they sit
between the texts of consecutive messages and parts). Token-id prompts (``prompt`` or ``input``
holding integers) cannot be read; ``unreadable`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

BLANK = "\n\n"
REACH = 64
"""Characters of each end of a string that take part in the junction text."""
_STRUCTURAL = frozenset({"role", "type"})
_TOKEN_FIELDS = frozenset({"prompt", "input"})
_MAX_DIGITS = 40  # longer integers are no card, IBAN or id (and str() refuses very long ones)

_Entry = tuple[str | None, str | None, object]
"""(top-level field, the key that holds the value, the value)."""


@dataclass(frozen=True)
class BodyText:
    whole: str
    junctions: str
    unreadable: bool


def read_body(body: Mapping[str, object], normalise: Callable[[str], str]) -> BodyText:
    texts: list[str] = []
    values: list[str] = []
    unreadable = False
    for top, key, value in _walk(body):
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if top in _TOKEN_FIELDS:
                unreadable = True
                continue
            if abs(value) >= 10**_MAX_DIGITS:
                continue
            value = str(value)
        if isinstance(value, str):
            text = normalise(value)
            texts.append(text)
            if key is not None and key not in _STRUCTURAL:
                values.append(text)
    whole = BLANK.join(["", *texts, ""])
    junctions = _junctions(values) if len(values) > 1 else ""
    return BodyText(whole, junctions, unreadable)


def body_size(body: Mapping[str, object], limit: int) -> int:
    """Characters in the body's strings (and 8 per other node), counted up to ``limit`` only."""
    size = 0
    for _, _, value in _walk(body):
        size += len(value) if isinstance(value, str) else 8
        if size > limit:
            break
    return size


def _walk(body: Mapping[str, object]) -> Iterator[_Entry]:
    """Every scalar and dict key of the body in document order (a key comes with key None).

    Iterative, so that a deeply nested body cannot exhaust the stack.
    """
    stack: list[Iterator[_Entry]] = [iter([(None, None, body)])]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        top, key, value = entry
        if isinstance(value, Mapping):
            names = [str(name) for name in value]
            yield from ((top, None, name) for name in names)
            fields = names if top is None else [top] * len(names)
            stack.append(zip(fields, names, value.values(), strict=True))
        elif isinstance(value, list | tuple):
            stack.append((top, key, item) for item in value)
        else:
            yield entry


def _junctions(values: list[str]) -> str:
    ends = [_ends(text) for text in values]
    return BLANK.join(["", "".join(ends), " ".join(ends), ""])


def _ends(text: str) -> str:
    """A short text whole; of a long one, its first and last words up to ``REACH`` characters."""
    if len(text) <= 2 * REACH + 8:
        return text
    head, tail = text[:REACH], text[-REACH:]
    cut = max(head.rfind(" "), head.rfind("\n"))
    if cut > REACH // 2:  # do not end on half a token: "4111 1111 1111 11|11..." is no card
        head = head[:cut]
    cut = next((at for at, char in enumerate(tail[: REACH // 2]) if char in " \n"), -1)
    tail = tail[cut + 1 :]
    return head + BLANK + tail
