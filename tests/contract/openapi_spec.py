"""Validating Triage's responses against the official OpenAI OpenAPI description.

The spec is OpenAPI 3.1 (JSON Schema 2020-12) but still says `nullable: true` in places; those
are rewritten as "or null" before validation.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai" / "openapi.yaml"


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def components() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    return {"components": {"schemas": _nullable(spec["components"]["schemas"])}}


def validate(instance: Any, schema_name: str) -> None:
    schema = {**components(), "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema).validate(instance)
