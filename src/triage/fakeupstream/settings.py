"""Behaviour settings of the fake upstream: defaults, validation and per-request header overrides.

Owns FakeSettings (what the server does when nothing is injected), Fault (one injected failure),
Chaos (probabilistic failures) and the parsing that turns JSON, CLI and header values into them.
Unknown names are rejected so a typo in a test fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MODELS = ("fake-model", "fake-small", "fake-large", "fake-embedding")

# Fields a single request may override with an `x-fake-<name>` header (underscores as dashes).
TUNABLE: Mapping[str, type] = {
    "latency_ms": float,
    "ttft_ms": float,
    "tokens_per_second": float,
    "completion_tokens": int,
    "chunk_tokens": int,
    "count_usage_in_stream": bool,
    "embedding_dimensions": int,
}
_MINIMUM = {"chunk_tokens": 1, "embedding_dimensions": 1}

FAULT_KINDS = frozenset(
    {
        "status",
        "hang",
        "cut_stream",
        "connection_reset",
        "context_window",
        "content_policy",
        "slow",
        "stream_error",
    }
)
_FAULT_DEFAULT_STATUS = {"status": 500, "context_window": 400, "content_policy": 400}
HEADER_PREFIX = "x-fake-"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def coerce(name: str, kind: type, value: Any) -> Any:
    """Convert a JSON, CLI or header value to `kind`, rejecting nonsense with a ValueError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"{name} must be a boolean, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number < _MINIMUM.get(name, 0):
        raise ValueError(f"{name} must be >= {_MINIMUM.get(name, 0)}, got {value!r}")
    return number


@dataclass(frozen=True)
class Fault:
    """One injected failure. `model`/`path` restrict which requests may consume it."""

    kind: str
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    body: Any = None
    content_type: str | None = None
    after_chunks: int = 0
    latency_ms: float = 0.0
    model: str | None = None
    path: str | None = None
    times: int = 1

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Fault) -> Fault:
        if isinstance(data, Fault):
            return data
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        fields = dict(data)
        status = fields.get("status", _FAULT_DEFAULT_STATUS.get(kind))
        if status is not None:
            fields["status"] = coerce("status", int, status)
            if not 100 <= fields["status"] <= 599:
                raise ValueError(f"status must be an HTTP status, got {status!r}")
        for name, kind_type in (("after_chunks", int), ("latency_ms", float), ("times", int)):
            if name in fields:
                fields[name] = coerce(name, kind_type, fields[name])
        if fields.get("retry_after") is not None:
            fields["retry_after"] = coerce("retry_after", float, fields["retry_after"])
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind}
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if value != field.default:
                out[field.name] = value
        return out


@dataclass(frozen=True)
class Chaos:
    """Probabilistic faults drawn from a seeded RNG, so a given seed replays the same sequence."""

    seed: int
    # Cumulative thresholds in config order: the first whose bound exceeds the draw wins.
    outcomes: tuple[tuple[float, Fault], ...]
    source: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any] | Chaos) -> Chaos:
        if isinstance(data, Chaos):
            return data
        seed = coerce("seed", int, data.get("seed", 0))
        after = coerce("after_chunks", int, data.get("after_chunks", 1))
        slow_ms = coerce("slow_ms", float, data.get("slow_ms", 1000))
        retry_after = data.get("retry_after")
        outcomes: list[tuple[float, Fault]] = []
        total = 0.0
        for key, value in data.items():
            if key in ("seed", "after_chunks", "slow_ms", "retry_after"):
                continue
            fault = _chaos_fault(key, after, slow_ms, retry_after)
            total += coerce(key, float, value)
            outcomes.append((total, fault))
        if total > 1.0 + 1e-9:
            raise ValueError(f"chaos probabilities add up to {total:.3f} > 1")
        return cls(seed=seed, outcomes=tuple(outcomes), source=dict(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.source)


def _chaos_fault(key: str, after: int, slow_ms: float, retry_after: Any) -> Fault:
    if key.startswith("status_"):
        data: dict[str, Any] = {"kind": "status", "status": key.removeprefix("status_")}
        if key == "status_429" and retry_after is not None:
            data["retry_after"] = retry_after
        return Fault.parse(data)
    if key in ("cut_stream", "stream_error"):
        return Fault.parse({"kind": key, "after_chunks": after})
    if key == "slow":
        return Fault.parse({"kind": "slow", "latency_ms": slow_ms})
    if key in FAULT_KINDS and key != "status":
        return Fault.parse({"kind": key})
    raise ValueError(f"unknown chaos key {key!r}")


@dataclass(frozen=True)
class FakeSettings:
    """Server-wide behaviour. Times are milliseconds; 0 means "no delay" and costs nothing."""

    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    completion_tokens: int = 12
    chunk_tokens: int = 1
    count_usage_in_stream: bool = True
    embedding_dimensions: int = 8
    models: Sequence[str] = DEFAULT_MODELS
    record_requests: bool = True
    max_recorded: int = 10_000
    faults: Sequence[Mapping[str, Any] | Fault] = ()
    chaos: Mapping[str, Any] | Chaos | None = None

    def __post_init__(self) -> None:
        for name, kind in TUNABLE.items():
            object.__setattr__(self, name, coerce(name, kind, getattr(self, name)))
        object.__setattr__(
            self, "record_requests", coerce("record_requests", bool, self.record_requests)
        )
        object.__setattr__(self, "max_recorded", coerce("max_recorded", int, self.max_recorded))
        if isinstance(self.models, str) or not all(isinstance(m, str) for m in self.models):
            raise ValueError("models must be a list of model names")
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "faults", tuple(Fault.parse(f) for f in self.faults))
        if self.chaos is not None:
            object.__setattr__(self, "chaos", Chaos.parse(self.chaos))

    def fault_list(self) -> list[Fault]:
        return [f for f in self.faults if isinstance(f, Fault)]

    def chaos_config(self) -> Chaos | None:
        return self.chaos if isinstance(self.chaos, Chaos) else None

    def updated(self, changes: Mapping[str, Any]) -> FakeSettings:
        """A copy with `changes` (JSON-style names and values) applied; ValueError on unknowns."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in TUNABLE}
        out["models"] = list(self.models)
        out["record_requests"] = self.record_requests
        out["max_recorded"] = self.max_recorded
        return out


def header_overrides(headers: Mapping[str, str]) -> tuple[dict[str, Any], Fault | None]:
    """Per-request overrides from `x-fake-*` headers: tunable settings plus an optional fault.

    `x-fake-fault` takes a fault kind ("hang") or a JSON fault object; `x-fake-status: 503` is
    shorthand for a status fault.
    """
    overrides: dict[str, Any] = {}
    fault: Fault | None = None
    for key, value in headers.items():
        lower = key.lower()
        if not lower.startswith(HEADER_PREFIX):
            continue
        name = lower[len(HEADER_PREFIX) :].replace("-", "_")
        if name in TUNABLE:
            overrides[name] = coerce(lower, TUNABLE[name], value)
        elif name == "fault":
            fault = _header_fault(value)
        elif name == "status":
            fault = Fault.parse({"kind": "status", "status": value})
        else:
            raise ValueError(f"unknown header {lower}")
    return overrides, fault


def _header_fault(value: str) -> Fault:
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"x-fake-fault is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("x-fake-fault must be a JSON object or a fault kind")
        return Fault.parse(data)
    return Fault.parse({"kind": text})
