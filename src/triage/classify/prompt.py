"""Turning OpenAI chat messages into the pieces the classifier looks at.

Owns: which turn is classified (the last user turn), the light context taken from the turn before
it, the earlier user turn a follow-up inherits its task from, how much attached passage there is
(including tool results), and the split of the classified turn into an instruction and a body
(the supplied text the instruction is about).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

# Longer turns are cut to a head and a tail: signals on a 100 KB paste are no better than on
# the first and last few KB, and cost grows linearly.
TEXT_HEAD = 12_000
TEXT_TAIL = 2_000
CONTEXT_CHARS = 240
# Tool results are attached passages; a sample stands in for the body when the turn has none.
TOOL_SAMPLE = 400
# An instruction line longer than this is more likely the passage itself.
INSTRUCTION_MAX = 260
TAIL_MAX = 220

_T = TypeVar("_T", bound=tuple[Any, ...])


def filled(kind: type[_T], *fields: Any) -> _T:
    """`kind(*fields)` for a NamedTuple given every one of its fields, without the Python-level
    `__new__` a NamedTuple class generates (half the cost of building one; these are built
    once or twice per classification)."""
    built: _T = tuple.__new__(kind, fields)
    return built


class Prompt(NamedTuple):
    """The classified turn, cut into instruction and body, plus its surroundings.

    A NamedTuple rather than a frozen dataclass: it is built on every request and tuple
    construction is several times cheaper.
    """

    text: str
    instruction: str
    body: str
    context: str
    tool_text: str
    tool_chars: int
    has_tools: bool = False
    has_response_format: bool = False

    @property
    def passage_chars(self) -> int:
        return len(self.body) + self.tool_chars


def content_text(content: Any) -> str:
    """Text of a message content: a string, None, or a list of parts (non-text parts ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def _cap(text: str) -> str:
    text = text.strip()
    if len(text) > TEXT_HEAD + TEXT_TAIL:
        return text[:TEXT_HEAD] + "\n" + text[-TEXT_TAIL:]
    return text


def split_instruction(text: str) -> tuple[str, str]:
    """Split a turn into (instruction, body).

    Handles "instruction\\n\\npassage", "passage\\n\\nquestion", "Label: passage" on one line and a
    long single paragraph ending in a question. Short turns are all instruction.
    """
    first_break = text.find("\n")
    if first_break < 0:
        return _split_single_line(text)
    head = text[:first_break].rstrip()
    last_break = text.rfind("\n")
    tail = text[last_break + 1 :].strip()
    has_tail = last_break > first_break and 0 < len(tail) <= TAIL_MAX
    if len(head) <= INSTRUCTION_MAX:
        if (
            has_tail
            and (head.endswith(":") or tail.endswith("?"))
            and last_break - first_break > 200
        ):
            # "Here is the report:\n...\nWhat changed?" - the question is the real instruction.
            return head + "\n" + tail, text[first_break:last_break].strip()
        return head, text[first_break:].strip()
    if has_tail:
        return tail, text[:last_break].strip()
    return text[:INSTRUCTION_MAX], text[INSTRUCTION_MAX:]


def _split_single_line(text: str) -> tuple[str, str]:
    if len(text) <= INSTRUCTION_MAX + 60:
        return text, ""
    colon = text.find(": ", 0, 200)
    if colon > 0:
        return text[: colon + 1], text[colon + 2 :]
    if text.endswith("?"):
        start = text.rfind(". ", len(text) - TAIL_MAX)
        if start > 0:
            return text[start + 2 :], text[: start + 1]
    return text[:INSTRUCTION_MAX], text[INSTRUCTION_MAX:]


def _last_user_index(messages: Sequence[Mapping[str, Any]]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    # No user turn at all (e.g. a system-only request): classify the last message with text.
    for index in range(len(messages) - 1, -1, -1):
        if content_text(messages[index].get("content")).strip():
            return index
    return -1


def _tool_results(messages: Sequence[Mapping[str, Any]], main: int) -> tuple[str, int]:
    """(first TOOL_SAMPLE chars, total length) of the current exchange's tool results."""
    # Tool results belong to the current exchange: those after the previous user turn.
    start = 0
    for index in range(main - 1, -1, -1):
        if messages[index].get("role") == "user":
            start = index + 1
            break
    texts = [
        content_text(message.get("content"))
        for message in messages[start:]
        if message.get("role") == "tool"
    ]
    return "\n".join(texts)[:TOOL_SAMPLE], sum(map(len, texts))


def earlier_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The user turn before the classified one ("" when there is none): a follow-up's task."""
    main = _last_user_index(messages)
    for index in range(main - 1, -1, -1):
        if messages[index].get("role") == "user":
            return content_text(messages[index].get("content"))
    return ""


def from_messages(
    messages: Sequence[Mapping[str, Any]],
    *,
    has_tools: bool = False,
    has_response_format: bool = False,
) -> Prompt:
    """Build the Prompt for a chat request."""
    if len(messages) == 1:
        # The one message is classified whatever its role (one without text gives the empty
        # prompt, as from_text does for blank text): skip the search for the user turn.
        text = content_text(messages[0].get("content"))
        return from_text(text, has_tools=has_tools, has_response_format=has_response_format)
    main = _last_user_index(messages)
    if main < 0:
        return from_text("", has_tools=has_tools, has_response_format=has_response_format)
    text = content_text(messages[main].get("content"))
    context = ""
    for index in range(main - 1, -1, -1):
        if messages[index].get("role") in ("user", "assistant"):
            context = content_text(messages[index].get("content"))[:CONTEXT_CHARS]
            break
    tool_text, tool_chars = _tool_results(messages, main)
    return from_text(
        text,
        context=context,
        tool_text=tool_text,
        tool_chars=tool_chars,
        has_tools=has_tools,
        has_response_format=has_response_format,
    )


def from_text(
    text: str,
    *,
    context: str = "",
    tool_text: str = "",
    tool_chars: int = 0,
    has_tools: bool = False,
    has_response_format: bool = False,
) -> Prompt:
    """Build the Prompt for a single user message."""
    text = _cap(text)
    instruction, body = split_instruction(text)
    return filled(
        Prompt,
        text,
        instruction,
        body,
        context,
        tool_text,
        tool_chars,
        has_tools,
        has_response_format,
    )
