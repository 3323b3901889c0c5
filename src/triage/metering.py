"""Prices and the cost of one request: pure arithmetic, no I/O but reading litellm's price map.

Owns ``Price``/``ComputePrice``/``Usage``; ``PriceBook`` (bundled per-token prices read from
litellm's JSON price map as a data file, never by importing litellm; overrides; context windows;
the cost formulas); ``ThroughputEstimator`` for local backends that do not report compute time;
savings; and ``format_usd`` for the ``x-triage-cost-usd`` header. Money is ``Decimal`` end to end:
token costs are exact products, time-based costs are rounded to ``COMPUTE_COST_QUANTUM`` because
a division by 3600 has no finite decimal expansion.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

PRICE_SOURCES = frozenset({"bundled", "override", "compute", "unknown"})
USAGE_SOURCES = frozenset({"upstream", "estimated"})
PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
# A picodollar: far below anything a header or a report shows, so rounding never shows up there.
COMPUTE_COST_QUANTUM = Decimal("1E-12")
_SECONDS_PER_HOUR = Decimal(3600)
_ZERO = Decimal(0)
# litellm files some bare model names under a grouped provider ("vertex_ai-language-models"),
# while configs address them by the provider's routing prefix ("vertex_ai/gemini-...").
_GROUPED_PROVIDER = re.compile(r"([a-z0-9_]+)-[a-z0-9_-]*models")


def to_decimal(value: object, *, field: str) -> Decimal:
    """A non-negative finite Decimal from a config value (YAML gives floats: go through str)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{field} must be a number, got {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{field} must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
    return number


def _check_money(value: object, *, field: str) -> None:
    # Reject floats here: a float that slipped in would make every later sum inexact.
    if not isinstance(value, Decimal):
        raise TypeError(f"{field} must be a Decimal, got {type(value).__name__}")
    to_decimal(value, field=field)


@dataclass(frozen=True)
class Price:
    """USD per token. ``source`` says where the numbers came from (see ``PRICE_SOURCES``)."""

    input_per_token: Decimal
    output_per_token: Decimal
    source: str

    def __post_init__(self) -> None:
        _check_money(self.input_per_token, field="input_per_token")
        _check_money(self.output_per_token, field="output_per_token")
        if self.source not in PRICE_SOURCES:
            raise ValueError(f"unknown price source {self.source!r}")

    @classmethod
    def from_config(cls, input_cost_per_token: object, output_cost_per_token: object) -> Price:
        """An override price from a deployment's config values (floats, ints or strings)."""
        return cls(
            to_decimal(input_cost_per_token, field="input_cost_per_token"),
            to_decimal(output_cost_per_token, field="output_cost_per_token"),
            "override",
        )


UNKNOWN_PRICE = Price(_ZERO, _ZERO, "unknown")


@dataclass(frozen=True)
class ComputePrice:
    """A local deployment's amortised hardware + power cost per hour of compute."""

    gpu_hour_cost: Decimal

    def __post_init__(self) -> None:
        _check_money(self.gpu_hour_cost, field="gpu_hour_cost")

    @classmethod
    def from_config(cls, gpu_hour_cost: object) -> ComputePrice:
        return cls(to_decimal(gpu_hour_cost, field="gpu_hour_cost"))


@dataclass(frozen=True)
class Usage:
    """Tokens of one request; ``compute_seconds`` is the backend's own compute time, if reported."""

    prompt_tokens: int
    completion_tokens: int
    source: str
    compute_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError("token counts must be >= 0")
        if self.source not in USAGE_SOURCES:
            raise ValueError(f"unknown usage source {self.source!r}")
        if self.compute_seconds is not None and not (
            math.isfinite(self.compute_seconds) and self.compute_seconds >= 0
        ):
            raise ValueError("compute_seconds must be a finite number >= 0")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Cost:
    """What one request cost and which kind of price produced the number."""

    usd: Decimal
    source: str


def bundled_price_map_path() -> Path:
    """Where litellm's bundled price map lives, found without running ``litellm/__init__.py``."""
    # find_spec on a top-level name only locates the package; importing litellm costs seconds.
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / PRICE_MAP_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"litellm's {PRICE_MAP_FILE} was not found; is litellm installed?")


def read_bundled_map(path: Path | None = None) -> dict[str, Any]:
    """The raw price map with every JSON number that has a fraction parsed as ``Decimal``."""
    with (path or bundled_price_map_path()).open(encoding="utf-8") as handle:
        raw = json.load(handle, parse_float=Decimal)
    if not isinstance(raw, dict):
        raise ValueError("litellm's price map is not a JSON object")
    return raw


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    number = Decimal(value)
    return number if number.is_finite() and number >= 0 else None


def _names(key: str, entry: Mapping[str, Any]) -> list[str]:
    """The key itself, plus "provider/model" aliases for bare keys (litellm files gpt-4o bare)."""
    provider = entry.get("litellm_provider")
    if "/" in key or not isinstance(provider, str) or not provider:
        return [key]
    names = [key, f"{provider}/{key}"]
    grouped = _GROUPED_PROVIDER.fullmatch(provider)
    if grouped:
        names.append(f"{grouped.group(1)}/{key}")
    return names


def _index(
    raw: Mapping[str, Any], extract: Callable[[Mapping[str, Any]], _T | None]
) -> dict[str, _T]:
    """Map every name of every entry to ``extract(entry)``; real keys beat derived aliases."""
    table: dict[str, _T] = {}
    entries = [
        (key, entry, extract(entry))
        for key, entry in raw.items()
        if isinstance(entry, Mapping) and key != "sample_spec"  # sample_spec documents the schema
    ]
    for key, _, value in entries:
        if value is not None:
            table[key] = value
    for key, entry, value in entries:
        if value is not None:
            for alias in _names(key, entry)[1:]:
                table.setdefault(alias, value)
    return table


def _price_of(entry: Mapping[str, Any]) -> Price | None:
    input_cost = _number(entry.get("input_cost_per_token"))
    if input_cost is None:  # image, audio, rerank ... entries are priced per something else
        return None
    output_cost = _number(entry.get("output_cost_per_token")) or _ZERO
    return Price(input_cost, output_cost, "bundled")


def _context_window_of(entry: Mapping[str, Any]) -> int | None:
    window = _number(entry.get("max_input_tokens"))
    return int(window) if window is not None and window > 0 else None


def load_bundled_prices(raw: Mapping[str, Any] | None = None) -> Mapping[str, Price]:
    """Per-token prices by model name ("gpt-4o", "openai/gpt-4o", "ollama/llama3", ...)."""
    return _index(read_bundled_map() if raw is None else raw, _price_of)


def load_bundled_context_windows(raw: Mapping[str, Any] | None = None) -> Mapping[str, int]:
    """``max_input_tokens`` by model name, with the same aliases as ``load_bundled_prices``."""
    return _index(read_bundled_map() if raw is None else raw, _context_window_of)


class PriceBook:
    """Per-token prices and context windows by model name, plus the cost formulas.

    ``None`` for a table means "from litellm's bundled map"; the file is parsed on first use (once
    per PriceBook, shared by both tables), never at import. Call ``load()`` at startup to fail
    fast if the map is missing.
    """

    def __init__(
        self,
        bundled: Mapping[str, Price] | None = None,
        *,
        context_windows: Mapping[str, int] | None = None,
    ) -> None:
        self._prices = bundled
        self._windows = context_windows
        self._lock = threading.Lock()

    def load(self) -> None:
        """Parse the bundled map now if any table still needs it (idempotent, thread-safe)."""
        if self._prices is not None and self._windows is not None:
            return
        with self._lock:
            if self._prices is None or self._windows is None:
                raw = read_bundled_map()
                if self._windows is None:
                    self._windows = load_bundled_context_windows(raw)
                if self._prices is None:
                    self._prices = load_bundled_prices(raw)

    def price_for(self, model: str, *, override: Price | None = None) -> Price:
        """The override if given, else the bundled price, else a zero price marked "unknown"."""
        if override is not None:
            return override
        if self._prices is None:
            self.load()
        assert self._prices is not None  # load() filled it; for mypy
        return _lookup(self._prices, model) or UNKNOWN_PRICE

    def context_window(self, model: str) -> int | None:
        """The model's max input tokens per the bundled map, or None when it is not known."""
        if self._windows is None:
            self.load()
        assert self._windows is not None  # load() filled it; for mypy
        return _lookup(self._windows, model)

    @staticmethod
    def cost(price: Price, usage: Usage) -> Decimal:
        """Token cost; exact, as prices and token counts are exact."""
        return (
            price.input_per_token * usage.prompt_tokens
            + price.output_per_token * usage.completion_tokens
        )

    @staticmethod
    def compute_cost(
        compute: ComputePrice,
        usage: Usage,
        *,
        upstream_seconds: float,
        throughput: float | None,
    ) -> Decimal:
        """``gpu_hour_cost`` x ``compute_seconds(...)`` / 3600, rounded to a picodollar."""
        seconds = compute_seconds(usage, upstream_seconds=upstream_seconds, throughput=throughput)
        return PriceBook.seconds_cost(compute, seconds)

    @staticmethod
    def seconds_cost(compute: ComputePrice, seconds: float) -> Decimal:
        """What `seconds` (`compute_seconds`) of compute cost, rounded to a picodollar."""
        cost = compute.gpu_hour_cost * Decimal(repr(seconds)) / _SECONDS_PER_HOUR
        return cost.quantize(COMPUTE_COST_QUANTUM, rounding=ROUND_HALF_EVEN)

    def request_cost(
        self,
        model: str,
        usage: Usage,
        *,
        override: Price | None = None,
        compute: ComputePrice | None = None,
        upstream_seconds: float = 0.0,
        throughput: float | None = None,
    ) -> Cost:
        """What a request on a deployment cost: override, else compute price, else bundled."""
        # An operator's explicit per-token price is the most specific statement of cost, so it
        # beats a compute price; a compute price beats the map, whose local entries are all 0.
        if compute is not None and override is None:
            usd = self.compute_cost(
                compute, usage, upstream_seconds=upstream_seconds, throughput=throughput
            )
            return Cost(usd, "compute")
        price = self.price_for(model, override=override)
        return Cost(self.cost(price, usage), price.source)


def _lookup(table: Mapping[str, _T], model: str) -> _T | None:
    found = table.get(model)
    # Configs are typed by hand; litellm's keys are almost all lower case.
    return found if found is not None else table.get(model.lower())


def compute_seconds(usage: Usage, *, upstream_seconds: float, throughput: float | None) -> float:
    """Backend-reported compute time, else tokens / measured tokens-per-second, else wall time."""
    if usage.compute_seconds is not None:
        return usage.compute_seconds
    if throughput is not None and throughput > 0 and usage.total_tokens > 0:
        return usage.total_tokens / throughput
    return upstream_seconds if math.isfinite(upstream_seconds) and upstream_seconds > 0 else 0.0


def _durations(source: Mapping[str, Any], keys: tuple[str, str], scale: float) -> float | None:
    values = [source.get(key) for key in keys]
    found = [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
    ]
    return sum(found) / scale if found else None


def ollama_compute_seconds(body: Mapping[str, Any]) -> float | None:
    """From an Ollama native response: ``prompt_eval_duration`` + ``eval_duration`` (ns)."""
    return _durations(body, ("prompt_eval_duration", "eval_duration"), 1e9)


def llamacpp_compute_seconds(body: Mapping[str, Any]) -> float | None:
    """From a llama.cpp server response: ``timings.prompt_ms`` + ``timings.predicted_ms``."""
    timings = body.get("timings")
    if not isinstance(timings, Mapping):
        return None
    return _durations(timings, ("prompt_ms", "predicted_ms"), 1e3)


def backend_compute_seconds(body: Mapping[str, Any]) -> float | None:
    """Whichever of the known backends' compute-time reports the response body carries."""
    reported = llamacpp_compute_seconds(body)
    return reported if reported is not None else ollama_compute_seconds(body)


class ThroughputEstimator:
    """Per-deployment EWMA of (prompt + completion tokens) / upstream seconds.

    Read the estimate before observing a request, so a request's cost is not priced with its own
    timing. Thread-safe; the state is this instance's, never module-global.
    """

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._rates: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, deployment: str, tokens: int, seconds: float) -> None:
        """Fold in one request; requests with no tokens or no measurable time carry no signal."""
        if tokens <= 0 or not (math.isfinite(seconds) and seconds > 0):
            return
        rate = tokens / seconds
        with self._lock:
            previous = self._rates.get(deployment)
            self._rates[deployment] = (
                rate if previous is None else previous + self._alpha * (rate - previous)
            )

    def tokens_per_second(self, deployment: str) -> float | None:
        with self._lock:
            return self._rates.get(deployment)


def counterfactual_cost(book: PriceBook, reference_model: str, usage: Usage) -> Decimal:
    """The same usage priced on the reference model (e.g. "openai/gpt-4o")."""
    return book.cost(book.price_for(reference_model), usage)


def saving(*, counterfactual: Decimal, actual: Decimal) -> Decimal:
    """What routing saved; negative when the route cost more than the reference (kept, not 0)."""
    return counterfactual - actual


def format_usd(amount: Decimal) -> str:
    """Plain decimal USD, at most 8 places, no exponent, no trailing zeros: "0.0075", "0"."""
    if not amount.is_finite():
        raise ValueError(f"cannot format {amount!r} as USD")
    text = format(amount.quantize(Decimal("1E-8"), rounding=ROUND_HALF_EVEN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
