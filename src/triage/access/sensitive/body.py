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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import overload

BLANK = "\n\n"
REACH = 64
"""Characters of each end of a string that take part in the junction text."""
_STRUCTURAL = frozenset({"role", "type"})
_TOKEN_FIELDS = frozenset({"prompt", "input"})
_MAX_DIGITS = 40  # longer integers are no card, IBAN or id (and str() refuses very long ones)
_TOO_LONG = 10**_MAX_DIGITS
_SEQUENCES = (list, tuple)  # a tuple: `list | tuple` would be built at every check

_Entry = tuple[str | None, str | None, object]
"""(top-level field, the key that holds the value, the value)."""


@dataclass(frozen=True)
class BodyText:
    whole: str
    junctions: str
    unreadable: bool


def read_body(
    body: Mapping[str, object],
    normalise: Callable[[str], str],
    entries: list[_Entry] | None = None,
) -> BodyText:
    """The texts of `body`; `entries`: its `entries(body)`, when the caller has them already."""
    texts: list[str] = []
    values: list[str] = []
    unreadable = False
    for top, key, value in entries_of(body) if entries is None else entries:
        if not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            if top in _TOKEN_FIELDS:
                unreadable = True
                continue
            if abs(value) >= _TOO_LONG:
                continue
            value = str(value)
        text = value if value.isascii() else normalise(value)  # ASCII is already normal
        texts.append(text)
        if key is not None and key not in _STRUCTURAL:
            values.append(text)
    whole = BLANK.join(["", *texts, ""])
    junctions = _junctions(values) if len(values) > 1 else ""
    return BodyText(whole, junctions, unreadable)


@overload
def entries_of(body: Mapping[str, object], limit: None = None) -> list[_Entry]: ...


@overload
def entries_of(body: Mapping[str, object], limit: int) -> list[_Entry] | None: ...


def entries_of(body: Mapping[str, object], limit: int | None = None) -> list[_Entry] | None:
    """Every scalar and dict key of the body in document order (a key comes with key None);
    None once its strings (and 8 characters per other scalar) pass `limit` characters.

    Iterative, so that a deeply nested body cannot exhaust the stack; one list, no generators:
    it runs on every request.
    """
    out: list[_Entry] = []
    size = 0
    stack: list[_Entry] = [(None, None, body)]
    while stack:
        entry = stack.pop()
        top, key, value = entry
        if isinstance(value, str):
            out.append(entry)
            size += len(value)
        elif type(value) is dict or isinstance(value, Mapping):  # the ABC check is slower
            names = [str(name) for name in value]
            out += [(top, None, name) for name in names]
            size += sum(map(len, names))
            fields = names if top is None else [top] * len(names)
            children = list(zip(fields, names, value.values(), strict=True))
            children.reverse()  # popped from the end: the first child comes off first
            stack += children
        elif isinstance(value, _SEQUENCES):
            stack += [(top, key, item) for item in reversed(value)]
        else:
            out.append(entry)
            size += 8
        if limit is not None and size > limit:
            return None
    return out


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
