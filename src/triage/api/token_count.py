"""Token counts for `POST /v1/messages/count_tokens`, without a network call.

An OpenAI-family model (one tiktoken names an encoding for) is counted with that encoding,
loaded from the copy litellm ships in its package (tiktoken itself would download it). Any
other model — local models, Claude — has no tokenizer available offline, so its count is an
estimate: the same text counted with `o200k_base` (close for modern BPE vocabularies; an image
counts as 1,600 tokens, Anthropic's figure for a ~1.15 megapixel image). The answer's
`x-triage-token-count` header says which: `exact; encoding=…` or `estimate; encoding=…` (or
`estimate; chars/4` where no encoding file can be found at all).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken.load import load_tiktoken_bpe

IMAGE_TOKENS = 1600
_BASE = "https://openaipublic.blob.core.windows.net/encodings/"
# The split patterns and special tokens of tiktoken_ext.openai_public (MIT), which only
# builds an encoding after downloading or finding its file in tiktoken's cache.
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "o200k_base": (
        _O200K_PATTERN,
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        _CL100K_PATTERN,
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        {"<|endoftext|>": 100257, "<|endofprompt|>": 100276},
    ),
}
_DEFAULT = "o200k_base"


class TokenCounter:
    """Encodings loaded on first use and kept (a few MB each)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else _bundled_directory()
        self._loaded: dict[str, tiktoken.Encoding | None] = {}

    def count(self, body: dict[str, Any], model: str | None) -> tuple[int, str]:
        """(input tokens, how they were counted) for a chat body; `model` is the upstream
        model name when the request names one group, else None."""
        name = _encoding_for(model)
        exact = name is not None
        encoding = self._encoding(name or _DEFAULT)
        if encoding is None:
            return max(1, len(json.dumps(body)) // 4), "estimate; chars/4"
        total = _count_body(body, encoding)
        return total, f"{'exact' if exact else 'estimate'}; encoding={encoding.name}"

    def _encoding(self, name: str) -> tiktoken.Encoding | None:
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> tiktoken.Encoding | None:
        known = _ENCODINGS.get(name)
        if known is None or self.directory is None:
            return None
        pattern, expected, special = known
        path = self.directory / hashlib.sha1(f"{_BASE}{name}.tiktoken".encode()).hexdigest()
        if not path.is_file():
            return None
        ranks = load_tiktoken_bpe(str(path), expected_hash=expected)
        return tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special
        )


def _bundled_directory() -> Path | None:
    """litellm's copy of tiktoken's files, found without importing litellm (slow to import)."""
    spec = importlib.util.find_spec("litellm")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        return None
    return Path(next(iter(locations))) / "litellm_core_utils" / "tokenizers"


def _encoding_for(model: str | None) -> str | None:
    if model is None:
        return None
    name = model.rsplit("/", 1)[-1]
    try:
        encoding = tiktoken.encoding_name_for_model(name)
    except KeyError:
        return None
    return encoding if encoding in _ENCODINGS else None


def _count_body(body: dict[str, Any], encoding: tiktoken.Encoding) -> int:
    """OpenAI's counting recipe: each message costs 3 tokens plus its parts, the reply 3."""
    total = 3
    for message in body.get("messages", []):
        total += 3 + len(encoding.encode_ordinary(str(message.get("role", ""))))
        total += _count_content(message.get("content"), encoding)
        for call in message.get("tool_calls") or []:
            total += len(encoding.encode_ordinary(json.dumps(call.get("function", {}))))
    if body.get("tools"):
        total += len(encoding.encode_ordinary(json.dumps(body["tools"])))
    return total


def _count_content(content: Any, encoding: tiktoken.Encoding) -> int:
    if isinstance(content, str):
        return len(encoding.encode_ordinary(content))
    total = 0
    for part in content or []:
        if part.get("type") == "text":
            total += len(encoding.encode_ordinary(str(part.get("text", ""))))
        else:
            total += IMAGE_TOKENS
    return total
