"""The task taxonomy: the eleven labels, their fixed order and their default cost tiers."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

TASKS: Final[tuple[str, ...]] = (
    "classification",
    "extraction",
    "closed_qa",
    "summarization",
    "rewrite",
    "open_qa",
    "brainstorming",
    "chat",
    "creative_writing",
    "code",
    "reasoning",
)

DEFAULT_TIERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "classification": "light",
        "extraction": "light",
        "closed_qa": "light",
        "summarization": "light",
        "rewrite": "light",
        "open_qa": "light",
        "brainstorming": "light",
        "chat": "light",
        "creative_writing": "mid",
        "code": "heavy",
        "reasoning": "heavy",
    }
)

HEAVY_TASKS: Final[frozenset[str]] = frozenset(t for t in TASKS if DEFAULT_TIERS[t] == "heavy")
LIGHT_TASKS: Final[frozenset[str]] = frozenset(t for t in TASKS if DEFAULT_TIERS[t] == "light")


def check_label(label: str) -> int:
    """Index of `label` in TASKS; ValueError naming it when it is not a known task."""
    try:
        return TASKS.index(label)
    except ValueError:
        raise ValueError(
            f"unknown task label {label!r}; expected one of {', '.join(TASKS)}"
        ) from None
