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
from itertools import repeat
from typing import overload

BLANK = "\n\n"
REACH = 64
"""Characters of each end of a string that take part in the junction text."""
_UNGLUED = frozenset({"role", "type", None})  # structural values, and dict keys
_TOKEN_FIELDS = frozenset({"prompt", "input"})
_MAX_DIGITS = 40  # longer integers are no card, IBAN or id (and str() refuses very long ones)
_TOO_LONG = 10**_MAX_DIGITS
_UNBOUNDED = 2**63  # no body holds this many characters
_SEQUENCES = (list, tuple)  # a tuple: `list | tuple` would be built at every check

_Open = tuple[str | None, "Iterator[tuple[str | None, object]]"]
"""An open container: its top-level field (None for the body itself), and its pairs to come."""


BodyText = tuple[str, str, bool]
"""(whole, junctions, unreadable): a plain tuple, built on every request."""


@overload
def read_body(
    body: Mapping[str, object], normalise: Callable[[str], str], limit: None = None
) -> BodyText: ...


@overload
def read_body(
    body: Mapping[str, object], normalise: Callable[[str], str], limit: int
) -> BodyText | None: ...


def read_body(
    body: Mapping[str, object], normalise: Callable[[str], str], limit: int | None = None
) -> BodyText | None:
    """The texts of `body`; None once its strings (and 8 characters per other scalar) pass
    `limit` characters.

    One pass over every scalar and dict key in document order (a dict's keys, then its values,
    depth first). Iterative, so that a deeply nested body cannot exhaust the stack: a stack of
    open containers, each with an iterator of its (key, value) pairs; a string is read where it
    stands. It runs on every request: no tuple per entry, no comprehension.
    """
    texts: list[str] = []
    values: list[str] = []  # the texts that take part in the junctions
    unreadable = False
    most = _UNBOUNDED if limit is None else limit
    size, items = _open(None, None, body, texts, normalise, most) or (0, iter(()))
    stack: list[_Open] = [(None, items)]
    text: str | None
    while stack and size <= most:
        top, items = stack[-1]
        for key, value in items:
            if isinstance(value, str):
                size += len(value)
                if size > most:  # before normalising it: a huge body goes to the worker
                    return None
                text = value if value.isascii() else normalise(value)  # ASCII is already normal
            else:
                field = key if top is None else top
                opened = _open(field, key, value, texts, normalise, most - size)
                if opened is not None:
                    size += opened[0]
                    stack.append((field, opened[1]))
                    break
                size += 8
                if size > most:
                    return None
                text = _digits(field, value)
                if not text:
                    unreadable |= text is not None
                    continue
            texts.append(text)
            if key not in _UNGLUED:
                values.append(text)
        else:
            stack.pop()
    if size > most:
        return None
    whole = BLANK.join(["", *texts, ""])
    junctions = _junctions(values) if len(values) > 1 else ""
    return whole, junctions, unreadable


def _open(
    field: str | None,
    key: str | None,
    value: object,
    texts: list[str],
    normalise: Callable[[str], str],
    room: int,
) -> tuple[int, Iterator[tuple[str | None, object]]] | None:
    """A container's (key, value) pairs, and the characters of its keys, which are read into
    `texts` here (unless they take more than `room`: the body is then not read inline); None
    for a scalar. A list's items keep the list's own key."""
    if type(value) is dict or (type(value) is not list and isinstance(value, Mapping)):
        names = list(value)
        try:
            joined = "".join(names)
            pairs: Iterator[tuple[str | None, object]] = iter(value.items())
        except TypeError:  # not JSON: a key that is no string is read as its str()
            names = list(map(str, names))
            joined = "".join(names)
            pairs = zip(names, value.values(), strict=True)
        if len(joined) <= room:
            texts += names if joined.isascii() else map(normalise, names)
        return len(joined), pairs
    if isinstance(value, _SEQUENCES):
        return 0, zip(repeat(key), value)
    return None


def _digits(top: str | None, value: object) -> str | None:
    """What an integer spells (a card number sent as a number), "" for a token id, which cannot
    be read; None for any other scalar (a bool is no number; very long ones are no card or id)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if top in _TOKEN_FIELDS:
        return ""
    return str(value) if abs(value) < _TOO_LONG else None


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
