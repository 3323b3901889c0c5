"""`router_settings.model_group_alias`: the model names clients send, mapped to a model group or
an alias (LiteLLM's setting, with `*` wildcards added).

Clients such as Claude Code send their vendor's model names (`claude-sonnet-4-5-20250929`, and
a small model for background work); `{"claude-*haiku*": "local-small", "claude-*": "auto"}`
routes them. A name that is already a model group or an alias is used as it is; then an exact
entry wins; then the first wildcard entry that matches, in the config's order. `*` matches any
run of characters; nothing else is special.
"""

from __future__ import annotations

import re
from functools import lru_cache

from triage.config.schema import Config


def resolve_model(config: Config, name: str) -> str:
    """The model group or alias that `name` stands for (`name` itself when nothing maps it)."""
    mapping = config.router_settings.model_group_alias
    if not mapping or name in config.triage.aliases or name in config.groups:
        return name
    exact = mapping.get(name)
    if exact is not None:
        return exact
    for pattern, target in mapping.items():
        if "*" in pattern and _wildcard(pattern).fullmatch(name):
            return target
    return name


@lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
