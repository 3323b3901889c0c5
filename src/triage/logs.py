"""Structured logging: one JSON object per line, with the request's fields when it has them.

Prompts and completions are never part of a log record unless an operator opts in; upstream keys
never are (they live in SecretStr and are not in any record).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import pydantic_core


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "triage", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: no traceback text
        try:  # pydantic-core's encoder: ~1.6 µs a request line against json.dumps' ~7
            return pydantic_core.to_json(entry, fallback=str).decode()
        except pydantic_core.PydanticSerializationError:  # e.g. a lone surrogate in content
            return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str) -> None:
    """Route the `triage` loggers to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("triage")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    logging.Formatter.converter = time.gmtime
